"""What the local and the Ray engines of ``ferkit predict`` share: a batch of inputs, and turning it
into one record per input (its faces and annotated JPEG, or why it failed), in any process."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2

from ..inference.draw import annotate
from ..inference.images import ImageError, image_pixels, pixel_groups, read_image
from ..inference.recognizer import Recognizer

Batch = list[tuple[str, str | None]]  # (file, annotated JPEG name or None) for each input of a batch


def _read(file: str) -> Any:
    """The RGB image, or an :class:`ImageError` saying why it cannot be read."""
    try:
        return read_image(file)
    except ImageError as exc:
        return exc
    except OSError as exc:  # a name over 255 bytes...
        return ImageError(file, f"cannot be read ({exc.strerror or exc})", "unreadable")
    except Exception as exc:  # a decoder's own failure on a malformed file
        return ImageError(file, f"cannot be read ({type(exc).__name__}: {exc})", "unreadable")


def _recognise(rec: Recognizer, images: list[Any], detect: bool) -> list[Any]:
    """The faces of each image, classified together; if that fails, of each image alone, the failure
    of one (an exception) standing in for its faces, so that one image does not take its batch down."""
    try:
        return rec.predict_batch(images, detect=detect)
    except Exception:
        return [_recognise_one(rec, im, detect) for im in images]


def _recognise_one(rec: Recognizer, image: Any, detect: bool) -> Any:
    try:
        return rec.predict_batch([image], detect=detect)[0]
    except Exception as exc:
        return exc


def write_jpeg(path: Path, rgb: Any) -> None:
    """``rgb`` as a JPEG at ``path``, encoded by OpenCV and written by Python: OpenCV's own file
    functions crash on a name that is not UTF-8."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError("JPEG encoding failed")
    path.write_bytes(data.tobytes())


def recognise_batch(rec: Recognizer, batch: Batch, out: str | Path, detect: bool, base: str = "") -> list[dict]:
    """One record per input: its size and faces (and writes its annotated JPEG), or the reason it
    could not be read or recognised. Files are read relative to ``base``; their faces are classified
    together. A record whose annotated JPEG could not be written has its faces and an ``error``."""
    parts = list(pixel_groups(batch, lambda item: image_pixels(os.path.join(base, item[0]))))
    if len(parts) > 1:  # a part at a time: the images held at once stay within BATCH_PIXELS
        return [record for part in parts for record in recognise_batch(rec, part, out, detect, base)]
    images = [_read(os.path.join(base, file)) for file, _ in batch]
    readable = [im for im in images if not isinstance(im, ImageError)]
    found = iter(_recognise(rec, readable, detect))
    records = []
    for (file, name), im in zip(batch, images):
        if isinstance(im, ImageError):
            records.append({"file": file, "error": im.reason})
            continue
        faces = next(found)
        if isinstance(faces, Exception):
            records.append({"file": file, "error": f"recognition failed ({type(faces).__name__}: {faces})"})
            continue
        record = {"file": file, "width": im.shape[1], "height": im.shape[0], "faces": [f.to_dict() for f in faces]}
        if name:
            try:
                write_jpeg(Path(out) / name, annotate(im, faces))
                record["annotated"] = name
            except (OSError, cv2.error) as exc:
                record["error"] = f"annotated image {name} not written ({getattr(exc, 'strerror', None) or exc})"
        records.append(record)
    return records
