"""Recover a ferkit checkpoint from a model that ferkit exported to ONNX (fp32 or static int8), to warm-start training
from it (``ferkit train --init OUT.pt``) when the run's own checkpoint is gone, e.g. a shipped model's.

    .venv/bin/python tools/checkpoint_from_onnx.py src/ferkit/weights/resnet_sw_fer2013.int8.onnx runs/default.pt \\
        --data ../shared/data/fer2013.csv.gz

The export folded each BatchNorm into the convolution before it, and ``--int8`` quantised the weights. Here the
weights are dequantised (each initialiser evaluated through its DequantizeLinear) and loaded by name into the
network the file's metadata names; each BatchNorm is then set so that it passes its input through unchanged, but
with the statistics of that input measured on ``--images`` Training faces: gamma = std and beta = mean of each
channel, running mean and variance the same. In eval mode it computes the folded network exactly; in train mode,
where batch statistics replace the running ones, nearly so, so training resumes where the file left off. The
input normalisation (mean, std) comes from the graph's first Mul and Sub; the temperature, a Div after the logits,
is left out. The checkpoint's ``config`` is the file's ``train_config``. It takes the registry's grey-input networks
whose every convolution is followed by a BatchNorm in the same Sequential (the ResNet, VGG and MobileNet families);
for others it says which layer it cannot place.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from ferkit.core.checkpoint import Checkpoint
from ferkit.core.detect import FaceCropper
from ferkit.core.predict import resize_faces, to_input
from ferkit.data import load_dataset
from ferkit.models import create_model


def _constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Every initialiser, and every DequantizeLinear output whose inputs are all initialisers, as float arrays."""
    values = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and all(name in values for name in node.input if name):
            q, scale = values[node.input[0]].astype(np.float64), values[node.input[1]].astype(np.float64)
            zero = values[node.input[2]].astype(np.float64) if len(node.input) > 2 and node.input[2] else 0.0
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            if scale.ndim == 1 and q.ndim > 1:
                shape = [1] * q.ndim
                shape[axis] = scale.size
                scale = scale.reshape(shape)
                zero = np.reshape(zero, shape) if np.ndim(zero) else zero
            values[node.output[0]] = ((q - zero) * scale).astype(np.float32)
    return values


def _layer_tensors(model: onnx.ModelProto, values: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each Conv and Gemm's (weight, bias), keyed by the torch module name the exporter gave its weight."""
    layers = {}
    for node in model.graph.node:
        if node.op_type in ("Conv", "Gemm"):
            weight_name = node.input[1].removesuffix("_DequantizeLinear_Output")
            module = weight_name.removeprefix("model.").removesuffix(".weight")
            weight = values[node.input[1]]
            if node.op_type == "Gemm" and not any(a.name == "transB" and a.i for a in node.attribute):
                weight = weight.T
            layers[module] = (weight, values[node.input[2]])
    return layers


def input_side(model: onnx.ModelProto) -> int:
    """The side S of the export's input, grey faces (N, 1, S, S): the checkpoint's input size."""
    return model.graph.input[0].type.tensor_type.shape.dim[2].dim_value


def _normalisation(model: onnx.ModelProto, values: dict[str, np.ndarray]) -> tuple[float, float]:
    """(mean, std) from the export wrapper's ``x * 1/(255 std) - mean/std``: the graph's first Mul and Sub."""
    mul = next(n for n in model.graph.node if n.op_type == "Mul")
    sub = next(n for n in model.graph.node if n.op_type == "Sub")
    scale = float(next(values[i] for i in mul.input if i in values))
    shift = float(values[sub.input[1]])
    std = 1.0 / (255.0 * scale)
    return shift * std, std


def recover(onnx_path: Path, images: np.ndarray) -> Checkpoint:
    """The checkpoint of ``onnx_path``, its BatchNorms measured on ``images`` (N, H, W) uint8, resized to its input."""
    model_proto = onnx.load(str(onnx_path))
    meta = {p.key: p.value for p in model_proto.metadata_props}
    values = _constants(model_proto)
    layers = _layer_tensors(model_proto, values)
    mean, std = _normalisation(model_proto, values)
    classes = json.loads(meta["classes"])
    net = create_model(meta["model"], num_classes=len(classes), in_chans=1).eval()
    modules = dict(net.named_modules())
    missing = [name for name, m in modules.items() if isinstance(m, (nn.Conv2d, nn.Linear)) and name not in layers]
    if missing:
        raise SystemExit(f"{onnx_path}: no weights in the graph for {', '.join(missing)}")
    conv_bn: list[tuple[nn.Conv2d, nn.BatchNorm2d]] = []
    for name, (weight, bias) in layers.items():
        layer = modules[name]
        layer.weight.data.copy_(torch.from_numpy(np.array(weight)))
        if isinstance(layer, nn.Linear):
            layer.bias.data.copy_(torch.from_numpy(np.array(bias)))
            continue
        parent, index = name.rsplit(".", 1)
        bn = modules[parent][int(index) + 1]
        if not isinstance(bn, nn.BatchNorm2d):
            raise SystemExit(f"{onnx_path}: {name} is not followed by a BatchNorm2d")
        bn.weight.data.fill_(1.0)
        bn.bias.data.copy_(torch.from_numpy(np.array(bias)))
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)  # exactly the identity plus the folded bias: the graph's network
        conv_bn.append((layer, bn))
    sums = {id(conv): [0.0, 0.0, 0] for conv, _ in conv_bn}

    def measure(conv: nn.Module, _: tuple, out: torch.Tensor) -> None:
        s, y = sums[id(conv)], out.double()
        s[0] += y.sum((0, 2, 3))
        s[1] += (y ** 2).sum((0, 2, 3))
        s[2] += out.numel() // out.shape[1]

    hooks = [conv.register_forward_hook(measure) for conv, _ in conv_bn]
    side = input_side(model_proto)
    x = to_input(resize_faces(images, side), mean, std)
    with torch.no_grad():
        for batch in x.split(256):
            net(batch)
    for hook in hooks:
        hook.remove()
    for conv, bn in conv_bn:
        total, squares, n = sums[id(conv)]
        conv_mean = total / n  # of the convolution's output, without the folded bias
        var = (squares / n - conv_mean ** 2).clamp_min(0.0)
        bias = bn.bias.data.double()
        bn.running_mean.copy_(conv_mean)
        bn.running_var.copy_(var)
        bn.weight.data.copy_(torch.sqrt(var + bn.eps))
        bn.bias.data.copy_(conv_mean + bias)
    config = json.loads(meta.get("train_config", "{}"))
    val_acc = float(meta["val_acc"]) if meta.get("val_acc") else None
    return Checkpoint(model=meta["model"], classes=classes, state_dict=net.state_dict(), mean=mean, std=std,
                      input_size=side, config=config, val_acc=val_acc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("onnx", type=Path, help="a model exported by `ferkit export` (fp32 or --int8)")
    parser.add_argument("out", type=Path, help="the checkpoint to write (.pt)")
    parser.add_argument("--data", required=True, help="the data set whose Training faces measure the BatchNorms")
    parser.add_argument("--images", type=int, default=4096, help="how many Training faces (default 4096)")
    args = parser.parse_args()
    side = input_side(onnx.load(str(args.onnx)))
    train = load_dataset(args.data, size=side, cropper=FaceCropper(side)).split("train")  # image files read at its size
    pick = np.random.default_rng(0).permutation(len(train))[: args.images]
    ckpt = recover(args.onnx, train.images[np.sort(pick)])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    ckpt.save(args.out)
    print(f"{args.out}: {ckpt.model}, {len(ckpt.classes)} classes, mean {ckpt.mean:.4f}, std {ckpt.std:.4f}")


if __name__ == "__main__":
    main()
