"""Classify grey face crops (48x48 for FER2013 models) with an exported ONNX model, or an ensemble of them, on
ONNX Runtime."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ..data.augment import TTA_VIEWS, check_tta
from .runtime import ModelError, cpu_session
from .shipped import (DEFAULT_MODEL, ModelSpec, default_model_path, model_list, resolve_model,  # noqa: F401
                      shipped_models)

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


def face_views(faces: np.ndarray, tta: str) -> list[np.ndarray]:
    """The views of float faces (N, S, S) that ``tta`` averages, cut as :func:`ferkit.core.predict.tta_views`
    cuts them from tensors: the faces; plus their mirror images (flip); or ten crops of 11/12 of the side
    (four corners, centre, and their mirrors), each resized back to S x S (bilinear)."""
    check_tta(tta)
    if tta == "none":
        return [faces]
    if tta == "flip":
        return [faces, faces[:, :, ::-1]]
    size = faces.shape[-1]
    crop = round(size * 11 / 12)
    m, c = size - crop, (size - crop) // 2
    views = []
    for top, left in ((0, 0), (0, m), (m, 0), (m, m), (c, c)):
        v = np.stack([cv2.resize(f[top:top + crop, left:left + crop], (size, size), interpolation=cv2.INTER_LINEAR)
                      for f in faces])
        views += [v, v[:, :, ::-1]]
    return views


class EmotionClassifier:
    """``EmotionClassifier(path).predict_proba(faces)``: faces are uint8 (N, S, S) grey crops, S being
    the model's ``input_size`` (read from its input shape). ``model``: a shipped model's name (see
    :func:`shipped_models`; default ``"default"``) or an ONNX file from ``ferkit export``. ``name`` is the file's
    stem; ``members`` is ``[self]``, as an :class:`EnsembleClassifier`'s lists its own."""

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
        self.members: list[EmotionClassifier] = [self]
        self.name: str = self.path.stem

    def predict_proba(self, faces: np.ndarray, batch_size: int = 256, tta: str = "none") -> np.ndarray:
        """Probabilities (N, C) for grey faces (N, S, S), S = ``input_size``, pixels 0..255 (uint8 or float),
        averaged over the views of test-time augmentation ``tta`` (:func:`face_views`: "flip" costs two
        passes, "tencrop" ten)."""
        faces = np.asarray(faces)
        size = self.input_size
        check_tta(tta)
        if faces.ndim != 3 or faces.shape[1:] != (size, size):
            raise ValueError(f"faces must be (N, {size}, {size}) grey crops, got shape {faces.shape}")
        if len(faces) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        step = max(1, batch_size // TTA_VIEWS[tta])  # faces whose views make one run
        out = []
        for i in range(0, len(faces), step):
            views = face_views(faces[i:i + step].astype(np.float32), tta)  # V x (n, S, S): one run of V * n
            probs = self.session.run(None, {self.input_name: np.concatenate(views)[:, None]})[0]
            out.append(probs.reshape(len(views), -1, probs.shape[-1]).mean(0))
        return np.concatenate(out)


class EnsembleClassifier:
    """Several :class:`EmotionClassifier` whose probabilities are averaged, each over the same TTA views (as
    ``ferkit evaluate A B`` averages them). The members must share their classes and input size."""

    def __init__(self, models: Sequence[str | Path], threads: int | None = None) -> None:
        self.members = [EmotionClassifier(m, threads=threads) for m in model_list(list(models))]
        first = self.members[0]
        for m in self.members[1:]:
            if m.classes != first.classes or m.input_size != first.input_size:
                raise ModelError(m.path, f"cannot be averaged with {first.path.name}: its classes {list(m.classes)} at "
                                         f"{m.input_size} px differ from {list(first.classes)} at {first.input_size} px")
        self.classes: tuple[str, ...] = first.classes
        self.input_size: int = first.input_size
        self.metadata = first.metadata  # the package's version and the like; each member's own: ``members``
        self.name: str = "+".join(m.name for m in self.members)

    def predict_proba(self, faces: np.ndarray, batch_size: int = 256, tta: str = "none") -> np.ndarray:
        """The members' :meth:`EmotionClassifier.predict_proba` averaged."""
        return np.mean([m.predict_proba(faces, batch_size, tta) for m in self.members], axis=0)


def load_classifier(model: ModelSpec = None, threads: int | None = None) -> EmotionClassifier | EnsembleClassifier:
    """An :class:`EmotionClassifier` for one model, an :class:`EnsembleClassifier` for several (see :func:`model_list`)."""
    models = model_list(model)
    return EmotionClassifier(models[0], threads) if len(models) == 1 else EnsembleClassifier(models, threads)
