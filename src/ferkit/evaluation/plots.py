"""Figures of an evaluation, as PNG files (matplotlib, no display needed)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from ..figures import plt, save_figure


def plot_confusion(metrics: dict[str, Any], classes: list[str], path: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    for ax, key, title, fmt in ((axes[0], "confusion_matrix", "counts", "d"),
                                (axes[1], "confusion_matrix_normalized", "row-normalised (recall)", ".2f")):
        m = np.asarray(metrics[key])
        ax.imshow(m if key.endswith("normalized") else m / np.maximum(m.sum(1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
        for i in range(len(classes)):
            for j in range(len(classes)):
                v = m[i, j]
                frac = v if key.endswith("normalized") else v / max(m[i].sum(), 1)
                ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=8, color="white" if frac > 0.5 else "black")
        ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
        ax.set_yticks(range(len(classes)), classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"Confusion matrix, {title}")
    return save_figure(fig, path)


def plot_reliability(metrics: dict[str, Any], path: Path) -> Path:
    r = metrics["reliability"]
    edges = np.asarray(r["edges"])
    centers, width = (edges[:-1] + edges[1:]) / 2, edges[1] - edges[0]
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.bar(centers, r["accuracy"], width=width * 0.95, color="#4c72b0", edgecolor="k", label="accuracy")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability diagram (ECE {metrics['ece']:.3f})")
    ax.legend(loc="upper left")
    return save_figure(fig, path)


def read_metrics_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def plot_curves(metrics_csv: Path, path: Path) -> Path | None:
    """Loss and accuracy per epoch, train vs validation, from a run's metrics.csv."""
    rows = read_metrics_csv(metrics_csv) if metrics_csv.exists() else []
    if not rows:
        return None
    ep = [int(r["epoch"]) for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, key in zip(axes, ("loss", "acc")):
        ax.plot(ep, [float(r[f"train_{key}"]) for r in rows], "o-", label="train")
        ax.plot(ep, [float(r[f"val_{key}"]) for r in rows], "o-", label="validation")
        ax.set_xlabel("epoch")
        ax.set_title({"loss": "Loss", "acc": "Accuracy"}[key])
        ax.legend()
        ax.grid(alpha=0.3)
    axes[2].plot(ep, [float(r["lr"]) for r in rows], "o-")
    axes[2].set_title("Learning rate (start of epoch)")
    axes[2].set_xlabel("epoch")
    axes[2].grid(alpha=0.3)
    return save_figure(fig, path)


def plot_face_grid(images: np.ndarray, true: np.ndarray, pred: np.ndarray, conf: np.ndarray, classes: list[str],
                   path: Path, title: str, cols: int = 8) -> Path:
    """Faces with 'predicted (confidence)' captions: green when right, red when wrong."""
    n = len(images)
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.6, rows * 1.95))
    for ax in np.atleast_1d(axes).ravel():
        ax.axis("off")
    for ax, im, t, p, c in zip(np.atleast_1d(axes).ravel(), images, true, pred, conf):
        ax.imshow(im, cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"{classes[p]} {c:.0%}\ntrue: {classes[t]}", fontsize=7, color="green" if p == t else "red")
    fig.suptitle(title)
    return save_figure(fig, path)
