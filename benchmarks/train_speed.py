"""CPU training speed through the real training loop, against the CPU's arithmetic peak.

    .venv/bin/python benchmarks/train_speed.py [--models resnet_s resnet_m] [--crops 0 40] [--batch-sizes 64 128]
        [--precisions fp32 bf16]

Times ``Trainer.train_epoch`` (augmentation, forward, backward, SGD step, channels_last) on synthetic
48x48 faces (speed does not depend on the pixels) for every model x batch size x crop x precision (bf16:
``ferkit train --amp``, bf16 autocast, on CPUs with bf16 instructions), after one warm-up epoch each. The
variants are measured in alternating rounds (every variant once per round,
the best round kept: a shared host's slow spells only ever slow a round down). Achieved GFLOP/s
counts a training step as 3x the forward MACs x 2 FLOPs (forward, input and weight gradients);
the peak is cores x clock x fp32 FLOPs a cycle (32 for two 256-bit FMA units, 16 on first-generation
EPYC/Ryzen, whose AVX2 runs on 128-bit units).
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path
from tempfile import TemporaryDirectory

import torch
from hardware import cpu_info, fp32_flops_per_cycle

from ferkit.data.synthetic import synthetic_dataset
from ferkit.models import count_macs, count_parameters, create_model
from ferkit.training import TrainConfig, Trainer

FER2013_TRAIN = 28_709


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=1280, help="images in each timed epoch")
    ap.add_argument("--models", nargs="*", default=["resnet_s", "resnet_m"])
    ap.add_argument("--crops", nargs="*", type=int, default=[0, 40], help="0 = whole 48x48 faces")
    ap.add_argument("--batch-sizes", nargs="*", type=int, default=[64, 128])
    ap.add_argument("--precisions", nargs="*", default=["fp32"], choices=["fp32", "bf16"],
                    help="bf16: the training step under bf16 autocast (--amp)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/train_speed.md")
    args = ap.parse_args()
    data = synthetic_dataset(per_class=(args.images // 7 + 1, 2, 2), seed=0)
    variants = list(itertools.product(args.models, args.batch_sizes, args.crops, args.precisions))
    times: dict[tuple, list[float]] = {v: [] for v in variants}
    with TemporaryDirectory() as tmp:
        trainers = {}
        for v in variants:
            model, batch, crop, precision = v
            t = Trainer(TrainConfig(model=model, data="synthetic", project=tmp, name="-".join(map(str, v)),
                                    batch_size=batch, augment={"crop": crop}, amp=precision == "bf16"), dataset=data,
                        progress=False)
            t.train_epoch(t.train_split.subset(torch.arange(min(3 * batch, len(t.train_split))).numpy()))  # warm-up
            trainers[v] = t
        for r in range(args.rounds):
            for v in variants:
                times[v].append(trainers[v].train_epoch(trainers[v].train_split)["images_per_s"])
            print(f"round {r + 1}: " + ", ".join(f"{'/'.join(map(str, v))} {times[v][-1]:.0f}" for v in variants))
    name, ghz = cpu_info()
    threads = torch.get_num_threads()
    flops_per_cycle, units = fp32_flops_per_cycle()
    peak = threads * ghz * flops_per_cycle
    lines = [
        f"# CPU training speed ({name}, {threads} threads at {ghz:.2f} GHz, torch {torch.__version__})",
        "",
        f"Measured with `{_command(args)}`: the real training loop (augmentation, forward, backward, "
        f"SGD-Nesterov step, channels_last) on synthetic faces, {args.rounds} alternating rounds, each variant's best round. "
        f"GFLOP/s = images/s x 3 x forward MACs x 2; peak = {threads} cores x {ghz:.2f} GHz x {flops_per_cycle} "
        f"FLOPs a cycle ({units}) = {peak:.0f} GFLOP/s at the nominal clock /proc/cpuinfo gives (boost clocks raise the real peak, and the shared host is sometimes several times slower: compare rows of one run rather than reading the percentages as exact). Minutes per epoch = 28,709 FER2013 Training "
        "images / images per second (validation not counted). `crop` 40: training on random 40x40 windows "
        "(`ferkit train --crop 40`); validation and inference still see the whole 48x48 face.",
        "",
        "| model | params | batch | crop | precision | MACs a training image | train images/s | GFLOP/s | % of fp32 peak | min per FER2013 epoch |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for v in variants:
        model, batch, crop, precision = v
        net = create_model(model)
        macs = count_macs(net, input_size=crop or 48)
        ips = max(times[v])
        gflops = ips * 3 * macs * 2 / 1e9
        lines.append(f"| {model} | {count_parameters(net) / 1e6:.2f}M | {batch} | {crop or 48} | {precision} | {macs / 1e6:.1f}M | "
                     f"{ips:.0f} | {gflops:.1f} | {gflops / peak:.0%} | {FER2013_TRAIN / ips / 60:.1f} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


def _command(args: argparse.Namespace) -> str:
    return (".venv/bin/python benchmarks/train_speed.py --models " + " ".join(args.models)
            + " --crops " + " ".join(map(str, args.crops)) + " --batch-sizes " + " ".join(map(str, args.batch_sizes))
            + " --precisions " + " ".join(args.precisions) + f" --rounds {args.rounds} --images {args.images}")


if __name__ == "__main__":
    main()
