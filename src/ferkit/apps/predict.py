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
import fnmatch
import glob
import itertools
import os
import sys
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..core.runtime import file_sha256
from ..data.images import IMAGE_SUFFIXES
from ..inference.recognizer import Recognizer
from ..errors import ConfigError
from .predict_outputs import FORMATS, Outputs, annotated_name
from .predict_worker import Batch, recognise_batch

ENGINES = ("local", "ray")


@dataclass
class PredictSummary:
    out_dir: Path
    images: int = 0
    faces: int = 0
    failed: list[str] = field(default_factory=list)  # "path: reason" for each file that could not be read
    skipped: int = 0  # inputs already in predictions.jsonl (an earlier run) or given twice
    failed_before: int = 0  # of the skipped inputs, those an earlier run recorded as failed


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


def _iglob(root: str, parts: list[str]) -> Iterator[str]:
    """The paths under ``root`` matching the pattern ``parts`` (split at ``/``), each folder's entries
    sorted by name; as ``glob.iglob(recursive=True)`` except that ``**`` does not enter symlinked
    folders (a symlink loop would give each file again at every depth)."""
    if not parts:
        yield root
        return
    head, rest = parts[0], parts[1:]
    if not glob.has_magic(head):
        path = os.path.join(root, head)
        if os.path.lexists(path):
            yield from _iglob(path, rest)
        return
    try:
        with os.scandir(root or os.curdir) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError:
        return
    shown = [e for e in entries if head.startswith(".") or not e.name.startswith(".")]  # hidden as glob hides them
    if head == "**":  # no folder, or one more (not a symlinked one)
        yield from _iglob(root, rest)
        for e in shown:
            if e.is_dir(follow_symlinks=False):
                yield from _iglob(os.path.join(root, e.name), parts)
            elif not rest:
                yield os.path.join(root, e.name)
    else:
        for e in shown:
            if fnmatch.fnmatchcase(e.name, head):
                yield from _iglob(os.path.join(root, e.name), rest)


def _glob(pattern: str) -> Iterator[str]:
    root = os.sep if os.path.isabs(pattern) else ""
    return _iglob(root, [part for part in pattern.split(os.sep) if part])


def _glob_root(pattern: str) -> str:
    """The folder a glob pattern searches: its parts before the first with a wildcard."""
    parts = pattern.split(os.sep)
    fixed = os.sep.join(itertools.takewhile(lambda part: not glob.has_magic(part), parts[:-1]))
    return fixed or (os.sep if pattern.startswith(os.sep) else os.curdir)


def _inside(path: str | Path, folder: str) -> bool:
    """Whether ``path`` is the folder ``folder`` (a real path) or lies in it, symlinks resolved."""
    real = os.path.realpath(path)
    return real == folder or real.startswith(os.path.join(folder, ""))


def _check_input(item: str | Path, out: str | Path) -> None:
    """A :class:`ConfigError` if the input ``item`` (a file, a folder, or a glob's folder) is the output folder
    ``out`` or lies in it: the annotated JPEGs would overwrite photos of the same name there."""
    where = _glob_root(str(item)) if not os.path.exists(item) and glob.has_magic(str(item)) else item
    folder = os.path.realpath(out)
    if _inside(where, folder):
        what = "is" if os.path.realpath(where) == folder else "is in"
        raise ConfigError(f"the input {item} {what} the output folder (--out {out}), where annotated JPEGs "
                          "would overwrite photos of the same name; give --out a folder of its own")


def _is_dir(path: Path) -> bool:
    """``path.is_dir()``, False where the path cannot be looked at (a name over 255 bytes...): reading
    it then records why."""
    try:
        return path.is_dir()
    except OSError:
        return False


def expand_inputs(inputs: Iterable[str | Path], exclude: str | Path | None = None) -> Iterator[Path]:
    """Files as given; folders walked lazily for image files (sorted per folder); glob patterns matched
    lazily (sorted per folder; ``**`` does not follow symlinked folders); a pattern matching nothing is
    yielded as is (reported missing). An input in the folder ``exclude`` (the output folder) is refused
    (:func:`_check_input`); in a folder or glob that holds it, that folder is not searched."""
    skip = os.path.realpath(exclude) if exclude is not None else None
    for item in inputs:
        if exclude is not None:
            _check_input(item, exclude)
        p = Path(item)
        if _is_dir(p):
            yield from _walk(str(p), skip)
        elif not os.path.exists(p) and glob.has_magic(str(item)):
            matches = _glob(str(item))
            first = next(matches, None)
            if first is None:
                yield p
                continue
            yield from (m for m in map(Path, itertools.chain([first], matches))
                        if m.is_file() and not (skip and _inside(m, skip)))
        else:
            yield p


def read_file_list(source: str | Path) -> Iterator[str]:
    """Paths from a text file, one a line (``-``: standard input); blank lines and lines starting
    with ``#`` are skipped. Each path may also be a folder or a glob. Bytes that are not UTF-8 are
    kept as the file system keeps them (``os.fsdecode``). The file is opened at once: a file list that
    cannot be read is a :class:`ValueError` before anything is written."""
    if str(source) == "-":
        return _list_lines(contextlib.nullcontext(getattr(sys.stdin, "buffer", sys.stdin)))
    try:
        return _list_lines(open(source, "rb"))
    except OSError as exc:
        raise ConfigError(f"file list {source}: {exc.strerror}") from None


def _list_lines(source: Any) -> Iterator[str]:
    with source as f:
        for raw in f:
            line = (os.fsdecode(raw) if isinstance(raw, bytes) else raw).strip()
            if line and not line.startswith("#"):
                yield line


def _batches(paths: Iterable[Path], size: int, outputs: Outputs, save_images: bool,
             summary: PredictSummary) -> Iterator[Batch]:
    """``size`` inputs at a time, leaving out those recorded in ``outputs`` (and adding the rest to
    its record); each gets its annotated JPEG name here, in input order, so every engine names them alike."""
    batch: Batch = []
    done, taken = outputs.done, outputs.taken
    for p in paths:
        file = str(p)
        if file in done:
            summary.skipped += 1
            if file in outputs.failed:
                summary.failed_before += 1
                outputs.failed.discard(file)  # counted once, if given twice
            continue
        done.add(file)
        batch.append((file, annotated_name(p, taken) if save_images else None))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# --- the command --------------------------------------------------------------------------------------

def predict_files(inputs: Iterable[str | Path] = (), out: str | Path = "runs/predict", model: str | Path | None = None,
                  detector: str = "blazeface", align: bool = True, detect: bool = True, save_images: bool = True,
                  batch: int = 16, recognizer: Recognizer | None = None, progress: bool = True, *,
                  file_list: str | Path | None = None, formats: Iterable[str] = ("csv", "jsonl"),
                  overwrite: bool = False, engine: str = "local", workers: int | None = None,
                  threads: int | None = None, tta: str = "none") -> PredictSummary:
    """Run the recogniser on ``inputs`` and the paths in ``file_list`` (files, folders, globs; ``-``
    reads the list from standard input), ``batch`` images at a time (their faces classified
    together), appending ``predictions.jsonl`` and the other ``formats`` ("csv", "parquet") and
    annotated JPEGs to ``out``, in input order. Inputs already in ``out/predictions.jsonl`` are
    skipped (``overwrite`` starts afresh); an input that is ``out`` or lies in it is a :class:`ConfigError`
    (``out`` inside an input folder is left out of it). ``engine="ray"``: ``workers`` Ray Data workers with
    ``threads`` ONNX Runtime threads each (default 1; local default: every core). ``tta``: the
    :class:`Recognizer`'s test-time augmentation ("none", "flip", "tencrop"). Returns counts, the
    failed files of this run and how many skipped inputs an earlier run recorded as failed."""
    wanted = set(formats) | {"jsonl"}
    if unknown := wanted - set(FORMATS):
        raise ConfigError(f"unknown format(s) {', '.join(sorted(unknown))}; choose from {', '.join(FORMATS)}")
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    if engine == "local" and workers is not None:
        raise ConfigError("workers (--ray-workers) are for engine='ray' (--engine ray)")
    if engine == "ray" and recognizer is not None:
        raise ConfigError("engine='ray' builds a recogniser in each worker: give model/detector, not recognizer")
    for name, flag, value in (("batch", "--batch-size", batch), ("workers", "--ray-workers", workers),
                              ("threads", "--threads", threads)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} ({name}) must be >= 1, not {value}")
    if engine == "local":
        rec = recognizer or Recognizer(model=model, detector=detector, align=align, threads=threads, tta=tta)
        classifier, settings = rec.classifier, {"detector": rec.detector.name, "align": rec.align, "tta": rec.tta}
    else:
        from ..core.classifier import load_classifier

        classifier, settings = load_classifier(model, threads=1), {"detector": detector, "align": align, "tta": tta}
    classes = classifier.classes
    members = [m.path.resolve() for m in classifier.members]
    settings = {"models": [f"{p.name} (sha256 {file_sha256(p)})" for p in members], **settings, "detect": detect}
    sources = itertools.chain(inputs, read_file_list(file_list) if file_list is not None else ())
    out = Path(out)
    if os.path.exists(out) and not out.is_dir():
        raise ConfigError(f"{out} is a file; the output (--out) must be a folder")
    if isinstance(inputs, Collection):  # all given at once: refused before anything is written
        for item in inputs:
            _check_input(item, out)
    out.mkdir(parents=True, exist_ok=True)
    summary = PredictSummary(out)
    outputs = Outputs(out, wanted, classes, overwrite, settings)
    batches = _batches(expand_inputs(sources, exclude=out), batch, outputs, save_images, summary)
    bar = tqdm(desc="predict", unit=" image", disable=not progress)

    def consume(records: list[dict]) -> None:
        outputs.write(records)
        for r in records:
            if "error" in r:
                summary.failed.append(f"{r['file']}: {r['error']}")
                tqdm.write(f"ferkit predict: {'' if 'faces' in r else 'skipped '}{r['file']}: {r['error']}",
                           file=sys.stderr)
            if "faces" in r:
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
                    model=[str(p) for p in members], detector=detector, align=align,
                    detect=detect, threads=threads or 1, tta=tta)
    finally:
        outputs.close()
        bar.close()
    return summary
