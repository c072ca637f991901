"""PublicTest curves of issue 14's runs (the campaign's attempts, the flagship's and the default's runs and their
warm restarts, the FER+ model's), as a PNG.

    .venv/bin/python benchmarks/campaign_curve.py [--out benchmarks/campaign/curve.png]

Reads every ``benchmarks/campaign/*.csv`` (columns ``epoch`` and ``val_acc``: a run's metrics.csv, copied into the
repository at the end of each working stretch, since runs/ is lost when the machine is replaced); the file name says
the run and its network. ``runs.json`` says each run's label set (FER2013 or FER+, one panel each) and, for a warm
restart (``--init``), the checkpoint it started from and ``after``, the epochs of training behind that checkpoint
(its best epoch plus its own start's; a soup counts as its longest member): restarts are drawn dashed, after those
epochs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cycler import cycler

from ferkit.evaluation.plots import read_metrics_csv
from ferkit.figures import plt, save_figure

HERE = Path(__file__).resolve().parent / "campaign"
PANELS = {"fer2013": "FER2013 labels (7 classes)", "ferplus": "FER+ labels (8 classes; the class with most votes)"}


def read_curve(path: Path) -> tuple[list[int], list[float]]:
    rows = [r for r in read_metrics_csv(path) if r.get("stage", "main") == "main"]
    return [int(r["epoch"]) for r in rows], [100 * float(r["val_acc"]) for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "curve.png")
    args = ap.parse_args()
    runs = json.loads((HERE / "runs.json").read_text())
    fig, axes = plt.subplots(1, 2, figsize=(15, 9), gridspec_kw={"width_ratios": [2.2, 1]})
    tab20, tab20b = plt.colormaps["tab20"].colors, plt.colormaps["tab20b"].colors
    colours = tab20[::2] + tab20[1::2] + tab20b[::4] + tab20b[2::4]  # 30: the dark ones first
    for ax in axes:  # a new marker each time the 30 colours come round again: no two runs alike
        ax.set_prop_cycle(cycler(marker=list("osD^v")) * cycler(color=colours))
    for path in sorted(HERE.glob("*.csv")):
        info = runs.get(path.stem, {})
        epochs, acc = read_curve(path)
        start = f" <- {info['from']}" if "from" in info else ""
        best = f"best {max(acc):.2f}% at its epoch {epochs[acc.index(max(acc))]}"
        ax = axes[list(PANELS).index(info.get("labels", "fer2013"))]
        epochs = [e + info.get("after", 0) for e in epochs]
        ax.plot(epochs, acc, ls="--" if start else "-", ms=3, label=f"{path.stem}{start} ({best})")
    for ax, title in zip(axes, PANELS.values()):
        ax.set_xlabel("epochs since the random start")
        ax.set_ylabel("PublicTest accuracy, EMA weights (%)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        # below the panel, where it hides no curve
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2 if ax is axes[0] else 1)
    fig.suptitle("issue 14's runs: PublicTest (the selection split) per epoch; dashed: warm restarts")
    print(f"wrote {save_figure(fig, args.out, dpi=100)}")


if __name__ == "__main__":
    main()
