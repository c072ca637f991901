"""``ferkit webcam``: live recognition from a camera (or a stream or file) in a window, or headless
for machines without a screen: a line per recognised frame on stdout, and the same CSV, timeline and
summary as ``ferkit video`` in the output folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..inference.draw import annotate
from ..inference.capture import VideoFrame
from ..inference.recognizer import Recognizer
from ..errors import DeviceError
from .video import VideoSummary, check_stream_options, video_file


def _print_frame(vf: VideoFrame) -> None:
    if not vf.processed:
        return
    faces = ", ".join(f"face {f.track} {f.emotion} {f.score:.2f} at {f.box}" for f in vf.faces) or "no face"
    print(f"frame {vf.index} t={vf.time_s:.2f}s: {faces}", flush=True)


class LiveWindow:
    """A Tk window showing annotated frames; closing it or pressing q or Esc stops the run."""

    def __init__(self, title: str) -> None:
        import tkinter as tk

        if not os.environ.get("DISPLAY") and sys.platform.startswith("linux"):
            raise DeviceError("no display for a window (DISPLAY is not set): use --headless")
        self.root = tk.Tk()
        self.root.title(title)
        self.label = tk.Label(self.root)
        self.label.pack()
        self.open = True
        self.root.protocol("WM_DELETE_WINDOW", self.close)
        for key in ("q", "<Escape>"):
            self.root.bind(key, lambda _e: self.close())

    def close(self) -> None:
        self.open = False

    def show(self, vf: VideoFrame) -> bool:
        from PIL import Image, ImageTk

        if not self.open:
            return False
        self.photo = ImageTk.PhotoImage(Image.fromarray(annotate(vf.image, vf.faces)))  # keep a reference
        self.label.configure(image=self.photo)
        self.root.update()
        return self.open

    def destroy(self) -> None:
        self.root.destroy()


def webcam(camera: int = 0, source: str | Path | None = None, headless: bool = False, out: str | Path = "runs/webcam",
           model: str | Path | None = None, detector: str = "blazeface", align: bool = True, stride: int = 1,
           smoothing: float = 0.4, max_frames: int | None = None, tta: str = "none") -> VideoSummary:
    """Recognise emotions live from ``camera`` (or ``source``: a stream URL or file) until the
    window is closed, Ctrl-C, the stream ends or ``max_frames``. ``tta``: the :class:`Recognizer`'s
    test-time augmentation ("none", "flip", "tencrop")."""
    check_stream_options(stride, smoothing, max_frames)
    rec = Recognizer(model=model, detector=detector, align=align, tta=tta)
    src: str | Path | int = source if source is not None else camera
    name = f"camera{camera}" if source is None else None
    window = None if headless else LiveWindow(f"ferkit webcam: {src}  (q to quit)")
    try:
        return video_file(src, out=out, stride=stride, smoothing=smoothing, save_video=False, max_frames=max_frames,
                          recognizer=rec, progress=False, on_frame=_print_frame if window is None else window.show,
                          name=name)
    finally:
        if window is not None:
            window.destroy()
