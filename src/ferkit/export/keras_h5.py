"""Keras models saved as HDF5, read with h5py (no TensorFlow): a full model (``model.save("m.h5")``, its
architecture in the ``model_config`` attribute) or weights (``model.save_weights("w.h5")``) with the architecture
of ``model.to_json()``. :func:`keras_units` walks the layer graph, infers every tensor's shape, and gives the
weighted layers in PyTorch's layout (convolutions OIHW, dense layers transposed; the features after a Flatten
stay in Keras' (H, W, C) order, and :meth:`Unit.nchw` gives them in nn.Flatten's), with the activations met on the
way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.runtime import ModelError
from ..errors import optional_import

IDENTITY = {"Dropout", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "AlphaDropout", "RandomFlip",
            "RandomRotation", "RandomZoom", "RandomTranslation", "RandomContrast"}  # no-ops at inference
ACTIVATIONS = {"relu", "tanh", "sigmoid", "elu", "selu", "softplus", "swish", "silu", "gelu", "softmax"}


@dataclass
class KerasLayer:
    name: str
    kind: str  # the Keras class name
    config: dict[str, Any]
    inbound: list[str]
    weights: dict[str, np.ndarray] = field(default_factory=dict)  # by short name: kernel, bias, gamma, ...


@dataclass
class KerasModel:
    path: Path
    layers: list[KerasLayer]
    keras_version: str
    json_path: Path | None = None  # where the architecture came from, when not from the file itself


@dataclass
class Unit:
    """A weighted Keras layer (a SeparableConv2D gives two) as PyTorch would hold it."""

    kind: str  # conv, dwconv, dense, bn
    layer: str
    params: list[np.ndarray]  # conv/dwconv/dense: weight[, bias]; bn: weight, bias, running_mean, running_var
    out_shape: tuple[int, ...]  # (C, H, W) or (F,), PyTorch's order
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    eps: float = 0.0
    flat_from: tuple[int, int, int] | None = None  # dense/bn on a flattened (H, W, C) image: features in that order

    def nchw(self) -> list[np.ndarray]:
        """``params`` with the features of a flattened image in PyTorch's (C, H, W) order (nn.Flatten's)."""
        if self.flat_from is None:
            return self.params
        h, w, c = self.flat_from
        if self.kind == "dense":
            weight = self.params[0]
            return [weight.reshape(-1, h, w, c).transpose(0, 3, 1, 2).reshape(weight.shape)] + self.params[1:]
        return [p.reshape(h, w, c).transpose(2, 0, 1).reshape(-1) for p in self.params]


@dataclass
class KerasGraph:
    input_shape: tuple[int, int, int]  # (H, W, C)
    units: list[Unit]
    activations: list[str]  # in layer order, the final softmax left out
    num_classes: int
    num_params: int  # as Keras counts them (BatchNorm moving statistics included)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _short(weight_name: str) -> str:
    """'conv2d_1/kernel:0' -> 'kernel'."""
    return weight_name.rsplit("/", 1)[-1].split(":")[0]


def _read_weights(group: Any) -> dict[str, dict[str, np.ndarray]]:
    if "layer_names" not in group.attrs:
        raise KeyError("no layer_names attribute: not a Keras 2 HDF5 model or weights file")
    out = {}
    for name in map(_text, group.attrs["layer_names"]):
        layer = group[name]
        out[name] = {_short(_text(w)): np.asarray(layer[_text(w)]) for w in layer.attrs.get("weight_names", [])}
    return out


def _inbound(layer: dict[str, Any]) -> list[str]:
    """The names of the layers feeding ``layer`` in a functional model's config (Keras 2 and 3 formats)."""
    nodes = layer.get("inbound_nodes") or []
    if len(nodes) > 1:
        raise ValueError(f"layer {layer.get('name')!r} is shared (called {len(nodes)} times)")
    if not nodes:
        return []
    node = nodes[0]
    if isinstance(node, dict):  # Keras 3: {"args": [tensor or [tensors]], "kwargs": {}}
        found: list[str] = []

        def walk(x: Any) -> None:
            if isinstance(x, dict) and "keras_history" in x.get("config", {}):
                found.append(x["config"]["keras_history"][0])
            elif isinstance(x, list):
                for item in x:
                    walk(item)

        walk(node.get("args", []))
        return found
    return [entry[0] for entry in node]  # Keras 2: [[name, node_index, tensor_index, kwargs], ...]


def _layers(config: dict[str, Any], weights: dict[str, dict[str, np.ndarray]]) -> list[KerasLayer]:
    kind, body = config.get("class_name"), config.get("config")
    if kind == "Sequential":
        items = body if isinstance(body, list) else body["layers"]
        layers, previous = [], []
        for item in items:
            name = item.get("config", {}).get("name") or item.get("name")
            layers.append(KerasLayer(name, item["class_name"], item.get("config", {}), previous))
            previous = [name]
        first = layers[0].config
        shape = first.get("batch_input_shape") or first.get("batch_shape")
        if layers[0].kind != "InputLayer" and shape:  # older Keras keeps the input shape on the first layer
            layers.insert(0, KerasLayer("input", "InputLayer", {"batch_input_shape": shape}, []))
            layers[1].inbound = ["input"]
    elif kind in ("Functional", "Model"):
        layers = [KerasLayer(item["name"], item["class_name"], item.get("config", {}), _inbound(item))
                  for item in body["layers"]]
    else:
        raise ValueError(f"its model class {kind!r} is neither Sequential nor Functional")
    for layer in layers:
        layer.weights = weights.get(layer.name, {})
    return layers


def read_keras(path: str | Path, json_path: str | Path | None = None) -> KerasModel:
    """The layers and weights of a Keras HDF5 file; the architecture from ``json_path``, else from the file,
    else from the ``.json`` file of the same name beside it (as the seeds save them)."""
    h5py = optional_import("h5py", "keras", "ferkit import-keras")
    path = Path(path)
    if not path.is_file():
        raise ModelError(path, "no such file")
    try:
        with h5py.File(path, "r") as f:
            text = f.attrs.get("model_config")
            root = f["model_weights"] if "model_weights" in f else f
            weights = _read_weights(root)
            version = _text(f.attrs.get("keras_version", root.attrs.get("keras_version", "unknown")))
    except (OSError, KeyError, ValueError, TypeError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ModelError(path, f"not a readable Keras HDF5 file ({reason})") from None
    if json_path is None and text is None and path.with_suffix(".json").is_file():
        json_path = path.with_suffix(".json")
    if json_path is not None:
        try:
            text = Path(json_path).read_text()
        except OSError as exc:
            raise ModelError(json_path, f"cannot read the architecture ({exc.strerror or exc})") from None
    if text is None:
        raise ModelError(path, "holds weights only (no model_config): pass the architecture that model.to_json() "
                               "saved with --json ARCH.json")
    source = json_path or path
    try:
        layers = _layers(json.loads(_text(text)), weights)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise ModelError(source, f"not a Keras model architecture ({' '.join(str(exc).split())})") from None
    missing = [layer.name for layer in layers if layer.name not in weights and _has_weights(layer)]
    if missing:
        raise ModelError(path, f"no weights for layer(s) {', '.join(missing)} of the architecture")
    return KerasModel(path, layers, version, Path(json_path) if json_path is not None else None)


def _has_weights(layer: KerasLayer) -> bool:
    return layer.kind in ("Conv2D", "SeparableConv2D", "DepthwiseConv2D", "Dense", "BatchNormalization")


def _pair(value: Any) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, (int, float)) else (int(value[0]), int(value[1]))


def _spatial(layer: KerasLayer, shape: tuple[int, ...], kernel: tuple[int, int], strides: tuple[int, int]
             ) -> tuple[tuple[int, int], tuple[int, int]]:
    """Output (H, W) and PyTorch's symmetric padding of a Keras 'valid' or 'same' window; 'same' padding that is
    not symmetric (TensorFlow puts the odd pixel after) cannot be a PyTorch padding and is refused."""
    if layer.config.get("data_format", "channels_last") != "channels_last":
        raise ValueError(f"layer {layer.name!r} is channels_first")
    if _pair(layer.config.get("dilation_rate", 1)) != (1, 1):
        raise ValueError(f"layer {layer.name!r} is dilated")
    out, pad = [], []
    for n, k, s in zip(shape[:2], kernel, strides):
        if layer.config.get("padding", "valid") == "valid":
            out.append((n - k) // s + 1)
            pad.append(0)
        else:
            out.append(-(-n // s))
            total = max((out[-1] - 1) * s + k - n, 0)
            if total % 2 and layer.kind in ("Conv2D", "SeparableConv2D", "DepthwiseConv2D"):
                raise ValueError(f"layer {layer.name!r}: 'same' padding of {total} pixels is not symmetric")
            pad.append(total // 2)
    return (out[0], out[1]), (pad[0], pad[1])


def _nchw(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (shape[2], shape[0], shape[1]) if len(shape) == 3 else shape


def _activation(layer: KerasLayer, acts: list[str]) -> None:
    name = layer.config.get("activation", "linear")
    if isinstance(name, dict):  # a serialised activation object
        name = name.get("config", {}).get("name") or name.get("class_name", "?")
    if name == "linear":
        return
    if name not in ACTIVATIONS:
        raise ValueError(f"layer {layer.name!r} has activation {name!r}")
    acts.append("swish" if name == "silu" else name)


def keras_units(model: KerasModel) -> KerasGraph:
    """Shapes, weighted units and activations of ``model``; a ValueError names a layer ferkit cannot convert."""
    shapes: dict[str, tuple[int, ...]] = {}
    flat: dict[str, tuple[int, int, int] | None] = {}  # (H, W, C) a vector was flattened from, for row order
    units: list[Unit] = []
    acts: list[str] = []
    input_shape = None
    for layer in model.layers:
        c, w = layer.config, layer.weights
        if layer.kind == "InputLayer":
            shape = tuple(c.get("batch_input_shape") or c.get("batch_shape"))[1:]
            if len(shape) != 3 or None in shape or input_shape is not None:
                raise ValueError(f"input {layer.name!r} of shape {shape} is not one image (H, W, C)")
            shapes[layer.name], flat[layer.name] = shape, None
            input_shape = shape
            continue
        if not layer.inbound or any(name not in shapes for name in layer.inbound):
            raise ValueError(f"layer {layer.name!r} has no known input")
        x, fx = shapes[layer.inbound[0]], flat[layer.inbound[0]]
        out, fout = x, fx
        if layer.kind in ("Conv2D", "SeparableConv2D", "DepthwiseConv2D"):
            if len(x) != 3 or c.get("groups", 1) != 1:
                raise ValueError(f"layer {layer.name!r} is not a plain 2-D convolution of an image")
            kernel, strides = _pair(c["kernel_size"]), _pair(c.get("strides", 1))
            (h, ww), pad = _spatial(layer, x, kernel, strides)
            if layer.kind == "Conv2D":
                units.append(Unit("conv", layer.name, [w["kernel"].transpose(3, 2, 0, 1)] + _bias(w),
                                  (c["filters"], h, ww), strides, pad))
                out = (h, ww, c["filters"])
            else:
                dw = w["depthwise_kernel"]  # (kh, kw, C, multiplier) -> (C * multiplier, 1, kh, kw)
                mid = dw.shape[2] * dw.shape[3]
                dw_t = dw.transpose(2, 3, 0, 1).reshape(mid, 1, *kernel)
                if layer.kind == "DepthwiseConv2D":
                    units.append(Unit("dwconv", layer.name, [dw_t] + _bias(w), (mid, h, ww), strides, pad))
                    out = (h, ww, mid)
                else:
                    units.append(Unit("dwconv", layer.name, [dw_t], (mid, h, ww), strides, pad))
                    units.append(Unit("conv", layer.name, [w["pointwise_kernel"].transpose(3, 2, 0, 1)] + _bias(w),
                                      (c["filters"], h, ww)))
                    out = (h, ww, c["filters"])
            fout = None
            _activation(layer, acts)
        elif layer.kind == "Dense":
            if len(x) != 1:
                raise ValueError(f"dense layer {layer.name!r} gets a tensor of shape {x}, not a vector")
            units.append(Unit("dense", layer.name, [w["kernel"].T] + _bias(w), (c["units"],), flat_from=fx))
            out, fout = (c["units"],), None
            _activation(layer, acts)
        elif layer.kind == "BatchNormalization":
            axis = c.get("axis", -1)
            axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
            if axis not in (-1, len(x)):
                raise ValueError(f"batch normalisation {layer.name!r} is over axis {axis}, not the channels")
            n = x[-1]
            params = [w.get("gamma", np.ones(n, np.float32)), w.get("beta", np.zeros(n, np.float32)),
                      w["moving_mean"], w["moving_variance"]]
            units.append(Unit("bn", layer.name, params, _nchw(x), eps=float(c.get("epsilon", 1e-3)), flat_from=fx))
        elif layer.kind in ("MaxPooling2D", "AveragePooling2D"):
            pool = _pair(c.get("pool_size", 2))
            (h, ww), _ = _spatial(layer, x, pool, _pair(c.get("strides") or pool))
            out, fout = (h, ww, x[2]), None
        elif layer.kind in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
            if c.get("keepdims") or c.get("data_format", "channels_last") != "channels_last":
                raise ValueError(f"layer {layer.name!r} keeps dimensions or is channels_first")
            out, fout = (x[2],), None
        elif layer.kind == "Flatten":
            out, fout = (int(np.prod(x)),), (x if len(x) == 3 and x[0] * x[1] > 1 else fx)
        elif layer.kind in ("Activation", "ReLU", "Softmax"):
            if layer.kind == "Activation":
                _activation(layer, acts)
            elif layer.kind == "Softmax":
                acts.append("softmax")
            elif c.get("max_value") is not None or c.get("negative_slope", 0) or c.get("threshold", 0):
                raise ValueError(f"ReLU {layer.name!r} is capped, leaky or thresholded")
            else:
                acts.append("relu")
        elif layer.kind == "LeakyReLU":
            acts.append(f"leaky_relu({float(c.get('alpha', c.get('negative_slope', 0.3))):g})")
        elif layer.kind == "Add":
            if len({shapes[name] for name in layer.inbound}) != 1:
                raise ValueError(f"layer {layer.name!r} adds tensors of different shapes")
            fout = None
        elif layer.kind not in IDENTITY:
            raise ValueError(f"layer {layer.name!r} is a {layer.kind}, which ferkit does not convert")
        shapes[layer.name], flat[layer.name] = tuple(int(v) for v in out), fout
    if input_shape is None:
        raise ValueError("it has no input layer")
    last = model.layers[-1].name
    if len(shapes[last]) != 1 or not acts or acts[-1] != "softmax":
        raise ValueError(f"its output ({last!r}, shape {shapes[last]}) is not a softmax over classes")
    num_params = sum(a.size for layer in model.layers for a in layer.weights.values())
    return KerasGraph(input_shape, units, acts[:-1], shapes[last][0], num_params)


def _bias(weights: dict[str, np.ndarray]) -> list[np.ndarray]:
    return [weights["bias"]] if "bias" in weights else []
