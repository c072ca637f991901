"""Read photos safely: every mode PIL opens (16-bit, RGBA, CMYK, palette, grey), EXIF rotation
applied, a pixel limit against decompression bombs, and one clear error per bad file."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import FerkitError

MAX_PIXELS = 50_000_000  # larger images are refused (decompression-bomb guard)
WEB_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")  # what uploads may be
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".pgm", ".ppm"}


class ImageError(FerkitError, ValueError):
    """A file that is not a usable image; the message names the file and the reason, ``code`` says
    which kind of problem it is (``missing``, ``empty``, ``not_an_image``, ``too_many_pixels``,
    ``corrupt``)."""

    def __init__(self, path: str | Path, reason: str, code: str = "corrupt") -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason, self.code = str(path), reason, code


def _to_rgb(im: Image.Image) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if a.max() > 255 else 255.0
        grey = np.clip(a * (255.0 / top), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if im.mode == "F":
        grey = np.clip(np.asarray(im, dtype=np.float64), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    return np.asarray(im.convert("RGB"))


def read_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """An RGB uint8 (H, W, 3) array, upright per EXIF. Raises :class:`ImageError`."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(path, "no such file", "missing")
    if path.stat().st_size == 0:
        raise ImageError(path, "empty file (0 bytes)", "empty")
    return _decode(path, path, max_pixels, None)


def decode_image(data: bytes, name: str = "upload", max_pixels: int = MAX_PIXELS,
                 formats: tuple[str, ...] | None = WEB_FORMATS) -> np.ndarray:
    """``read_image`` for bytes in memory (an upload). The format is sniffed from the content, never
    taken from a file name or content type; only ``formats`` are accepted (None: every format Pillow reads)."""
    if not data:
        raise ImageError(name, "empty file (0 bytes)", "empty")
    return _decode(io.BytesIO(data), name, max_pixels, formats)


def _decode(source: Path | io.BytesIO, name: str | Path, max_pixels: int, formats: tuple[str, ...] | None) -> np.ndarray:
    try:
        with Image.open(source, formats=formats) as im:
            if im.width * im.height > max_pixels:
                raise ImageError(name, f"{im.width}x{im.height} pixels is over the limit of {max_pixels:,}",
                                 "too_many_pixels")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                im.load()
                im = ImageOps.exif_transpose(im)
            return _to_rgb(im)
    except ImageError:
        raise
    except UnidentifiedImageError:
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
        return _to_rgb(ImageOps.exif_transpose(image))
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
