"""``ferkit export``: write the ONNX file, then check it against PyTorch and on the validation split."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.dataset import FERDataset
from ..core.calibration import apply_temperature, check_temperature, expected_calibration_error, fit_temperature
from ..core.checkpoint import load_checkpoint
from ..core.runtime import check_calibration_method
from ..core.shipped import model_list
from ..core.predict import predict_proba, resize_faces
from ..errors import ConfigError
from .onnx import export_onnx
from .result import ExportResult

FORMATS = ("onnx", "tflite")


def export(checkpoint: str | Path, format: str = "onnx", int8: bool = False, data: str | Path | FERDataset | None = None,
           out: str | Path | None = None, calibration_images: int = 1000, seed: int = 0,
           temperature: float | str = 1.0, calibration_method: str = "minmax") -> ExportResult:
    """Export a checkpoint (``format="onnx"``, fp32 or static ``int8``; or ``"tflite"``, fp32, for
    mobile: needs ``ferkit[tflite]``). ``data`` (default: the
    checkpoint's training data, when it is there) gives int8 calibration faces from its Training
    split and the validation split on which the export's accuracy is compared with PyTorch's;
    ``calibration_method`` (``minmax`` or ``percentile``) sets int8 activations' ranges from those faces.
    ``temperature`` divides the logits before the softmax (the class chosen never changes); ``"auto"`` fits
    it on the validation split (temperature scaling: the probabilities' negative log-likelihood, minimised)."""
    if format not in FORMATS:
        raise ConfigError(f"format must be one of {FORMATS}, not {format!r}")
    if len(model_list(checkpoint)) > 1:  # "A.onnx,B.onnx": exported models merged into one file
        from .ensemble import export_ensemble

        if format != "onnx" or int8 or temperature != 1.0:
            raise ConfigError("an ensemble is merged from exported ONNX files as they are (each keeps its precision "
                              "and temperature): --format tflite, --int8 and --temperature apply to one checkpoint")
        if out is None:
            raise ConfigError("an ensemble export needs --out, the merged file's name")
        return export_ensemble(checkpoint, out, data=data, seed=seed)
    if format == "tflite" and int8:
        raise ConfigError("--int8 is for ONNX; the TFLite export is fp32")
    check_calibration_method(calibration_method)
    from ..core.classifier import EmotionClassifier
    from .tflite import export_tflite, tflite_predict_proba

    ckpt = load_checkpoint(checkpoint)
    dataset = ckpt.dataset(data)
    if int8 and dataset is None:
        raise ConfigError("--int8 calibrates on Training images: pass --data (the checkpoint's data set is not found)")
    if temperature != "auto":
        temperature = check_temperature(temperature)
    elif dataset is None:
        raise ConfigError("--temperature auto is fitted on the validation split: pass --data (the checkpoint's "
                          "data set is not found)")
    calibration = None
    if dataset is not None:
        train = dataset.split("train")
        rng = np.random.default_rng(seed)
        calibration = resize_faces(train.images[np.sort(rng.permutation(len(train))[:calibration_images])],
                                   ckpt.input_size)
    model = ckpt.build_model()
    size = ckpt.input_size
    val = faces = val_probs = None
    if dataset is not None:
        val = dataset.split("val")
        faces = resize_faces(val.images, size)
        val_probs = predict_proba(model, faces, ckpt.mean, ckpt.std, channels=ckpt.channels)
    if temperature == "auto":
        temperature = fit_temperature(val_probs, val.labels)
    source = Path(checkpoint) / "best.pt" if Path(checkpoint).is_dir() else Path(checkpoint)
    default_suffix = ".tflite" if format == "tflite" else (".int8.onnx" if int8 else ".onnx")
    out = Path(out) if out else source.with_suffix(default_suffix)
    if format == "tflite":
        path = export_tflite(ckpt, out, temperature)

        def runtime(faces: np.ndarray) -> np.ndarray:
            return tflite_predict_proba(path, faces)
    else:
        path = export_onnx(ckpt, out, int8=int8, calibration=calibration, temperature=temperature,
                           calibration_method=calibration_method)
        runtime = EmotionClassifier(path).predict_proba
    check = calibration[:256] if calibration is not None else np.random.default_rng(seed).integers(0, 256, (64, size, size), dtype=np.uint8)
    ref = apply_temperature(predict_proba(model, check, ckpt.mean, ckpt.std, channels=ckpt.channels), temperature)
    diff = float(np.abs(runtime(check) - ref).max())
    if val is None:
        return ExportResult(path, diff, None, None, temperature)
    exported = runtime(faces)
    return ExportResult(path, diff, float((val_probs.argmax(1) == val.labels).mean()),
                        float((exported.argmax(1) == val.labels).mean()), temperature,
                        expected_calibration_error(val_probs, val.labels)[0],
                        expected_calibration_error(exported, val.labels)[0],
                        float((exported.argmax(1) == val_probs.argmax(1)).mean()),
                        float(np.abs(exported - apply_temperature(val_probs, temperature)).mean()))
