"""Reading photos safely: every mode to RGB, transparency, EXIF rotation, bad files, arrays."""

import numpy as np
import pytest
from PIL import Image

from ferkit.inference import ImageError, as_rgb, read_image


def _rgb(h=40, w=60):
    a = np.zeros((h, w, 3), np.uint8)
    a[..., 0], a[:10, :, 1] = 200, 255
    return a


def test_image_modes_all_become_rgb(tmp_path):
    base = _rgb()
    Image.fromarray(base).save(tmp_path / "rgb.png")
    Image.fromarray(base).convert("RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(base).convert("CMYK").save(tmp_path / "cmyk.jpg")
    Image.fromarray(base).convert("P").save(tmp_path / "palette.png")
    Image.fromarray(base).convert("L").save(tmp_path / "grey.png")
    Image.fromarray((np.arange(40 * 60, dtype=np.uint16).reshape(40, 60) * 27)).save(tmp_path / "grey16.png")
    for name in ("rgb.png", "rgba.png", "cmyk.jpg", "palette.png", "grey.png", "grey16.png"):
        a = read_image(tmp_path / name)
        assert a.dtype == np.uint8 and a.shape == (40, 60, 3), name
    assert np.array_equal(read_image(tmp_path / "rgb.png"), base)
    assert np.abs(read_image(tmp_path / "cmyk.jpg").astype(int) - base).max() < 40
    sixteen = read_image(tmp_path / "grey16.png")[..., 0]
    assert sixteen[0, 0] == 0 and sixteen.max() > 240  # scaled from 16 bits, not clipped


def test_transparent_pixels_become_white(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "clear.png")
    assert (read_image(tmp_path / "clear.png") == 255).all()


def test_exif_rotation_is_applied(tmp_path):
    im = Image.fromarray(_rgb(40, 60))
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    im.save(tmp_path / "rotated.jpg", exif=exif)
    assert read_image(tmp_path / "rotated.jpg").shape == (60, 40, 3)


@pytest.mark.parametrize("case,message", [
    ("empty", "empty file"), ("text", "not an image"), ("truncated", "truncated"), ("missing", "no such file"),
    ("huge", "over the limit"),
])
def test_bad_files_give_a_clear_error(tmp_path, case, message):
    path = tmp_path / f"{case}.jpg"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "text":
        path.write_text("this is not a photo\n")
    elif case == "truncated":
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(path)
        path.write_bytes(path.read_bytes()[:3000])
    elif case == "huge":
        Image.fromarray(_rgb()).save(path)
    with pytest.raises(ImageError, match=message) as err:
        read_image(path, max_pixels=1000 if case == "huge" else 50_000_000)
    assert str(path) in str(err.value)


def test_arrays_in_either_colour_order():
    rgb = _rgb()
    assert np.array_equal(as_rgb(rgb), rgb)
    assert np.array_equal(as_rgb(rgb[..., ::-1], color="bgr"), rgb)
    assert as_rgb(rgb[..., 0]).shape == (40, 60, 3)
    assert np.array_equal(as_rgb(Image.fromarray(rgb)), rgb)
    with pytest.raises(ValueError, match=r"must be \(H, W\).*got \(4, 4, 2\)"):
        as_rgb(np.zeros((4, 4, 2), np.uint8))
