"""One in-memory data set type for every source, with named splits and train/val/test roles."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .cache import cached_arrays, file_key
from ..errors import ConfigError
from .errors import DataError
from .fer2013 import is_fer2013_csv, read_fer2013_csv
from .folders import is_image_folder, list_images, read_folder_split
from .ferplus import majority_labels, read_ferplus_votes, soft_labels
from .labels import FER2013_CLASSES, FERPLUS_CLASSES

FER2013_ROLES = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
LABEL_SETS = ("fer2013", "ferplus", "ferplus-soft")


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

    def subsample(self, per_split: int, seed: int = 0) -> "FERDataset":
        """A smaller copy with at most ``per_split`` images in each split (seeded, stratified-ish)."""
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
              progress: bool) -> FERDataset:
    arrays = _fer2013_from_csv(path, skip_bad_rows, use_cache, progress)
    usage = arrays["usage"]
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


def _load_folders(root: Path, val_fraction: float, seed: int, skip_bad_rows: bool, use_cache: bool,
                  progress: bool) -> FERDataset:
    from sklearn.model_selection import train_test_split

    def read(split_dir: Path) -> dict[str, np.ndarray]:
        listing = "\n".join(f"{p}|{p.stat().st_size}|{p.stat().st_mtime_ns}" for p, _ in list_images(split_dir))
        key = file_key(split_dir, "folder", skip_bad_rows, hashlib.sha1(listing.encode()).hexdigest())

        def build() -> dict[str, np.ndarray]:
            s = read_folder_split(split_dir, skip_bad_rows=skip_bad_rows, show_progress=progress)
            return {"images": s.images, "labels": s.labels, "files": np.asarray(s.files, dtype=str),
                    "skipped": np.asarray(s.skipped, dtype=str)}

        return cached_arrays(key, build, enabled=use_cache)

    dirs = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    train_dir = dirs.get("train") or dirs.get("training")
    if train_dir is None:
        raise DataError(root, "image-folder layout needs a train/ folder")
    train = read(train_dir)
    skipped = train["skipped"].tolist()
    ids = np.arange(len(train["labels"]))
    splits: dict[str, Split] = {}
    val_dir = dirs.get("val") or dirs.get("validation")
    if val_dir is not None:
        val = read(val_dir)
        skipped += val["skipped"].tolist()
        splits["train"] = Split("train", train["images"], train["labels"], ids)
        splits["val"] = Split("val", val["images"], val["labels"], np.arange(len(val["labels"])))
    else:
        try:
            tr, va = train_test_split(ids, test_size=val_fraction, random_state=seed, stratify=train["labels"])
        except ValueError as exc:  # a class with a single image, or fewer val images than classes
            raise DataError(train_dir, f"cannot carve a stratified validation split: {exc}; add images or a val/ folder") from exc
        tr, va = np.sort(tr), np.sort(va)
        splits["train"] = Split("train", train["images"][tr], train["labels"][tr], tr)
        splits["val"] = Split("val", train["images"][va], train["labels"][va], va)
    test_dir = dirs.get("test")
    if test_dir is not None:
        test = read(test_dir)
        skipped += test["skipped"].tolist()
        splits["test"] = Split("test", test["images"], test["labels"], np.arange(len(test["labels"])))
    return FERDataset(FER2013_CLASSES, splits, {"train": "train", "val": "val", "test": "test"}, str(root), skipped)


def load_dataset(
    path: str | Path,
    labels: str = "fer2013",
    ferplus: str | Path | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    skip_bad_rows: bool = False,
    cache: bool = True,
    progress: bool = False,
) -> FERDataset:
    """Load FER2013 from a CSV (``.csv``, ``.csv.gz``, ``fer2013.tar.gz``) or an image-folder tree.

    ``labels``: ``fer2013`` (7 classes), ``ferplus`` (FER+ majority, 8 classes) or ``ferplus-soft``
    (FER+ vote distributions); FER+ needs the CSV source and ``fer2013new.csv`` (default: beside it).
    Folders get a seeded, stratified ``val`` split of ``val_fraction`` carved from ``train`` unless
    they have a ``val/`` folder.
    """
    path = Path(path)
    if labels not in LABEL_SETS:
        raise ConfigError(f"labels must be one of {LABEL_SETS}, not {labels!r}")
    if not path.exists():
        raise DataError(path, "no such file or folder")
    if is_fer2013_csv(path):
        return _load_csv(path, labels, Path(ferplus) if ferplus else None, skip_bad_rows, cache, progress)
    if is_image_folder(path):
        if labels != "fer2013":
            raise DataError(path, "FER+ labels need the FER2013 CSV (they are joined by row)")
        return _load_folders(path, val_fraction, seed, skip_bad_rows, cache, progress)
    raise DataError(path, "not a FER2013 CSV (.csv, .csv.gz, .tar.gz) nor an image folder with train/ and test/")
