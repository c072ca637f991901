"""Face detectors behind one interface, :class:`Detector`: ``detector.detect(rgb) -> list[Detection]``,
made by name with their options by ``create_detector(name, threads=..., ...)``.

- ``blazeface`` (default): MediaPipe's BlazeFace "back" model (256 px, Apache-2.0) converted once to
  ONNX (``tools/convert_blazeface.sh``) and run on ONNX Runtime; boxes, six landmarks (eyes, nose,
  mouth, ears) and scores. On ``benchmarks/detectors.md``'s photos it finds every face with no false one.
- ``haar``: OpenCV's frontal-face Haar cascade (the webcam tutorial's detector): no landmarks, misses
  some faces and finds some that are not there.

:class:`FaceCropper` crops the main face of a photo as the Recognizer does, for training on photos.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from ..errors import ConfigError
from .faces import Detection, face_crop
from .runtime import cpu_session


@runtime_checkable
class Detector(Protocol):
    """What a :class:`~ferkit.inference.Recognizer`, and :class:`FaceCropper` for training
    photos, need of a face detector."""

    name: str

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """The faces in an RGB uint8 (H, W, 3) image, sorted left to right."""
        ...


class HaarDetector:
    """OpenCV Haar cascade. ``min_neighbors`` trades misses for false positives; images larger than
    ``max_side`` are searched at that size (boxes are given in the original pixels). ``threads``, when
    given, is OpenCV's thread count (a setting of the whole process, which the cascade search uses). One search runs
    at a time: the cascade is not thread-safe (searches from two server threads raised ``cv2.error``)."""

    name = "haar"

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 5, min_size: int = 24, max_side: int = 960,
                 threads: int | None = None) -> None:
        if threads is not None:
            cv2.setNumThreads(threads)
        self.threads = threads
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise RuntimeError(f"cannot load the Haar cascade {path}")
        self.scale_factor, self.min_neighbors, self.min_size = scale_factor, min_neighbors, min_size
        self.max_side = max_side
        self._lock = threading.Lock()

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        if grey.shape[0] < self.min_size or grey.shape[1] < self.min_size:
            return []
        scale = min(1.0, self.max_side / max(grey.shape))
        small = grey if scale == 1.0 else cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        with self._lock:
            boxes = self.cascade.detectMultiScale(small, scaleFactor=self.scale_factor,
                                                  minNeighbors=self.min_neighbors, minSize=(self.min_size, self.min_size))
        found = sorted((tuple(round(int(v) / scale) for v in b) for b in boxes), key=lambda b: (b[0], b[1]))
        return [Detection(b, 1.0) for b in found]  # type: ignore[arg-type]


def _anchor_centres(height: int, width: int, strides: tuple[int, ...], per_cell: int) -> np.ndarray:
    """SSD anchor centres in input pixels (MediaPipe's SsdAnchorsCalculator with fixed anchor size:
    layers of equal stride are merged), row by row as the network emits them."""
    out, i = [], 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        s = strides[i]
        xx, yy = np.meshgrid((np.arange(width // s) + 0.5) * s, (np.arange(height // s) + 0.5) * s)
        out.append(np.repeat(np.stack([xx.ravel(), yy.ravel()], 1), per_cell * (j - i), axis=0))
        i = j
    return np.concatenate(out).astype(np.float32)


def shrink(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize down with area averaging: an integer-factor area step (OpenCV's fast path), then bilinear
    for the rest (a direct non-integer area resize of a 640x480 frame took 1-2 ms, this ~0.3 ms)."""
    k = min(rgb.shape[1] // width, rgb.shape[0] // height)
    if k >= 2:
        h, w = rgb.shape[0] // k * k, rgb.shape[1] // k * k
        rgb = cv2.resize(rgb[:h, :w], (w // k, h // k), interpolation=cv2.INTER_AREA)
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_LINEAR)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, points: np.ndarray,
                 iou_threshold: float) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe's weighted NMS: each kept detection is the score-weighted mean of its overlapping
    group (boxes as x1, y1, x2, y2)."""
    order = np.argsort(-scores)
    boxes, scores, points = boxes[order], scores[order], points[order]
    area = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    alive = np.ones(len(scores), bool)
    out = []
    for i in range(len(scores)):
        if not alive[i]:
            continue
        iw = np.clip(np.minimum(boxes[i, 2], boxes[:, 2]) - np.maximum(boxes[i, 0], boxes[:, 0]), 0, None)
        ih = np.clip(np.minimum(boxes[i, 3], boxes[:, 3]) - np.maximum(boxes[i, 1], boxes[:, 1]), 0, None)
        inter = iw * ih
        group = alive & (inter / np.maximum(area[i] + area - inter, 1e-12) > iou_threshold)
        group[i] = True
        w = scores[group]
        out.append(((boxes[group] * w[:, None]).sum(0) / w.sum(), (points[group] * w[:, None, None]).sum(0) / w.sum(),
                    float(scores[i])))
        alive &= ~group
    return out


class BlazeFaceDetector:
    """BlazeFace "back" on ONNX Runtime. The image is shrunk so its longer side is 256 px and its shorter
    side padded up to a multiple of 32 (a 640x480 frame runs as 256x192), so faces down to about 1/25 of
    the longer side are found. One session per input shape, each with fixed dimensions (faster than
    a dynamic-shape session)."""

    name = "blazeface"
    size, strides, per_cell = 256, (16, 32, 32, 32), 2

    def __init__(self, model: str | Path | None = None, min_score: float = 0.5, iou_threshold: float = 0.3,
                 threads: int | None = None) -> None:
        self.path = Path(model) if model else Path(str(resources.files("ferkit") / "weights" / "face_detection_back.onnx"))
        self.threads, self.min_score, self.iou_threshold = threads, min_score, iou_threshold
        self._sessions: dict[tuple[int, int], tuple[object, str, np.ndarray]] = {}
        self._lock = threading.Lock()  # sessions may be made from several server threads
        self._session(self.size, self.size)  # fail early on a bad model file

    def _session(self, height: int, width: int) -> tuple[object, str, np.ndarray]:
        with self._lock:
            if (height, width) not in self._sessions:
                session = cpu_session(self.path, self.threads, fixed_dims={"height": height, "width": width})
                anchors = _anchor_centres(height, width, self.strides, self.per_cell)
                self._sessions[height, width] = (session, session.get_inputs()[0].name, anchors)
            return self._sessions[height, width]

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        h, w = rgb.shape[:2]
        scale = self.size / max(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        small = shrink(rgb, nw, nh) if scale < 1 else cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
        ih, iw = -(-nh // 32) * 32, -(-nw // 32) * 32
        py, px = (ih - nh) // 2, (iw - nw) // 2
        session, input_name, all_anchors = self._session(ih, iw)
        x = np.full((1, 3, ih, iw), -1.0, np.float32)  # padding is black, as in MediaPipe's letterbox
        x[0, :, py:py + nh, px:px + nw] = small.transpose(2, 0, 1) * np.float32(1 / 127.5) - 1.0
        reg, cls = session.run(None, {input_name: x})
        scores = 1.0 / (1.0 + np.exp(-np.clip(cls.reshape(-1), -80.0, 80.0)))
        keep = scores >= self.min_score
        if not keep.any():
            return []
        reg = reg.reshape(-1, 8, 2)[keep]  # box centre, box size, six points; pixels, relative to the anchor
        anchors = all_anchors[keep]
        centre, wh = reg[:, 0] + anchors, reg[:, 1]
        boxes = np.concatenate([centre - wh / 2, centre + wh / 2], 1)
        points = reg[:, 2:] + anchors[:, None, :]
        valid = (wh > 0).all(1)
        found = []
        for b, p, s in weighted_nms(boxes[valid], scores[keep][valid], points[valid], self.iou_threshold):
            b = (b - (px, py, px, py)) / scale
            x1, y1 = max(0, round(float(b[0]))), max(0, round(float(b[1])))
            x2, y2 = min(w, round(float(b[2]))), min(h, round(float(b[3])))
            if x2 > x1 and y2 > y1:
                found.append(Detection((x1, y1, x2 - x1, y2 - y1), s, ((p - (px, py)) / scale).astype(np.float32)))
        return sorted(found, key=lambda d: (d.box[0], d.box[1]))


DETECTORS: dict[str, Callable[..., Detector]] = {"blazeface": BlazeFaceDetector, "haar": HaarDetector}
DEFAULT_DETECTOR = "blazeface"


def create_detector(name: str, **options: Any) -> Detector:
    """A detector by name (see ``DETECTORS``) made with ``options``: ``threads``, and its own thresholds
    (BlazeFace: ``min_score``, ``iou_threshold``; Haar: ``scale_factor``, ``min_neighbors``, ``min_size``,
    ``max_side``)."""
    if name not in DETECTORS:
        raise ConfigError(f"unknown detector {name!r}; choose from {sorted(DETECTORS)}")
    return DETECTORS[name](**options)


class FaceCropper:
    """``cropper(rgb) -> (size, size) grey crop of the largest face, or None``: the crop the Recognizer makes
    (same detector, same eye alignment), for training on photos. The detector is made on first use, one thread.
    ``key`` names the settings, for the crop cache."""

    def __init__(self, size: int = 48, detector: str = "blazeface", align: bool = True) -> None:
        self.size, self.detector_name, self.align = size, detector, align
        self.key = f"{detector}|align={align}|size={size}"
        self._detector: Detector | None = None

    def __call__(self, rgb: np.ndarray) -> np.ndarray | None:
        if self._detector is None:
            self._detector = create_detector(self.detector_name, threads=1)
        found = self._detector.detect(rgb)
        if not found:
            return None
        main = max(found, key=lambda d: d.box[2] * d.box[3])
        return face_crop(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), main, self.align, self.size)
