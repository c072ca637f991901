"""FER2013 accuracy of trained runs under the honest protocol, as a Markdown table.

    .venv/bin/python benchmarks/accuracy.py runs/NAME [runs/NAME2 ...] --data ../shared/data/fer2013.csv.gz

For each run: its best.pt (chosen on PublicTest by `ferkit train`), scored on PublicTest and, once,
on PrivateTest without TTA, with flip TTA and with ten-crop TTA, and on the deduplicated PrivateTest
(rows whose image is in no other split). Rows are appended to --out (default benchmarks/accuracy.md);
the `ferkit train` command of each run is rebuilt from its config.json.
"""

from __future__ import annotations

import argparse
import csv
import json
from dataclasses import fields
from pathlib import Path

import torch

from ferkit.data import load_dataset
from ferkit.data.augment import AugmentConfig
from ferkit.evaluation import evaluate
from ferkit.models import count_macs, count_parameters, create_model
from ferkit.training import TrainConfig, load_checkpoint

HEADER = ["model", "params", "MACs", "epochs (best)", "train wall", "hardware", "PublicTest", "PrivateTest",
          "PrivateTest flip", "PrivateTest ten-crop", "PrivateTest dedup", "command"]


def train_command(cfg: dict) -> str:
    """The `ferkit train` command that reproduces a run's config.json (non-default options only)."""
    default = TrainConfig(model=cfg["model"], data=cfg["data"])
    parts = ["ferkit train", f"--model {cfg['model']}", f"--data {cfg['data']}"]
    skip = {"model", "data", "project", "augment", "device", "threads"}
    for f in fields(TrainConfig):
        if f.name in skip or f.name not in cfg or cfg[f.name] == getattr(default, f.name):
            continue
        flag = "--" + f.name.replace("_", "-")
        parts.append(flag if cfg[f.name] is True else f"{flag} {cfg[f.name]}")
    aug, base = AugmentConfig(**cfg.get("augment", {})), AugmentConfig()
    if aug == AugmentConfig.none():
        parts.append("--no-augment")
    else:
        parts += [f"--{k} {v}" for k, v in vars(aug).items() if v != getattr(base, k)]
    return " ".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--data", required=True)
    ap.add_argument("--hardware", default="2-core CPU (this machine)")
    ap.add_argument("--out", default="benchmarks/accuracy.md")
    args = ap.parse_args()
    data = load_dataset(args.data)
    out = Path(args.out)
    if not out.exists():
        out.write_text("# FER2013 accuracy (honest protocol)\n\nTrain on Training, choose the checkpoint on PublicTest, "
                       "report PrivateTest. No ensembles. Rows written by `.venv/bin/python benchmarks/accuracy.py RUN "
                       "--data ../shared/data/fer2013.csv.gz`.\n\n| " + " | ".join(HEADER) + " |\n|"
                       + "---|" * len(HEADER) + "\n")
    for run in map(Path, args.runs):
        ckpt = load_checkpoint(run / "best.pt")
        cfg = json.loads((run / "config.json").read_text())
        with open(run / "metrics.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        wall_min = sum(float(r["epoch_s"]) for r in rows) / 60
        acc = {}
        for key, split, tta, dedup in [("pub", "PublicTest", "none", False), ("priv", "PrivateTest", "none", False),
                                       ("flip", "PrivateTest", "flip", False), ("ten", "PrivateTest", "tencrop", False),
                                       ("dedup", "PrivateTest", "none", True)]:
            res = evaluate(run / "best.pt", data=data, split=split, tta=tta, dedup=dedup, progress=False)
            acc[key] = res.metrics["accuracy"]
            print(f"{run.name} {split} tta={tta} dedup={dedup}: {acc[key]:.4f}")
        model = create_model(ckpt["model"])
        line = [ckpt["model"], f"{count_parameters(model) / 1e6:.2f}M", f"{count_macs(model) / 1e6:.1f}M",
                f"{len(rows)} ({ckpt['epoch']})", f"{wall_min:.0f} min", f"{args.hardware}, torch {torch.__version__}",
                *(f"{100 * acc[k]:.2f}%" for k in ("pub", "priv", "flip", "ten", "dedup")), f"`{train_command(cfg)}`"]
        with open(out, "a") as f:
            f.write("| " + " | ".join(line) + " |\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
