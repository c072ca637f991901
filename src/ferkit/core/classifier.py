"""Classify grey face crops (48x48 for FER2013 models) with an exported ONNX model on ONNX Runtime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .runtime import ModelError, cpu_session
from .shipped import DEFAULT_MODEL, SHIPPED_MODELS, default_model_path, resolve_model, shipped_models  # noqa: F401

def _class_list(path: Path, text: str) -> tuple[str, ...]:
    """The ``classes`` metadata of a ferkit ONNX model: a JSON list of names."""
    try:
        classes = json.loads(text)
    except ValueError:
        classes = None
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise ModelError(path, f"not a ferkit ONNX model (its class list is not a JSON list of names: {text[:80]!r})")
    return tuple(classes)


def _input_size(path: Path, shape: list) -> int:
    """S of a ferkit model's input shape (batch, 1, S, S)."""
    if len(shape) != 4 or shape[1] != 1 or not isinstance(shape[2], int) or shape[2] != shape[3]:
        raise ModelError(path, f"not a ferkit ONNX model (its input is {shape}, not grey square faces (N, 1, S, S))")
    return shape[2]


class EmotionClassifier:
    """``EmotionClassifier(path).predict_proba(faces)``: faces are uint8 (N, S, S) grey crops, S being
    the model's ``input_size`` (read from its input shape). ``model``: a shipped model's name (see
    :func:`shipped_models`; default ``"default"``) or an ONNX file from ``ferkit export``."""

    def __init__(self, model: str | Path | None = None, threads: int | None = None) -> None:
        self.path = resolve_model(model or None)
        self.session = cpu_session(self.path, threads)
        meta = self.session.get_modelmeta().custom_metadata_map
        if "classes" not in meta:
            raise ModelError(self.path, "not a ferkit ONNX model (no class list in its metadata); use `ferkit export`")
        self.classes: tuple[str, ...] = _class_list(self.path, meta["classes"])
        self.metadata = dict(meta)
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.input_size: int = _input_size(self.path, model_input.shape)

    def predict_proba(self, faces: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Probabilities (N, C) for uint8 grey faces (N, S, S), S = ``input_size``."""
        faces = np.asarray(faces)
        size = self.input_size
        if faces.ndim != 3 or faces.shape[1:] != (size, size):
            raise ValueError(f"faces must be (N, {size}, {size}) grey crops, got shape {faces.shape}")
        if len(faces) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        x = faces.astype(np.float32)[:, None]
        out = [self.session.run(None, {self.input_name: x[i:i + batch_size]})[0] for i in range(0, len(x), batch_size)]
        return np.concatenate(out)
