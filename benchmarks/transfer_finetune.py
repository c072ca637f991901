"""Fine-tuning the shipped model on a small image-folder data set against training the same network from scratch.

    OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python benchmarks/transfer_finetune.py ../shared/data/fer2013.csv.gz \
        [--per-class 100] [--val-per-class 50] [--epochs 5] [--out /tmp/ferkit-finetune]

Writes a folder data set from FER2013 (honest protocol): ``train/`` = ``--per-class`` random Training images
of each class (all of a class when it has fewer), ``val/`` = ``--val-per-class`` PublicTest images of each class
(fewer where the class has fewer), ``test/`` = all of PrivateTest; then runs ``ferkit train`` (resnet_s, AdamW
1e-3, one thread) from scratch and with ``--init`` on the shipped FER2013 model, and ``ferkit evaluate`` on test/
for each and for the shipped model as it is.
The shipped model was trained on all of Training, so the small set is not new to it: the rows measure the warm
start on this machine, not the gain a user's own data set would see.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from ferkit.data.dataset import load_dataset

SHIPPED = Path(__file__).resolve().parents[1] / "src" / "ferkit" / "weights" / "resnet_s_fer2013.pt"
COMMON = ["--model", "resnet_s", "--batch-size", "32", "--optimizer", "adamw", "--lr", "0.001", "--threads", "1"]
RUNS = {"from scratch": [], "--init shipped model": ["--init", str(SHIPPED)]}


def write_folder(csv: str, out: Path, per_class: int, val_per_class: int, seed: int = 0) -> dict[str, int]:
    data = load_dataset(csv)
    rng = np.random.default_rng(seed)
    counts = {}
    for role, folder, n in (("train", "train", per_class), ("val", "val", val_per_class), ("test", "test", None)):
        split = data.split(role)
        for label, name in enumerate(data.classes):
            idx = np.flatnonzero(split.labels == label)
            if n is not None:
                idx = rng.permutation(idx)[:n]
            target = out / folder / name.lower()
            target.mkdir(parents=True, exist_ok=True)
            for i in idx:
                Image.fromarray(split.images[i]).save(target / f"{split.ids[i]}.png")
            counts[folder] = counts.get(folder, 0) + len(idx)
    return counts


def ferkit(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ferkit", *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def accuracy(checkpoint: Path, data: Path, out: Path) -> float:
    ferkit("evaluate", str(checkpoint), "--data", str(data), "--split", "test", "--out", str(out))
    return json.loads((out / "metrics.json").read_text())["accuracy"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv")
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--val-per-class", type=int, default=50)
    ap.add_argument("--epochs", default="5")
    ap.add_argument("--out", type=Path, default=Path("/tmp/ferkit-finetune"))
    args = ap.parse_args()
    data = args.out / "faces"
    counts = write_folder(args.csv, data, args.per_class, args.val_per_class)
    print(f"folder data set {data}: {counts}", flush=True)
    rows = [("shipped model as it is (no training)", 0.0, accuracy(SHIPPED, data, args.out / "eval-shipped"))]
    print(rows[-1], flush=True)
    for i, (name, extra) in enumerate(RUNS.items()):
        argv = [*COMMON, "--epochs", args.epochs, "--data", str(data), "--project", str(args.out / "runs"),
                "--name", f"run{i}", *extra]
        seconds = ferkit("train", *argv)
        rows.append((name, seconds, accuracy(args.out / "runs" / f"run{i}" / "best.pt", data, args.out / f"eval{i}")))
        print(rows[-1], flush=True)
    print("\n| start | training wall time | PrivateTest accuracy |\n|---|---|---|")
    for name, seconds, acc in rows:
        print(f"| {name} | {seconds / 60:.1f} min | {acc:.2%} |")


if __name__ == "__main__":
    main()
