"""Accuracy per CPU-second: train each candidate with one short recipe, score it on PublicTest.

    .venv/bin/python benchmarks/candidates.py --data ../shared/data/fer2013.csv.gz

Each model: the same 8,000 FER2013 Training images (seeded subset), 3 epochs, AdamW lr 2e-3 with a
one-cycle schedule, batch 64, default augmentation; the best epoch's accuracy on the whole
PublicTest split (3,589 images). PrivateTest is not looked at: this only chooses a model.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import torch

from ferkit.data import load_dataset
from ferkit.models import count_macs, count_parameters, create_model
from ferkit.training import train

CANDIDATES = ["resnet_s", "mobilenet_s", "webcam_cnn", "clemson_cnn2"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--models", nargs="*", default=CANDIDATES)
    ap.add_argument("--train-images", type=int, default=8000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/candidates.md")
    args = ap.parse_args()
    full = load_dataset(args.data)
    rng = np.random.default_rng(0)
    tr = full.split("train")
    data = full.__class__(full.classes, {**full.splits, tr.name: tr.subset(np.sort(rng.permutation(len(tr))[: args.train_images]))},
                          full.roles, full.source)
    rows = []
    with TemporaryDirectory() as tmp:
        for name in args.models:
            start = time.perf_counter()
            r = train(dataset=data, data=args.data, model=name, project=tmp, epochs=args.epochs, batch_size=64,
                      optimizer="adamw", lr=2e-3, schedule="onecycle", weight_decay=0.05, progress=False)
            wall = time.perf_counter() - start
            m = create_model(name)
            rows.append((name, count_parameters(m), count_macs(m), r.best_val_acc, wall))
            print(f"{name}: PublicTest {r.best_val_acc:.4f} in {wall:.0f} s")
    lines = [f"# Candidates: accuracy per CPU-second ({torch.get_num_threads()} threads)", "",
             f"Command: `.venv/bin/python benchmarks/candidates.py --data ../shared/data/fer2013.csv.gz`. "
             f"{args.train_images} Training images, {args.epochs} epochs, AdamW 2e-3 one-cycle; accuracy on all of "
             "PublicTest (selection only; PrivateTest untouched).", "",
             "| model | params | MACs | PublicTest acc | wall s | acc points per CPU-minute |", "|---|---:|---:|---:|---:|---:|"]
    for n, p, mac, acc, wall in sorted(rows, key=lambda r: -r[3]):
        lines.append(f"| {n} | {p / 1e6:.2f}M | {mac / 1e6:.1f}M | {acc:.4f} | {wall:.0f} | {100 * acc / (wall / 60):.1f} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
