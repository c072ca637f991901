"""``ferkit video``: an annotated mp4, per-frame CSV rows written as they come, an emotion timeline
plot and a summary; memory stays flat however long the video, and an interrupted run keeps
everything written so far (``summary.json`` says where it stopped)."""

from __future__ import annotations

import csv
import json
import os
import signal
import threading
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from ..inference.draw import annotate
from ..inference.capture import VideoError, VideoFrame, open_capture, opencv_path
from ..inference.recognizer import Recognizer
from ..errors import ConfigError


MISSING_FRAMES_S = 1.0  # declared frames a file may lack and still be sound: Matroska and WebM declare an estimate


@dataclass
class VideoSummary:
    out_dir: Path
    frames_read: int
    frames_processed: int
    faces: int
    complete: bool  # read to its end (or max_frames), not stopped, not damaged
    seconds: float
    damage: str | None = None  # why the video looks damaged: frames missing, decoder errors


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised as Ctrl-C is, so that a terminated run also closes its mp4 and writes its summary."""


def sigterm_as_interrupt() -> Callable[[], None]:
    """From now on SIGTERM raises :class:`Terminated` (in the main thread; elsewhere nothing changes);
    returns the function that puts the former handler back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def stop(signum: int, frame: Any) -> None:
        raise Terminated(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, stop)
    return lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def damage(frames_read: int, declared: int | None, fps: float, messages: list[str]) -> str | None:
    """Why a video read to its end looks damaged (fewer frames than it declares, by more than
    ``MISSING_FRAMES_S``; decoder errors), or None."""
    why = []
    if declared and declared - frames_read > MISSING_FRAMES_S * fps:
        why.append(f"{frames_read} of {declared} declared frames read")
    if messages:
        why.append(f"{len(messages)} decoder error(s), the first: {messages[0]}")
    return "; ".join(why) or None


def plot_timeline(times: np.ndarray, probs: np.ndarray, classes: tuple[str, ...], path: Path, title: str) -> Path:
    """Each class's probability over time (the largest face of each processed frame)."""
    from ..figures import plt, save_figure
    from ..inference.draw import COLOURS

    fig, ax = plt.subplots(figsize=(11, 4))
    for k, name in enumerate(classes):
        colour = np.array(COLOURS.get(name, (0, 160, 0))) / 255
        ax.plot(times, probs[:, k] if len(probs) else [], label=name, color=colour, lw=1.4)
    ax.set(xlabel="time (s)", ylabel="probability (smoothed)", ylim=(0, 1), title=title)
    ax.legend(ncol=len(classes), fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18))
    return save_figure(fig, path)


def check_stream_options(stride: int, smoothing: float, max_frames: int | None) -> None:
    """A :class:`ConfigError` naming the option, before anything is opened or written: ``stride`` (--stride) must
    be >= 1, ``smoothing`` (--smooth) in (0, 1], ``max_frames`` (--max-frames) None or >= 1."""
    if stride < 1:
        raise ConfigError(f"--stride must be >= 1 (every N-th frame is recognised), not {stride}")
    if not 0 < smoothing <= 1:
        raise ConfigError(f"--smooth must be in (0, 1] (the newest frame's weight; 1: no smoothing), not {smoothing}")
    if max_frames is not None and max_frames < 1:
        raise ConfigError(f"--max-frames must be >= 1, not {max_frames}")


def _same_file(source: str | Path | int, path: Path) -> bool:
    """Whether ``path`` exists and is the file ``source`` (not a camera or stream)."""
    try:
        return isinstance(source, (str, Path)) and os.path.samefile(source, path)
    except OSError:  # either does not exist (a stream URL, a file not yet written)
        return False


def video_file(source: str | Path, out: str | Path = "runs/video", model: str | Path | None = None,
               detector: str = "blazeface", align: bool = True, stride: int = 1, smoothing: float = 0.4, save_video: bool = True,
               max_frames: int | None = None, recognizer: Recognizer | None = None, progress: bool = True,
               on_frame: Callable[[VideoFrame], bool | None] | None = None, name: str | None = None,
               tta: str = "none") -> VideoSummary:
    """Run the recogniser over a video, stream or camera; write ``<name>.mp4``, ``<name>.csv``,
    ``<name>_timeline.png`` and ``<name>_summary.json`` to ``out`` (``name``: the file's stem).
    ``on_frame`` sees every frame read; when it returns False the run stops there (not complete). An output
    that would be written over ``source`` is a :class:`ConfigError`, an mp4 that cannot be written a
    :class:`VideoError`. ``tta``: the :class:`Recognizer`'s test-time augmentation ("none", "flip", "tencrop")."""
    check_stream_options(stride, smoothing, max_frames)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file; the output (--out) must be a folder")
    stem = name or Path(str(source)).stem or "video"
    targets = [f"{stem}.csv", f"{stem}_summary.json", f"{stem}_timeline.png"] + ([f"{stem}.mp4"] if save_video else [])
    for target in targets:
        if _same_file(source, out / target):
            raise ConfigError(f"{out / target} would be written over {source}, the video it is made from; "
                              "give another --out")
    rec = recognizer or Recognizer(model=model, detector=detector, align=align, tta=tta)
    out.mkdir(parents=True, exist_ok=True)
    cap = open_capture(source)
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    declared = declared if declared > 0 else None  # cameras and streams do not know
    total = min(declared or max_frames, max_frames) if max_frames else declared
    try:
        f = open(out / f"{stem}.csv", "w", newline="")
    except BaseException:
        cap.release()
        raise
    writer = None
    times, tops = array("f"), array("f")  # 32 bytes per recognised frame, for the timeline plot
    frames = faces_n = 0
    last_index = -1
    ended, why = False, None
    start = time.perf_counter()
    header = ["frame", "time_s", "track", "x", "y", "w", "h", "emotion", "score", *rec.classes, "raw_emotion"]
    bar = tqdm(total=total, desc=f"video {stem}", unit=" frame", disable=not progress)
    restore_sigterm = sigterm_as_interrupt()
    try:
        rows = csv.writer(f)
        rows.writerow(header)
        for vf in rec.process_video(source, stride=stride, smoothing=smoothing, max_frames=max_frames,
                                    all_frames=save_video or on_frame is not None, capture=cap):
            if vf.processed:
                frames += 1
                faces_n += len(vf.faces)
                for face in vf.faces:
                    raw = max(face.raw_probs, key=face.raw_probs.get)
                    rows.writerow([vf.index, f"{vf.time_s:.3f}", face.track, *face.box, face.emotion, f"{face.score:.4f}",
                                   *(f"{v:.4f}" for v in face.probs.values()), raw])
                if not vf.faces:
                    rows.writerow([vf.index, f"{vf.time_s:.3f}", "", "", "", "", "", "", "", *[""] * len(rec.classes), ""])
                f.flush()
                times.append(vf.time_s)
                big = max(vf.faces, key=lambda x: x.box[2] * x.box[3], default=None)
                tops.extend(list(big.probs.values()) if big else [float("nan")] * len(rec.classes))
            if save_video:
                if writer is None:
                    h, w = vf.image.shape[:2]
                    with opencv_path(out / f"{stem}.mp4") as path:  # OpenCV crashes on a name that is not UTF-8
                        writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                    if not writer.isOpened():
                        raise VideoError(f"{out / f'{stem}.mp4'}: cannot be written (OpenCV's mp4v writer did not "
                                         "open it); --no-save-video writes the rest")
                writer.write(cv2.cvtColor(annotate(vf.image, vf.faces), cv2.COLOR_RGB2BGR))
            bar.update(vf.index - last_index)
            last_index = vf.index
            if on_frame is not None and on_frame(vf) is False:
                break
        else:
            ended = True
    finally:
        cap.release()  # already released by process_video unless it failed before reading
        bar.close()
        f.close()
        if writer is not None:
            writer.release()
        restore_sigterm()
        seconds = time.perf_counter() - start
        read = cap.frames_read
        if ended:
            why = damage(read, None if max_frames and read >= max_frames else declared, fps, cap.messages)
        complete = ended and why is None
        summary = VideoSummary(out, read, frames, faces_n, complete, seconds, why)
        (out / f"{stem}_summary.json").write_text(json.dumps({
            "source": str(source), "complete": complete, "damaged": why is not None, "damage": why,
            "frames_read": read, "last_frame": last_index, "frames_processed": frames, "stride": stride,
            "smoothing": smoothing, "model": "+".join(m.path.name for m in rec.classifier.members),  # an ensemble's
            "detector": rec.detector.name, "align": rec.align, "tta": rec.tta, "faces": faces_n, "seconds": round(seconds, 2),
            "frames_per_s": round(read / max(seconds, 1e-9), 2), "video_fps": fps, "frames_declared": declared,
            "decoder_messages": cap.messages[:20]}, indent=2))
        if times:
            title = os.fsencode(stem).decode(errors="replace")  # a name that is not UTF-8 cannot be drawn as is
            plot_timeline(np.array(times), np.array(tops).reshape(len(times), -1), rec.classes,
                          out / f"{stem}_timeline.png", f"{title}: emotions over time"
                          + ("" if ended else f" (stopped at frame {last_index})") + (" (damaged)" if why else ""))
    return summary
