"""Training speed with 1 process and with N data-parallel processes (torchrun, gloo on CPU / NCCL on CUDA).

    .venv/bin/python benchmarks/distributed_speed.py --data ../shared/data/fer2013.csv.gz [--model resnet_s]
        [--processes 1 2] [--limit 4096] [--epochs 2] [--device cpu] [--out benchmarks/distributed_speed.md]

Each configuration is a real `ferkit train` run (the same global batch of 64, default augmentation)
on the first ``--limit`` Training images; the figure is the images/s of its last epoch (the first
one warms up), from the run's metrics.csv. On CPU every process gets cores / processes threads.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch


def run(processes: int, args: argparse.Namespace, project: Path) -> float:
    name = f"p{processes}"
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
    ap.add_argument("--limit", type=int, default=4096)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="benchmarks/distributed_speed.md")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        speeds = {n: run(n, args, Path(tmp)) for n in args.processes}
    for n, s in speeds.items():
        print(f"{n} process(es): {s:.0f} images/s")
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"{os.cpu_count()} CPU cores"
    base = speeds[args.processes[0]]
    lines = [f"# Data-parallel training speed ({where}, torch {torch.__version__})", "",
             f"Measured with `.venv/bin/python benchmarks/distributed_speed.py --data {args.data}"
             + ("" if args.device == "cpu" else f" --device {args.device}") + "`: "
             f"`{args.model}`, global batch 64, {args.limit} Training images, images/s of the last of "
             f"{args.epochs} epochs; N processes started by `torchrun --standalone --nproc-per-node N`.", "",
             "| processes | images/s | vs 1 process |", "|---:|---:|---:|"]
    lines += [f"| {n} | {s:.0f} | {s / base:.2f}x |" for n, s in speeds.items()]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
