"""The result files of ``ferkit predict``: ``predictions.jsonl`` (the record a rerun resumes from),
``predictions.csv`` and ``predictions.parquet/``, appended a batch at a time and repaired on restart."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..errors import ConfigError, optional_import

FORMATS = ("csv", "jsonl", "parquet")
PARQUET_GROUP_ROWS = 4096  # records per Parquet row group
PARQUET_PART_ROWS = 100_000  # records per Parquet part file; a part is readable once closed


def annotated_name(path: Path, taken: set[str]) -> str:
    """``<stem>.jpg``, or ``<stem>_2.jpg``, ``_3``... when taken."""
    name, i = f"{path.stem}.jpg", 2
    while name in taken:
        name, i = f"{path.stem}_{i}.jpg", i + 1
    taken.add(name)
    return name


def _complete_lines(path: Path) -> Iterator[bytes]:
    """The lines of ``path``; read to the end, a last line without its newline (cut by a crash) is
    also cut off the file."""
    return _complete_records(path, quoted=False)


def _complete_records(path: Path, quoted: bool = True) -> Iterator[bytes]:
    """The records of ``path``, a line each or, for ``quoted`` (CSV), as many lines as a quoted field
    with line breaks spans; read to the end, a last record that a crash cut short is also cut off the file."""
    end, record, quotes = 0, b"", 0
    with open(path, "rb+") as f:
        for line in f:
            record += line
            quotes += line.count(b'"') if quoted else 0
            if line.endswith(b"\n") and quotes % 2 == 0:
                end += len(record)
                yield record
                record, quotes = b"", 0
        if record:
            f.truncate(end)


def _utf8_names(record: dict) -> dict:
    """``record`` with its strings valid UTF-8, as Parquet needs: the bytes of a file name that is not
    UTF-8 (held as surrogate escapes) become ``\\xNN`` text; the JSON lines and the CSV keep them exact."""
    keys = [k for k in ("file", "annotated", "error") if k in record]
    return {**record, **{k: os.fsencode(record[k]).decode("utf-8", "backslashreplace") for k in keys}}


def _csv_rows(record: dict) -> list[list]:
    return [[record["file"], k, *f["box"], f["emotion"], f"{f['score']:.4f}",
             *(f"{v:.4f}" for v in f["probs"].values())] for k, f in enumerate(record.get("faces", ()))]


def _parquet_schema(pa: Any, classes: Iterable[str]) -> Any:
    face = pa.struct([("box", pa.list_(pa.int64())), ("probs", pa.struct([(c, pa.float64()) for c in classes])),
                      ("emotion", pa.string()), ("score", pa.float64()),
                      ("landmarks", pa.list_(pa.list_(pa.float64())))])
    return pa.schema([("file", pa.string()), ("width", pa.int64()), ("height", pa.int64()),
                      ("faces", pa.list_(face)), ("annotated", pa.string()), ("error", pa.string())])


class _ParquetParts:
    """``predictions.parquet/part-NNNNN.parquet``: records in row groups, a new part every
    ``PARQUET_PART_ROWS``. A part is written as ``.part-NNNNN.parquet`` (readers ignore it) and renamed
    once closed; one left unfinished by a kill is overwritten by the next run's part."""

    def __init__(self, folder: Path, classes: Iterable[str]) -> None:
        self.pa = optional_import("pyarrow", "parquet", "Parquet output")
        self.pq = optional_import("pyarrow.parquet", "parquet", "Parquet output")
        self.schema = _parquet_schema(self.pa, classes)
        folder.mkdir(exist_ok=True)
        parts = sorted(folder.glob("part-*.parquet"))
        self.rows = 0  # records in the complete parts
        for p in parts:
            meta = self.pq.read_metadata(p)
            if meta.schema.to_arrow_schema() != self.schema:
                raise ConfigError(f"{p} has other columns (another model?); use --overwrite or another --out")
            self.rows += meta.num_rows
        self.folder, self.index = folder, int(parts[-1].stem.split("-")[1]) + 1 if parts else 0
        self.writer, self.buffer, self.in_part = None, [], 0

    def add(self, records: list[dict]) -> None:
        self.buffer += map(_utf8_names, records)
        if len(self.buffer) >= PARQUET_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self.buffer:
            return
        if self.writer is None:
            self.writer = self.pq.ParquetWriter(self.folder / f".part-{self.index:05d}.parquet", self.schema)
        self.writer.write_table(self.pa.Table.from_pylist(self.buffer, schema=self.schema))
        self.in_part += len(self.buffer)
        self.buffer = []
        if self.in_part >= PARQUET_PART_ROWS:
            self.close()

    def close(self) -> None:
        self._flush()
        if self.writer is not None:
            self.writer.close()
            name = f"part-{self.index:05d}.parquet"
            os.replace(self.folder / f".{name}", self.folder / name)
            self.writer, self.index, self.in_part = None, self.index + 1, 0


SETTINGS = "predict_settings.json"


def _check_settings(out: Path, settings: dict, overwrite: bool) -> None:
    """``out/predict_settings.json`` records what made the results (models, detector, TTA ...): a run that
    would append to them with other settings is refused, so that one folder never mixes two models' answers.
    Results of a ferkit that did not record them are taken as this run's."""
    path = out / SETTINGS
    if path.exists() and not overwrite:
        try:
            before = json.loads(path.read_text())
        except ValueError:
            raise ConfigError(f"{path}: not a ferkit settings record; fix it or start afresh with --overwrite") from None
        if before != settings:
            diff = "; ".join(f"{k}: {before.get(k)!r} there, {settings.get(k)!r} now"
                             for k in sorted(set(before) | set(settings)) if before.get(k) != settings.get(k))
            raise ConfigError(f"{out} holds results made with other settings ({diff}); use --overwrite or another "
                              "--out")
    path.write_text(json.dumps(settings, indent=2) + "\n")


class Outputs:
    """``predictions.jsonl`` (always: the record of what is done), ``predictions.csv`` (one row per
    face) and ``predictions.parquet/`` (one row per input, as the JSON lines) in ``out``, appended
    per batch: the JSON lines first, then the rest, each flushed. Opening repairs what a crash left;
    ``settings`` (what makes the results) must be those the folder's results were made with."""

    def __init__(self, out: Path, formats: Iterable[str], classes: Iterable[str], overwrite: bool,
                 settings: dict) -> None:
        _check_settings(out, settings, overwrite)
        self.jsonl, csv_path = out / "predictions.jsonl", out / "predictions.csv"
        parquet_dir = out / "predictions.parquet"
        if overwrite:
            for p in (self.jsonl, csv_path):
                p.unlink(missing_ok=True)
            if parquet_dir.is_dir():
                for p in parquet_dir.iterdir():
                    p.unlink()
        self.done: set[str] = set()
        self.failed: set[str] = set()  # the recorded inputs that could not be read or recognised
        self.taken: set[str] = set()  # annotated JPEG names in use
        records = face_rows = 0
        if self.jsonl.exists():
            for i, line in enumerate(_complete_lines(self.jsonl), 1):
                try:
                    record = json.loads(line)
                    self.done.add(record["file"])
                except (ValueError, KeyError):
                    raise ConfigError(f"{self.jsonl}:{i}: not a ferkit record; fix it or start afresh with "
                                     "--overwrite") from None
                if "error" in record:
                    self.failed.add(record["file"])
                if "annotated" in record:
                    self.taken.add(record["annotated"])
                elif "error" in record:  # the name it held, as a run without a stop gives it
                    annotated_name(Path(record["file"]), self.taken)
                records, face_rows = records + 1, face_rows + len(record.get("faces", ()))
        header = ["file", "face", "x", "y", "w", "h", "emotion", "score", *classes]
        csv_rows, first = 0, None
        if "csv" in formats and csv_path.exists():
            lines = _complete_records(csv_path)  # records, not lines: a file name may hold a line break
            first = next(lines, None)
            if first is not None and next(csv.reader([first.decode(errors="replace")])) != header:
                raise ConfigError(f"{csv_path} has other columns (another model?); use --overwrite or another --out")
            csv_rows = sum(1 for _ in lines)
        self.parquet = _ParquetParts(parquet_dir, classes) if "parquet" in formats else None
        if csv_rows > face_rows or (self.parquet and self.parquet.rows > records):
            raise ConfigError(f"{out}: the CSV or Parquet files have rows that {self.jsonl.name} lacks; use --overwrite")
        self.fcsv = self.csv = None
        if "csv" in formats:
            self.fcsv = open(csv_path, "a", newline="", encoding="utf-8", errors="surrogateescape")
            self.csv = csv.writer(self.fcsv)
            if first is None:
                self.csv.writerow(header)
        if (self.csv and csv_rows < face_rows) or (self.parquet and self.parquet.rows < records):
            self._catch_up(csv_rows)
        self.fjson = open(self.jsonl, "a", encoding="utf-8")

    def _catch_up(self, csv_rows: int) -> None:
        """Append to the CSV and Parquet files the rows of recorded inputs that they lack (a crash
        between writes, or a run without that format): they lag the JSON lines, never lead."""
        n = 0
        for i, line in enumerate(_complete_lines(self.jsonl)):
            record = json.loads(line)
            if self.csv:
                rows = _csv_rows(record)
                self.csv.writerows(rows[max(0, csv_rows - n):])
                n += len(rows)
            if self.parquet and i >= self.parquet.rows:
                self.parquet.add([record])
        self._flush()

    def write(self, records: list[dict]) -> None:
        self.fjson.write("".join(json.dumps(r) + "\n" for r in records))
        self.fjson.flush()
        if self.csv:
            self.csv.writerows(row for r in records for row in _csv_rows(r))
        if self.parquet:
            self.parquet.add(records)
        self._flush()

    def _flush(self) -> None:
        if self.fcsv:
            self.fcsv.flush()

    def close(self) -> None:
        self.fjson.close()
        if self.fcsv:
            self.fcsv.close()
        if self.parquet:
            self.parquet.close()


