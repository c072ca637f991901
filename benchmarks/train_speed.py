"""CPU training speed of every registered model, through the real training loop.

    .venv/bin/python benchmarks/train_speed.py [--images 1280] [--out benchmarks/train_speed.md]

Times ``Trainer.train_epoch`` (augmentation, forward, backward, SGD step; batch 64, channels_last)
on synthetic 48x48 faces (speed does not depend on the pixels) after one warm-up epoch, and
converts images/s into minutes per FER2013 epoch (28,709 Training images + PublicTest scoring).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import torch

from ferkit.data.synthetic import synthetic_dataset
from ferkit.models import count_macs, count_parameters, create_model, list_models
from ferkit.training import TrainConfig, Trainer

FER2013_TRAIN = 28_709


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=1280, help="images in the timed epoch")
    ap.add_argument("--models", nargs="*", default=list_models())
    ap.add_argument("--out", default="benchmarks/train_speed.md")
    args = ap.parse_args()
    per_class = args.images // 7 + 1
    data = synthetic_dataset(per_class=(per_class, 2, 2), seed=0)
    rows = []
    with TemporaryDirectory() as tmp:
        for name in args.models:
            t = Trainer(TrainConfig(model=name, data="synthetic", project=tmp, batch_size=64), dataset=data, progress=False)
            warm = t.train_split.subset(torch.arange(320).numpy())
            t.train_epoch(warm)
            start = time.perf_counter()
            stats = t.train_epoch(t.train_split)
            wall = time.perf_counter() - start
            ips = stats["images_per_s"]
            model = create_model(name)
            rows.append((name, count_parameters(model), count_macs(model), ips, FER2013_TRAIN / ips / 60, wall))
            print(f"{name}: {ips:.0f} images/s")
    lines = [
        f"# CPU training speed ({cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__})",
        "",
        "Measured with `.venv/bin/python benchmarks/train_speed.py` (batch 64, channels_last, full augmentation, "
        "SGD-Nesterov). Minutes per epoch = 28,709 FER2013 Training images / images per second.",
        "",
        "| model | params | MACs | train images/s | min per FER2013 epoch |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {n} | {p / 1e6:.2f}M | {m / 1e6:.1f}M | {ips:.0f} | {mins:.1f} |" for n, p, m, ips, mins, _ in rows]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
