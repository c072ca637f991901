"""One in-memory data set type for every source, with named splits and train/val/test roles."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .cache import cached_arrays, file_key
from .classnames import parse_class_map
from ..errors import ConfigError
from .errors import DataError
from .fer2013 import is_fer2013_csv, read_fer2013_csv
from .folders import folder_classes, is_class_folder, is_image_folder, list_images, read_folder_split
from .ferplus import majority_labels, read_ferplus_votes, soft_labels
from .kdef import kdef_root, list_kdef, parse_angles
from .labels import FER2013_CLASSES, FERPLUS_CLASSES, IMAGE_SIZE
from .photos import FACE_MODES, Cropper, no_face_note, read_faces

FER2013_ROLES = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
OWN_ROLES = {"train": "train", "val": "val", "test": "test"}
LABEL_SETS = ("fer2013", "ferplus", "ferplus-soft")
SPLIT_BY = ("auto", "image", "subject")
SPLIT_SETTINGS = ("val_fraction", "test_fraction", "split_by", "seed", "classes", "angles", "faces")
"""The run settings (fields of TrainConfig) that decide what a data set holds and how it is split: a checkpoint's
evaluation reads its data with them again."""


def split_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The :data:`SPLIT_SETTINGS` of a run's config (those it has: older runs lack the newer ones), as
    :func:`load_dataset` keywords."""
    return {k: config[k] for k in SPLIT_SETTINGS if k in config}


@dataclass
class Split:
    """Images of one split: ``images`` (N, 48, 48) uint8, ``labels`` (N,) int64, ``ids`` the
    source row (CSV) or file index, and optional ``soft`` label distributions (N, C)."""

    name: str
    images: np.ndarray
    labels: np.ndarray
    ids: np.ndarray
    soft: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> "Split":
        return replace(
            self,
            images=self.images[index],
            labels=self.labels[index],
            ids=self.ids[index],
            soft=None if self.soft is None else self.soft[index],
        )


@dataclass
class FERDataset:
    """Named splits plus the roles ``train``, ``val`` (model selection) and ``test`` (report)."""

    classes: tuple[str, ...]
    splits: dict[str, Split]
    roles: dict[str, str]
    source: str
    skipped: list[str] = field(default_factory=list)
    no_face: list[str] = field(default_factory=list)  # photos left out because no face was found in them
    images_read: int = 0  # image files read (photos and crops), for the no-face note

    @property
    def skipped_note(self) -> str | None:
        """'skipped N bad rows or files (first: why)', or None."""
        return f"skipped {len(self.skipped)} bad rows or files (first: {self.skipped[0]})" if self.skipped else None

    @property
    def no_face_note(self) -> str | None:
        """'N of M images had no face found and were left out: first paths', or None."""
        return no_face_note(self.no_face, self.images_read) if self.no_face else None

    def split(self, name: str) -> Split:
        """A split by its name (``PrivateTest``) or role (``test``); empty or absent ones raise."""
        key = self.roles.get(name, name)
        split = self.splits.get(key)
        if split is None or len(split) == 0:
            known = ", ".join(f"{k} ({len(v)})" for k, v in self.splits.items())
            raise DataError(self.source, f"split {name!r} is empty or absent; splits: {known}")
        return split

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def in_class_order(self, classes: Sequence[str]) -> "FERDataset":
        """This data set with its classes in the order of ``classes`` (the same names, reordered): ``classes[i]`` is
        id ``i`` in every split, soft labels permuted alike."""
        order = np.array([self.classes.index(c) for c in classes], dtype=np.int64)
        new_id = np.empty(len(order), dtype=np.int64)
        new_id[order] = np.arange(len(order))
        splits = {name: replace(s, labels=new_id[s.labels], soft=None if s.soft is None else s.soft[:, order])
                  for name, s in self.splits.items()}
        return replace(self, classes=tuple(classes), splits=splits)

    def subsample(self, per_split: int, seed: int = 0) -> "FERDataset":
        """A smaller copy with at most ``per_split`` images in each split, drawn at random (seeded; not stratified)."""
        rng = np.random.default_rng(seed)
        splits = {}
        for name, s in self.splits.items():
            take = rng.permutation(len(s))[:per_split]
            splits[name] = s.subset(np.sort(take))
        return replace(self, splits=splits)


def _fer2013_from_csv(path: Path, skip_bad_rows: bool, use_cache: bool, progress: bool) -> dict[str, np.ndarray]:
    def build() -> dict[str, np.ndarray]:
        t = read_fer2013_csv(path, skip_bad_rows=skip_bad_rows, show_progress=progress)
        return {"images": t.images, "labels": t.labels, "usage": t.usage, "rows": t.rows,
                "skipped": np.asarray(t.skipped, dtype=str)}

    return cached_arrays(file_key(path, "csv", skip_bad_rows), build, enabled=use_cache)


def _load_csv(path: Path, labels: str, ferplus: Path | None, skip_bad_rows: bool, use_cache: bool,
              progress: bool, carve: "Carver") -> FERDataset:
    arrays = _fer2013_from_csv(path, skip_bad_rows, use_cache, progress)
    usage = arrays["usage"]
    if (usage == "").all():  # Kaggle's train.csv: no Usage column
        if labels != "fer2013":
            raise DataError(path, "FER+ labels need fer2013.csv with its Usage column (they are joined by row)")
        parts = carve(arrays["labels"], None, path)
        splits = {name: Split(name, arrays["images"][idx], arrays["labels"][idx], arrays["rows"][idx])
                  for name, idx in parts.items()}
        return FERDataset(FER2013_CLASSES, splits, dict(OWN_ROLES), str(path), arrays["skipped"].tolist())
    classes, y, soft, keep = FER2013_CLASSES, arrays["labels"], None, np.ones(len(usage), bool)
    if labels != "fer2013":
        ferplus = ferplus or path.parent / "fer2013new.csv"
        votes = read_ferplus_votes(ferplus)
        rows = arrays["rows"]
        if rows.max() >= len(votes):
            raise DataError(ferplus, f"has {len(votes)} rows but {path} has row {rows.max() + 1}")
        votes = votes[rows]
        classes = FERPLUS_CLASSES
        if labels == "ferplus":
            y = majority_labels(votes)
            keep = y >= 0
        else:
            soft = soft_labels(votes)
            keep = soft.sum(axis=1) > 0
            y = soft.argmax(axis=1)
    splits = {}
    for name in FER2013_ROLES.values():
        idx = np.flatnonzero((usage == name) & keep)
        splits[name] = Split(name, arrays["images"][idx], y[idx].astype(np.int64), arrays["rows"][idx],
                             None if soft is None else soft[idx])
    return FERDataset(classes, splits, dict(FER2013_ROLES), str(path), arrays["skipped"].tolist())




class Carver:
    """Seeded train/val/test splits of a pool that comes without them: ``carve(labels, subjects, source)`` ->
    indices per split, stratified by class (``split_by`` image), or with no subject in two splits (subject)."""

    def __init__(self, val_fraction: float, test_fraction: float, seed: int, split_by: str) -> None:
        check_fractions(val_fraction, test_fraction)
        if split_by not in SPLIT_BY:
            raise ConfigError(f"split_by must be one of {SPLIT_BY}, not {split_by!r}")
        self.val, self.test, self.seed, self.split_by = val_fraction, test_fraction, seed, split_by

    def __call__(self, labels: np.ndarray, subjects: np.ndarray | None, source: Path) -> dict[str, np.ndarray]:
        by_subject = self.split_by == "subject" or (self.split_by == "auto" and subjects is not None)
        if by_subject and subjects is None:
            raise ConfigError(f"--split-by subject needs data that names its subjects (KDEF); {source} does not")
        parts = self._by_subject(subjects, source) if by_subject else self._by_image(labels, source)
        return {name: np.sort(idx) for name, idx in parts.items() if len(idx)}

    def _by_subject(self, subjects: np.ndarray, source: Path) -> dict[str, np.ndarray]:
        people = np.random.default_rng(self.seed).permutation(np.unique(subjects))
        n_test = max(1, round(len(people) * self.test)) if self.test else 0
        n_val = max(1, round(len(people) * self.val))
        if len(people) - n_test - n_val < 1:
            raise DataError(source, f"{len(people)} subject(s) cannot make train, val and test splits by subject "
                                    f"(--val-fraction {self.val}, --test-fraction {self.test})")
        test, val = people[:n_test], people[n_test:n_test + n_val]
        return {"train": np.flatnonzero(~np.isin(subjects, np.concatenate([test, val]))),
                "val": np.flatnonzero(np.isin(subjects, val)), "test": np.flatnonzero(np.isin(subjects, test))}

    def _by_image(self, labels: np.ndarray, source: Path) -> dict[str, np.ndarray]:
        from sklearn.model_selection import train_test_split

        rest, test = np.arange(len(labels)), np.zeros(0, np.int64)
        try:
            if self.test:  # counts of the whole pool; without a test split, val as folders always carved it
                rest, test = train_test_split(rest, test_size=round(len(labels) * self.test), random_state=self.seed,
                                              stratify=labels)
            val_size = round(len(labels) * self.val) if self.test else self.val
            train, val = train_test_split(rest, test_size=val_size, random_state=self.seed, stratify=labels[rest])
        except ValueError as exc:  # a class with a single image, or fewer images in a split than classes
            what = "stratified validation and test splits" if self.test else "a stratified validation split"
            raise DataError(source, f"cannot carve {what}: {exc}; add images, a val/ folder, or change "
                                    "--val-fraction/--test-fraction") from exc
        return {"train": train, "val": val, "test": test}


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    """A ConfigError unless 0 < val_fraction, 0 <= test_fraction and their sum < 1."""
    if not (0 < val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ConfigError(f"--val-fraction ({val_fraction}) must be in (0, 1), --test-fraction ({test_fraction}) in "
                          "[0, 1), and their sum below 1")


@dataclass
class _ImageReading:
    """How image files become faces: the classes' folder names, the input size, crops or photos."""

    mapping: dict[str, str]
    size: int
    faces: str
    cropper: Cropper | None
    skip_bad_rows: bool
    use_cache: bool
    progress: bool

    def key(self) -> tuple[object, ...]:
        crop = self.cropper.key if self.cropper is not None and self.faces != "cropped" else None
        return self.skip_bad_rows, sorted(self.mapping.items()), self.size, self.faces, crop


def _listing_key(files: list[Path]) -> str:
    listing = "\n".join(f"{p}|{p.stat().st_size}|{p.stat().st_mtime_ns}" for p in files)
    return hashlib.sha1(listing.encode()).hexdigest()


def _read_split(split_dir: Path, classes: tuple[str, ...], how: _ImageReading) -> dict[str, np.ndarray]:
    files = [p for p, _ in list_images(split_dir, classes, how.mapping)]
    key = file_key(split_dir, "folder", *how.key(), classes, _listing_key(files))

    def build() -> dict[str, np.ndarray]:
        s = read_folder_split(split_dir, skip_bad_rows=how.skip_bad_rows, show_progress=how.progress,
                              classes=classes, mapping=how.mapping, size=how.size, faces=how.faces,
                              cropper=how.cropper, use_cache=how.use_cache)
        return {"images": s.images, "labels": s.labels, "files": np.asarray(s.files, dtype=str),
                "skipped": np.asarray(s.skipped, dtype=str), "no_face": np.asarray(s.no_face, dtype=str),
                "read": np.asarray(len(files))}

    return cached_arrays(key, build, enabled=how.use_cache)


def _dataset(classes: tuple[str, ...], splits: dict[str, Split], source: Path,
             reads: list[dict[str, np.ndarray]]) -> FERDataset:
    skipped = [m for r in reads for m in r["skipped"].tolist()]
    no_face = [m for r in reads for m in r["no_face"].tolist()]
    read = sum(int(r["read"]) for r in reads)
    return FERDataset(classes, splits, dict(OWN_ROLES), str(source), skipped, no_face, read)


def _load_folders(root: Path, how: _ImageReading, carve: Carver) -> FERDataset:
    """``<root>/<split>/<class>/``: train/ (or training/), val/ (or validation/) and test/; a missing val/ is
    carved from train/ (stratified, ``val_fraction``); a missing test/ stays missing."""
    dirs = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    train_dir = dirs.get("train") or dirs.get("training")
    if train_dir is None:
        raise DataError(root, "image-folder layout needs a train/ folder")
    if carve.split_by == "subject":
        raise ConfigError(f"--split-by subject needs data that names its subjects (KDEF); {root} does not")
    split_dirs = {"train": train_dir, "val": dirs.get("val") or dirs.get("validation"), "test": dirs.get("test")}
    classes = folder_classes([d for d in split_dirs.values() if d is not None], how.mapping)
    reads = {name: _read_split(d, classes, how) for name, d in split_dirs.items() if d is not None}
    splits = {name: Split(name, r["images"], r["labels"], np.arange(len(r["labels"]))) for name, r in reads.items()}
    if "val" not in splits:
        train = splits["train"]
        parts = Carver(carve.val, 0.0, carve.seed, "image")(train.labels, None, train_dir)
        splits = {"train": train.subset(parts["train"]), "val": replace(train.subset(parts["val"]), name="val"),
                  **({"test": splits["test"]} if "test" in splits else {})}
    return _dataset(classes, splits, root, list(reads.values()))


def _load_class_pool(root: Path, how: _ImageReading, carve: Carver) -> FERDataset:
    """``<root>/<class>/``: one pool, carved into train/val/test."""
    classes = folder_classes([root], how.mapping)
    pool = _read_split(root, classes, how)
    parts = carve(pool["labels"], None, root)
    splits = {name: Split(name, pool["images"][idx], pool["labels"][idx], idx) for name, idx in parts.items()}
    return _dataset(classes, splits, root, [pool])


def _load_kdef(root: Path, angles: tuple[str, ...], how: _ImageReading, carve: Carver) -> FERDataset:
    listing = list_kdef(root, angles, how.skip_bad_rows)
    key = file_key(root, "kdef", *how.key(), angles, _listing_key(listing.files))

    def build() -> dict[str, np.ndarray]:
        read = read_faces(listing.files, how.size, how.faces, how.cropper, how.skip_bad_rows, how.use_cache,
                          progress="read KDEF" if how.progress else None)
        return {"images": read.images, "kept": read.kept, "skipped": np.asarray(read.skipped, dtype=str),
                "no_face": np.asarray(read.no_face, dtype=str), "read": np.asarray(len(listing.files))}

    r = cached_arrays(key, build, enabled=how.use_cache)
    if not len(r["kept"]):
        raise DataError(root, f"no face found in any of the {len(listing.files)} KDEF images")
    labels = np.asarray(listing.labels, np.int64)[r["kept"]]
    parts = carve(labels, np.asarray(listing.subjects)[r["kept"]], root)
    splits = {name: Split(name, r["images"][idx], labels[idx], r["kept"][idx]) for name, idx in parts.items()}
    r["skipped"] = np.asarray(listing.skipped + r["skipped"].tolist(), dtype=str)
    return _dataset(FER2013_CLASSES, splits, root, [r])


def load_dataset(
    path: str | Path,
    labels: str = "fer2013",
    ferplus: str | Path | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    skip_bad_rows: bool = False,
    cache: bool = True,
    progress: bool = False,
    test_fraction: float = 0.1,
    split_by: str = "auto",
    classes: Sequence[str] = (),
    angles: Sequence[str] = ("S",),
    faces: str = "auto",
    size: int = IMAGE_SIZE,
    cropper: Cropper | None = None,
) -> FERDataset:
    """Load a data set, its kind known by its content:

    - a FER2013 CSV (``.csv``, ``.csv.gz``, ``fer2013.tar.gz``; also Kaggle's icml_face_data.csv) with its Usage
      splits, or Kaggle's train.csv (no Usage column): seeded stratified val/test splits of ``val_fraction`` and
      ``test_fraction``;
    - an image-folder tree ``<split>/<class>/`` (train/, val/ or validation/, test/; a missing val/ is carved from
      train/ with ``val_fraction``), or a folder of class folders ``<class>/`` (split as train.csv is);
    - KDEF (``KDEF/AF01/AF01ANS.JPG``): the ``angles`` chosen (S by default), split by subject (``split_by``
      auto or subject: no actor in two splits) or by image.

    Class folders may be named as the seeds name them (any case, synonyms; ``classes`` maps others:
    ``["joy=happy", "misc=skip"]``). Image files become ``size`` x ``size`` grey faces: ``faces`` says whether they
    are face crops or photos whose face ``cropper`` finds (see :mod:`ferkit.data.photos`); photos without a face are
    left out and listed in ``no_face``. ``labels``: ``fer2013`` (7 classes), ``ferplus`` (FER+ majority, 8 classes)
    or ``ferplus-soft`` (FER+ vote distributions), the FER+ ones from fer2013.csv and ``fer2013new.csv`` (default:
    beside it).
    """
    path = Path(path)
    if labels not in LABEL_SETS:
        raise ConfigError(f"labels must be one of {LABEL_SETS}, not {labels!r}")
    if faces not in FACE_MODES:
        raise ConfigError(f"faces must be one of {FACE_MODES}, not {faces!r}")
    carve = Carver(val_fraction, test_fraction, seed, split_by)
    chosen_angles = parse_angles(angles)
    if not path.exists():
        raise DataError(path, "no such file or folder")
    if is_fer2013_csv(path):
        if split_by == "subject":
            raise ConfigError(f"--split-by subject needs data that names its subjects (KDEF); {path} does not")
        return _load_csv(path, labels, Path(ferplus) if ferplus else None, skip_bad_rows, cache, progress, carve)
    how = _ImageReading(parse_class_map(classes), size, faces, cropper, skip_bad_rows, cache, progress)
    if path.is_dir() and labels != "fer2013":
        raise DataError(path, "FER+ labels need the FER2013 CSV (they are joined by row)")
    if is_image_folder(path):
        return _load_folders(path, how, carve)
    root = kdef_root(path) if path.is_dir() else None
    if root is not None:
        return _load_kdef(root, chosen_angles, how, carve)
    if is_class_folder(path, how.mapping):
        return _load_class_pool(path, how, carve)
    raise DataError(path, "not a FER2013 CSV (.csv, .csv.gz, .tar.gz), nor an image folder (train/ and test/ or "
                          "class folders), nor KDEF (actor folders such as AF01/)")
