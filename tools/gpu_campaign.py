"""The accuracy campaign in one call on a GPU: ensemble members trained one after another inside a
wall-clock budget, scored on PublicTest, and a default-size student distilled from their ensemble.

    # here, once: Training + PublicTest as a compressed uint8 array small enough to travel
    make gpu-pack        # = tools/gpu_campaign.py pack ../shared/data/fer2013.csv.gz carry/fer2013.npz.xz
    # on the GPU machine, from the repository root, with carry/ carried:
    make gpu-train       # = PYTHONPATH=src python3 tools/gpu_campaign.py train carry/fer2013.npz.xz --out $OUT
    # back here, with the returned files: PrivateTest, scored once
    .venv/bin/python tools/gpu_campaign.py report FILES_AT --data ../shared/data/fer2013.csv.gz
    # the CPU dry run that keeps this script from rotting (tests/test_gpu_campaign.py):
    python tools/gpu_campaign.py train DATA --out DIR --device cpu --limit 64 --max-epochs 1

Honest protocol by construction: PrivateTest never leaves this machine. Members and student train
on Training, every checkpoint is chosen on PublicTest, and `report` scores PrivateTest here (no TTA,
flip, ten-crop; members, their ensemble, the student). Each run gets an equal share of the budget:
its epoch count is set before it starts from a timed burst of training steps, so that its cosine
schedule runs to the end. The pack stores each image as residuals of the median (LOCO-I) predictor,
xz-compressed: 11% smaller than xz on the raw pixels. Returned in --out (the device tool brings back
at most 8 files of at most 16 MiB, 64 MiB in all; the plan is checked against that before
training): summary.json, metrics.csv (every epoch of every run), probs.npz (PublicTest
probabilities per member and TTA and of their ensemble, the ensemble's Training probabilities), student.pt and every
member's weights (float16; split into `NAME.pt.00`, `.01` when over 16 MiB).
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

from ferkit.core.checkpoint import save_half
from ferkit.core.device import setup_device
from ferkit.core.predict import TTA_MODES, ensemble_proba, predict_proba
from ferkit.data.dataset import FER2013_ROLES, FERDataset, Split, load_dataset
from ferkit.data.labels import FER2013_CLASSES
from ferkit.models import count_parameters, create_model
from ferkit.training import TrainConfig, Trainer, model_from_checkpoint

CARRIED_SPLITS = ("Training", "PublicTest")  # PrivateTest stays here: it is scored by `report` only
XZ_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]
MAX_FILE_BYTES = 16 * 2**20  # what the device tool returns: 8 files, each up to 16 MiB, 64 MiB in all
MAX_FILES, MAX_TOTAL_BYTES = 8, 64 * 2**20
FIXED_FILES = ("summary.json", "metrics.csv", "probs.npz")


# ----- data ------------------------------------------------------------------------------------
def _med_prediction(left: np.ndarray, up: np.ndarray, upleft: np.ndarray) -> np.ndarray:
    """LOCO-I's median edge detector: min or max of left and up at an edge, else the plane through them."""
    lo, hi = np.minimum(left, up), np.maximum(left, up)
    return np.where(upleft >= hi, lo, np.where(upleft <= lo, hi, left + up - upleft))


def encode_residuals(images: np.ndarray) -> np.ndarray:
    """(N, H, W) uint8 -> residuals against the median predictor, mod 256 (uint8, same shape)."""
    a = images.astype(np.int16)
    pred = np.zeros_like(a)
    pred[:, 0, 1:] = a[:, 0, :-1]
    pred[:, 1:, 0] = a[:, :-1, 0]
    pred[:, 1:, 1:] = _med_prediction(a[:, 1:, :-1], a[:, :-1, 1:], a[:, :-1, :-1])
    return ((a - pred) % 256).astype(np.uint8)


def decode_residuals(residuals: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_residuals`: pixel by pixel, every image at once."""
    r = residuals.astype(np.int16)
    out = np.zeros_like(r)
    _, h, w = r.shape
    for i in range(h):
        for j in range(w):
            if i == 0:
                pred = out[:, 0, j - 1] if j else 0
            elif j == 0:
                pred = out[:, i - 1, 0]
            else:
                pred = _med_prediction(out[:, i, j - 1], out[:, i - 1, j], out[:, i - 1, j - 1])
            out[:, i, j] = (r[:, i, j] + pred) % 256
    return out.astype(np.uint8)


def pack(csv_path: str, out: str, splits: tuple[str, ...] = CARRIED_SPLITS) -> Path:
    """``splits`` of FER2013 as uint8 arrays (residual-coded images, labels, split index, source rows), xz-compressed."""
    ds = load_dataset(csv_path, progress=True)
    parts = [ds.split(name) for name in splits]
    buf = io.BytesIO()
    np.savez(buf, residuals=encode_residuals(np.concatenate([s.images for s in parts])),
             labels=np.concatenate([s.labels for s in parts]).astype(np.uint8),
             usage=np.concatenate([np.full(len(s), i, np.uint8) for i, s in enumerate(parts)]),
             rows=np.concatenate([s.ids for s in parts]).astype(np.int32), splits=np.array(splits))
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(lzma.compress(buf.getvalue(), format=lzma.FORMAT_XZ, filters=XZ_FILTERS))
    return path


def load_packed(path: str | Path) -> FERDataset:
    """The data set in :func:`pack`'s file: its splits, with FER2013's train/val roles."""
    with np.load(io.BytesIO(lzma.decompress(Path(path).read_bytes())), allow_pickle=False) as z:
        images, labels, usage, rows = decode_residuals(z["residuals"]), z["labels"].astype(np.int64), z["usage"], z["rows"]
        names = [str(s) for s in z["splits"]]
    splits = {name: Split(name, images[usage == i], labels[usage == i], rows[usage == i]) for i, name in enumerate(names)}
    roles = {role: name for role, name in FER2013_ROLES.items() if name in splits}
    return FERDataset(FER2013_CLASSES, splits, roles, str(path))


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


def returned_files(members: list[Member], student: str | None) -> list[tuple[str, int]]:
    """(name, approximate bytes) of every file ``train`` writes to --out, weights as float16."""
    def parts(name: str, model: str) -> list[tuple[str, int]]:
        size = count_parameters(create_model(model)) * 2 + 64 * 1024
        n = math.ceil(size / MAX_FILE_BYTES)
        return [(f"{name}.pt", size)] if n == 1 else [(f"{name}.pt.{i:02d}", math.ceil(size / n)) for i in range(n)]

    files = [(name, 1 << 20) for name in FIXED_FILES]
    for m in members:
        files += parts(m.name, m.model)
    return files + (parts("student", student) if student else [])


def check_plan(members: list[Member], student: str | None) -> None:
    files = returned_files(members, student)
    total = sum(size for _, size in files)
    if len(files) > MAX_FILES or total > MAX_TOTAL_BYTES:
        raise SystemExit(f"this plan returns {len(files)} files, {total / 2**20:.0f} MiB; the device tool brings back "
                         f"{MAX_FILES} files, {MAX_TOTAL_BYTES // 2**20} MiB: fewer or smaller members")


def images_per_second(cfg: TrainConfig, data: FERDataset, steps: int = 12) -> float:
    """Training images/s of ``cfg``'s model on this device: a burst of real training steps after a warm-up."""
    probe = Trainer(TrainConfig.from_dict({**cfg.to_dict(), "name": "speed-probe", "epochs": 1}), dataset=data,
                    run_dir=Path(cfg.project) / "speed-probe", progress=False)
    n = min(len(probe.train_split), cfg.batch_size * steps)
    probe.train_epoch(probe.train_split.subset(np.arange(min(n, cfg.batch_size * 3))))
    return probe.train_epoch(probe.train_split.subset(np.arange(n)))["images_per_s"]


def epochs_for(seconds: float, ips: float, n_train: int, n_val: int, max_epochs: int) -> int:
    """Whole epochs that fit in ``seconds`` (validation counted at a third of a training image's cost)."""
    per_epoch = (n_train + n_val / 3) / ips
    return int(max(1, min(max_epochs, math.floor(seconds / per_epoch))))


# ----- train and score -------------------------------------------------------------------------
def split_probs(model: torch.nn.Module, ckpt: dict, images: np.ndarray, device: torch.device) -> dict[str, np.ndarray]:
    """Probabilities of ``images`` for every TTA mode."""
    return {tta: predict_proba(model, images, ckpt["mean"], ckpt["std"], tta=tta, device=device) for tta in TTA_MODES}


def accuracies(probs: dict[str, np.ndarray], labels: np.ndarray) -> dict[str, float]:
    return {tta: round(float((p.argmax(1) == labels).mean()) * 100, 2) for tta, p in probs.items()}


def write_weights(run_dir: Path, out: Path, name: str, work: Path) -> list[str]:
    """The run's best.pt as float16 in ``out``, split into equal parts when over the per-file limit."""
    data = save_half(run_dir / "best.pt", work / f"{name}.pt").read_bytes()
    n = math.ceil(len(data) / MAX_FILE_BYTES)
    if n == 1:
        (out / f"{name}.pt").write_bytes(data)
        return [f"{name}.pt"]
    size = math.ceil(len(data) / n)
    names = [f"{name}.pt.{i:02d}" for i in range(n)]
    for i, part in enumerate(names):
        (out / part).write_bytes(data[i * size:(i + 1) * size])
    return names


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


def campaign(args: argparse.Namespace) -> dict:
    members = [Member.parse(m) for m in args.members.split(",")]
    student = None if args.student == "none" else args.student
    check_plan(members, student)
    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:6.0f} s] {msg}", flush=True)

    device = setup_device(args.device, args.threads)
    data = load_packed(args.data) if args.data.endswith(".xz") else load_dataset(args.data)
    if args.limit:
        data = data.subsample(args.limit, seed=0)
    train_split, val = data.split("train"), data.split("val")
    log(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), torch "
        f"{torch.__version__}; {len(train_split)} train / {len(val)} PublicTest images")
    amp = device.type == "cuda" and not args.no_amp
    lr = args.lr if args.lr is not None else 0.05 * args.batch_size / 64  # the CPU recipe's rate, scaled linearly

    def config(model: str, seed: int, name: str, epochs: int, **extra) -> TrainConfig:
        return TrainConfig(model=model, data=str(args.data), name=name, project=str(work), epochs=epochs,
                           batch_size=args.batch_size, lr=lr, warmup_epochs=min(args.warmup_epochs, epochs),
                           label_smoothing=0.1, mixup=args.mixup, seed=seed, device=str(device),
                           threads=args.threads, amp=amp, augment={"crop": args.crop}, **extra)

    def train_run(cfg: TrainConfig) -> tuple[Path, dict, dict]:
        start = time.perf_counter()
        result = Trainer(cfg, dataset=data, run_dir=work / cfg.name, progress=False).fit()
        model, ckpt = model_from_checkpoint(result.run_dir / "best.pt")
        probs = split_probs(model.to(device), ckpt, val.images, device)
        row = {"name": cfg.name, "model": cfg.model, "seed": cfg.seed, "epochs": cfg.epochs,
               "best_epoch": result.best_epoch, "train_s": round(time.perf_counter() - start, 1),
               "PublicTest": accuracies(probs, val.labels), "files": write_weights(result.run_dir, out, cfg.name, work)}
        log(json.dumps(row))
        return result.run_dir, row, probs

    runs = members + ([Member(student, 0)] if student else [])
    speed = {m: images_per_second(config(m, 0, "probe", 1), data) for m in sorted({r.model for r in runs})}
    log("training images/s: " + ", ".join(f"{m} {v:.0f}" for m, v in speed.items()))
    share = max(0.0, args.budget_min * 60 - (time.perf_counter() - t0)) / len(runs)
    summary: dict = {"device": str(device), "amp_bf16": amp, "batch_size": args.batch_size, "lr": lr,
                     "crop": args.crop, "mixup": args.mixup, "budget_min": args.budget_min,
                     "images_per_s": {m: round(v, 1) for m, v in speed.items()}, "members": [], "student": None}
    run_dirs, arrays = [], {}
    for m in members:
        run_dir, row, probs = train_run(config(m.model, m.seed, m.name,
                                               epochs_for(share, speed[m.model], len(train_split), len(val),
                                                          args.max_epochs)))
        run_dirs.append(run_dir)
        summary["members"].append(row)
        arrays |= {f"{m.name}/PublicTest/{tta}": p for tta, p in probs.items()}
    ensemble = {tta: np.mean([arrays[f"{m.name}/PublicTest/{tta}"] for m in members], axis=0) for tta in TTA_MODES}
    summary["ensemble"] = {"members": [m.name for m in members], "PublicTest": accuracies(ensemble, val.labels)}
    arrays |= {f"ensemble/PublicTest/{tta}": p for tta, p in ensemble.items()}
    log(f"ensemble: {json.dumps(summary['ensemble'])}")
    teachers = [model_from_checkpoint(d / "best.pt") for d in run_dirs]
    arrays["ensemble/Training/flip"] = ensemble_proba([(mdl.to(device), ck) for mdl, ck in teachers],
                                                      train_split.images, tta="flip", device=device)
    if student:
        cfg = config(student, 0, "student", epochs_for(share, speed[student], len(train_split), len(val),
                                                        args.max_epochs),
                     teacher=[str(d / "best.pt") for d in run_dirs], distill=args.distill)
        run_dir, summary["student"], _ = train_run(cfg)
        run_dirs.append(run_dir)
    arrays = {k: v.astype(np.float16) for k, v in arrays.items()}
    arrays |= {"labels/PublicTest": val.labels.astype(np.uint8), "ids/Training": train_split.ids}
    np.savez_compressed(out / "probs.npz", **arrays)
    merged_metrics(run_dirs, out / "metrics.csv")
    summary["wall_s"] = round(time.perf_counter() - t0, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    log(f"done; wrote {', '.join(sorted(p.name for p in out.iterdir()))}")
    return summary


# ----- PrivateTest, here -----------------------------------------------------------------------
def report(args: argparse.Namespace) -> dict:
    """Join the returned weights, score PrivateTest (members, their ensemble, the student) and write report.json/.md."""
    src, dest = Path(args.returned), Path(args.dest)
    dest.mkdir(parents=True, exist_ok=True)
    summary = json.loads((src / "summary.json").read_text())
    test = load_dataset(args.data).split("test")
    device = setup_device("cpu", args.threads)
    rows, member_probs = [], []
    for run in summary["members"] + ([summary["student"]] if summary["student"] else []):
        weights = dest / f"{run['name']}.pt"
        weights.write_bytes(b"".join((src / part).read_bytes() for part in run["files"]))
        model, ckpt = model_from_checkpoint(weights)
        probs = split_probs(model, ckpt, test.images, device)
        if run is not summary["student"]:
            member_probs.append(probs)
        rows.append({"name": run["name"], "model": run["model"], "epochs": run["epochs"],
                     "best_epoch": run["best_epoch"], "PublicTest": run["PublicTest"]["none"],
                     "PrivateTest": accuracies(probs, test.labels)})
    ensemble = {tta: np.mean([p[tta] for p in member_probs], axis=0) for tta in TTA_MODES}
    rows.append({"name": "ensemble of " + " + ".join(summary["ensemble"]["members"]), "model": "-", "epochs": "-",
                 "best_epoch": "-", "PublicTest": summary["ensemble"]["PublicTest"]["none"],
                 "PrivateTest": accuracies(ensemble, test.labels)})
    lines = ["| run | model | epochs (best) | PublicTest | PrivateTest | flip | ten-crop |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['model']} | {r['epochs']} ({r['best_epoch']}) | {r['PublicTest']:.2f}% | "
              f"{r['PrivateTest']['none']:.2f}% | {r['PrivateTest']['flip']:.2f}% | {r['PrivateTest']['tencrop']:.2f}% |"
              for r in rows]
    (dest / "report.md").write_text("\n".join(lines) + "\n")
    (dest / "report.json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=2))
    print("\n".join(lines))
    return {"rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="FER2013 CSV -> Training + PublicTest as a residual-coded, xz-compressed .npz.xz")
    p.add_argument("csv")
    p.add_argument("out")
    p = sub.add_parser("train", help="train the members and the distilled student inside --budget-min")
    p.add_argument("data", help="pack's .npz.xz (or a FER2013 CSV)")
    p.add_argument("--out", required=True, help="folder for the returned files ($OUT on the GPU machine)")
    p.add_argument("--work", default="runs/gpu-campaign", help="folder for the full run folders (not returned)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    p.add_argument("--members", default="resnet_m:0,resnet_m:1", help="MODEL:SEED,... trained in turn")
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
    p = sub.add_parser("report", help="score PrivateTest here with the files `train` returned")
    p.add_argument("returned", help="the folder of returned files")
    p.add_argument("--data", required=True, help="the FER2013 CSV (its PrivateTest split is scored)")
    p.add_argument("--dest", default="runs/gpu-report", help="joined weights, report.md and report.json")
    p.add_argument("--threads", type=int)
    args = ap.parse_args()
    {"pack": lambda a: print(pack(a.csv, a.out)), "train": campaign, "report": report}[args.command](args)


if __name__ == "__main__":
    main()
