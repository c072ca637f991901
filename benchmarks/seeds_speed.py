"""Training speed of each seed recipe's network on this CPU, and what its full recipe would take.

For each recipe: its model at its input size and channels, random faces, Adam, ``--steps`` training steps of the
recipe's batch (the first one not timed), one thread by default. Projected hours = the recipe's epochs x 28,709
FER2013 Training faces / measured images per second (early stopping can end a run sooner).

    OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python benchmarks/seeds_speed.py [--threads 1] [--steps 3]
"""

from __future__ import annotations

import argparse
import time

import torch

from ferkit.models import create_model, model_entry
from ferkit.training.recipes import RECIPES

TRAINING_FACES = 28_709


def images_per_second(name: str, size: int, channels: int, batch: int, steps: int) -> float:
    torch.manual_seed(0)
    model = create_model(name, in_chans=channels).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x, y = torch.randn(batch, channels, size, size), torch.randint(0, 7, (batch,))
    elapsed = 0.0
    for step in range(steps + 1):
        start = time.perf_counter()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        if step:  # the first step warms up allocators and kernels
            elapsed += time.perf_counter() - start
    return batch * steps / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--max-batch", type=int, default=32, help="time at most this many images a step (big models)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print("| recipe | model | input | images/s | epochs | projected full recipe |")
    print("|---|---|---|---:|---:|---:|")
    seen: dict[tuple, float] = {}
    for r in RECIPES.values():
        s = r.settings
        entry = model_entry(s["model"])
        size, channels = s.get("input_size") or entry.input_size, s.get("channels") or entry.channels
        batch = min(s["batch_size"], args.max_batch if "seed004" not in s["model"] else 2)
        key = (s["model"], size, channels)
        if key not in seen:
            seen[key] = images_per_second(s["model"], size, channels, batch, args.steps)
        ips = seen[key]
        hours = s["epochs"] * TRAINING_FACES / ips / 3600
        print(f"| {r.name} | {s['model']} | {channels}x{size}x{size} | {ips:.1f} | {s['epochs']} | {hours:.1f} h |",
              flush=True)


if __name__ == "__main__":
    main()
