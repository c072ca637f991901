"""The data sets the seeds use (issue 17 part 4): KDEF's layout and subject split, class folders named as the seeds
name them, Kaggle's train.csv and icml_face_data.csv, photos whose faces are found and cropped (and cached), each
with its bad input; and one ``ferkit train`` run on every new layout. Every fixture is generated here."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import ferkit.data.photos as photos_module
from conftest import fer_image, pixels_text
from ferkit.cli import run
from ferkit.core.detect import FaceCropper
from ferkit.data import FER2013_CLASSES, load_dataset
from ferkit.data.classnames import parse_class_map
from ferkit.data.errors import DataError
from ferkit.data.kdef import kdef_root, list_kdef, parse_angles
from ferkit.errors import ConfigError
from ferkit.training.config import TrainConfig

ASTRONAUT = Image.open(__import__("ferkit.demo", fromlist=["demo_photo"]).demo_photo()).convert("RGB")
KDEF_CODES = {"AF": "Fear", "AN": "Angry", "DI": "Disgust", "HA": "Happy", "NE": "Neutral", "SA": "Sad",
              "SU": "Surprise"}
ACTORS = ("F01", "F02", "M01", "M02", "M03")


def kdef_photo(seed: int) -> Image.Image:
    """A 562x762 KDEF-sized shot: the package's astronaut photo (one face) at a seeded size and place."""
    rng = np.random.default_rng(seed)
    side = int(rng.integers(240, 330))
    canvas = Image.new("RGB", (562, 762), tuple(int(v) for v in rng.integers(150, 230, 3)))
    face = ASTRONAUT.resize((side, side))
    canvas.paste(face.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if seed % 2 else face,
                 (int(rng.integers(0, 562 - side)), int(rng.integers(60, 762 - side - 60))))
    return canvas


def write_kdef(root, angles=("S", "HL")):
    """KDEF/<session gender id>/<name>.JPG for 5 actors x 2 sessions x 7 expressions x ``angles``."""
    for a, actor in enumerate(ACTORS):
        for session in "AB":
            folder = root / f"{session}{actor}"
            folder.mkdir(parents=True, exist_ok=True)
            for e, code in enumerate(KDEF_CODES):
                for angle in angles:
                    kdef_photo(a * 100 + e * 10 + len(angle) + (session == "B")).save(
                        folder / f"{session}{actor}{code}{angle}.JPG", quality=85)
    return root


@pytest.fixture(scope="module")
def kdef(tmp_path_factory):
    """A KDEF_and_AKDEF-style download: the actor folders sit in KDEF/; one straight shot holds no face."""
    root = write_kdef(tmp_path_factory.mktemp("kdef") / "KDEF_and_AKDEF" / "KDEF")
    Image.new("RGB", (562, 762), (120, 140, 160)).save(root / "BM03" / "BM03SAS.JPG")  # no face
    return root.parent


def subjects_of(listing, split):
    return {listing.subjects[i] for i in split.ids}


class CentreCropper:
    """A stand-in for FaceCropper: the image's centre as the face, None for a flat (faceless) image."""

    key, size = "centre", 48

    def __init__(self):
        self.calls = 0

    def __call__(self, rgb):
        self.calls += 1
        if rgb.std() < 1:
            return None
        grey = Image.fromarray(rgb).convert("L")
        w, h = grey.size
        return np.asarray(grey.crop((w // 4, h // 4, 3 * w // 4, 3 * h // 4)).resize((48, 48)))


# --- KDEF ----------------------------------------------------------------------------------------------------------

def test_kdef_names_angles_and_labels(kdef):
    root = kdef_root(kdef)
    assert root == kdef / "KDEF" and kdef_root(kdef.parent) is None
    straight = list_kdef(root)
    assert len(straight.files) == 5 * 2 * 7 and not straight.skipped
    for path, label, subject in zip(straight.files, straight.labels, straight.subjects):
        assert FER2013_CLASSES[label] == KDEF_CODES[path.stem[4:6]] and subject == path.stem[1:4]
        assert path.stem.endswith("S")
    assert len(list_kdef(root, ["s", "HL"]).files) == 140 == len(list_kdef(root, ["all"]).files)
    assert list_kdef(root, ["HL"]).files[0].name == "AF01AFHL.JPG"
    assert parse_angles(["all"]) == ("S", "HL", "HR", "FL", "FR")
    with pytest.raises(ConfigError, match="KDEF angle codes"):
        parse_angles(["S", "up"])
    with pytest.raises(DataError, match="no KDEF images with angle"):
        list_kdef(root, ["FR"])


def test_kdef_photos_are_cropped_split_by_subject_and_no_face_reported(kdef):
    ds = load_dataset(kdef, cropper=FaceCropper(), seed=1)
    listing = list_kdef(kdef_root(kdef))
    assert ds.classes == FER2013_CLASSES and set(ds.splits) == {"train", "val", "test"}
    seen = [subjects_of(listing, ds.split(name)) for name in ("train", "val", "test")]
    assert [len(s) for s in seen] == [3, 1, 1]  # 5 actors: 10% of them rounds up to one each for val and test
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
    for name, subjects in zip(("train", "val", "test"), seen):  # both sessions of an actor are in its split
        sessions = {listing.files[i].stem[:4] for i in ds.split(name).ids}
        assert sessions == {session + subject for session in "AB" for subject in subjects}
    assert ds.no_face == [str(kdef / "KDEF" / "BM03" / "BM03SAS.JPG")]
    assert ds.no_face_note.startswith("1 of 70 images had no face found and were left out: ")
    assert sum(len(s) for s in ds.splits.values()) == 69
    crops = ds.split("train").images
    assert crops.shape[1:] == (48, 48) and crops.dtype == np.uint8 and crops.std() > 20
    # seeded: the same seed gives the same split, another seed another one
    again = load_dataset(kdef, cropper=FaceCropper(), seed=1)
    assert np.array_equal(again.split("test").ids, ds.split("test").ids)
    other = [subjects_of(listing, load_dataset(kdef, cropper=FaceCropper(), seed=s).split("test")) for s in range(6)]
    assert len({frozenset(o) for o in other}) > 1


def test_kdef_split_by_image_is_stratified(kdef):
    ds = load_dataset(kdef, cropper=FaceCropper(), split_by="image", val_fraction=0.2, test_fraction=0.2)
    assert len(ds.split("val")) == len(ds.split("test")) == 14
    assert set(ds.split("test").labels) == set(range(7))  # every class in the test split


def test_photos_need_a_cropper_of_their_size(kdef):
    with pytest.raises(ConfigError, match="is a photo.*needs a 48px face cropper"):
        load_dataset(kdef, cache=False)
    with pytest.raises(ConfigError, match="needs a 48px face cropper"):
        load_dataset(kdef, cache=False, cropper=FaceCropper(size=64))


def test_kdef_bad_names_and_files(tmp_path):
    root = write_kdef(tmp_path / "KDEF", angles=("S",))
    bad_name = root / "AF01" / "AF01XXS.JPG"
    kdef_photo(0).save(bad_name)
    with pytest.raises(DataError, match="not a KDEF file name") as exc:
        load_dataset(root, cropper=CentreCropper())
    assert str(exc.value).startswith(f"{bad_name}: ") and "--skip-bad-rows" in str(exc.value)
    bad_name.rename(root / "AF02" / "AF01ANS.JPG")  # in another actor's folder
    with pytest.raises(DataError, match="the name says actor AF01, but it is in folder AF02"):
        load_dataset(root, cropper=CentreCropper())
    (root / "AF02" / "AF01ANS.JPG").unlink()
    broken = root / "BM02" / "BM02HAS.JPG"
    broken.write_bytes(b"\xff\xd8 not really a JPEG")
    with pytest.raises(DataError, match="unreadable image") as exc:
        load_dataset(root, cropper=CentreCropper(), faces="detect")
    assert str(exc.value).startswith(f"{broken}: ")
    kdef_photo(1).save(root / "AM01" / "AM01NES_copy.JPG")
    ds = load_dataset(root, cropper=CentreCropper(), faces="detect", skip_bad_rows=True)
    assert len(ds.skipped) == 2 and "AM01NES_copy.JPG: not a KDEF file name" in ds.skipped[0]
    assert "BM02HAS.JPG: unreadable image" in ds.skipped[1]
    assert sum(len(s) for s in ds.splits.values()) == 69 and ds.skipped_note.startswith("skipped 2 bad rows or files")


# --- Photos: when faces are found, and the crop cache ------------------------------------------------------------

def test_auto_finds_faces_only_in_large_images_and_crops_are_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("FERKIT_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "faces"
    for c, cls in enumerate(("angry", "happy")):
        (root / cls).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(fer_image(10 * c + i)).save(root / cls / f"crop{i}.png")  # 48x48: a face crop
        for i in range(4):
            kdef_photo(10 * c + i).resize((240, 326)).save(root / cls / f"photo{i}.jpg")  # shorter side 5 x 48: a photo
        Image.new("RGB", (300, 300), (90, 90, 90)).save(root / cls / "blank.jpg")  # a photo without a face
    cropper = CentreCropper()
    ds = load_dataset(root, cropper=cropper, val_fraction=0.25, test_fraction=0.25)
    assert cropper.calls == 10 and len(ds.no_face) == 2 and sum(len(s) for s in ds.splits.values()) == 20
    assert ds.no_face_note == (f"2 of 22 images had no face found and were left out: {root / 'angry' / 'blank.jpg'}, "
                               f"{root / 'happy' / 'blank.jpg'}")
    assert len(list((tmp_path / "cache" / "faces").glob("*.npy"))) == 10  # one per photo, 'no face' included
    kdef_photo(99).resize((300, 400)).save(root / "happy" / "photo9.jpg")  # the listing changes: the split is reread
    again = CentreCropper()
    ds2 = load_dataset(root, cropper=again, val_fraction=0.25, test_fraction=0.25)
    assert again.calls == 1 and len(ds2.no_face) == 2  # only the new photo is searched: the rest come from the cache
    assert load_dataset(root, cropper=CentreCropper(), faces="cropped", val_fraction=0.25,
                        test_fraction=0.25).no_face == []  # every image taken as a crop
    forced = CentreCropper()
    load_dataset(root, cropper=forced, faces="detect", cache=False, val_fraction=0.25, test_fraction=0.25)
    assert forced.calls == 12 + 11  # every image searched, nothing cached
    with pytest.raises(ConfigError, match="faces must be one of"):
        load_dataset(root, faces="sometimes")


def test_damaged_crop_cache_entry_is_redone(tmp_path, monkeypatch):
    monkeypatch.setenv("FERKIT_CACHE_DIR", str(tmp_path / "cache"))
    photo = tmp_path / "p.jpg"
    kdef_photo(3).save(photo)
    first = photos_module.read_faces([photo], 48, "detect", CentreCropper())
    entry = next((tmp_path / "cache" / "faces").glob("*.npy"))
    entry.write_bytes(b"garbage")
    cropper = CentreCropper()
    second = photos_module.read_faces([photo], 48, "detect", cropper)
    assert cropper.calls == 1 and np.array_equal(first.images, second.images)


# --- Class folders named as the seeds name them ---------------------------------------------------------------------

def write_classes(root, names, per_class=4):
    for c, name in enumerate(names):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(fer_image(100 * c + i)).save(root / name / f"{i}.png")
    return root


SEED_NAMES = ("Anger", "DISGUSTED", "fearful", "happiness", "Sad", "surprised", "neutral")


def test_class_synonyms_any_case_and_contempt(tmp_path):
    write_classes(tmp_path / "t" / "train", SEED_NAMES)
    write_classes(tmp_path / "t" / "validation", ("angry", "disgust", "Afraid", "HAPPY", "sadness", "surprise",
                                                  "Neutral", "contempt"), per_class=2)
    ds = load_dataset(tmp_path / "t")
    assert ds.classes == FER2013_CLASSES + ("Contempt",)
    assert np.bincount(ds.split("train").labels).tolist() == [4] * 7
    assert np.bincount(ds.split("val").labels).tolist() == [2] * 8
    # the reader's order: folders sorted by name, each holding its own class
    first = {name.lower(): ds.split("train").labels[4 * i] for i, name in enumerate(sorted(SEED_NAMES))}
    assert first == {"anger": 0, "disgusted": 1, "fearful": 2, "happiness": 3, "neutral": 6, "sad": 4, "surprised": 5}


def test_unknown_class_folder_and_the_classes_map(tmp_path):
    root = write_classes(tmp_path / "t" / "train", ("angry", "joy", "Misc", "sad"))
    write_classes(tmp_path / "t" / "test", ("angry", "joy", "sad"), per_class=2)
    with pytest.raises(DataError, match="unknown class folder 'Misc'; accepted names") as exc:
        load_dataset(tmp_path / "t", classes=["joy=happy"])
    assert str(exc.value).startswith(str(root / "Misc")) and "fearful" in str(exc.value)
    assert "--classes Misc=CLASS" in str(exc.value)
    ds = load_dataset(tmp_path / "t", classes=["JOY=Happiness", "misc=skip"], val_fraction=0.25)
    assert ds.classes == FER2013_CLASSES and sorted(set(ds.split("test").labels)) == [0, 3, 4]
    assert len(ds.split("train")) + len(ds.split("val")) == 12  # Misc left out
    for bad, message in (("joy", "takes FOLDER=CLASS"), ("joy=glee", "'glee' is no class"), ("=happy", "FOLDER=CLASS")):
        with pytest.raises(ConfigError, match=message):
            parse_class_map([bad])


def test_folder_of_class_folders_is_carved_stratified(tmp_path):
    root = write_classes(tmp_path / "ck", ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise"),
                         per_class=10)
    ds = load_dataset(root, val_fraction=0.2, test_fraction=0.2, seed=4)
    assert ds.classes == FER2013_CLASSES + ("Contempt",)
    assert [len(ds.split(n)) for n in ("train", "val", "test")] == [42, 14, 14]
    assert np.bincount(ds.split("test").labels, minlength=8).tolist() == [2, 2, 2, 2, 2, 2, 0, 2]
    ids = np.concatenate([ds.split(n).ids for n in ("train", "val", "test")])
    assert sorted(ids.tolist()) == list(range(70))  # each image in exactly one split
    assert load_dataset(root, test_fraction=0.0).splits.keys() == {"train", "val"}
    with pytest.raises(ConfigError, match="--split-by subject needs data that names its subjects"):
        load_dataset(root, split_by="subject")
    with pytest.raises(ConfigError, match="their sum below 1"):
        load_dataset(root, val_fraction=0.5, test_fraction=0.5)


# --- Kaggle's train.csv and icml_face_data.csv ---------------------------------------------------------------------

def train_csv_text(n_per_class=10, bad_line=None):
    lines = ["emotion,pixels"] + [f"{i % 7},{pixels_text(fer_image(i))}" for i in range(7 * n_per_class)]
    if bad_line is not None:
        lines[bad_line - 1] = "3,1 2 3"
    return "\n".join(lines) + "\n"


def test_train_csv_without_usage_gets_seeded_stratified_splits(tmp_path):
    path = tmp_path / "export.csv"  # known by its header, not its name
    path.write_text(train_csv_text())
    ds = load_dataset(path, val_fraction=0.2, test_fraction=0.1, seed=2)
    assert set(ds.splits) == {"train", "val", "test"} and ds.roles["test"] == "test"
    assert [len(ds.split(n)) for n in ("train", "val", "test")] == [49, 14, 7]
    assert np.bincount(ds.split("test").labels).tolist() == [1] * 7
    row = int(ds.split("val").ids[0])
    assert np.array_equal(ds.split("val").images[0], fer_image(row)) and ds.split("val").labels[0] == row % 7
    assert np.array_equal(load_dataset(path, val_fraction=0.2, test_fraction=0.1, seed=2).split("test").ids,
                          ds.split("test").ids)
    with pytest.raises(DataError, match="FER\\+ labels need fer2013.csv with its Usage column"):
        load_dataset(path, labels="ferplus")
    with pytest.raises(ConfigError, match="--split-by subject"):
        load_dataset(path, split_by="subject")


def test_train_csv_bad_row_names_file_and_line(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text(train_csv_text(bad_line=5))
    with pytest.raises(DataError, match="expected 2304 pixel values, found 3") as exc:
        load_dataset(path)
    assert str(exc.value).startswith(f"{path}:5: ")
    ds = load_dataset(path, skip_bad_rows=True)
    assert ds.skipped == [f"{path}:5: expected 2304 pixel values, found 3"]
    assert sum(len(s) for s in ds.splits.values()) == 69


def test_icml_face_data_header_with_spaces(tmp_path):
    usages = ["Training"] * 14 + ["PublicTest"] * 7 + ["PrivateTest"] * 7
    lines = ["emotion, Usage, pixels"] + [f"{i % 7}, {u}, {pixels_text(fer_image(i))}" for i, u in enumerate(usages)]
    path = tmp_path / "icml_face_data.csv"
    path.write_text("\n".join(lines) + "\n")
    ds = load_dataset(path)
    assert [len(ds.split(n)) for n in ("train", "val", "test")] == [14, 7, 7]
    assert ds.roles["test"] == "PrivateTest" and np.array_equal(ds.split("test").images[0], fer_image(21))


# --- The settings, and one training run per layout ------------------------------------------------------------------

def test_train_config_checks_and_round_trips_the_data_settings():
    cfg = TrainConfig(model="resnet_s", data="KDEF", split_by="subject", test_fraction=0.2, angles=["S", "HL"],
                      classes=["joy=happy"], faces="detect")
    assert cfg.to_argv()[4:] == ["--test-fraction", "0.2", "--split-by", "subject", "--classes", "joy=happy",
                                 "--angles", "S", "HL", "--faces", "detect"]
    for bad, message in (({"split_by": "actor"}, "split_by must be one of"), ({"faces": "no"}, "faces must be"),
                         ({"test_fraction": 0.95}, "their sum below 1"), ({"angles": ["X"]}, "KDEF angle codes"),
                         ({"classes": ["joy"]}, "FOLDER=CLASS")):
        with pytest.raises(ConfigError, match=message):
            TrainConfig(model="resnet_s", data="x", **bad)


@pytest.fixture(scope="module")
def layouts(tmp_path_factory, kdef):
    root = tmp_path_factory.mktemp("layouts")
    (root / "train.csv").write_text(train_csv_text())
    icml = ["emotion, Usage, pixels"] + [f"{i % 7}, {u}, {pixels_text(fer_image(i))}"
                                         for i, u in enumerate(["Training"] * 21 + ["PublicTest", "PrivateTest"] * 7)]
    (root / "icml_face_data.csv").write_text("\n".join(icml) + "\n")
    write_classes(root / "seed003" / "train", SEED_NAMES[:-1] + ("joy",), per_class=10)
    write_classes(root / "seed003" / "test", SEED_NAMES, per_class=1)
    write_classes(root / "ck", ("anger", "disgust", "fear", "happy", "sadness", "surprise", "contempt"), per_class=10)
    return {"kdef": (kdef, ["--split-by", "subject"]), "train.csv": (root / "train.csv", ["--test-fraction", "0.2"]),
            "icml": (root / "icml_face_data.csv", []), "folders": (root / "seed003", ["--classes", "joy=neutral"]),
            "class-pool": (root / "ck", ["--val-fraction", "0.2", "--test-fraction", "0.2"])}


@pytest.mark.parametrize("layout", ["kdef", "train.csv", "icml", "folders", "class-pool"])
def test_ferkit_train_runs_on_each_layout(layouts, layout, tmp_path, capsys):
    data, extra = layouts[layout]
    assert run(["train", "--model", "resnet_s", "--data", str(data), "--project", str(tmp_path), "--name", "r",
                "--epochs", "1", "--limit", "24", "--batch-size", "8", "--threads", "1", *extra]) == 0
    out = capsys.readouterr()
    assert "best val accuracy" in out.out
    if layout == "kdef":
        assert "1 of 70 images had no face found and were left out" in out.out + out.err
    assert run(["evaluate", str(tmp_path / "r"), "--data", str(data), "--split", "test"]) == 0  # split as the run did
    assert "accuracy" in capsys.readouterr().out


def test_photos_are_cropped_at_the_models_input_size(kdef, tmp_path):
    """A 64 px model trains on faces cropped at 64 px from the photos (not 48 px crops blown up), and its
    checkpoint reads its evaluation data the same way."""
    from ferkit.core.checkpoint import load_checkpoint
    from ferkit.training.trainer import Trainer

    cfg = TrainConfig(model="resnet_s", data=str(kdef), input_size=64, epochs=1, batch_size=8, threads=1,
                      project=str(tmp_path), name="r64")
    trainer = Trainer(cfg, progress=False)
    assert trainer.train_split.images.shape[1:] == (64, 64)
    direct = load_dataset(kdef, size=64, cropper=FaceCropper(size=64))
    assert np.array_equal(trainer.data.split("test").images, direct.split("test").images)
    run_dir = trainer.fit().run_dir
    evaluated = load_checkpoint(run_dir / "best.pt").dataset()
    assert evaluated.split("test").images.shape[1:] == (64, 64)
    assert np.array_equal(evaluated.split("test").images, direct.split("test").images)
