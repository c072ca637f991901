"""FER+ relabelling (Microsoft's fer2013new.csv): majority labels or soft vote distributions."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .errors import DataError
from .labels import FERPLUS_CLASSES

VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF")


def read_ferplus_votes(path: str | Path) -> np.ndarray:
    """Vote counts, shape (rows, 10), in :data:`VOTE_COLUMNS` order, one row per FER2013 row."""
    path = Path(path)
    try:
        with open(path, newline="") as handle:
            reader = csv.reader(handle)
            header = [h.strip() for h in next(reader, [])]
            missing = [c for c in VOTE_COLUMNS if c not in header]
            if missing:
                raise DataError(path, f"missing column(s) {', '.join(missing)}", line=1)
            idx = [header.index(c) for c in VOTE_COLUMNS]
            votes = []
            for line_no, row in enumerate(reader, start=2):
                try:
                    votes.append([int(row[i]) for i in idx])
                except (ValueError, IndexError) as exc:
                    raise DataError(path, f"bad vote counts: {exc}", line=line_no) from exc
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(path, f"cannot read: {exc}") from exc
    return np.asarray(votes, np.int64)


def majority_labels(votes: np.ndarray) -> np.ndarray:
    """FER+ majority protocol: drop emotions with a single vote; the argmax wins if it has more
    than half of the remaining votes; otherwise, or when unknown/not-a-face wins, -1 (excluded)."""
    v = votes.copy()
    v[v == 1] = 0
    total = v.sum(axis=1)
    winner = v.argmax(axis=1)
    ok = (total > 0) & (v.max(axis=1) * 2 > total) & (winner < len(FERPLUS_CLASSES))
    return np.where(ok, winner, -1)


def soft_labels(votes: np.ndarray) -> np.ndarray:
    """Vote distribution over the 8 emotions (unknown and not-a-face dropped); zero rows stay zero."""
    emo = votes[:, : len(FERPLUS_CLASSES)].astype(np.float32)
    total = emo.sum(axis=1, keepdims=True)
    return np.divide(emo, total, out=np.zeros_like(emo), where=total > 0)
