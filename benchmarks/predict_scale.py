"""``ferkit predict`` over many files: faces/s and images/s of the local engine and of Ray Data.

    .venv/bin/python benchmarks/predict_scale.py [--images 1000] [--workers 2] [--out benchmarks/predict_scale.md]

Writes ``--images`` copies of the bundled photo (one face; 256x256, 512x512 and 1024x1024 in turn,
JPEG quality 90) to a temporary folder, then runs ``predict_files`` on it (CSV and JSON Lines, no
annotated JPEGs) three ways, one after the other: the local engine with ONNX Runtime on every core,
the local engine with one thread (one worker's share), and ``engine="ray"`` with ``--workers``
workers of one thread each on a Ray instance started here. "Steady" rates are those of the second
half of the images, leaving out model loading and Ray's worker start-up. Needs ``ferkit[ray]``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
import time
from pathlib import Path

from PIL import Image

from ferkit.apps import predict as P
from ferkit.apps import predict_outputs as O
from ferkit.apps import predict_ray as R
from ferkit.demo import demo_photo
from ferkit.inference import EmotionClassifier

SIZES = (256, 512, 1024)


def make_images(folder: Path, n: int) -> None:
    photo = Image.open(demo_photo()).convert("RGB")
    for i in range(n):
        size = SIZES[i % len(SIZES)]
        photo.resize((size, size)).save(folder / f"img{i:06d}.jpg", quality=90)


def timed_run(folder: Path, out: Path, **kw) -> dict:
    """Wall time, time to the first written batch, and counts of one ``predict_files`` run."""
    writes: list[tuple[float, float, int]] = []  # wall clock, this process's CPU time, records
    real_write = O.Outputs.write

    def write(self, records):
        real_write(self, records)
        writes.append((time.perf_counter(), time.process_time(), len(records)))

    O.Outputs.write = write
    try:
        start = time.perf_counter()
        s = P.predict_files([folder], out=out, save_images=False, progress=False, **kw)
        wall = time.perf_counter() - start
    finally:
        O.Outputs.write = real_write
    done = list(itertools.accumulate(n for _, _, n in writes))
    half = next(i for i, n in enumerate(done) if n >= done[-1] / 2)  # the second half: workers long up
    n = done[-1] - done[half]
    rate = n / (writes[-1][0] - writes[half][0])
    return {"images": s.images, "faces": s.faces, "wall": wall, "first": writes[0][0] - start, "steady": rate,
            "steady_faces": rate * s.faces / s.images, "cpu_us": 1e6 * (writes[-1][1] - writes[half][1]) / n}


def driver_write_us(records_file: Path, out: Path, classes: tuple[str, ...], repeat: int = 20) -> float:
    """Microseconds the driver spends per record appending to CSV, JSON Lines and Parquet (the same
    records again and again, in batches of 16): the bound on one driver's rate."""
    records = [json.loads(line) for line in records_file.read_text().splitlines()] * repeat
    out.mkdir()
    outputs = O.Outputs(out, {"csv", "jsonl", "parquet"}, classes, overwrite=False, settings={})
    start = time.perf_counter()
    for i in range(0, len(records), 16):
        outputs.write(records[i:i + 16])
    outputs.close()
    return 1e6 * (time.perf_counter() - start) / len(records)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2, help="Ray Data workers")
    ap.add_argument("--out", default="benchmarks/predict_scale.md")
    args = ap.parse_args()
    import ray

    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        make_images(folder, args.images)
        rows = [("local, ONNX Runtime on every core", timed_run(folder, Path(tmp) / "local")),
                ("local, 1 thread", timed_run(folder, Path(tmp) / "local1", threads=1))]
        classes = EmotionClassifier().classes
        write_us = driver_write_us(Path(tmp) / "local" / "predictions.jsonl", Path(tmp) / "writes", classes)
        t = time.perf_counter()
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR")
        ray_start = time.perf_counter() - t
        try:
            rows.append((f"Ray Data, {args.workers} workers x 1 thread",
                         timed_run(folder, Path(tmp) / "ray", engine="ray", workers=args.workers)))
        finally:
            ray.shutdown()
    table = ["| engine | images | faces | wall s | first batch written after s | images/s end to end | "
             "images/s steady | faces/s steady |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in rows:
        table.append(f"| {name} | {r['images']} | {r['faces']} | {r['wall']:.1f} | {r['first']:.1f} | "
                     f"{r['images'] / r['wall']:.1f} | {r['steady']:.1f} | {r['steady_faces']:.1f} |")
    one, local, both = rows[1][1]["steady"], rows[0][1]["steady"], rows[2][1]["steady"]
    driver_us = rows[2][1]["cpu_us"]  # the driver process's CPU time (all its threads) per image, second half
    startup = rows[2][1]["first"] - rows[0][1]["first"]
    print("\n".join(table) + f"\nray.init: {ray_start:.1f} s; driver writes: {write_us:.0f} us/record; "
          f"Ray driver CPU: {driver_us:.0f} us/image; load average before: {load:.2f}")
    cmd = "`.venv/bin/python benchmarks/predict_scale.py" + (f" --images {args.images}" if args.images != 1000 else "")
    cmd += (f" --workers {args.workers}" if args.workers != 2 else "") + "`"
    lines = [f"# `ferkit predict` at scale: local engine vs Ray Data ({os.cpu_count()} cores)", "",
             f"Measured with {cmd}: {args.images} copies of the bundled photo (one face each; 256, 512 and "
             "1024 px square in turn, JPEG), BlazeFace + the shipped model, CSV and JSON Lines written, no "
             "annotated JPEGs. One run of each, one after the other, on the same folder. \"Steady\" is the rate over "
             "the second half of the images (no model loading, no worker start-up). "
             f"Ray's own start (`ray.init`, a local instance) took {ray_start:.1f} s more, not in the wall times. "
             f"Load average before the runs: {load:.2f} (the machine is shared; a load near 0 means a quiet host).",
             "", *table, "",
             "## Scaling to N hosts", "",
             "Each image is independent, so the work is embarrassingly parallel: Ray Data hands each worker whole "
             "batches of 16 paths and gets back their rows; workers share nothing but the files. A worker costs a "
             f"one-off start, about {startup:.0f} s here (a Python process that imports ferkit, PyTorch included, "
             f"and builds its own BlazeFace and classifier sessions), paid again every {R.RAY_WINDOW * 16:,} images "
             f"(the engine's window), after which it runs at about the one-thread rate ({one:.0f} images/s here; the "
             f"{args.workers} workers together {both:.0f}, against {local:.0f} for one process on every core, "
             "which decodes and detects on one core at a time). On N hosts of C cores, expect about "
             f"N x C x {one:.0f} images/s less the start-up, as long as the driver keeps up: it alone walks the "
             "inputs, checks them against what is done, runs Ray Data's scheduling (a task per batch of 16) and "
             f"appends every row. Here it used {driver_us:.0f} us of CPU per image in the Ray run (second half), "
             f"which would bound one driver at about {round(1e6 / driver_us, -2):,.0f} images/s, some "
             f"{1e6 / driver_us / one:.0f} one-thread workers; writing the CSV, JSON Lines and Parquet rows is only "
             f"{write_us:.0f} us of it (about {round(1e6 / write_us, -3):,.0f} images/s): the rest is Ray Data's own "
             "work in the driver (its executor loop and a task per batch), part of which larger batches "
             "(`--batch-size 64`) spread over more images. Past "
             "that, split the inputs (folders or file lists) into runs with their own --out. Inputs and --out must "
             "be on storage every host sees under the same path: workers read the images and write the annotated "
             "JPEGs."]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
