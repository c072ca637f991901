"""``ferkit predict``: every face in every image -> CSV, JSON Lines and Parquet rows (and annotated
JPEGs), appended a batch at a time, so memory stays flat for any number of files.

Inputs stream: folders are walked lazily (sorted folder by folder), globs matched lazily, file lists
read line by line. ``predictions.jsonl`` gets one line per input (its faces, or why it could not be
read) and is the record a rerun resumes from: a rerun into the same folder skips every file it
names, cuts off a line that a crash left half-written, and brings ``predictions.csv`` and
``predictions.parquet/`` level with it, so nothing is lost and nothing is doubled. A bad file is
reported, recorded and skipped; the rest go on. ``engine="ray"`` runs the batches on Ray Data
workers, one model each (``pip install 'ferkit[ray]'``), and writes the same rows in the same order.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
from tqdm import tqdm

from ..inference.detect import BlazeFaceDetector
from ..inference.draw import annotate
from ..inference.images import IMAGE_SUFFIXES, ImageError, read_image
from ..inference.recognizer import Recognizer
from .predict_outputs import FORMATS, Outputs, annotated_name

ENGINES = ("local", "ray")

Batch = list[tuple[str, str | None]]  # (file, annotated JPEG name or None) for each input of a batch


@dataclass
class PredictSummary:
    out_dir: Path
    images: int = 0
    faces: int = 0
    failed: list[str] = field(default_factory=list)  # "path: reason" for each file that could not be read
    skipped: int = 0  # inputs already in predictions.jsonl (an earlier run) or given twice


# --- inputs ---------------------------------------------------------------------------------------

def _walk(folder: str, exclude: str | None) -> Iterator[Path]:
    """Image files under ``folder``, depth first, each folder's entries sorted by name (the order of
    ``sorted(rglob)``); the folder ``exclude`` (a real path) is not entered, symlinked folders neither."""
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    for e in entries:
        if e.is_dir(follow_symlinks=False):
            if os.path.realpath(e.path) != exclude:
                yield from _walk(e.path, exclude)
        elif os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES and e.is_file():
            yield Path(e.path)


def expand_inputs(inputs: Iterable[str | Path], exclude: str | Path | None = None) -> Iterator[Path]:
    """Files as given; folders walked lazily for image files (sorted per folder); glob patterns matched
    lazily (in the file system's order); a pattern matching nothing is yielded as is (reported missing).
    Nothing inside the folder ``exclude`` (the output folder) is yielded."""
    skip = os.path.realpath(exclude) if exclude is not None else None

    def outside(p: Path) -> bool:
        return skip is None or not os.path.realpath(p).startswith(skip + os.sep)

    for item in inputs:
        p = Path(item)
        if p.is_dir():
            if outside(p):
                yield from _walk(str(p), skip)
        elif not p.exists() and glob.has_magic(str(item)):
            matches = glob.iglob(str(item), recursive=True)
            first = next(matches, None)
            if first is None:
                yield p
                continue
            yield from (m for m in map(Path, itertools.chain([first], matches)) if m.is_file() and outside(m))
        elif outside(p):
            yield p


def read_file_list(source: str | Path) -> Iterator[str]:
    """Paths from a text file, one a line (``-``: standard input); blank lines and lines starting
    with ``#`` are skipped. Each path may also be a folder or a glob."""
    with contextlib.nullcontext(sys.stdin) if str(source) == "-" else open(source, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                yield line


def _batches(paths: Iterable[Path], size: int, done: set[str], taken: set[str], save_images: bool,
             summary: PredictSummary) -> Iterator[Batch]:
    """``size`` inputs at a time, leaving out those in ``done`` (and adding the rest to it); each gets
    its annotated JPEG name here, in input order, so every engine names them alike."""
    batch: Batch = []
    for p in paths:
        file = str(p)
        if file in done:
            summary.skipped += 1
            continue
        done.add(file)
        batch.append((file, annotated_name(p, taken) if save_images else None))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# --- recognition (in this process or in a Ray worker) ----------------------------------------------

def make_recognizer(model: str | Path | None, detector: str, align: bool, threads: int | None) -> Recognizer:
    """A recogniser whose ONNX Runtime sessions (detector and classifier) use ``threads`` threads."""
    det = BlazeFaceDetector(threads=threads) if detector == "blazeface" else detector
    return Recognizer(model=model, detector=det, align=align, threads=threads)


def recognise_batch(rec: Recognizer, batch: Batch, out: str | Path, detect: bool, base: str = "") -> list[dict]:
    """One record per input: its size and faces (and writes its annotated JPEG), or the reason it
    could not be read. Files are read relative to ``base``; their faces are classified together."""
    images: list[Any] = []
    for file, _ in batch:
        try:
            images.append(read_image(os.path.join(base, file)))
        except ImageError as exc:
            images.append(exc)
    readable = [im for im in images if not isinstance(im, ImageError)]
    found = iter(rec.predict_batch(readable, detect=detect))
    records = []
    for (file, name), im in zip(batch, images):
        if isinstance(im, ImageError):
            records.append({"file": file, "error": im.reason})
            continue
        faces = next(found)
        record = {"file": file, "width": im.shape[1], "height": im.shape[0], "faces": [f.to_dict() for f in faces]}
        if name:
            cv2.imwrite(str(Path(out) / name), cv2.cvtColor(annotate(im, faces), cv2.COLOR_RGB2BGR))
            record["annotated"] = name
        records.append(record)
    return records


# --- the command --------------------------------------------------------------------------------------

def predict_files(inputs: Iterable[str | Path] = (), out: str | Path = "runs/predict", model: str | Path | None = None,
                  detector: str = "blazeface", align: bool = True, detect: bool = True, save_images: bool = True,
                  batch: int = 16, recognizer: Recognizer | None = None, progress: bool = True, *,
                  file_list: str | Path | None = None, formats: Iterable[str] = ("csv", "jsonl"),
                  overwrite: bool = False, engine: str = "local", workers: int | None = None,
                  threads: int | None = None) -> PredictSummary:
    """Run the recogniser on ``inputs`` and the paths in ``file_list`` (files, folders, globs; ``-``
    reads the list from standard input), ``batch`` images at a time (their faces classified
    together), appending ``predictions.jsonl`` and the other ``formats`` ("csv", "parquet") and
    annotated JPEGs to ``out``, in input order. Inputs already in ``out/predictions.jsonl`` are
    skipped (``overwrite`` starts afresh). ``engine="ray"``: ``workers`` Ray Data workers with
    ``threads`` ONNX Runtime threads each (default 1; local default: every core). Returns counts and
    the failed files of this run."""
    wanted = set(formats) | {"jsonl"}
    if unknown := wanted - set(FORMATS):
        raise ValueError(f"unknown format(s) {', '.join(sorted(unknown))}; choose from {', '.join(FORMATS)}")
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    if engine == "local" and workers is not None:
        raise ValueError("workers are for engine='ray' (--engine ray)")
    if engine == "ray" and recognizer is not None:
        raise ValueError("engine='ray' builds a recogniser in each worker: give model/detector, not recognizer")
    if batch < 1 or (workers is not None and workers < 1) or (threads is not None and threads < 1):
        raise ValueError("batch, workers and threads must be >= 1")
    if engine == "local":
        rec = recognizer or make_recognizer(model, detector, align, threads)
        classes = rec.classes
    else:
        from ..inference.classifier import EmotionClassifier

        classes = EmotionClassifier(model, threads=1).classes
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = PredictSummary(out)
    outputs = Outputs(out, wanted, classes, overwrite)
    sources = itertools.chain(inputs, read_file_list(file_list) if file_list is not None else ())
    batches = _batches(expand_inputs(sources, exclude=out), batch, outputs.done, outputs.taken, save_images, summary)
    bar = tqdm(desc="predict", unit=" image", disable=not progress)

    def consume(records: list[dict]) -> None:
        outputs.write(records)
        for r in records:
            if "error" in r:
                summary.failed.append(f"{r['file']}: {r['error']}")
                tqdm.write(f"ferkit predict: skipped {r['file']}: {r['error']}", file=sys.stderr)
            else:
                summary.images += 1
                summary.faces += len(r["faces"])
        bar.update(len(records))

    try:
        if engine == "local":
            for b in batches:
                consume(recognise_batch(rec, b, out, detect))
        else:
            from .predict_ray import run_ray

            run_ray(batches, consume, workers, out=str(out.resolve()), base=os.getcwd(),
                    model=None if model is None else str(Path(model).resolve()), detector=detector, align=align,
                    detect=detect, threads=threads or 1)
    finally:
        outputs.close()
        bar.close()
    return summary
