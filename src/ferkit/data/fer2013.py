"""Reader for FER2013 in Kaggle CSV form: ``.csv``, ``.csv.gz`` or the ``fer2013.tar.gz`` archive.

Known by the header, whatever the file's name: ``emotion,pixels,Usage`` (fer2013.csv), ``emotion, Usage, pixels``
with spaces (the ICML challenge's icml_face_data.csv), or ``emotion,pixels`` without Usage (the challenge's
train.csv: its rows get an empty Usage, and :func:`~ferkit.data.dataset.load_dataset` carves seeded splits).

Rows are parsed one at a time into a preallocated uint8 array, so memory stays near the size of
the images themselves (35,887 x 48 x 48 = 83 MB).
"""

from __future__ import annotations

import contextlib
import gzip
import tarfile
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from .errors import DataError
from .labels import FER2013_CLASSES, IMAGE_SIZE

NUM_PIXELS = IMAGE_SIZE * IMAGE_SIZE
REQUIRED_COLUMNS = ("emotion", "pixels")
USAGES = ("Training", "PublicTest", "PrivateTest")


@dataclass
class Fer2013Table:
    """All rows of a FER2013 CSV that parsed, in file order."""

    images: np.ndarray  # (N, 48, 48) uint8
    labels: np.ndarray  # (N,) int64
    usage: np.ndarray  # (N,) str; all "" when the file has no Usage column
    rows: np.ndarray  # (N,) int64, 0-based data-row index in the file (the FER+ join key)
    skipped: list[str]  # one message per skipped bad row


def is_fer2013_csv(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and name.endswith((".csv", ".csv.gz", ".tar.gz", ".tgz"))


def _drain(stream: IO[bytes]) -> None:
    while stream.read(1 << 20):
        pass


@contextlib.contextmanager
def _read_to_end(stream: IO[bytes]) -> Iterator[None]:
    """Read a gzip ``stream`` to its end when done: its CRC and length are checked only there (and the
    end of an archive lies past its CSV). A row garbled by a corrupt stream is reported as the corruption."""
    try:
        yield
    except (DataError, UnicodeDecodeError, tarfile.TarError):
        _drain(stream)
        raise
    _drain(stream)


@contextlib.contextmanager
def _open_csv_bytes(path: Path) -> Iterator[IO[bytes]]:
    name = path.name.lower()
    if name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(path, "r:gz") as tar, _read_to_end(tar.fileobj):
            members = [m for m in tar.getmembers() if m.isfile() and m.name.lower().endswith(".csv")]
            if not members:
                raise DataError(path, "archive holds no .csv file")
            handle = tar.extractfile(members[0])
            assert handle is not None
            yield handle
    elif name.endswith(".gz"):
        with gzip.open(path, "rb") as handle, _read_to_end(handle):
            yield handle
    else:
        with open(path, "rb") as handle:
            yield handle


def _gzip_damage(exc: BaseException) -> str | None:
    """What is wrong with a gzip stream, when ``exc`` (or the error behind it) says it is damaged; else None."""
    for error in (exc, exc.__cause__):  # tarfile wraps what gzip raises
        if isinstance(error, zlib.error) or (isinstance(error, tarfile.ReadError) and "zlib error" in str(error)):
            return str(error).rsplit(": ", 1)[-1]  # "Error -3 while decompressing data: invalid distance code"
        if isinstance(error, EOFError):
            return "truncated: " + (str(error) or "unexpected end of data").lower()
        if isinstance(error, gzip.BadGzipFile):
            return str(error)
    return None


def _parse_pixels(text: bytes) -> np.ndarray | str:
    """Return the 48x48 image, or a message saying what is wrong with the field."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            values = np.fromstring(text, dtype=np.int64, sep=" ")
    except ValueError:  # NumPy 2.4+ raises on text it cannot parse
        values = None
    if values is None or values.size != NUM_PIXELS or text.count(b" ") != NUM_PIXELS - 1:
        tokens = text.split()
        bad = next((t for t in tokens if not t.isdigit()), None)
        if bad is not None:
            return f"non-numeric pixel value {bad.decode(errors='replace')!r}"
        if len(tokens) != NUM_PIXELS:
            return f"expected {NUM_PIXELS} pixel values, found {len(tokens)}"
        if values is None or values.size != NUM_PIXELS:
            return "unparseable pixel values"
    if values.max() > 255 or values.min() < 0:
        return "pixel value outside 0..255"
    return values.reshape(IMAGE_SIZE, IMAGE_SIZE)


def read_fer2013_csv(path: str | Path, skip_bad_rows: bool = False, show_progress: bool = False) -> Fer2013Table:
    """Parse a FER2013 CSV. Columns are found by name, quoted or padded with spaces or not (Kaggle's
    icml_face_data.csv has ``emotion, Usage, pixels``); Usage may be absent (train.csv). A bad row raises
    :class:`DataError` naming file and line, unless ``skip_bad_rows``, which skips it and records why in ``skipped``."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "no such file")
    images = np.empty((40_000, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    labels: list[int] = []
    usage: list[str] = []
    rows: list[int] = []
    skipped: list[str] = []
    try:
        with _open_csv_bytes(path) as handle:
            header = [name.strip().strip('"').strip() for name in handle.readline().decode("utf-8-sig").split(",")]
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            if missing:
                raise DataError(path, f"missing column(s) {', '.join(missing)}; header is {header}", line=1)
            col = {c: header.index(c) for c in REQUIRED_COLUMNS}
            usage_col = header.index("Usage") if "Usage" in header else None
            lines = handle
            if show_progress:
                from tqdm import tqdm

                lines = tqdm(handle, desc=f"parse {path.name}", unit=" rows", leave=False)
            row_index = -1  # data rows seen, bad ones included: the FER+ join key
            for line_no, raw in enumerate(lines, start=2):
                fields = raw.rstrip(b"\r\n").replace(b'"', b"").split(b",")
                if fields == [b""]:
                    continue
                row_index += 1
                problem = None
                if len(fields) != len(header):
                    problem = f"expected {len(header)} fields, found {len(fields)}"
                else:
                    emotion = fields[col["emotion"]].strip()
                    image = _parse_pixels(fields[col["pixels"]].strip())
                    if isinstance(image, str):
                        problem = image
                    elif not emotion.isdigit() or int(emotion) >= len(FER2013_CLASSES):
                        problem = f"label {emotion.decode(errors='replace')!r} is not in 0..{len(FER2013_CLASSES) - 1}"
                    elif usage_col is not None and fields[usage_col].strip().decode(errors="replace") not in USAGES:
                        used = fields[usage_col].strip().decode(errors="replace")
                        problem = f"unknown Usage value {used!r}; expected {', '.join(USAGES)}"
                if problem is not None:
                    if not skip_bad_rows:
                        raise DataError(path, problem + " (use --skip-bad-rows to skip such rows)", line=line_no)
                    skipped.append(f"{path}:{line_no}: {problem}")
                    continue
                n = len(labels)
                if n == len(images):
                    images = np.concatenate([images, np.empty_like(images)])
                images[n] = image
                labels.append(int(emotion))
                usage.append("" if usage_col is None else fields[usage_col].strip().decode())
                rows.append(row_index)
    except (OSError, EOFError, zlib.error, tarfile.TarError, UnicodeDecodeError) as exc:
        damage = _gzip_damage(exc)
        raise DataError(path, f"corrupt gzip stream ({damage})" if damage else f"cannot read: {exc}") from exc
    if not labels:
        raise DataError(path, "no data rows")
    return Fer2013Table(
        images=images[: len(labels)].copy(),
        labels=np.asarray(labels, np.int64),
        usage=np.asarray(usage),
        rows=np.asarray(rows, np.int64),
        skipped=skipped,
    )
