"""CPU speed of the timm backbones, to choose which ferkit registers (benchmarks/transfer.md).

    OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python benchmarks/transfer_speed.py [--sizes 96 48] [--rounds 3]

For each model and input size, on one thread: images/s of a forward pass at batch 1 (eval mode, no
gradients, the median of 20 calls) and of a training step at batch 32 (forward, backward, SGD step,
channels_last; the median of 3 steps), each after a warm-up. Models are measured in alternating
rounds and the best round kept (a shared host's slow spells only slow a round down). Ratios are
against ferkit's shipped network (resnet_s at 48x48), measured in the same rounds.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ferkit.models import count_macs, count_parameters, create_model

MODELS = ["timm_mobilenetv3_small_100", "timm_mobilenetv3_large_100", "timm_efficientnet_b0", "timm_efficientnet_b2",
          "timm_resnet18", "timm_convnext_atto", "seed004_effnetb2"]
REFERENCE = ("resnet_s", 48)


def forward_speed(model: torch.nn.Module, size: int, reps: int = 20) -> float:
    model.eval()
    x = torch.randn(1, 1, size, size).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        model(x)
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t)
    return 1 / statistics.median(times)


def train_speed(model: torch.nn.Module, size: int, batch: int = 32, steps: int = 3) -> float:
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(batch, 1, size, size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 7, (batch,))
    times = []
    for i in range(steps + 1):
        t = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:  # the first step warms up
            times.append(time.perf_counter() - t)
    return batch / statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=MODELS)
    ap.add_argument("--sizes", nargs="*", type=int, default=[96, 48])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    variants = [REFERENCE] + [(m, s) for m in args.models for s in args.sizes]
    models = {v: create_model(v[0], 7, 1).to(memory_format=torch.channels_last) for v in variants}
    best: dict[tuple, list[float]] = {v: [0.0, 0.0] for v in variants}
    for r in range(args.rounds):
        for v in variants:
            f, t = forward_speed(models[v], v[1]), train_speed(models[v], v[1])
            best[v] = [max(best[v][0], f), max(best[v][1], t)]
            print(f"round {r + 1} {v[0]} {v[1]}: forward {f:.1f} img/s, train {t:.1f} img/s", flush=True)
    ref_f, ref_t = best[REFERENCE]
    print("\n| model | input | params (7 classes) | MACs | forward b1 img/s | train b32 img/s | forward vs resnet_s | "
          "train vs resnet_s |\n|---|---|---|---|---|---|---|---|")
    for v in variants:
        m = models[v]
        f, t = best[v]
        print(f"| {v[0]} | {v[1]}x{v[1]} | {count_parameters(m) / 1e6:.2f}M | {count_macs(m, v[1]) / 1e6:.0f}M | "
              f"{f:.1f} | {t:.1f} | {f / ref_f:.2f} | {t / ref_t:.2f} |")


if __name__ == "__main__":
    main()
