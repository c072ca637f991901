"""PublicTest curves of issue 14's long runs (the campaign's attempts, the flagship, the distilled defaults), as a PNG.

    .venv/bin/python benchmarks/campaign_curve.py [--out benchmarks/campaign/curve.png]

Reads every ``benchmarks/campaign/*.csv`` (columns ``epoch`` and ``val_acc``: a run's metrics.csv, copied
into the repository at the end of each working stretch, since runs/ is lost when the machine is replaced); the
file name says the run and its network.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ferkit.evaluation.plots import read_metrics_csv
from ferkit.figures import plt, save_figure

HERE = Path(__file__).resolve().parent / "campaign"


def read_curve(path: Path) -> tuple[list[int], list[float]]:
    rows = [r for r in read_metrics_csv(path) if r.get("stage", "main") == "main"]
    return [int(r["epoch"]) for r in rows], [100 * float(r["val_acc"]) for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "curve.png")
    args = ap.parse_args()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for path in sorted(HERE.glob("*.csv")):
        epochs, acc = read_curve(path)
        ax.plot(epochs, acc, "o-", ms=3, label=f"{path.stem} (best {max(acc):.2f}% at epoch {epochs[acc.index(max(acc))]})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("PublicTest accuracy, EMA weights (%)")
    ax.set_title("issue 14's runs: PublicTest (selection split) per epoch")
    ax.grid(alpha=0.3)
    ax.legend()
    print(f"wrote {save_figure(fig, args.out, dpi=100)}")


if __name__ == "__main__":
    main()
