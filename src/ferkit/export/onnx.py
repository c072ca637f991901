"""ONNX export: fp32, and static int8 calibrated on Training images, for ONNX Runtime.

The exported graph takes grey faces as float32 (N, 1, S, S), S the checkpoint's input size (48 for
FER2013), with values 0..255, and returns class probabilities (N, C): normalisation, the repetition of
the grey channel for 3-channel models, and softmax are inside, so a runtime needs nothing but the file.
Its metadata names the classes, the model and the checkpoint it came from.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core.calibration import check_temperature
from ..core.checkpoint import Checkpoint
from ..core.runtime import INT8_WEIGHT_BITS, PERCENTILE, check_calibration_method
from ..errors import ConfigError
from ..version import __version__

INPUT, OUTPUT = "faces", "probs"


class ExportWrapper(nn.Module):
    """grey 0..255 -> normalised -> repeated to ``channels`` -> model -> logits / ``temperature`` -> softmax."""

    def __init__(self, model: nn.Module, mean: float, std: float, channels: int = 1, temperature: float = 1.0) -> None:
        super().__init__()
        self.model = model
        self.scale = 1.0 / (255.0 * std)
        self.shift = mean / std
        self.channels = channels
        self.temperature = check_temperature(temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.scale - self.shift
        if self.channels != 1:
            x = x.expand(-1, self.channels, -1, -1)
        logits = self.model(x)
        if self.temperature != 1.0:
            logits = logits / self.temperature
        return F.softmax(logits, dim=1)


def input_shape(ckpt: Checkpoint, batch: int | str = "N") -> tuple[int | str, int, int, int]:
    """The exported graph's input: grey faces (batch, 1, size, size), whatever the model's channels."""
    return batch, 1, ckpt.input_size, ckpt.input_size


def _metadata(ckpt: Checkpoint, int8: bool, temperature: float, method: str = "minmax") -> dict[str, str]:
    shape = ", ".join(map(str, input_shape(ckpt)))
    return {"ferkit_version": __version__, "model": ckpt.model, "classes": json.dumps(list(ckpt.classes)),
            "input": f"grey faces float32 ({shape}), values 0..255", "output": "class probabilities (N, C)",
            "precision": "int8" if int8 else "fp32",
            **({"weight_bits": INT8_WEIGHT_BITS, "calibration": method} if int8 else {}),
            "temperature": repr(float(temperature)),
            "val_acc": "" if ckpt.val_acc is None else str(ckpt.val_acc),
            "train_config": json.dumps(ckpt.config)}


def _export_fp32(ckpt: Checkpoint, path: Path, temperature: float) -> None:
    wrapper = ExportWrapper(ckpt.build_model(), ckpt.mean, ckpt.std, ckpt.channels, temperature).eval()
    example = (torch.zeros(input_shape(ckpt, 2)),)
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(wrapper, example, dynamo=True, input_names=[INPUT], output_names=[OUTPUT],
                                        dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
            program.save(str(path))
    finally:
        quiet.setLevel(level)


def _set_metadata(path: Path, meta: dict[str, str]) -> None:
    import onnx

    m = onnx.load(str(path))
    del m.metadata_props[:]
    for k, v in meta.items():
        m.metadata_props.add(key=k, value=v)
    onnx.save(m, str(path))


def _calibration_batches(faces: np.ndarray, size: int = 64) -> list[np.ndarray]:
    """``faces`` (N, S, S) as float32 batches (B, 1, S, S) of one size B <= ``size`` (the histogram calibrators
    stack them), the last one completed with the first faces."""
    count = -(-len(faces) // size)
    per = -(-len(faces) // count)
    x = faces.astype(np.float32)[:, None]
    x = np.concatenate([x, x[: count * per - len(x)]])
    return list(x.reshape(count, per, *x.shape[1:]))


def _quantize_int8(fp32: Path, out: Path, calibration: np.ndarray, seven_bit_weights: bool = True,
                   method: str = "minmax") -> None:
    """Quantise ``fp32`` statically to ``out`` (QDQ, per-channel int8 weights, uint8 activations), calibrated on
    ``calibration`` (uint8 faces) with ``method`` (one of CALIBRATION_METHODS: the activations' ranges);
    ``seven_bit_weights=False`` writes the 8-bit weights of exports before them."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    check_calibration_method(method)
    calibrate = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile}[method]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(_calibration_batches(calibration))

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {INPUT: batch}

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        # The softmax (and the temperature's division before it) stays float: quantised, the probabilities came
        # out in steps of 1/255 and summed to 0.99.
        nodes = onnx.load(str(prepared)).graph.node
        softmax_inputs = {i for n in nodes if n.op_type == "Softmax" for i in n.input}
        tail = [n.name for n in nodes if n.op_type == "Softmax" or (n.op_type == "Div" and n.output[0] in softmax_inputs)]
        # Weights in 7 bits (reduce_range): ONNX Runtime's fused int8 convolutions on AVX2 CPUs without VNNI sum
        # pairs of uint8 x int8 products in 16 bits (VPMADDUBSW), which saturate with 8-bit weights (the default
        # model lost 2.6 points of PublicTest so) and are exact with 7-bit ones; the metadata says weight_bits 7.
        with contextlib.redirect_stdout(io.StringIO()):  # the histogram calibrators print their progress
            quantize_static(str(prepared), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            reduce_range=seven_bit_weights, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, nodes_to_exclude=tail, calibrate_method=calibrate,
                            extra_options={"CalibPercentile": PERCENTILE})


def export_onnx(ckpt: Checkpoint, out: Path, int8: bool = False, calibration: np.ndarray | None = None,
                temperature: float = 1.0, calibration_method: str = "minmax") -> Path:
    """Export a loaded checkpoint to ``out`` (ONNX). ``int8`` quantises statically; ``calibration``
    is a uint8 (N, S, S) array of Training faces, from which ``calibration_method`` sets the activations' ranges;
    the logits are divided by ``temperature`` before the softmax."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if int8 and (calibration is None or len(calibration) == 0):
        raise ConfigError("int8 export needs calibration images (Training faces): pass --data")
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        _export_fp32(ckpt, fp32, temperature)
        _set_metadata(fp32, _metadata(ckpt, False, temperature))
        if int8:
            q = Path(tmp) / "int8.onnx"
            _quantize_int8(fp32, q, calibration, method=calibration_method)
            _set_metadata(q, _metadata(ckpt, True, temperature, calibration_method))
            q.replace(out)
        else:
            fp32.replace(out)
    return out
