"""Image files as arrays, one way for training folders and photos alike: the file suffixes ferkit
reads, and any mode Pillow opens (16-bit, float, RGBA, CMYK, palette, grey) as upright RGB."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".pgm", ".ppm"}


def to_rgb(im: Image.Image) -> np.ndarray:
    """RGB uint8 (H, W, 3): 16-bit and float grey scaled to 0..255, transparency on white."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if a.max() > 255 else 255.0
        grey = np.clip(a * (255.0 / top), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if im.mode == "F":
        a = np.nan_to_num(np.asarray(im, dtype=np.float32))
        top = 1.0 if a.size and a.max() <= 1.0 else 255.0  # floats in 0..1 (as scientific TIFFs have) are scaled
        grey = np.clip(a * np.float32(255.0 / top), 0, 255).round().astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    return np.asarray(im.convert("RGB"))


def upright_rgb(im: Image.Image) -> np.ndarray:
    """An opened image decoded, turned upright per its EXIF orientation (in place: no copy), as RGB."""
    im.load()
    ImageOps.exif_transpose(im, in_place=True)
    return to_rgb(im)
