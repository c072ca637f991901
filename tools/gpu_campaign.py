"""The accuracy campaign in one call on a GPU: ensemble members trained one after another inside a
wall-clock budget, their ensemble scored with TTA, and a default-size student distilled from it.

    # here, once: FER2013 as a compressed uint8 array (small enough to travel to the GPU machine)
    .venv/bin/python tools/gpu_campaign.py pack ../shared/data/fer2013.csv.gz carry/fer2013.npz.xz
    # on the GPU machine (`make gpu-train` prints the device command):
    PYTHONPATH=src python3 tools/gpu_campaign.py train carry/fer2013.npz.xz --out $OUT --budget-min 7
    # the CPU dry run that keeps this script from rotting (tests/test_gpu_campaign.py):
    python tools/gpu_campaign.py train DATA --out DIR --device cpu --limit 64 --max-epochs 1

Honest protocol: members and student train on Training, every checkpoint is chosen on PublicTest,
PrivateTest is only reported. Each member gets an equal share of the budget: its epoch count is
set before it starts from a timed burst of training steps, so the cosine schedule runs to its end.
Written to --out (at most 8 files, each under 16 MiB, as the device tool returns them):
summary.json (every figure), metrics.csv (every epoch of every run), probs.npz (PublicTest and
PrivateTest probabilities of every member, per TTA mode, and the ensemble's Training
probabilities), student.pt (float16), best_member.pt.00/.01 (the best member in float16, split in
two: `cat best_member.pt.0* > best_member.pt`) and log.txt.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import lzma
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ferkit.data.dataset import FER2013_ROLES, FERDataset, Split, load_dataset
from ferkit.data.labels import FER2013_CLASSES
from ferkit.core.predict import TTA_MODES, ensemble_proba, predict_proba
from ferkit.models import create_model
from ferkit.training import TrainConfig, Trainer, model_from_checkpoint
from ferkit.core.checkpoint import save_half
from ferkit.core.device import setup_device

USAGE_NAMES = tuple(FER2013_ROLES.values())  # Training, PublicTest, PrivateTest
XZ_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]
MAX_RETURN_BYTES = 16 * 2**20  # the device tool returns files up to 16 MiB


# ----- data ------------------------------------------------------------------------------------
def pack(csv_path: str, out: str) -> Path:
    """FER2013 as uint8 arrays (images, labels, usage, rows) in an xz-compressed .npz."""
    ds = load_dataset(csv_path, progress=True)
    parts = [ds.split(name) for name in USAGE_NAMES]
    buf = io.BytesIO()
    np.savez(buf, images=np.concatenate([s.images for s in parts]),
             labels=np.concatenate([s.labels for s in parts]).astype(np.uint8),
             usage=np.concatenate([np.full(len(s), i, np.uint8) for i, s in enumerate(parts)]),
             rows=np.concatenate([s.ids for s in parts]).astype(np.int32))
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(lzma.compress(buf.getvalue(), format=lzma.FORMAT_XZ, filters=XZ_FILTERS))
    return path


def load_packed(path: str | Path) -> FERDataset:
    """The FER2013 data set from :func:`pack`'s file (plain .npz accepted too)."""
    raw = Path(path).read_bytes()
    with np.load(io.BytesIO(lzma.decompress(raw) if str(path).endswith(".xz") else raw), allow_pickle=False) as z:
        images, labels, usage, rows = z["images"], z["labels"].astype(np.int64), z["usage"], z["rows"]
    splits = {name: Split(name, images[usage == i], labels[usage == i], rows[usage == i])
              for i, name in enumerate(USAGE_NAMES)}
    return FERDataset(FER2013_CLASSES, splits, dict(FER2013_ROLES), str(path))


# ----- plan ------------------------------------------------------------------------------------
@dataclass
class Member:
    model: str
    seed: int

    @classmethod
    def parse(cls, text: str) -> "Member":
        model, _, seed = text.partition(":")
        return cls(model, int(seed or 0))

    @property
    def name(self) -> str:
        return f"{self.model}-seed{self.seed}"


def images_per_second(cfg: TrainConfig, data: FERDataset, steps: int = 12) -> float:
    """Training images/s of ``cfg``'s model on this device: a burst of real training steps after a warm-up."""
    probe = Trainer(TrainConfig.from_dict({**cfg.to_dict(), "name": "speed-probe", "epochs": 1}), dataset=data,
                    run_dir=Path(cfg.project) / "speed-probe", progress=False)
    n = min(len(probe.train_split), cfg.batch_size * steps)
    warm = probe.train_split.subset(np.arange(min(n, cfg.batch_size * 3)))
    probe.train_epoch(warm)
    return probe.train_epoch(probe.train_split.subset(np.arange(n)))["images_per_s"]


def epochs_for(seconds: float, ips: float, n_train: int, n_val: int, max_epochs: int) -> int:
    """Whole epochs that fit in ``seconds`` (validation counted at a third of a training image's cost)."""
    per_epoch = (n_train + n_val / 3) / ips
    return int(max(1, min(max_epochs, math.floor(seconds / per_epoch))))


# ----- train and score -------------------------------------------------------------------------
def split_probs(model: torch.nn.Module, ckpt: dict, data: FERDataset, device: torch.device) -> dict[str, np.ndarray]:
    """PublicTest and PrivateTest probabilities for every TTA mode, keyed ``<split>/<tta>``."""
    return {f"{split}/{tta}": predict_proba(model, data.split(split).images, ckpt["mean"], ckpt["std"], tta=tta,
                                            device=device)
            for split in ("PublicTest", "PrivateTest") for tta in TTA_MODES}


def accuracies(probs: dict[str, np.ndarray], data: FERDataset) -> dict[str, float]:
    return {key: round(float((p.argmax(1) == data.split(key.split("/")[0]).labels).mean()) * 100, 2)
            for key, p in probs.items()}


def train_run(cfg: TrainConfig, data: FERDataset, log) -> tuple[Path, dict]:
    """Train one run; returns its folder and a summary row (epochs, time, accuracies)."""
    start = time.perf_counter()
    result = Trainer(cfg, dataset=data, run_dir=Path(cfg.project) / cfg.name, progress=False).fit()
    wall = time.perf_counter() - start
    model, ckpt = model_from_checkpoint(result.run_dir / "best.pt")
    device = torch.device(cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    probs = split_probs(model.to(device), ckpt, data, device)
    row = {"name": cfg.name, "model": cfg.model, "seed": cfg.seed, "epochs": cfg.epochs, "best_epoch": result.best_epoch,
           "train_s": round(wall, 1), "accuracy": accuracies(probs, data)}
    log(json.dumps(row))
    return result.run_dir, {"row": row, "probs": probs}


def merged_metrics(run_dirs: list[Path], out: Path) -> None:
    """Every run's metrics.csv in one file, with a ``run`` column."""
    rows = []
    for run in run_dirs:
        with open(run / "metrics.csv", newline="") as f:
            rows += [{"run": run.name, **r} for r in csv.DictReader(f)]
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def write_split(src: Path, out: Path, stem: str) -> list[Path]:
    """``src`` as one file, or as numbered parts when it exceeds the device tool's per-file limit."""
    data = src.read_bytes()
    if len(data) <= MAX_RETURN_BYTES:
        (out / stem).write_bytes(data)
        return [out / stem]
    half = math.ceil(len(data) / 2)
    parts = [out / f"{stem}.0{i}" for i in range(2)]
    for i, part in enumerate(parts):
        part.write_bytes(data[i * half:(i + 1) * half])
    return parts


def campaign(args: argparse.Namespace) -> dict:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    logfile = open(out / "log.txt", "a")

    def log(msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        logfile.write(line + "\n")
        logfile.flush()

    t0 = time.perf_counter()
    device = setup_device(args.device, args.threads)
    data = load_packed(args.data) if args.data.endswith((".npz", ".xz")) else load_dataset(args.data)
    if args.limit:
        data = data.subsample(args.limit, seed=0)
    n_train, n_val = len(data.split("train")), len(data.split("val"))
    log(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), torch "
        f"{torch.__version__}; {n_train} train / {n_val} val images; data ready in {time.perf_counter() - t0:.1f} s")
    amp = device.type == "cuda" and not args.no_amp
    lr = args.lr if args.lr is not None else 0.05 * args.batch_size / 64  # the CPU recipe's rate, scaled linearly

    def config(model: str, seed: int, name: str, epochs: int, **extra) -> TrainConfig:
        return TrainConfig(model=model, data=str(args.data), name=name, project=str(work), epochs=epochs,
                           batch_size=args.batch_size, lr=lr, warmup_epochs=args.warmup_epochs,
                           label_smoothing=0.1, mixup=args.mixup, seed=seed, device=str(device),
                           threads=args.threads, amp=amp, augment={"crop": args.crop}, **extra)

    members = [Member.parse(m) for m in args.members.split(",")]
    runs = members + ([Member(args.student, 0)] if args.student != "none" else [])
    speed = {m: images_per_second(config(m, 0, "probe", 1), data) for m in sorted({r.model for r in runs})}
    log("training images/s: " + ", ".join(f"{m} {v:.0f}" for m, v in speed.items()))
    spent = time.perf_counter() - t0
    share = max(0.0, args.budget_min * 60 - spent) / len(runs)
    summary: dict = {"device": str(device), "amp_bf16": amp, "batch_size": args.batch_size, "lr": lr,
                     "crop": args.crop, "mixup": args.mixup, "budget_min": args.budget_min,
                     "images_per_s": {m: round(v, 1) for m, v in speed.items()}, "members": [], "student": None}
    run_dirs, member_probs, member_dirs = [], [], []
    for m in members:
        epochs = epochs_for(share, speed[m.model], n_train, n_val, args.max_epochs)
        run_dir, res = train_run(config(m.model, m.seed, m.name, epochs), data, log)
        run_dirs.append(run_dir)
        member_dirs.append(run_dir)
        member_probs.append(res["probs"])
        summary["members"].append(res["row"])
    ens = {k: np.mean([p[k] for p in member_probs], axis=0) for k in member_probs[0]}
    summary["ensemble"] = {"members": [m.name for m in members], "accuracy": accuracies(ens, data)}
    log(f"ensemble: {json.dumps(summary['ensemble'])}")
    teachers = [model_from_checkpoint(d / "best.pt") for d in member_dirs]
    train_probs = ensemble_proba([(mdl.to(device), ck) for mdl, ck in teachers], data.split("train").images,
                                 tta="flip", device=device)
    if args.student != "none":
        epochs = epochs_for(share, speed[args.student], n_train, n_val, args.max_epochs)
        cfg = config(args.student, 0, f"{args.student}-distilled", epochs,
                     teacher=[str(d / "best.pt") for d in member_dirs], distill=args.distill)
        run_dir, res = train_run(cfg, data, log)
        run_dirs.append(run_dir)
        summary["student"] = res["row"]
        save_half(run_dir / "best.pt", out / "student.pt")
    best = max(range(len(members)), key=lambda i: summary["members"][i]["accuracy"]["PublicTest/none"])
    summary["best_member"] = summary["members"][best]["name"]
    half = save_half(member_dirs[best] / "best.pt", work / "best_member.pt")
    summary["best_member_files"] = [p.name for p in write_split(half, out, "best_member.pt")]
    arrays = {f"{m.name}/{k}": p.astype(np.float16) for m, probs in zip(members, member_probs) for k, p in probs.items()}
    arrays |= {f"labels/{s}": data.split(s).labels.astype(np.uint8) for s in ("PublicTest", "PrivateTest")}
    arrays["ensemble/Training/flip"] = train_probs.astype(np.float16)
    arrays["ids/Training"] = data.split("train").ids
    np.savez_compressed(out / "probs.npz", **arrays)
    merged_metrics(run_dirs, out / "metrics.csv")
    summary["wall_s"] = round(time.perf_counter() - t0, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    log(f"done in {summary['wall_s']:.0f} s; best member {summary['best_member']}")
    logfile.close()
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="FER2013 CSV -> xz-compressed uint8 .npz")
    p.add_argument("csv")
    p.add_argument("out")
    p = sub.add_parser("train", help="train the members and the distilled student inside --budget-min")
    p.add_argument("data", help="pack's .npz.xz (or a FER2013 CSV)")
    p.add_argument("--out", required=True, help="folder for the returned files ($OUT on the GPU machine)")
    p.add_argument("--work", default="runs/gpu-campaign", help="folder for the full run folders (not returned)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    p.add_argument("--members", default="resnet_m:0,resnet_m:1,resnet_m:2", help="MODEL:SEED,... trained in turn")
    p.add_argument("--student", default="resnet_s", help="distilled from the members' ensemble; 'none' to skip")
    p.add_argument("--distill", type=float, default=0.7, help="teachers' weight in the student's targets")
    p.add_argument("--budget-min", type=float, default=7.0, help="wall-clock minutes for everything")
    p.add_argument("--max-epochs", type=int, default=300, help="cap on any run's epochs")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, help="peak SGD rate (default: 0.05 x batch/64)")
    p.add_argument("--warmup-epochs", type=float, default=2.0)
    p.add_argument("--mixup", type=float, default=0.0, metavar="ALPHA")
    p.add_argument("--crop", type=int, default=0, help="train on random crops of this side (0 = off)")
    p.add_argument("--no-amp", action="store_true", help="fp32 on CUDA too")
    p.add_argument("--limit", type=int, help="at most N images per split (dry runs)")
    args = ap.parse_args()
    if args.command == "pack":
        print(pack(args.csv, args.out))
    else:
        campaign(args)


if __name__ == "__main__":
    main()
