"""Cartoon faces drawn on the fly: a 7-class toy data set that needs no download.

Each class has its own mouth and eyebrow shape (a smile for Happy, an open mouth for Surprise, ...);
pose, size, contrast and noise vary. It exists for the demo and for tests, not as a benchmark.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .dataset import FERDataset, Split
from .labels import FER2013_CLASSES, IMAGE_SIZE

# (brow tilt, mouth curvature, mouth openness, eye size) per class, in FER2013 order.
_SHAPES = {
    "Angry": (-0.5, -0.3, 0.0, 0.8),
    "Disgust": (-0.3, -0.6, 0.15, 0.6),
    "Fear": (0.5, -0.2, 0.4, 1.3),
    "Happy": (0.0, 0.8, 0.1, 1.0),
    "Sad": (0.6, -0.7, 0.0, 0.9),
    "Surprise": (0.3, 0.0, 0.9, 1.4),
    "Neutral": (0.0, 0.0, 0.0, 1.0),
}


def draw_face(label: int, rng: np.random.Generator, size: int = IMAGE_SIZE) -> np.ndarray:
    scale = 4  # draw large, then downsample for smooth edges
    s = size * scale
    tilt, curve, opening, eye = _SHAPES[FER2013_CLASSES[label]]
    bg, skin = sorted(rng.integers(20, 235, size=2))
    im = Image.new("L", (s, s), int(bg))
    d = ImageDraw.Draw(im)
    cx, cy = s / 2 + rng.normal(0, s * 0.04), s / 2 + rng.normal(0, s * 0.04)
    r = s * rng.uniform(0.36, 0.46)
    d.ellipse([cx - r, cy - r * 1.1, cx + r, cy + r * 1.1], fill=int(skin))
    ink = int(bg) // 3
    w = max(2, int(r * 0.06))
    for side in (-1, 1):
        ex, ey, er = cx + side * r * 0.38, cy - r * 0.2, r * 0.1 * eye
        d.ellipse([ex - er, ey - er, ex + er, ey + er], fill=ink)
        by = cy - r * 0.45
        inner, outer = by + tilt * r * 0.12, by - tilt * r * 0.12
        d.line([ex - side * r * 0.18, inner, ex + side * r * 0.2, outer], fill=ink, width=w)
    mx, my, mw = cx, cy + r * 0.45, r * 0.45
    xs = np.linspace(-1, 1, 16)
    top = [(mx + x * mw, my + curve * r * 0.2 * (1 - x * x)) for x in xs]
    bottom = [(mx + x * mw, my + curve * r * 0.2 * (1 - x * x) + opening * r * 0.35 * (1 - x * x)) for x in xs]
    if opening > 0.05:
        d.polygon(top + bottom[::-1], fill=ink)
    else:
        d.line(top, fill=ink, width=w)
    im = im.rotate(rng.normal(0, 8), resample=Image.Resampling.BILINEAR, fillcolor=int(bg))
    arr = np.asarray(im.resize((size, size), Image.Resampling.BILINEAR), np.float32)
    arr += rng.normal(0, 6, arr.shape)
    return np.clip(arr, 0, 255).astype(np.uint8)


def synthetic_dataset(per_class: tuple[int, int, int] = (120, 30, 30), seed: int = 0) -> FERDataset:
    """Train/val/test splits of cartoon faces with ``per_class`` images per class in each."""
    rng = np.random.default_rng(seed)
    splits = {}
    for name, n in zip(("train", "val", "test"), per_class):
        labels = np.repeat(np.arange(len(FER2013_CLASSES)), n)
        images = np.stack([draw_face(int(y), rng) for y in labels])
        splits[name] = Split(name, images, labels.astype(np.int64), np.arange(len(labels)))
    return FERDataset(FER2013_CLASSES, splits, {"train": "train", "val": "val", "test": "test"}, "synthetic")
