"""Video capture: opening files, streams and cameras with OpenCV (FFmpeg's messages kept, names that
are not UTF-8 handled), and the ``VideoFrame`` a recogniser yields for each frame."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import FerkitError
from .faces import TrackedFace


@dataclass
class VideoFrame:
    """One processed video frame: its index and time, the RGB pixels, and its (tracked) faces."""

    index: int
    time_s: float
    image: np.ndarray
    faces: list[TrackedFace]
    processed: bool = True  # False: a frame between strides, shown with the last processed frame's faces


class VideoError(FerkitError, ValueError):
    """A video or camera that cannot be opened or read, or an annotated video that cannot be written; the message
    says which and why."""


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
