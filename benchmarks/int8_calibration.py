"""Static int8 calibration methods compared: each checkpoint exported with each method, scored on the validation split.

    .venv/bin/python benchmarks/int8_calibration.py RUN [RUN ...] --data ../shared/data/fer2013.csv.gz \
        [--methods minmax percentile] [--out benchmarks/int8_calibration.md]

For every run folder (its best.pt) and method, ``ferkit export --int8 --calibration METHOD`` (1000 Training faces,
temperature 1) and the file's PublicTest accuracy beside PyTorch's, the share of faces where both pick one class,
the mean |PyTorch - int8| probability and the calibration error. Only the validation split is read: the method
is a choice, made on PublicTest like any other.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from ferkit.core.runtime import CALIBRATION_METHODS, PERCENTILE
from ferkit.export import export


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="run folders or checkpoints")
    ap.add_argument("--data", required=True)
    ap.add_argument("--methods", nargs="+", choices=CALIBRATION_METHODS, default=list(CALIBRATION_METHODS))
    ap.add_argument("--out", default="benchmarks/int8_calibration.md")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in args.runs:
            for method in args.methods:
                r = export(run, int8=True, data=args.data, out=Path(tmp) / "m.int8.onnx", calibration_method=method)
                rows.append((Path(run).name, method, r))
                print(f"{Path(run).name} {method}: PyTorch {r.val_acc_torch:.4f}, int8 {r.val_acc_export:.4f}, "
                      f"agreement {r.val_agreement:.4f}, mean |diff| {r.val_mean_abs_diff:.4f}", flush=True)
    lines = ["# Static int8 calibration methods", "",
             "Measured with `.venv/bin/python benchmarks/int8_calibration.py " + " ".join(args.runs)
             + f" --data {args.data}`: each checkpoint exported with `ferkit export --int8 --calibration METHOD` "
             "(1000 Training faces, 7-bit weights, temperature 1) and scored on the validation split (PublicTest) "
             "with the labels it was trained on (for FER+ vote shares, the class with most votes). percentile = the "
             f"{PERCENTILE}th percentile of the activations' magnitudes. Agreement = faces on which the int8 file and "
             "PyTorch pick the same class.", "",
             "| checkpoint | calibration | PyTorch | int8 | points | agreement | mean abs prob diff | ECE int8 |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {name} | {m} | {100 * r.val_acc_torch:.2f} | {100 * r.val_acc_export:.2f} | "
              f"{100 * (r.val_acc_export - r.val_acc_torch):+.2f} | {100 * r.val_agreement:.2f} | "
              f"{r.val_mean_abs_diff:.4f} | {r.val_ece_export:.4f} |" for name, m, r in rows]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
