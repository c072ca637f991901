"""Training images from folders are read as photos are: one suffix list, any mode, upright per EXIF."""

import numpy as np
from PIL import Image

from ferkit.data import load_dataset
from ferkit.data.folders import load_face_image
from ferkit.data.images import IMAGE_SUFFIXES
from ferkit.data.labels import FER2013_CLASSES
from ferkit.inference import images as photo_images
from ferkit.inference import read_image


def _half_white(h=48, w=64):
    a = np.zeros((h, w), np.uint8)
    a[:, : w // 2] = 255  # left half white
    return a


def test_one_list_of_image_suffixes():
    assert photo_images.IMAGE_SUFFIXES is IMAGE_SUFFIXES and {".png", ".jpg", ".ppm"} <= IMAGE_SUFFIXES


def test_a_face_image_is_turned_upright_per_exif(tmp_path):
    im = Image.fromarray(_half_white())
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to view": the white half ends up on top
    im.save(tmp_path / "rotated.png", exif=exif)
    face = load_face_image(tmp_path / "rotated.png")
    assert face.shape == (48, 48) and face[:20].mean() > 250 and face[-20:].mean() < 5
    upright = read_image(tmp_path / "rotated.png")
    assert upright.shape == (64, 48, 3) and upright[:20].mean() > 250


def test_face_images_of_any_mode_match_the_photo_reader(tmp_path):
    base = np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8)
    Image.fromarray(base).save(tmp_path / "grey.png")
    Image.fromarray(base).convert("RGB").save(tmp_path / "rgb.ppm")
    Image.fromarray(base.astype(np.uint16) * 257).save(tmp_path / "grey16.png")
    rgba = np.zeros((48, 48, 4), np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "clear.png")
    assert np.array_equal(load_face_image(tmp_path / "grey.png"), base)
    assert np.array_equal(load_face_image(tmp_path / "rgb.ppm"), base)
    assert np.abs(load_face_image(tmp_path / "grey16.png").astype(int) - base).max() <= 1  # scaled, not clipped
    assert (load_face_image(tmp_path / "clear.png") == 255).all()  # transparency on white, as for photos


def test_a_folder_tree_reads_every_suffix_of_the_list(tmp_path):
    for split in ("train", "test"):
        for c, name in enumerate(FER2013_CLASSES):
            folder = tmp_path / split / name.lower()
            folder.mkdir(parents=True)
            for i, suffix in enumerate((".png", ".ppm", ".jpg")):
                Image.fromarray(np.full((48, 48), 10 * c + i, np.uint8)).convert("RGB").save(folder / f"{i}{suffix}")
    ds = load_dataset(tmp_path, val_fraction=0.34)
    assert len(ds.split("test")) == 21 and len(ds.split("train")) + len(ds.split("val")) == 21
