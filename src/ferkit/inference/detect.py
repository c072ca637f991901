"""Face detectors behind one interface: ``detector.detect(grey) -> list of (x, y, w, h)`` boxes.

``haar`` is OpenCV's frontal-face Haar cascade (the webcam tutorial's detector), shipped inside
opencv-python-headless: fast and offline, but it finds false faces in busy photos.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

Box = tuple[int, int, int, int]


class HaarDetector:
    """OpenCV Haar cascade. ``min_neighbors`` trades misses for false positives; images larger than
    ``max_side`` are searched at that size (boxes are given in the original pixels)."""

    name = "haar"

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 5, min_size: int = 24, max_side: int = 960) -> None:
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise RuntimeError(f"cannot load the Haar cascade {path}")
        self.scale_factor, self.min_neighbors, self.min_size = scale_factor, min_neighbors, min_size
        self.max_side = max_side

    def detect(self, grey: np.ndarray) -> list[Box]:
        if grey.shape[0] < self.min_size or grey.shape[1] < self.min_size:
            return []
        scale = min(1.0, self.max_side / max(grey.shape))
        small = grey if scale == 1.0 else cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        boxes = self.cascade.detectMultiScale(small, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                                              minSize=(self.min_size, self.min_size))
        return sorted((tuple(round(int(v) / scale) for v in b) for b in boxes), key=lambda b: (b[0], b[1]))  # type: ignore[misc]


DETECTORS: dict[str, Callable[[], object]] = {"haar": HaarDetector}


def create_detector(name: str):
    """A detector by name (see ``DETECTORS``)."""
    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r}; choose from {sorted(DETECTORS)}")
    return DETECTORS[name]()
