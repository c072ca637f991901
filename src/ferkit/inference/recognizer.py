"""``Recognizer``: detect faces, crop them to the classifier's input size (48x48 grey for FER2013
models), classify them with ONNX Runtime."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..core.classifier import ModelSpec, load_classifier
from ..core.faces import align_face, crop_face, face_crop  # noqa: F401  (align_face, crop_face: old import path)
from .capture import Capture, VideoError, VideoFrame, open_capture, opencv_path  # noqa: F401  (old import path)
from .detect import DEFAULT_DETECTOR, Detector, create_detector
from .faces import Detection, Face
from ..data.augment import check_tta
from ..errors import ConfigError
from .images import as_rgb
from .smooth import FaceTracker

ImageLike = str | Path | np.ndarray | Image.Image


class Recognizer:
    """``Recognizer(model=None, detector="blazeface").predict(image) -> list[Face]``.

    ``model`` is a shipped model's name or an ONNX file from ``ferkit export`` (default: the package's default
    model); several (a list, or names separated by commas: ``"flagship,default"``) make an ensemble whose
    probabilities are averaged (each member's time added);
    ``detector`` a name ("blazeface", "haar"), made with ``threads`` as the classifier is, or a :class:`Detector`;
    ``align`` levels the eyes before classifying when the detector gives landmarks; ``tta`` averages each
    face's probabilities over test-time augmented views of its crop ("flip": with its mirror image, twice the
    classifier's time; "tencrop": ten crops, ten times). Images are paths,
    PIL images, or numpy arrays (grey, or colour in the order given by ``color``: "rgb" or "bgr" as
    OpenCV reads).
    """

    def __init__(self, model: ModelSpec = None, detector: str | Detector = DEFAULT_DETECTOR, align: bool = True,
                 threads: int | None = None, tta: str = "none") -> None:
        check_tta(tta)
        self.classifier = load_classifier(model, threads=threads)
        self.classes = self.classifier.classes
        self.detector = create_detector(detector, threads=threads) if isinstance(detector, str) else detector
        self.align = align
        self.tta = tta

    def _faces(self, rgb: np.ndarray, detect: bool) -> tuple[list[Detection], np.ndarray]:
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        dets = self.detector.detect(rgb) if detect else [Detection((0, 0, grey.shape[1], grey.shape[0]), 1.0)]
        size = self.classifier.input_size
        crops = (np.stack([face_crop(grey, d, self.align, size) for d in dets]) if dets
                 else np.zeros((0, size, size), np.uint8))
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
        probs = (self.classifier.predict_proba(np.concatenate(crops), tta=self.tta) if crops
                 else np.zeros((0, len(self.classes))))
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
        if stride < 1:
            raise ConfigError("stride must be >= 1")
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
