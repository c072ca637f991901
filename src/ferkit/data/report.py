"""``ferkit data-report``: class counts per split, a sample grid per class, and the duplicate report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..figures import plt, save_figure
from .dataset import FERDataset, load_dataset
from .duplicates import find_duplicates
from .photos import Cropper


def class_counts(dataset: FERDataset) -> dict[str, list[int]]:
    return {name: np.bincount(s.labels, minlength=dataset.num_classes).tolist() for name, s in dataset.splits.items()}


def plot_class_counts(dataset: FERDataset, path: Path) -> Path:
    counts = class_counts(dataset)
    x = np.arange(dataset.num_classes)
    width = 0.8 / max(1, len(counts))
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for i, (name, c) in enumerate(counts.items()):
        bars = ax.bar(x + i * width, c, width, label=name)
        ax.bar_label(bars, fontsize=7)
    ax.set_xticks(x + width * (len(counts) - 1) / 2, dataset.classes)
    ax.set_ylabel("images")
    ax.set_title("Images per class and split")
    ax.legend()
    return save_figure(fig, path)


def plot_samples(dataset: FERDataset, path: Path, per_class: int = 10, seed: int = 0) -> Path:
    split = dataset.split("train")
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(dataset.num_classes, per_class, figsize=(per_class * 1.1, dataset.num_classes * 1.2))
    for c, name in enumerate(dataset.classes):
        idx = rng.permutation(np.flatnonzero(split.labels == c))[:per_class]
        for j in range(per_class):
            ax = axes[c, j]
            ax.axis("off")
            if j < len(idx):
                ax.imshow(split.images[idx[j]], cmap="gray", vmin=0, vmax=255)
        axes[c, 0].set_title(name, fontsize=8, loc="left")
    fig.suptitle(f"Random {split.name} images per class")
    return save_figure(fig, path, dpi=100)


def data_report(data: str | Path, out: str | Path, labels: str = "fer2013", ferplus: str | Path | None = None,
                skip_bad_rows: bool = False, cropper: Cropper | None = None, **options: Any) -> str:
    """Write counts.png, samples.png and report.json to ``out``; return the printed summary. ``cropper`` and
    ``options`` (``val_fraction``, ``split_by``, ``classes``, ``faces`` ...) as :func:`load_dataset` takes them."""
    dataset = load_dataset(data, labels=labels, ferplus=ferplus, skip_bad_rows=skip_bad_rows, progress=True,
                           cropper=cropper, **options)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    counts = class_counts(dataset)
    dup = find_duplicates(dataset)
    plot_class_counts(dataset, out / "counts.png")
    plot_samples(dataset, out / "samples.png")
    report = {"source": dataset.source, "classes": list(dataset.classes), "counts": counts,
              "skipped_rows": dataset.skipped, "no_face": dataset.no_face, "duplicates": dup.as_dict()}
    (out / "report.json").write_text(json.dumps(report, indent=2))
    w = max(len(c) for c in dataset.classes) + 2
    lines = [f"{dataset.source}: {sum(len(s) for s in dataset.splits.values())} images, {dataset.num_classes} classes"]
    lines.append(" " * w + "".join(f"{n:>15}" for n in counts))
    for i, c in enumerate(dataset.classes):
        lines.append(f"{c:<{w}}" + "".join(f"{counts[n][i]:>7} ({counts[n][i] / max(1, sum(counts[n])):5.1%})" for n in counts))
    lines.append(f"{'total':<{w}}" + "".join(f"{sum(counts[n]):>15}" for n in counts))
    lines.append(f"duplicates: {dup.distinct} distinct images among {dup.total}; {dup.groups} groups of identical images, "
                 f"{dup.conflicting_groups} with conflicting labels; {dup.blank} blank images")
    for n, d in dup.across.items():
        lines.append(f"  {n}: {dup.within[n]} repeats within; " + ", ".join(f"{v} also in {m}" for m, v in d.items()))
    if dataset.skipped:
        lines.append(f"skipped {len(dataset.skipped)} bad rows or files (see report.json)")
    if dataset.no_face_note:
        lines.append(dataset.no_face_note + " (all in report.json)")
    lines.append(f"figures and report.json in {out}")
    return "\n".join(lines)
