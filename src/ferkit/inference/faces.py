"""The face types every inference module shares: a detector's ``Detection`` (from :mod:`ferkit.core.faces`), a
recognised ``Face`` and a ``TrackedFace`` followed across video frames."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..core.faces import Box, Detection  # noqa: F401  (defined in core: training crops photos too)


@dataclass
class Face:
    """One face: its box (x, y, w, h) in image pixels, every class probability, the top emotion,
    and the detector's landmarks when it gives them ([x, y] pairs; BlazeFace: eyes, nose, mouth, ears)."""

    box: Box
    probs: dict[str, float]
    emotion: str
    score: float
    landmarks: list[list[float]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrackedFace(Face):
    track: int = -1  # the same number for the same face across frames
    raw_probs: dict[str, float] | None = None  # this frame's probabilities before smoothing
