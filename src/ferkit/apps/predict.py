"""``ferkit predict``: every face in every image -> annotated images plus CSV and JSON Lines rows,
written as they come; a bad file is reported and skipped, the rest go on."""

from __future__ import annotations

import csv
import glob
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
from tqdm import tqdm

from ..inference.draw import annotate
from ..inference.images import IMAGE_SUFFIXES, ImageError, read_image
from ..inference.recognizer import Recognizer


@dataclass
class PredictSummary:
    out_dir: Path
    images: int = 0
    faces: int = 0
    failed: list[str] = field(default_factory=list)  # "path: reason" for each file that could not be read


def expand_inputs(inputs: Iterable[str | Path]) -> Iterator[Path]:
    """Files as given; folders walked (sorted) for image files; unmatched glob patterns expanded here."""
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            yield from sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        elif not p.exists() and glob.has_magic(str(item)):
            matches = sorted(glob.glob(str(item), recursive=True))
            if not matches:
                yield p  # reported as missing
            yield from (Path(m) for m in matches if Path(m).is_file())
        else:
            yield p


def _annotated_name(path: Path, taken: set[str]) -> str:
    name, i = f"{path.stem}.jpg", 2
    while name in taken:
        name, i = f"{path.stem}_{i}.jpg", i + 1
    taken.add(name)
    return name


def predict_files(inputs: Sequence[str | Path], out: str | Path = "runs/predict", model: str | Path | None = None,
                  detector: str = "blazeface", align: bool = True, detect: bool = True, save_images: bool = True,
                  batch: int = 16, recognizer: Recognizer | None = None, progress: bool = True) -> PredictSummary:
    """Run the recogniser on ``inputs`` (files, folders, globs), ``batch`` images at a time (their
    faces classified together); write ``predictions.csv``, ``predictions.jsonl`` and annotated JPEGs
    to ``out``, in input order. Returns counts and the failed files."""
    rec = recognizer or Recognizer(model=model, detector=detector, align=align)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = PredictSummary(out)
    paths = [p for p in expand_inputs(inputs) if out.resolve() not in p.resolve().parents]  # not our own output
    taken: set[str] = set()
    header = ["file", "face", "x", "y", "w", "h", "emotion", "score", *rec.classes]
    bar = tqdm(total=len(paths), desc="predict", unit=" image", disable=not progress or len(paths) < 2)
    with open(out / "predictions.csv", "w", newline="") as fcsv, open(out / "predictions.jsonl", "w") as fjson:
        writer = csv.writer(fcsv)
        writer.writerow(header)
        for start in range(0, len(paths), max(1, batch)):
            chunk = paths[start:start + max(1, batch)]
            images: dict[int, object] = {}
            for i, path in enumerate(chunk):
                try:
                    images[i] = read_image(path)
                except ImageError as exc:
                    images[i] = exc
            readable = [i for i, im in images.items() if not isinstance(im, ImageError)]
            found = dict(zip(readable, rec.predict_batch([images[i] for i in readable], detect=detect)))
            for i, path in enumerate(chunk):
                im = images[i]
                if isinstance(im, ImageError):
                    summary.failed.append(str(im))
                    tqdm.write(f"ferkit predict: skipped {im}", file=sys.stderr)
                    fjson.write(json.dumps({"file": str(path), "error": im.reason}) + "\n")
                    continue
                faces = found[i]
                summary.images += 1
                summary.faces += len(faces)
                for k, f in enumerate(faces):
                    writer.writerow([str(path), k, *f.box, f.emotion, f"{f.score:.4f}",
                                     *(f"{v:.4f}" for v in f.probs.values())])
                record = {"file": str(path), "width": im.shape[1], "height": im.shape[0],
                          "faces": [f.to_dict() for f in faces]}
                if save_images:
                    name = _annotated_name(path, taken)
                    cv2.imwrite(str(out / name), cv2.cvtColor(annotate(im, faces), cv2.COLOR_RGB2BGR))
                    record["annotated"] = name
                fjson.write(json.dumps(record) + "\n")
            fcsv.flush()
            fjson.flush()
            bar.update(len(chunk))
    bar.close()
    return summary
