"""Read photos safely: every mode PIL opens (16-bit, float, RGBA, CMYK, palette, grey), EXIF rotation
applied, a pixel limit against decompression bombs, a scan limit against progressive-JPEG CPU bombs,
and one clear error per bad file."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, TypeVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..data.images import IMAGE_SUFFIXES, to_rgb, upright_rgb  # noqa: F401  (IMAGE_SUFFIXES: its old import path)
from ..errors import FerkitError

MAX_PIXELS = 50_000_000  # larger images are refused (decompression-bomb guard)
MAX_SCANS = 64  # JPEGs with more scans are refused (encoders write at most 24; each scan is a pass over the image)
BATCH_PIXELS = 50_000_000  # a batch is read and searched in groups of at most this many pixels
WEB_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")  # what uploads may be


class ImageError(FerkitError, ValueError):
    """A file that is not a usable image; the message names the file and the reason, ``code`` says
    which kind of problem it is (``missing``, ``empty``, ``not_an_image``, ``too_many_pixels``,
    ``too_many_scans``, ``corrupt``)."""

    def __init__(self, path: str | Path, reason: str, code: str = "corrupt") -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason, self.code = str(path), reason, code


def read_image(path: str | Path, max_pixels: int = MAX_PIXELS, max_scans: int = MAX_SCANS) -> np.ndarray:
    """An RGB uint8 (H, W, 3) array, upright per EXIF. Raises :class:`ImageError`."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(path, "no such file", "missing")
    if path.stat().st_size == 0:
        raise ImageError(path, "empty file (0 bytes)", "empty")
    return _decode(path, path, max_pixels, None, max_scans)


def decode_image(data: bytes, name: str = "upload", max_pixels: int = MAX_PIXELS,
                 formats: tuple[str, ...] | None = WEB_FORMATS, max_scans: int = MAX_SCANS,
                 check: Callable[[], None] | None = None) -> np.ndarray:
    """``read_image`` for bytes in memory (an upload). The format is sniffed from the content, never
    taken from a file name or content type; only ``formats`` are accepted (None: every format Pillow
    reads). ``check`` is called before each read of the bytes (a chunk of at most 64 KiB while
    decoding): it may raise to stop the work, e.g. at a deadline or when the client has gone."""
    if not data:
        raise ImageError(name, "empty file (0 bytes)", "empty")
    return _decode(_reader(data, check), name, max_pixels, formats, max_scans)


def image_pixels(source: str | Path | bytes, check: Callable[[], None] | None = None) -> int:
    """Width x height as the header says, nothing decoded; 0 when it cannot be opened (the reason
    comes when the image is read). ``check`` as for :func:`decode_image`."""
    try:
        with Image.open(_reader(source, check) if isinstance(source, bytes) else source) as im:
            return im.width * im.height
    except ImageError:
        raise
    except Exception:  # whatever the header does wrong is reported, with its reason, by read_image/decode_image
        return 0


T = TypeVar("T")


def pixel_groups(items: Iterable[T], pixels: Callable[[T], int], budget: int = BATCH_PIXELS) -> Iterator[list[T]]:
    """``items`` in order, in groups whose ``pixels`` add up to at most ``budget`` (an item over it
    goes alone): a batch whose images are read a group at a time never holds more pixels than that."""
    group: list[T] = []
    total = 0
    for item in items:
        n = pixels(item)
        if group and total + n > budget:
            yield group
            group, total = [], 0
        group.append(item)
        total += n
    if group:
        yield group


class _CheckedBytes(io.BytesIO):
    """Bytes whose every read first calls ``check`` (which may raise to stop the decoder)."""

    def __init__(self, data: bytes, check: Callable[[], None]) -> None:
        super().__init__(data)
        self.check = check

    def read(self, size: int | None = -1) -> bytes:
        self.check()
        return super().read(size)


def _reader(data: bytes, check: Callable[[], None] | None) -> io.BytesIO:
    return io.BytesIO(data) if check is None else _CheckedBytes(data, check)


def jpeg_scans(fp: BinaryIO, start: int, stop: int) -> int:
    """Scans (SOS markers) in a JPEG whose first SOS marker ends at offset ``start``: that one and
    those up to the first EOI, counted without decoding (neither marker can occur in entropy-coded
    data) and read 1 MiB at a time; counting ends once over ``stop``."""
    fp.seek(start)
    scans, tail = 1, b""
    while scans <= stop and (chunk := fp.read(1 << 20)):
        block = tail + chunk
        end = block.find(b"\xff\xd9")
        scans += block.count(b"\xff\xda", 0, len(block) if end < 0 else end)
        if end >= 0:
            break
        tail = block[-1:]
    return scans


def _check_cost(im: Image.Image, name: str | Path, max_pixels: int, max_scans: int) -> None:
    """Refuse an opened image over ``max_pixels``, or a JPEG with more than ``max_scans`` scans."""
    if im.width * im.height > max_pixels:
        raise ImageError(name, f"{im.width}x{im.height} pixels is over the limit of {max_pixels:,}", "too_many_pixels")
    if im.format in ("JPEG", "MPO"):  # Pillow's header parser stops right after the first SOS marker
        position = im.fp.tell()
        if (scans := jpeg_scans(im.fp, position, max_scans)) > max_scans:
            raise ImageError(name, f"over {max_scans} scans ({scans:,} counted): each is a pass over the "
                                   "image, encoders write at most 24", "too_many_scans")
        im.fp.seek(position)


def _signature(source: Path | io.BytesIO, formats: tuple[str, ...]) -> str | None:
    """The first of ``formats`` whose signature the file starts with (Pillow's own checks), if any."""
    if isinstance(source, Path):
        with source.open("rb") as f:
            prefix = f.read(16)
    else:
        prefix = source.getvalue()[:16]
    return next((f for f in formats if f in Image.OPEN and Image.OPEN[f][1](prefix) is True), None)


def _decode(source: Path | io.BytesIO, name: str | Path, max_pixels: int, formats: tuple[str, ...] | None,
            max_scans: int) -> np.ndarray:
    try:
        with Image.open(source, formats=formats) as im:
            _check_cost(im, name, max_pixels, max_scans)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                return upright_rgb(im)
    except ImageError:
        raise
    except UnidentifiedImageError:
        if fmt := _signature(source, formats or WEB_FORMATS):  # a known signature that Pillow could not open
            raise ImageError(name, f"unreadable {fmt} (broken header)") from None
        what = "a format Pillow cannot read" if formats is None else f"not one of {', '.join(formats)}"
        raise ImageError(name, f"not an image file ({what})", "not_an_image") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(name, f"refused as a decompression bomb ({exc})", "too_many_pixels") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(name, f"unreadable or truncated image ({exc})") from None


def as_rgb(image: str | Path | np.ndarray | Image.Image, color: str = "rgb") -> np.ndarray:
    """Any accepted input as RGB uint8 (H, W, 3): a path, a PIL image, or a numpy array that is grey
    (H, W), or (H, W, 3|4) in ``color`` order ("rgb" or "bgr", as OpenCV gives)."""
    if isinstance(image, (str, Path)):
        return read_image(image)
    if isinstance(image, Image.Image):
        return to_rgb(ImageOps.exif_transpose(image))
    a = np.asarray(image)
    if a.dtype != np.uint8:
        if a.dtype == np.uint16:
            a = (a / 257.0).round().astype(np.uint8)
        elif np.issubdtype(a.dtype, np.floating) and a.size and a.max() <= 1.0:
            a = (a * 255).round().clip(0, 255).astype(np.uint8)
        else:
            a = np.clip(a, 0, 255).astype(np.uint8)
    if a.ndim == 2:
        return np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise ValueError(f"an image array must be (H, W), (H, W, 3) or (H, W, 4), got {a.shape}")
    if a.shape[2] == 1:
        return np.repeat(a, 3, axis=2)
    if color not in ("rgb", "bgr"):
        raise ValueError(f"color must be 'rgb' or 'bgr', not {color!r}")
    a = a[..., :3]
    return np.ascontiguousarray(a[..., ::-1] if color == "bgr" else a)
