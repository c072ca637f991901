"""``Recognizer``: detect faces, crop them to 48x48 grey, classify them with ONNX Runtime."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from .classifier import EmotionClassifier
from .detect import Box, create_detector
from .images import as_rgb

ImageLike = "str | Path | np.ndarray | Image.Image"


@dataclass
class Face:
    """One face: its box (x, y, w, h) in image pixels, every class probability, the top emotion."""

    box: Box
    probs: dict[str, float]
    emotion: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def crop_face(grey: np.ndarray, box: Box, size: int = 48) -> np.ndarray:
    """The box's pixels resized to ``size`` x ``size`` (area interpolation when shrinking)."""
    x, y, w, h = box
    crop = grey[max(0, y):y + h, max(0, x):x + w]
    interp = cv2.INTER_AREA if min(crop.shape) >= size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp)


class Recognizer:
    """``Recognizer(model=None, detector="haar").predict(image) -> list[Face]``.

    ``model`` is an ONNX file from ``ferkit export`` (default: the model shipped in the package);
    ``detector`` a name or an object with ``detect(grey) -> boxes``. Images are paths, PIL images,
    or numpy arrays (grey, or colour in the order given by ``color``: "rgb" or "bgr" as OpenCV reads).
    """

    def __init__(self, model: str | Path | None = None, detector: Any = "haar", threads: int | None = None) -> None:
        self.classifier = EmotionClassifier(model, threads=threads)
        self.classes = self.classifier.classes
        self.detector = create_detector(detector) if isinstance(detector, str) else detector

    def _faces(self, rgb: np.ndarray, detect: bool) -> tuple[list[Box], np.ndarray]:
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        boxes = self.detector.detect(grey) if detect else [(0, 0, grey.shape[1], grey.shape[0])]
        crops = np.stack([crop_face(grey, b) for b in boxes]) if boxes else np.zeros((0, 48, 48), np.uint8)
        return boxes, crops

    def _to_faces(self, boxes: list[Box], probs: np.ndarray) -> list[Face]:
        faces = []
        for box, p in zip(boxes, probs):
            top = int(p.argmax())
            faces.append(Face(box, {c: float(v) for c, v in zip(self.classes, p)}, self.classes[top], float(p[top])))
        return faces

    def predict(self, image: ImageLike, color: str = "rgb", detect: bool = True) -> list[Face]:
        """Every face in ``image``; an empty list when there is none. ``detect=False`` treats the
        whole image as one pre-cropped face."""
        return self.predict_batch([image], color=color, detect=detect)[0]

    def predict_batch(self, images: Iterable[ImageLike], color: str = "rgb", detect: bool = True) -> list[list[Face]]:
        """``predict`` for several images, classifying all their faces in one batch."""
        found = [self._faces(as_rgb(im, color), detect) for im in images]
        crops = [c for _, c in found]
        probs = self.classifier.predict_proba(np.concatenate(crops)) if crops else np.zeros((0, len(self.classes)))
        out, i = [], 0
        for boxes, c in found:
            out.append(self._to_faces(boxes, probs[i:i + len(c)]))
            i += len(c)
        return out
