"""Reader for the image-folder layout of FER2013 copies: ``<root>/<split>/<class>/*.png|jpg``."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import DataError
from .images import IMAGE_SUFFIXES, upright_rgb
from .labels import FER2013_CLASSES, IMAGE_SIZE


@dataclass
class FolderSplit:
    images: np.ndarray  # (N, 48, 48) uint8
    labels: np.ndarray  # (N,) int64
    files: list[str]
    skipped: list[str]


def is_image_folder(path: Path) -> bool:
    return path.is_dir() and any((path / s).is_dir() for s in ("train", "test", "Training"))


def class_index(name: str, classes: tuple[str, ...] = FER2013_CLASSES) -> int | None:
    lookup = {c.lower(): i for i, c in enumerate(classes)}
    return lookup.get(name.lower())


def list_images(split_dir: Path) -> list[tuple[Path, int]]:
    """Every image file under ``split_dir/<class>/``, sorted, with its class index."""
    found: list[tuple[Path, int]] = []
    for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        label = class_index(class_dir.name)
        if label is None:
            raise DataError(class_dir, f"unknown class folder; expected one of {', '.join(FER2013_CLASSES)}")
        found += [(f, label) for f in sorted(class_dir.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    return found


def load_face_image(path: Path) -> np.ndarray:
    """Read one face image as 48x48 grey uint8 (resized if needed), decoded as photos are (any mode,
    upright per EXIF)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # a giant "face" is refused, not decoded
            with Image.open(path) as im:
                grey = Image.fromarray(upright_rgb(im)).convert("L")
            if grey.size != (IMAGE_SIZE, IMAGE_SIZE):
                grey = grey.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
            return np.asarray(grey, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombWarning,
            Image.DecompressionBombError) as exc:
        raise DataError(path, f"unreadable image: {exc}") from exc


def read_folder_split(split_dir: Path, skip_bad_rows: bool = False, show_progress: bool = False) -> FolderSplit:
    entries = list_images(split_dir)
    if not entries:
        raise DataError(split_dir, "split folder holds no images")
    images = np.empty((len(entries), IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    labels, files, skipped = [], [], []
    iterator = entries
    if show_progress:
        from tqdm import tqdm

        iterator = tqdm(entries, desc=f"read {split_dir.name}", unit=" img", leave=False)
    for path, label in iterator:
        try:
            images[len(labels)] = load_face_image(path)
        except DataError as exc:
            if not skip_bad_rows:
                raise DataError(path, f"{str(exc).split(': ', 1)[1]} (use --skip-bad-rows to skip such files)") from exc
            skipped.append(str(exc))
            continue
        labels.append(label)
        files.append(str(path))
    if not labels:
        raise DataError(split_dir, "no readable images")
    return FolderSplit(images[: len(labels)].copy(), np.asarray(labels, np.int64), files, skipped)
