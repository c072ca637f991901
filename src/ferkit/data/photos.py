"""Image files as face crops: files that are face crops already (FER-style 48x48) are resized to the input;
photos (KDEF's 562x762 shots) get their face found, levelled on the eyes and cropped by a :data:`Cropper`
(``ferkit.core.detect.FaceCropper``, the detector the Recognizer uses), each crop cached on disk.

``faces``: ``cropped`` (every image is a face crop), ``detect`` (every image is a photo), or ``auto``: an image
whose shorter side is at least :data:`AUTO_DETECT_FACTOR` times the input size (240 px for 48x48) is a photo,
a smaller one a crop. Photos with no face are reported (``no_face``) and left out.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import ConfigError
from .cache import CACHE_VERSION, cache_dir
from .errors import DataError
from .images import upright_rgb
from .labels import IMAGE_SIZE

FACE_MODES = ("auto", "cropped", "detect")
AUTO_DETECT_FACTOR = 5


class Cropper(Protocol):
    """``cropper(rgb) -> (size, size) grey uint8 face crop, or None when there is no face``."""

    key: str  # the settings that decide the crop (detector, alignment, size): part of the cache key
    size: int

    def __call__(self, rgb: np.ndarray) -> np.ndarray | None: ...


@dataclass
class FaceImages:
    images: np.ndarray  # (N, size, size) uint8
    kept: np.ndarray  # (N,) index into the files given
    skipped: list[str] = field(default_factory=list)  # "path: why" per unreadable file
    no_face: list[str] = field(default_factory=list)  # photos in which no face was found


def no_face_note(paths: Sequence[str], total: int, shown: int = 3) -> str:
    """'2 of 40 images had no face found and were left out: a.jpg, b.jpg'."""
    more = f" and {len(paths) - shown} more" if len(paths) > shown else ""
    return (f"{len(paths)} of {total} images had no face found and were left out: "
            f"{', '.join(paths[:shown])}{more}")


def _open_rgb(path: Path) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # a giant image is refused, not decoded
            with Image.open(path) as im:
                return upright_rgb(im)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombWarning,
            Image.DecompressionBombError) as exc:
        raise DataError(path, f"unreadable image: {exc}") from exc


def load_face_image(path: Path, size: int = IMAGE_SIZE) -> np.ndarray:
    """Read one face image as ``size`` x ``size`` grey uint8 (resized if needed), decoded as photos are (any
    mode, upright per EXIF)."""
    grey = Image.fromarray(_open_rgb(path)).convert("L")
    if grey.size != (size, size):
        grey = grey.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(grey, dtype=np.uint8)


def _cache_path(path: Path, cropper: Cropper) -> Path:
    st = path.stat()
    key = "|".join(map(str, (path.resolve(), st.st_size, st.st_mtime_ns, cropper.key, CACHE_VERSION)))
    return cache_dir() / "faces" / f"{hashlib.sha1(key.encode()).hexdigest()}.npy"


def _cached_crop(path: Path, rgb: Callable[[], np.ndarray], cropper: Cropper, use_cache: bool) -> np.ndarray | None:
    """The crop of a photo from the cache (an empty array records 'no face'), else detected and stored."""
    target = _cache_path(path, cropper) if use_cache else None
    if target is not None and target.exists():
        try:
            crop = np.load(target, allow_pickle=False)
            if crop.size == 0 or crop.shape == (cropper.size, cropper.size):
                return crop if crop.size else None
        except (OSError, ValueError, EOFError):
            pass  # a damaged entry is redone
    crop = cropper(rgb())
    if target is not None:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as handle:
                np.save(handle, np.zeros((0,), np.uint8) if crop is None else crop)
            os.replace(tmp, target)
        except OSError:
            pass  # a read-only or full cache directory only costs speed
    return crop


def _needs_detection(path: Path, faces: str, size: int) -> bool:
    if faces != "auto":
        return faces == "detect"
    try:
        with Image.open(path) as im:
            return min(im.size) >= AUTO_DETECT_FACTOR * size
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return False  # reported when it is read


def read_faces(files: Sequence[Path], size: int, faces: str = "auto", cropper: Cropper | None = None,
               skip_bad_rows: bool = False, use_cache: bool = True, progress: str | None = None) -> FaceImages:
    """Each file as a ``size`` x ``size`` grey face (see the module's note on ``faces``). An unreadable file
    raises a DataError naming it, unless ``skip_bad_rows`` (then it is counted in ``skipped``); photos need
    ``cropper`` (its size must be ``size``). ``progress``: a tqdm bar with this title."""
    if faces not in FACE_MODES:
        raise ConfigError(f"faces must be one of {FACE_MODES}, not {faces!r}")
    images = np.empty((len(files), size, size), np.uint8)
    kept: list[int] = []
    out = FaceImages(images, np.empty(0, np.int64))
    iterator: Sequence[Path] = files
    if progress:
        from tqdm import tqdm

        iterator = tqdm(files, desc=progress, unit=" img", leave=False)
    for i, path in enumerate(iterator):
        try:
            if _needs_detection(path, faces, size):
                if cropper is None or cropper.size != size:
                    raise ConfigError(f"{path} is a photo ({faces=}): finding its face needs a {size}px face cropper")
                crop = _cached_crop(path, lambda: _open_rgb(path), cropper, use_cache)
                if crop is None:
                    out.no_face.append(str(path))
                    continue
            else:
                crop = load_face_image(path, size)
        except DataError as exc:
            if not skip_bad_rows:
                raise DataError(path, f"{str(exc).split(': ', 1)[1]} (use --skip-bad-rows to skip such files)") from exc
            out.skipped.append(str(exc))
            continue
        images[len(kept)] = crop
        kept.append(i)
    out.images = images[: len(kept)].copy()
    out.kept = np.asarray(kept, np.int64)
    return out
