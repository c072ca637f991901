"""``Recognizer``: detect faces, crop them to 48x48 grey, classify them with ONNX Runtime."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from ..errors import FerkitError
from .classifier import EmotionClassifier
from .detect import DEFAULT_DETECTOR, Box, Detection, create_detector
from .images import as_rgb

ImageLike = str | Path | np.ndarray | Image.Image


@dataclass
class Face:
    """One face: its box (x, y, w, h) in image pixels, every class probability, the top emotion,
    and the detector's landmarks when it gives them ([x, y] pairs; BlazeFace: eyes, nose, mouth, ears)."""

    box: Box
    probs: dict[str, float]
    emotion: str
    score: float
    landmarks: list[list[float]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def crop_face(grey: np.ndarray, box: Box, size: int = 48) -> np.ndarray:
    """The box's pixels resized to ``size`` x ``size`` (area interpolation when shrinking)."""
    x, y, w, h = box
    crop = grey[max(0, y):y + h, max(0, x):x + w]
    interp = cv2.INTER_AREA if min(crop.shape) >= size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp)


def align_face(grey: np.ndarray, box: Box, eyes: np.ndarray, size: int = 48) -> np.ndarray:
    """A ``size`` x ``size`` crop of the square around the box's centre (side = the box's longer
    side), rotated so that the line through the two eyes is level."""
    x, y, w, h = box
    centre = (x + w / 2, y + h / 2)
    side = max(w, h)
    outer = round(size * 1.5)  # a margin, so the rotation has pixels to bring in
    span = max(2, round(side * 1.5))
    region = cv2.getRectSubPix(grey, (span, span), centre)  # replicates the border past the image edge
    region = cv2.resize(region, (outer, outer), interpolation=cv2.INTER_AREA if span > outer else cv2.INTER_LINEAR)
    (lx, ly), (rx, ry) = eyes[0], eyes[1]
    angle = float(np.degrees(np.arctan2(ry - ly, rx - lx)))
    rot = cv2.getRotationMatrix2D((outer / 2, outer / 2), angle, 1.0)
    region = cv2.warpAffine(region, rot, (outer, outer), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    m = (outer - size) // 2
    return region[m:m + size, m:m + size]


def face_crop(grey: np.ndarray, det: Detection, align: bool = True) -> np.ndarray:
    """The 48x48 grey input for a detection: eye-aligned when the detector gave eyes and ``align``."""
    if align and det.landmarks is not None and len(det.landmarks) >= 2:
        return align_face(grey, det.box, det.landmarks)
    return crop_face(grey, det.box)


@dataclass
class VideoFrame:
    """One processed video frame: its index and time, the RGB pixels, and its (tracked) faces."""

    index: int
    time_s: float
    image: np.ndarray
    faces: list
    processed: bool = True  # False: a frame between strides, shown with the last processed frame's faces


class VideoError(FerkitError, ValueError):
    """A video or camera that cannot be opened or read; the message says which and why."""


@contextlib.contextmanager
def opencv_path(path: str | Path) -> Iterator[str]:
    """``path`` as a name OpenCV can take: itself, or for a name that is not UTF-8 (OpenCV crashes on
    one) a symlink to it in a temporary folder, removed on leaving (an open file stays open)."""
    name = os.fspath(path)
    try:
        name.encode()
        yield name
        return
    except UnicodeEncodeError:
        pass
    with tempfile.TemporaryDirectory(prefix="ferkit-") as tmp:
        link = os.path.join(tmp, "video" + "".join(c for c in Path(name).suffix if c.isascii()))
        os.symlink(os.path.abspath(name), link)
        yield link


class Capture:
    """An opened ``cv2.VideoCapture`` whose reads keep FFmpeg's messages (its decoding errors, which
    it writes to file descriptor 2) in ``messages`` instead of the terminal, so that a damaged video
    can be told from a sound one. Each read redirects descriptor 2 for its duration only.
    ``frames_read`` counts the frames read."""

    def __init__(self, open_: Callable[[], cv2.VideoCapture]) -> None:
        self.log = tempfile.TemporaryFile()
        self.cap = self._quiet(open_)
        self.frames_read = 0
        self._messages: list[str] | None = None

    def _quiet(self, call: Callable[[], Any]) -> Any:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(self.log.fileno(), 2)
        try:
            return call()
        finally:
            os.dup2(saved, 2)
            os.close(saved)

    def isOpened(self) -> bool:  # noqa: N802 (cv2.VideoCapture's name)
        return self.cap.isOpened()

    def get(self, prop: int) -> float:
        return self.cap.get(prop)

    def read(self) -> tuple[bool, np.ndarray | None]:
        ok, frame = self._quiet(self.cap.read)
        self.frames_read += ok
        return ok, frame

    @property
    def messages(self) -> list[str]:
        """FFmpeg's messages so far (all of them once released)."""
        if self._messages is not None:
            return self._messages
        self.log.seek(0)
        return self.log.read().decode(errors="replace").splitlines()

    def release(self) -> None:
        self.cap.release()
        if self._messages is None:
            self._messages = self.messages
            self.log.close()


def open_capture(source: str | Path | int) -> Capture:
    """An opened :class:`Capture` for a file, a stream URL or a camera index, or a :class:`VideoError`.
    A file whose name is not UTF-8 is opened through a symlink (OpenCV crashes on such a name)."""
    if isinstance(source, (str, Path)) and not str(source).isdigit() and "://" not in str(source):
        path = Path(source)
        try:
            if not path.is_file():
                raise VideoError(f"{path}: no such file")
            if path.stat().st_size == 0:
                raise VideoError(f"{path}: empty file (0 bytes)")
        except OSError as exc:  # a name over 255 bytes...
            raise VideoError(f"{path}: cannot be read ({exc.strerror})") from None
    src = int(source) if isinstance(source, int) or str(source).isdigit() else str(source)
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # our error below says it plainly
    if isinstance(src, int):
        cap = Capture(lambda: cv2.VideoCapture(src))
    else:
        with opencv_path(src) as name:
            cap = Capture(lambda: cv2.VideoCapture(name))
    if not cap.isOpened():
        cap.release()
        what = f"camera {src}" if isinstance(src, int) else str(src)
        why = f": {cap.messages[-1]}" if cap.messages else ""
        raise VideoError(f"{what}: cannot be opened (missing camera, not a video, or a codec OpenCV lacks{why})")
    return cap


class Recognizer:
    """``Recognizer(model=None, detector="blazeface").predict(image) -> list[Face]``.

    ``model`` is an ONNX file from ``ferkit export`` (default: the model shipped in the package);
    ``detector`` a name ("blazeface", "haar") or an object with ``detect(rgb) -> list[Detection]``;
    ``align`` levels the eyes before classifying when the detector gives landmarks. Images are paths,
    PIL images, or numpy arrays (grey, or colour in the order given by ``color``: "rgb" or "bgr" as
    OpenCV reads).
    """

    def __init__(self, model: str | Path | None = None, detector: Any = DEFAULT_DETECTOR, align: bool = True,
                 threads: int | None = None) -> None:
        self.classifier = EmotionClassifier(model, threads=threads)
        self.classes = self.classifier.classes
        self.detector = create_detector(detector) if isinstance(detector, str) else detector
        self.align = align

    def _faces(self, rgb: np.ndarray, detect: bool) -> tuple[list[Detection], np.ndarray]:
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        dets = self.detector.detect(rgb) if detect else [Detection((0, 0, grey.shape[1], grey.shape[0]), 1.0)]
        crops = np.stack([face_crop(grey, d, self.align) for d in dets]) if dets else np.zeros((0, 48, 48), np.uint8)
        return dets, crops

    def _to_faces(self, dets: list[Detection], probs: np.ndarray) -> list[Face]:
        faces = []
        for d, p in zip(dets, probs):
            top = int(p.argmax())
            marks = None if d.landmarks is None else np.round(d.landmarks, 1).tolist()
            faces.append(Face(d.box, {c: float(v) for c, v in zip(self.classes, p)}, self.classes[top], float(p[top]),
                              marks))
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

    def process_video(self, source: str | Path | int, stride: int = 1, smoothing: float = 0.4,
                      max_frames: int | None = None, all_frames: bool = False,
                      capture: Capture | None = None) -> Iterator[VideoFrame]:
        """Yield every ``stride``-th frame of a video file, stream or camera index with its faces,
        each followed across frames (``face.track``) and its probabilities smoothed exponentially
        (``smoothing`` is the new frame's weight; 1 turns smoothing off). Frames are read one at a time.
        ``all_frames`` also yields the frames in between (``processed=False``, the last faces).
        ``capture``: ``source`` already opened by :func:`open_capture` (released at the end)."""
        from .smooth import FaceTracker

        if stride < 1:
            raise ValueError("stride must be >= 1")
        cap = capture if capture is not None else open_capture(source)
        fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
        tracker = FaceTracker(alpha=smoothing)
        index, faces = 0, []
        try:
            while max_frames is None or index < max_frames:
                ok, bgr = cap.read()
                if not ok:
                    if index == 0:
                        raise VideoError(f"{source}: no frame could be read (truncated or not a video)")
                    break
                processed = index % stride == 0
                if processed or all_frames:
                    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                    if processed:
                        faces = tracker.update(self.predict(rgb))
                    yield VideoFrame(index, index / fps, rgb, faces, processed)
                index += 1
        finally:
            cap.release()
