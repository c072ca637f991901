"""Reader for image-folder trees: ``<root>/<split>/<class>/*.png|jpg`` (FER2013 copies, the seeds' Kaggle
folders) or ``<root>/<class>/*`` (one pool, split by ferkit). Class folders are named as in
:mod:`.classnames` (any case, common synonyms) or mapped with ``--classes``; images are face crops or photos
(:mod:`.photos`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .classnames import SKIP, canonical_class, dataset_classes, unknown_class_message
from .errors import DataError
from .images import IMAGE_SUFFIXES
from .labels import IMAGE_SIZE
from .photos import Cropper, load_face_image, read_faces  # noqa: F401  (load_face_image: its old import path)

SPLIT_FOLDERS = ("train", "training", "val", "validation", "test")


@dataclass
class FolderSplit:
    images: np.ndarray  # (N, size, size) uint8
    labels: np.ndarray  # (N,) int64
    files: list[str]
    skipped: list[str]
    no_face: list[str]


def is_image_folder(path: Path) -> bool:
    """A tree with split folders (train/, test/ ...)."""
    return path.is_dir() and any(p.is_dir() and p.name.lower() in SPLIT_FOLDERS for p in path.iterdir())


def is_class_folder(path: Path, mapping: Mapping[str, str] | None = None) -> bool:
    """A folder of class folders: at least one subfolder is named as a class."""
    return path.is_dir() and any(p.is_dir() and canonical_class(p.name, mapping) for p in path.iterdir())


def class_folders(split_dir: Path, mapping: Mapping[str, str] | None = None) -> list[tuple[Path, str]]:
    """Each class folder of ``split_dir`` with its class, sorted (``skip``-mapped ones left out); an unknown
    name is a DataError listing the accepted ones."""
    found = []
    for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        cls = canonical_class(class_dir.name, mapping)
        if cls is None:
            raise DataError(class_dir, unknown_class_message(class_dir.name))
        if cls != SKIP:
            found.append((class_dir, cls))
    return found


def folder_classes(split_dirs: list[Path], mapping: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The classes of a tree: FER2013's seven, with Contempt when one of its split folders holds it."""
    return dataset_classes(cls for d in split_dirs for _, cls in class_folders(d, mapping))


def list_images(split_dir: Path, classes: tuple[str, ...] = dataset_classes(()),
                mapping: Mapping[str, str] | None = None) -> list[tuple[Path, int]]:
    """Every image file under ``split_dir/<class>/``, sorted, with its index in ``classes``."""
    found: list[tuple[Path, int]] = []
    for class_dir, cls in class_folders(split_dir, mapping):
        label = classes.index(cls)
        found += [(f, label) for f in sorted(class_dir.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    return found


def read_folder_split(split_dir: Path, skip_bad_rows: bool = False, show_progress: bool = False,
                      classes: tuple[str, ...] = dataset_classes(()), mapping: Mapping[str, str] | None = None,
                      size: int = IMAGE_SIZE, faces: str = "auto", cropper: Cropper | None = None,
                      use_cache: bool = True) -> FolderSplit:
    """The images of one split folder as faces (see :func:`.photos.read_faces`)."""
    entries = list_images(split_dir, classes, mapping)
    if not entries:
        raise DataError(split_dir, "split folder holds no images")
    read = read_faces([p for p, _ in entries], size, faces, cropper, skip_bad_rows, use_cache,
                      progress=f"read {split_dir.name}" if show_progress else None)
    if not len(read.kept):
        raise DataError(split_dir, "no readable images" + (" with a face" if read.no_face else ""))
    return FolderSplit(read.images, np.asarray([entries[i][1] for i in read.kept], np.int64),
                       [str(entries[i][0]) for i in read.kept], read.skipped, read.no_face)
