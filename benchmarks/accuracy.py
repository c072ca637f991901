"""FER2013 accuracy of trained runs under the honest protocol, as Markdown tables.

    .venv/bin/python benchmarks/accuracy.py runs/NAME [runs/NAME2 ...] --data ../shared/data/fer2013.csv.gz
    .venv/bin/python benchmarks/accuracy.py runs/A runs/B.../best.pt ... --ensemble --data ../shared/data/fer2013.csv.gz

For each run: its best.pt (chosen on PublicTest by `ferkit train`), scored on PublicTest and, once,
on PrivateTest without TTA, with flip TTA and with ten-crop TTA, and on the deduplicated PrivateTest
(rows whose image is in no other split). Each row goes at the end of its table in --out (default
benchmarks/accuracy.md); the `ferkit train` command of each run is rebuilt from its config.json and
its wall time is the sum of its epochs' training time (validation excluded). With --ensemble the runs
(run folders, or checkpoint files such as the shipped model) are scored together (probabilities averaged,
`ferkit evaluate A B ...`) as one row of the ensemble table. With --labels ferplus the runs (trained with
`--labels ferplus` or `ferplus-soft`) are scored on the FER+ majority labels, in their own table.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import torch
from hardware import cpu_label

from ferkit.data import load_dataset
from ferkit.evaluation import evaluate
from ferkit.models import count_macs, count_parameters, create_model
from ferkit.training import TrainConfig, load_checkpoint

HEADER = ["model", "params", "MACs", "epochs (best)", "train wall", "hardware", "PublicTest", "PrivateTest",
          "PrivateTest flip", "PrivateTest ten-crop", "PrivateTest dedup", "command"]
ENSEMBLE_HEADER = ["members (best.pt of each run)", "params", "MACs", "PublicTest", "PrivateTest", "PrivateTest flip",
                   "PrivateTest ten-crop", "PrivateTest dedup", "command"]
TITLE = ("# FER2013 accuracy (honest protocol)\n\nTrain on Training, choose the checkpoint on PublicTest, report "
         "PrivateTest. Rows written by `.venv/bin/python benchmarks/accuracy.py RUN --data ../shared/data/fer2013.csv.gz`.\n")
ENSEMBLE_TITLE = ("## Ensembles\n\nThe members' class probabilities averaged (`ferkit evaluate A B ...`), each member "
                  "chosen on PublicTest by its own run. Rows written by `.venv/bin/python benchmarks/accuracy.py RUN RUN ... "
                  "--ensemble --data ../shared/data/fer2013.csv.gz`.\n")
FERPLUS_HEADER = ["model (FER+ labels, 8 classes)", *HEADER[1:]]
FERPLUS_TITLE = ("## Trained on FER+ labels\n\nModels trained on the FER+ votes (`--labels ferplus-soft` or `ferplus`), "
                 "scored on the FER+ majority labels of the same FER2013 splits (faces with no majority left out). Rows "
                 "written by `.venv/bin/python benchmarks/accuracy.py RUN --labels ferplus --data ../shared/data/fer2013.csv.gz`.\n")
SPLITS = [("pub", "PublicTest", "none", False), ("priv", "PrivateTest", "none", False),
          ("flip", "PrivateTest", "flip", False), ("ten", "PrivateTest", "tencrop", False),
          ("dedup", "PrivateTest", "none", True)]


def add_row(path: Path, header: list[str], row: list[str], title: str) -> None:
    """Put ``row`` after the last row of the table headed ``header`` (a new section at the end if none)."""
    head = "| " + " | ".join(header) + " |"
    lines = path.read_text().splitlines() if path.exists() else []
    if head not in lines:
        lines += ([""] if lines else []) + title.splitlines() + ["", head, "|" + "---|" * len(header)]
    i = lines.index(head) + 2
    while i < len(lines) and lines[i].startswith("|"):
        i += 1
    lines.insert(i, "| " + " | ".join(row) + " |")
    path.write_text("\n".join(lines) + "\n")


def scores(checkpoints: list[Path], data, name: str) -> dict[str, float]:
    acc = {}
    for key, split, tta, dedup in SPLITS:
        res = evaluate(checkpoints, data=data, split=split, tta=tta, dedup=dedup, progress=False)
        acc[key] = res.metrics["accuracy"]
        print(f"{name} {split} tta={tta} dedup={dedup}: {acc[key]:.4f}")
    return acc


def percent(acc: dict[str, float]) -> list[str]:
    return [f"{100 * acc[k]:.2f}%" for k in ("pub", "priv", "flip", "ten", "dedup")]


def train_command(cfg: dict) -> str:
    """The `ferkit train` command that reproduces a run's config.json (non-default settings only, without the
    machine's own: project, device, threads)."""
    return " ".join(["ferkit train", *TrainConfig.from_dict(cfg).to_argv(exclude={"project", "device", "threads"})])


def ensemble_row(runs: list[Path], data, data_arg: str) -> list[str]:
    """The runs (run folders or checkpoint files) scored together, probabilities averaged."""
    paths = [r if r.suffix == ".pt" else r / "best.pt" for r in runs]
    names = [load_checkpoint(p)["model"] for p in paths]
    models = [create_model(n) for n in names]
    acc = scores(paths, data, "ensemble")
    command = (f"`ferkit evaluate {' '.join(map(str, paths))} --data {data_arg} "
               f"--split PrivateTest [--tta flip\\|tencrop] [--dedup]`")
    members = " + ".join(f"{r.stem if r.suffix == '.pt' else r.name} ({n})" for r, n in zip(runs, names))
    return [members, f"{sum(count_parameters(m) for m in models) / 1e6:.2f}M",
            f"{sum(count_macs(m) for m in models) / 1e6:.1f}M", *percent(acc), command]


def run_row(run: Path, data, hardware: str) -> list[str]:
    """One run's best.pt, with its size, epochs, training time and the command that made it."""
    ckpt = load_checkpoint(run / "best.pt")
    cfg = json.loads((run / "config.json").read_text())
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    wall_min = sum(float(r["epoch_s"]) for r in rows) / 60
    acc = scores([run / "best.pt"], data, run.name)
    model = create_model(ckpt["model"])
    return [ckpt["model"], f"{count_parameters(model) / 1e6:.2f}M", f"{count_macs(model) / 1e6:.1f}M",
            f"{len(rows)} ({ckpt['epoch']})", f"{wall_min:.0f} min", f"{hardware}, torch {torch.__version__}",
            *percent(acc), f"`{train_command(cfg)}`"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--data", required=True)
    ap.add_argument("--ensemble", action="store_true", help="score the runs together as one ensemble row")
    ap.add_argument("--labels", choices=("fer2013", "ferplus"), default="fer2013",
                    help="label set to score on (ferplus: FER+ majority labels, rows in their own table)")
    ap.add_argument("--hardware", default=cpu_label(), help="the machine, as the table names it (default: %(default)s)")
    ap.add_argument("--out", default="benchmarks/accuracy.md")
    args = ap.parse_args()
    data = load_dataset(args.data, labels=args.labels)
    out = Path(args.out)
    runs = list(map(Path, args.runs))
    if args.ensemble:
        add_row(out, ENSEMBLE_HEADER, ensemble_row(runs, data, args.data), ENSEMBLE_TITLE)
    else:
        header, title = (HEADER, TITLE) if args.labels == "fer2013" else (FERPLUS_HEADER, FERPLUS_TITLE)
        for run in runs:
            add_row(out, header, run_row(run, data, args.hardware), title)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
