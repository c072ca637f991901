"""Byte-identical images within and across splits, conflicting labels and blank images."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from .dataset import FERDataset


def image_hashes(images: np.ndarray) -> np.ndarray:
    """One 16-byte digest per image, as hex strings."""
    return np.asarray([hashlib.blake2b(im.tobytes(), digest_size=16).hexdigest() for im in images])


@dataclass
class DuplicateReport:
    total: int
    distinct: int
    groups: int  # groups of two or more identical images
    conflicting_groups: int  # groups whose members carry different labels
    blank: int  # constant images
    within: dict[str, int]  # split -> rows whose image occurs earlier in the same split
    across: dict[str, dict[str, int]]  # split -> other split -> rows whose image is also there

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def find_duplicates(dataset: FERDataset) -> DuplicateReport:
    names = list(dataset.splits)
    hashes = {n: image_hashes(dataset.splits[n].images) for n in names}
    all_hashes = np.concatenate([hashes[n] for n in names])
    all_labels = np.concatenate([dataset.splits[n].labels for n in names])
    uniq, inverse, counts = np.unique(all_hashes, return_inverse=True, return_counts=True)
    conflicting = 0
    for g in np.flatnonzero(counts > 1):
        if len(np.unique(all_labels[inverse == g])) > 1:
            conflicting += 1
    images = np.concatenate([dataset.splits[n].images for n in names])
    flat = images.reshape(len(images), -1)
    blank = int(np.sum(flat.min(axis=1) == flat.max(axis=1)))
    within = {n: int(len(hashes[n]) - len(np.unique(hashes[n]))) for n in names}
    across = {n: {m: int(np.isin(hashes[n], hashes[m]).sum()) for m in names if m != n} for n in names}
    return DuplicateReport(len(all_hashes), len(uniq), int(np.sum(counts > 1)), conflicting, blank, within, across)


def deduplicated(dataset: FERDataset, split: str) -> np.ndarray:
    """Indices of ``split`` rows whose image appears in none of the other roles' splits
    (for the test role: not in train nor val), the leak-free part of a test split."""
    target = dataset.roles.get(split, split)
    own = image_hashes(dataset.split(split).images)
    others = [image_hashes(s.images) for n, s in dataset.splits.items() if n != target]
    seen = np.concatenate(others) if others else np.asarray([], dtype=own.dtype)
    return np.flatnonzero(~np.isin(own, seen))
