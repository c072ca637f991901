"""Training speed with 1 process and with N data-parallel processes (torchrun, gloo on CPU / NCCL on CUDA).

    .venv/bin/python benchmarks/distributed_speed.py --data ../shared/data/fer2013.csv.gz [--model resnet_s]
        [--processes 1 2] [--rounds 2] [--limit 4096] [--epochs 2] [--device cpu] [--out benchmarks/distributed_speed.md]

Each configuration is a real `ferkit train` run (the same global batch of 64, default augmentation)
on the first ``--limit`` Training images; a figure is the images/s of a run's last epoch (the first
one warms up), from its metrics.csv. The configurations run in turn, ``--rounds`` times, the order
reversed every other round, so that a slow spell of a shared host hits both; the table gives every
run and the median. On CPU every process gets cores / processes threads.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch


def run(processes: int, args: argparse.Namespace, project: Path, name: str) -> float:
    train = ["-m", "ferkit", "train", "--model", args.model, "--data", args.data, "--limit", str(args.limit),
             "--epochs", str(args.epochs), "--batch-size", "64", "--device", args.device, "--quiet",
             "--project", str(project), "--name", name]
    if processes == 1:
        cmd = [sys.executable, *train]
    else:
        cmd = [str(Path(sys.executable).with_name("torchrun")), "--standalone", f"--nproc-per-node={processes}", *train]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(project / name / "metrics.csv") as f:
        return float(list(csv.DictReader(f))[-1]["images_per_s"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default="resnet_s")
    ap.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--limit", type=int, default=4096)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="benchmarks/distributed_speed.md")
    args = ap.parse_args()
    speeds: dict[int, list[float]] = {n: [] for n in args.processes}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for n in (args.processes if r % 2 == 0 else args.processes[::-1]):
                speeds[n].append(run(n, args, Path(tmp), f"p{n}-r{r}"))
                print(f"round {r + 1}, {n} process(es): {speeds[n][-1]:.0f} images/s")
    median = {n: float(np.median(v)) for n, v in speeds.items()}
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"{os.cpu_count()} CPU cores"
    base = median[args.processes[0]]
    lines = [f"# Data-parallel training speed ({where}, torch {torch.__version__})", "",
             f"Measured with `.venv/bin/python benchmarks/distributed_speed.py --data {args.data}"
             + ("" if args.device == "cpu" else f" --device {args.device}") + "`: "
             f"`{args.model}`, global batch 64, {args.limit} Training images, images/s of the last of "
             f"{args.epochs} epochs; N processes started by `torchrun --standalone --nproc-per-node N`; "
             f"{args.rounds} rounds, alternating the order.", "",
             "| processes | images/s, each run | median | vs 1 process |", "|---:|---|---:|---:|"]
    lines += [f"| {n} | {', '.join(f'{v:.0f}' for v in speeds[n])} | {median[n]:.0f} | {median[n] / base:.2f}x |"
              for n in args.processes]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
