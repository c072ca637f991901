"""Temporal smoothing for video: follow each face from frame to frame (greedy IoU matching) and
average its probabilities exponentially, so labels stop flickering between near-tied classes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ..errors import ConfigError

from .faces import Box, Face, TrackedFace


def iou(a: Box, b: Box) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


@dataclass
class _Track:
    id: int
    box: Box
    probs: np.ndarray
    missed: int = 0


class FaceTracker:
    """``update(faces) -> tracked faces`` once per processed frame. ``alpha`` is the weight of the
    new frame (1 = no smoothing); a track is dropped after ``max_missed`` frames without its face."""

    def __init__(self, alpha: float = 0.4, min_iou: float = 0.3, max_missed: int = 5) -> None:
        if not 0 < alpha <= 1:
            raise ConfigError("alpha must be in (0, 1]")
        self.alpha, self.min_iou, self.max_missed = alpha, min_iou, max_missed
        self.tracks: list[_Track] = []
        self._next_id = 0

    def update(self, faces: list[Face]) -> list[TrackedFace]:
        pairs = sorted(((iou(f.box, t.box), i, j) for i, f in enumerate(faces) for j, t in enumerate(self.tracks)),
                       reverse=True)
        face_track: dict[int, _Track] = {}
        used: set[int] = set()
        for score, i, j in pairs:
            if score < self.min_iou:
                break
            if i not in face_track and j not in used:
                face_track[i] = self.tracks[j]
                used.add(j)
        out, seen = [], set()
        for i, face in enumerate(faces):
            p = np.array(list(face.probs.values()), np.float64)
            track = face_track.get(i)
            if track is None:
                track = _Track(self._next_id, face.box, p)
                self._next_id += 1
                self.tracks.append(track)
            else:
                track.probs = self.alpha * p + (1 - self.alpha) * track.probs
                track.box, track.missed = face.box, 0
            seen.add(track.id)
            names = list(face.probs)
            smooth = {c: float(v) for c, v in zip(names, track.probs)}
            top = int(track.probs.argmax())
            out.append(TrackedFace(face.box, smooth, names[top], float(track.probs[top]), face.landmarks,
                                   track=track.id, raw_probs=dict(face.probs)))
        for t in self.tracks:
            if t.id not in seen:
                t.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        return out

