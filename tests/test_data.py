"""The data layer: FER2013 readers (CSV, .csv.gz, tar.gz, image folders), clear errors on bad input,
the parse cache, FER+ labels, duplicate detection, augmentation, and the real FER2013 when present."""

import gzip
import os
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import fer_image, pixels_text, write_fer_csv, write_fer_tar
from ferkit.data import FER2013_CLASSES, FERPLUS_CLASSES, DataError, FERDataset, Split, load_dataset
from ferkit.data import dataset as dataset_module
from ferkit.data.augment import AugmentConfig, augment_batch, mixup
from ferkit.data.duplicates import deduplicated, find_duplicates, image_hashes
from ferkit.data.ferplus import majority_labels, read_ferplus_votes, soft_labels
from ferkit.data.synthetic import synthetic_dataset

ROLES = [("train", "Training"), ("val", "PublicTest"), ("test", "PrivateTest")]
CLASS_DIRS = [c.lower() for c in FER2013_CLASSES]  # angry, disgust, ... as in the Kaggle copies


def expected_split(rows, usage):
    idx = [i for i, r in enumerate(rows) if r[2] == usage]
    images = np.stack([rows[i][1] for i in idx]) if idx else np.empty((0, 48, 48), np.uint8)
    return idx, images, [int(rows[i][0]) for i in idx]


def assert_matches_rows(ds, rows):
    for role, name in ROLES:
        split = ds.split(role)
        assert split is ds.split(name) and split.name == name
        idx, images, labels = expected_split(rows, name)
        assert split.images.dtype == np.uint8 and split.images.shape == (len(idx), 48, 48)
        np.testing.assert_array_equal(split.images, images)
        assert split.labels.dtype == np.int64
        assert split.labels.tolist() == labels
        assert split.ids.tolist() == idx  # 0-based data-row index in the file


def same_dataset(a, b):
    assert a.classes == b.classes and a.roles == b.roles and a.skipped == b.skipped
    assert list(a.splits) == list(b.splits)
    for name in a.splits:
        for field in ("images", "labels", "ids"):
            np.testing.assert_array_equal(getattr(a.splits[name], field), getattr(b.splits[name], field))


# --- 1. Parsing every CSV format -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["fer2013.csv", "fer2013.csv.gz", "fer2013.tar.gz"])
def test_csv_formats_parse(tmp_path, fer_rows, name):
    path = tmp_path / name
    (write_fer_tar if name.endswith(".tar.gz") else write_fer_csv)(path, fer_rows)
    ds = load_dataset(path)
    assert ds.classes == FER2013_CLASSES and ds.num_classes == 7
    assert ds.source == str(path) and ds.skipped == []
    assert {k: len(v) for k, v in ds.splits.items()} == {"Training": 7, "PublicTest": 3, "PrivateTest": 2}
    assert ds.roles == {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
    assert_matches_rows(ds, fer_rows)


def test_csv_column_order_quotes_crlf_and_bom(tmp_path, fer_rows):
    """Columns found by name, quoted fields, CRLF line ends, a UTF-8 BOM and a trailing blank line."""
    lines = ["\ufeffUsage,pixels,emotion"] + [f'{u},"{pixels_text(im)}",{y}' for y, im, u in fer_rows] + [""]
    path = tmp_path / "reordered.csv"
    path.write_bytes("\r\n".join(lines).encode("utf-8"))
    assert_matches_rows(load_dataset(path), fer_rows)


def test_tar_without_csv_is_a_data_error(tmp_path):
    path = tmp_path / "fer2013.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(__file__, arcname="fer2013/README")
    with pytest.raises(DataError, match="archive holds no .csv file") as exc:
        load_dataset(path)
    assert str(path) in str(exc.value)


# --- 1b. The image-folder layout -------------------------------------------------------------------


def write_split_folder(root, split, per_class, ext="png", seed=0):
    """Write ``per_class`` random grey images per class under ``root/split/<class>/``; return the
    images and labels in the reader's order (class folders sorted by name, then files by name)."""
    images, labels = [], []
    for c, cls in sorted(enumerate(CLASS_DIRS), key=lambda t: t[1]):
        folder = root / split / cls
        folder.mkdir(parents=True)
        for i in range(per_class):
            im = fer_image(seed * 1000 + c * 100 + i)
            Image.fromarray(im, mode="L").save(folder / f"{i:03d}.{ext}")
            images.append(im)
            labels.append(c)
    return np.stack(images), np.asarray(labels)


@pytest.fixture
def folder_tree(tmp_path):
    root = tmp_path / "fer2013-images"
    train = write_split_folder(root, "train", 10, seed=1)
    test = write_split_folder(root, "test", 2, seed=2)
    return root, train, test


def test_image_folders_parse(folder_tree):
    root, (train_im, train_y), (test_im, test_y) = folder_tree
    ds = load_dataset(root, val_fraction=0.2, seed=0)
    assert ds.classes == FER2013_CLASSES and ds.skipped == [] and ds.source == str(root)
    tr, va, te = ds.split("train"), ds.split("val"), ds.split("test")
    assert (len(tr), len(va), len(te)) == (56, 14, 14)
    # the folders hold exactly what was written (PNG is lossless), with class labels from folder names
    np.testing.assert_array_equal(te.images, test_im)
    assert te.labels.tolist() == test_y.tolist()
    assert sorted(np.bincount(test_y).tolist()) == [2] * 7
    # train and val partition the train folder; ids point back into it
    assert sorted(tr.ids.tolist() + va.ids.tolist()) == list(range(70))
    for s in (tr, va):
        np.testing.assert_array_equal(s.images, train_im[s.ids])
        np.testing.assert_array_equal(s.labels, train_y[s.ids])
        assert s.images.dtype == np.uint8 and s.labels.dtype == np.int64
    # the label of the "neutral" folder is FER2013's Neutral (6), "angry" is 0
    assert set(train_y[:10].tolist()) == {0} and FER2013_CLASSES[train_y[-1]] == "Surprise"


def test_image_folder_val_split_is_stratified_and_seeded(folder_tree):
    root = folder_tree[0]
    a = load_dataset(root, val_fraction=0.2, seed=0)
    b = load_dataset(root, val_fraction=0.2, seed=0)
    c = load_dataset(root, val_fraction=0.2, seed=1)
    assert np.bincount(a.split("val").labels, minlength=7).tolist() == [2] * 7  # stratified
    assert np.bincount(a.split("train").labels, minlength=7).tolist() == [8] * 7
    assert a.split("val").ids.tolist() == b.split("val").ids.tolist()  # same seed, same split
    assert a.split("val").ids.tolist() != c.split("val").ids.tolist()  # another seed, another split
    assert np.bincount(c.split("val").labels, minlength=7).tolist() == [2] * 7


def test_image_folder_uses_val_folder(folder_tree):
    root, (train_im, train_y), _ = folder_tree
    val_im, val_y = write_split_folder(root, "val", 3, seed=3)
    ds = load_dataset(root, val_fraction=0.5, seed=0)
    assert len(ds.split("train")) == 70 and len(ds.split("val")) == 21
    np.testing.assert_array_equal(ds.split("train").images, train_im)
    np.testing.assert_array_equal(ds.split("val").images, val_im)
    assert ds.split("val").labels.tolist() == val_y.tolist()


def test_image_folder_without_test_has_no_test_split(tmp_path):
    write_split_folder(tmp_path, "train", 10)
    ds = load_dataset(tmp_path)
    assert len(ds.split("train")) + len(ds.split("val")) == 70
    with pytest.raises(DataError, match="'test'"):
        ds.split("test")


def test_image_folder_converts_rgb_and_resizes(tmp_path):
    for split in ("train", "test"):
        for cls in CLASS_DIRS:
            (tmp_path / split / cls).mkdir(parents=True)
    # RGB 64x64 of one colour -> 48x48 grey of its luma (ITU-R 601: .299 R + .587 G + .114 B)
    Image.new("RGB", (64, 64), (100, 150, 200)).save(tmp_path / "test" / "happy" / "rgb.png")
    # 96x96 grey, black left half and white right half -> 48x48 with the same halves
    halves = np.zeros((96, 96), np.uint8)
    halves[:, 48:] = 255
    Image.fromarray(halves, mode="L").save(tmp_path / "test" / "sad" / "halves.png")
    # a 48x48 grey JPEG: lossy, so close to but not equal to the original
    smooth = np.tile(np.linspace(40, 200, 48).astype(np.uint8), (48, 1))
    Image.fromarray(smooth, mode="L").save(tmp_path / "test" / "fear" / "smooth.jpg", quality=95)
    # an RGBA PNG and a palette GIF
    Image.new("RGBA", (48, 48), (10, 20, 30, 128)).save(tmp_path / "test" / "angry" / "rgba.png")
    Image.new("P", (30, 30), 0).save(tmp_path / "test" / "neutral" / "pal.gif")
    for i in range(10):  # train needs enough images per class for a stratified val split
        for c, cls in enumerate(CLASS_DIRS):
            Image.fromarray(fer_image(c * 10 + i), mode="L").save(tmp_path / "train" / cls / f"{i}.png")

    te = load_dataset(tmp_path).split("test")
    assert te.images.shape == (5, 48, 48) and te.images.dtype == np.uint8
    by_label = {FER2013_CLASSES[y]: im for y, im in zip(te.labels, te.images)}
    assert set(by_label) == {"Angry", "Fear", "Happy", "Sad", "Neutral"}
    luma = 0.299 * 100 + 0.587 * 150 + 0.114 * 200
    assert np.all(np.abs(by_label["Happy"].astype(float) - luma) <= 1)
    sad = by_label["Sad"]
    assert np.all(sad[:, :23] == 0) and np.all(sad[:, 25:] == 255)
    assert np.abs(by_label["Fear"].astype(int) - smooth).mean() < 3
    over_white = 255 - (255 - np.array([10, 20, 30])) * 128 / 255  # half transparent: on white, as photos are read
    assert np.all(np.abs(by_label["Angry"].astype(float) - over_white @ [0.299, 0.587, 0.114]) <= 1)
    assert by_label["Neutral"].shape == (48, 48)


# --- 2. Bad input: a DataError naming the file and the line ----------------------------------------

GOOD = [(3, fer_image(100), "Training"), (0, fer_image(101), "PublicTest"), (6, fer_image(102), "PrivateTest")]


def bad_pixels(index, value):
    values = [str(v) for v in fer_image(7).ravel()]
    values[index] = value
    return " ".join(values)


BAD_ROWS = [
    pytest.param((3, "1 2 3", "Training"), "expected 2304 pixel values, found 3", id="too-few-pixels"),
    pytest.param((3, pixels_text(fer_image(1)) + " 9", "Training"), "expected 2304 pixel values, found 2305",
                 id="too-many-pixels"),
    pytest.param((3, "", "Training"), "expected 2304 pixel values, found 0", id="empty-pixels"),
    pytest.param((3, bad_pixels(17, "256"), "Training"), "pixel value outside 0..255", id="pixel-256"),
    pytest.param((3, bad_pixels(0, "-1"), "Training"), "pixel value outside 0..255", id="pixel-negative"),
    pytest.param((3, bad_pixels(5, "70000"), "Training"), "pixel value outside 0..255", id="pixel-70000"),
    pytest.param((7, fer_image(1), "Training"), "label '7' is not in 0..6", id="label-7"),
    pytest.param((-1, fer_image(1), "Training"), "label '-1' is not in 0..6", id="label-negative"),
    pytest.param(("x", fer_image(1), "Training"), "label 'x' is not in 0..6", id="label-x"),
    pytest.param(("", fer_image(1), "Training"), "label '' is not in 0..6", id="label-empty"),
    pytest.param(f"3,{pixels_text(fer_image(1))}", "expected 3 fields, found 2", id="two-fields"),
    pytest.param(f"3,{pixels_text(fer_image(1))},Training,extra", "expected 3 fields, found 4", id="four-fields"),
    pytest.param((3, bad_pixels(9, "abc"), "Training"), "non-numeric pixel value 'abc'", id="pixel-non-numeric"),
    pytest.param((3, bad_pixels(9, "12.5"), "Training"), "non-numeric pixel value '12.5'", id="pixel-decimal"),
    pytest.param((3, bad_pixels(9, "65536"), "Training"), "pixel value outside 0..255", id="pixel-65536"),
]


@pytest.mark.parametrize("bad, message", BAD_ROWS)
@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_bad_row_names_file_and_line(tmp_path, bad, message, suffix):
    path = write_fer_csv(tmp_path / f"bad{suffix}", [GOOD[0], GOOD[1], bad, GOOD[2]])  # bad row on line 4
    with pytest.raises(DataError) as exc:
        load_dataset(path)
    assert str(exc.value).startswith(f"{path}:4: {message}")
    assert exc.value.source == str(path) and exc.value.line == 4


def test_bad_row_in_tar_names_the_archive_and_line(tmp_path):
    path = write_fer_tar(tmp_path / "fer2013.tar.gz", [GOOD[0], (9, fer_image(1), "Training")])
    with pytest.raises(DataError, match=r"label '9' is not in 0\.\.6") as exc:
        load_dataset(path)
    assert str(exc.value).startswith(f"{path}:3: ")


def test_blank_lines_still_count_for_line_numbers(tmp_path):
    path = tmp_path / "blank.csv"
    path.write_text(f"emotion,pixels,Usage\n\n3,{pixels_text(fer_image(0))},Training\n\n8,1 2,Training\n")
    with pytest.raises(DataError) as exc:
        load_dataset(path)
    assert str(exc.value).startswith(f"{path}:5: ")


@pytest.mark.parametrize("header, missing", [
    ("emotion,pixel,Usage", "pixels"),
    ("pixels,Usage", "emotion"),
    ("label,image,usage", "emotion, pixels"),
])
def test_missing_column(tmp_path, header, missing):
    path = write_fer_csv(tmp_path / "cols.csv", [(3, fer_image(0), "Training")], header=header)
    with pytest.raises(DataError) as exc:
        load_dataset(path)
    assert str(exc.value).startswith(f"{path}:1: missing column(s) {missing}")
    assert exc.value.line == 1


def test_unknown_usage_value(tmp_path):
    rows = [GOOD[0], GOOD[1], (2, fer_image(5), "Validation"), GOOD[2]]
    path = write_fer_csv(tmp_path / "usage.csv", rows)
    with pytest.raises(DataError) as exc:
        load_dataset(path)
    assert str(exc.value).startswith(f"{path}:4: unknown Usage value 'Validation'")


def test_unknown_usage_is_skipped_with_skip_bad_rows(tmp_path):
    rows = [GOOD[0], GOOD[1], (2, fer_image(5), "Validation"), GOOD[2]]
    ds = load_dataset(write_fer_csv(tmp_path / "usage.csv", rows), skip_bad_rows=True)
    assert len(ds.skipped) == 1 and "unknown Usage value 'Validation'" in ds.skipped[0]


def test_blank_lines_do_not_shift_the_ferplus_join(tmp_path):
    rows = [GOOD[0], "", GOOD[1], GOOD[2]]
    ds = load_dataset(write_fer_csv(tmp_path / "blank.csv", rows), cache=False)
    assert sorted(np.concatenate([s.ids for s in ds.splits.values()]).tolist()) == [0, 1, 2]


def test_tiny_folder_without_val_is_a_data_error(tmp_path):
    for split in ("train", "test"):
        for c, cls in enumerate(CLASS_DIRS):
            (tmp_path / split / cls).mkdir(parents=True)
            Image.fromarray(fer_image(c), mode="L").save(tmp_path / split / cls / "0.png")
    with pytest.raises(DataError, match="stratified validation split"):
        load_dataset(tmp_path)


def test_empty_split_loads_but_cannot_be_used(tmp_path, fer_rows):
    rows = [r for r in fer_rows if r[2] != "PrivateTest"]
    path = write_fer_csv(tmp_path / "no-private.csv", rows)
    ds = load_dataset(path)
    assert len(ds.split("train")) == 7 and len(ds.split("val")) == 3
    for name in ("test", "PrivateTest"):
        with pytest.raises(DataError, match=f"split '{name}' is empty or absent") as exc:
            ds.split(name)
        assert str(exc.value).startswith(str(path))
    with pytest.raises(DataError, match="'nonsense' is empty or absent"):
        ds.split("nonsense")


@pytest.mark.parametrize("content, message", [
    (b"", "missing column"),
    (b"emotion,pixels,Usage\n", "no data rows"),
    (b"emotion,pixels,Usage\n\n\n", "no data rows"),
])
@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_empty_file_or_header_only(tmp_path, content, message, suffix):
    path = tmp_path / f"empty{suffix}"
    path.write_bytes(gzip.compress(content) if suffix == ".csv.gz" else content)
    with pytest.raises(DataError, match=message) as exc:
        load_dataset(path)
    assert str(exc.value).startswith(str(path))


@pytest.mark.parametrize("name, content, reason", [
    ("broken.csv.gz", b"this is not gzip data", "corrupt gzip stream"),
    ("truncated.csv.gz", gzip.compress(b"emotion,pixels,Usage\n" + b"3," + b"1 " * 3000, mtime=0)[:200],
     ":2: expected 3 fields, found 2"),
    ("broken.tar.gz", gzip.compress(b"not a tar archive" * 100, mtime=0), "cannot read: invalid header"),
    ("latin1.csv", "emotion,pixels,Usage\xe9\n".encode("latin-1"), "cannot read: 'utf-8' codec can't decode"),
])
def test_unreadable_file_is_a_data_error(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError) as exc:
        load_dataset(path)
    assert str(exc.value).startswith(str(path)) and reason in str(exc.value), str(exc.value)


def test_missing_path_and_unknown_kind(tmp_path):
    for missing in (tmp_path / "nope.csv", tmp_path / "no-folder"):
        with pytest.raises(DataError, match="no such file or folder") as exc:
            load_dataset(missing)
        assert str(missing) in str(exc.value)
    other = tmp_path / "faces.txt"
    other.write_text("hello")
    with pytest.raises(DataError, match="not a FER2013 CSV") as exc:
        load_dataset(other)
    assert str(other) in str(exc.value)
    with pytest.raises(ValueError, match="labels must be one of"):
        load_dataset(other, labels="fer+")


def test_skip_bad_rows_skips_and_counts(tmp_path, fer_rows):
    bad = {  # file line -> bad row
        3: (7, fer_image(50), "Training"),
        6: (2, "1 2 3", "PublicTest"),
        9: f"3,{pixels_text(fer_image(51))}",
        11: (1, bad_pixels(3, "300"), "PrivateTest"),
    }
    rows, good_lines = [], []
    for line in range(2, 2 + len(fer_rows) + len(bad)):
        rows.append(bad[line] if line in bad else fer_rows[len(good_lines)])
        if line not in bad:
            good_lines.append(line)
    path = write_fer_csv(tmp_path / "some-bad.csv", rows)
    with pytest.raises(DataError, match=f"^{path}:3: "):
        load_dataset(path)
    ds = load_dataset(path, skip_bad_rows=True)
    assert len(ds.skipped) == 4
    assert [m.split(": ", 1)[0] for m in ds.skipped] == [f"{path}:{line}" for line in sorted(bad)]
    assert "label '7'" in ds.skipped[0] and "found 3" in ds.skipped[1]
    assert "expected 3 fields" in ds.skipped[2] and "outside 0..255" in ds.skipped[3]
    assert sum(len(s) for s in ds.splits.values()) == len(fer_rows)
    for role, name in ROLES:
        idx, images, labels = expected_split(fer_rows, name)
        split = ds.split(role)
        np.testing.assert_array_equal(split.images, images)
        assert split.labels.tolist() == labels
        assert (split.ids + 2).tolist() == [good_lines[i] for i in idx]  # ids are data-row indices in the file


def test_skip_bad_rows_skips_non_numeric_pixels(tmp_path):
    path = write_fer_csv(tmp_path / "nan.csv", [GOOD[0], (1, bad_pixels(0, "nan"), "Training"), GOOD[1], GOOD[2]])
    ds = load_dataset(path, skip_bad_rows=True)
    assert len(ds.skipped) == 1 and ds.skipped[0].startswith(f"{path}:3: non-numeric pixel value")


def write_bad_image_tree(root):
    for split in ("train", "test"):
        for c, cls in enumerate(CLASS_DIRS):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(10 if split == "train" else 1):
                Image.fromarray(fer_image(c * 10 + i), mode="L").save(folder / f"{i}.png")
    bad = root / "train" / "happy" / "zz-broken.png"
    bad.write_bytes(b"\x89PNG but not really")
    return bad


def test_unreadable_image_names_the_file(tmp_path):
    bad = write_bad_image_tree(tmp_path)
    with pytest.raises(DataError, match="unreadable image") as exc:
        load_dataset(tmp_path)
    assert str(exc.value).startswith(f"{bad}: ")
    ds = load_dataset(tmp_path, skip_bad_rows=True)
    assert len(ds.skipped) == 1 and ds.skipped[0].startswith(f"{bad}: ")
    assert len(ds.split("train")) + len(ds.split("val")) == 70 and len(ds.split("test")) == 7


def test_folder_layout_errors(tmp_path):
    (tmp_path / "a" / "test" / "happy").mkdir(parents=True)
    with pytest.raises(DataError, match="needs a train/ folder"):
        load_dataset(tmp_path / "a")
    (tmp_path / "b" / "train" / "joy").mkdir(parents=True)
    with pytest.raises(DataError, match="unknown class folder") as exc:
        load_dataset(tmp_path / "b")
    assert "joy" in str(exc.value)
    (tmp_path / "c" / "train" / "happy").mkdir(parents=True)
    with pytest.raises(DataError, match="holds no images"):
        load_dataset(tmp_path / "c")
    with pytest.raises(DataError, match="FER\\+ labels need the FER2013 CSV"):
        load_dataset(tmp_path / "c", labels="ferplus")


# --- 3. The parse cache ------------------------------------------------------------------------


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("FERKIT_CACHE_DIR", str(folder))
    return folder


def forbid_parsing(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("parsed again instead of using the cache")

    monkeypatch.setattr(dataset_module, "read_fer2013_csv", boom)
    monkeypatch.setattr(dataset_module, "read_folder_split", boom)


def test_cache_serves_second_load(tmp_path, fer_rows, cache_dir, monkeypatch):
    path = write_fer_csv(tmp_path / "fer.csv.gz", fer_rows)
    first = load_dataset(path)
    assert len(list(cache_dir.glob("*.npz"))) == 1
    forbid_parsing(monkeypatch)
    second = load_dataset(path)
    same_dataset(first, second)
    assert_matches_rows(second, fer_rows)
    assert len(list(cache_dir.glob("*.npz"))) == 1


def test_cache_keeps_skipped_messages(tmp_path, fer_rows, cache_dir, monkeypatch):
    path = write_fer_csv(tmp_path / "fer.csv", fer_rows[:3] + [(9, fer_image(9), "Training")] + fer_rows[3:])
    first = load_dataset(path, skip_bad_rows=True)
    assert first.skipped == [f"{path}:5: label '9' is not in 0..6"]
    forbid_parsing(monkeypatch)
    same_dataset(first, load_dataset(path, skip_bad_rows=True))


def test_cache_disabled_writes_nothing(tmp_path, fer_rows, cache_dir):
    path = write_fer_csv(tmp_path / "fer.csv", fer_rows)
    assert_matches_rows(load_dataset(path, cache=False), fer_rows)
    assert not cache_dir.exists() or not list(cache_dir.glob("*.npz"))


def test_cache_is_invalidated_when_the_file_changes(tmp_path, fer_rows, cache_dir):
    path = write_fer_csv(tmp_path / "fer.csv", fer_rows)
    assert_matches_rows(load_dataset(path), fer_rows)
    # different content and size
    changed = [(6 - y, fer_image(200 + i), u) for i, (y, im, u) in enumerate(fer_rows)][:-1]
    write_fer_csv(path, changed)
    assert_matches_rows(load_dataset(path), changed)
    assert len(list(cache_dir.glob("*.npz"))) == 2
    # same size, new content (two labels swapped), new modification time
    swapped = list(changed)
    swapped[0], swapped[1] = (swapped[1][0], swapped[0][1], swapped[0][2]), (swapped[0][0], swapped[1][1], swapped[1][2])
    size = path.stat().st_size
    mtime = path.stat().st_mtime_ns
    write_fer_csv(path, swapped)
    os.utime(path, ns=(mtime + 1_000_000_000, mtime + 1_000_000_000))
    assert path.stat().st_size == size
    assert load_dataset(path).split("train").labels[:2].tolist() == [swapped[0][0], swapped[1][0]]


def test_corrupt_cache_entry_is_rebuilt(tmp_path, fer_rows, cache_dir):
    path = write_fer_csv(tmp_path / "fer.csv", fer_rows)
    load_dataset(path)
    (entry,) = cache_dir.glob("*.npz")
    entry.write_bytes(b"garbage")
    assert_matches_rows(load_dataset(path), fer_rows)
    assert entry.stat().st_size > 1000


def test_folder_cache(folder_tree, cache_dir, monkeypatch):
    root = folder_tree[0]
    first = load_dataset(root, seed=3)
    assert len(list(cache_dir.glob("*.npz"))) == 2  # train and test
    with monkeypatch.context() as m:
        forbid_parsing(m)
        same_dataset(first, load_dataset(root, seed=3))
    # a new image invalidates that split's entry
    Image.fromarray(fer_image(999), mode="L").save(root / "test" / "happy" / "new.png")
    assert len(load_dataset(root, seed=3).split("test")) == 15


# --- 4. FER+ labels ----------------------------------------------------------------------------

# votes: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF
FERPLUS_ROWS = [
    # usage, votes, majority label (index in FERPLUS_CLASSES, -1 = excluded)
    ("Training", [0, 10, 0, 0, 0, 0, 0, 0, 0, 0], 1),  # unanimous Happiness
    ("Training", [6, 0, 1, 3, 0, 0, 0, 0, 0, 0], 0),  # Neutral 6 of 9 (the single Surprise vote dropped)
    ("Training", [5, 5, 0, 0, 0, 0, 0, 0, 0, 0], -1),  # a tie
    ("Training", [4, 0, 0, 0, 0, 0, 0, 0, 6, 0], -1),  # unknown wins
    ("PublicTest", [0, 0, 0, 0, 0, 0, 0, 0, 0, 10], -1),  # not a face
    ("PublicTest", [0, 0, 0, 0, 3, 0, 0, 7, 0, 0], 7),  # Contempt
    ("PrivateTest", [1, 0, 0, 4, 2, 0, 3, 0, 0, 0], -1),  # Sadness 4 of 9: not more than half
    ("PrivateTest", [1, 1, 0, 0, 5, 1, 1, 1, 0, 0], 4),  # Anger: 5 of 10, but 5 of 5 once singles drop
]


def write_ferplus(path, rows=FERPLUS_ROWS):
    lines = ["Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"]
    lines += [f"{u},fer{i:07d}.png,{','.join(map(str, v))}" for i, (u, v, _) in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def ferplus_csv(tmp_path):
    rows = [(i % 7, fer_image(300 + i), u) for i, (u, _, _) in enumerate(FERPLUS_ROWS)]
    path = write_fer_csv(tmp_path / "fer2013.csv", rows)
    write_ferplus(tmp_path / "fer2013new.csv")
    return path, rows


def test_ferplus_majority_labels(ferplus_csv):
    path, rows = ferplus_csv
    ds = load_dataset(path, labels="ferplus")
    assert ds.classes == FERPLUS_CLASSES and ds.num_classes == 8 and len(FERPLUS_CLASSES) == 8
    for _, name in ROLES:
        split = ds.split(name)
        keep = [i for i, (u, _, y) in enumerate(FERPLUS_ROWS) if u == name and y >= 0]
        assert split.ids.tolist() == keep
        assert split.labels.tolist() == [FERPLUS_ROWS[i][2] for i in keep]
        np.testing.assert_array_equal(split.images, np.stack([rows[i][1] for i in keep]))
        assert split.soft is None
    assert ds.split("train").labels.tolist() == [FERPLUS_CLASSES.index("Happiness"), FERPLUS_CLASSES.index("Neutral")]
    assert FERPLUS_CLASSES[ds.split("val").labels[0]] == "Contempt"
    assert FERPLUS_CLASSES[ds.split("test").labels[0]] == "Anger"


def test_ferplus_soft_labels(ferplus_csv):
    path, _ = ferplus_csv
    ds = load_dataset(path, labels="ferplus-soft")
    assert ds.classes == FERPLUS_CLASSES
    all_ids = []
    for _, name in ROLES:
        split = ds.split(name)
        assert split.soft.shape == (len(split), 8)
        np.testing.assert_allclose(split.soft.sum(axis=1), 1, rtol=1e-6)
        assert split.labels.tolist() == split.soft.argmax(axis=1).tolist()
        all_ids += split.ids.tolist()
    assert all_ids == [0, 1, 2, 3, 5, 6, 7]  # only the not-a-face row has no emotion vote at all
    train = ds.split("train")
    np.testing.assert_allclose(train.soft[0], np.eye(8)[1])
    np.testing.assert_allclose(train.soft[3], np.eye(8)[0])  # unknown votes are dropped
    np.testing.assert_allclose(ds.split("val").soft[0], [0, 0, 0, 0, 0.3, 0, 0, 0.7], rtol=1e-6)


def test_ferplus_explicit_path_and_errors(tmp_path, ferplus_csv):
    path, _ = ferplus_csv
    elsewhere = write_ferplus(tmp_path / "votes.csv")
    (tmp_path / "fer2013new.csv").unlink()
    assert load_dataset(path, labels="ferplus", ferplus=elsewhere).split("val").labels.tolist() == [7]
    with pytest.raises(DataError, match="cannot read") as exc:
        load_dataset(path, labels="ferplus")
    assert str(tmp_path / "fer2013new.csv") in str(exc.value)
    short = write_ferplus(tmp_path / "short.csv", FERPLUS_ROWS[:5])
    with pytest.raises(DataError, match="has 5 rows") as exc:
        load_dataset(path, labels="ferplus", ferplus=short)
    assert str(exc.value).startswith(str(short))
    broken = tmp_path / "broken.csv"
    broken.write_text(short.read_text().replace(",10,", ",ten,", 1))
    with pytest.raises(DataError, match="bad vote counts") as exc:
        read_ferplus_votes(broken)
    assert str(exc.value).startswith(f"{broken}:2: ")
    nocols = tmp_path / "nocols.csv"
    nocols.write_text("Usage,neutral\nTraining,3\n")
    with pytest.raises(DataError, match="missing column") as exc:
        read_ferplus_votes(nocols)
    assert str(exc.value).startswith(f"{nocols}:1: ")


@pytest.mark.parametrize("votes, label", [
    ([0, 6, 0, 0, 0, 0, 0, 0, 0, 0], 1),
    ([5, 5, 0, 0, 0, 0, 0, 0, 0, 0], -1),
    ([0, 0, 0, 0, 5, 1, 1, 1, 1, 0], 4),  # 5 of 9 is enough only because the four single votes drop
    ([1, 1, 1, 1, 1, 1, 1, 1, 1, 1], -1),  # every vote is a single vote
    ([0, 0, 0, 0, 0, 0, 0, 0, 0, 0], -1),
    ([2, 0, 0, 0, 0, 0, 0, 0, 0, 0], 0),
    ([0, 0, 0, 0, 0, 0, 0, 3, 0, 0], 7),  # contempt is an FER+ class
    ([3, 0, 0, 0, 0, 0, 0, 0, 7, 0], -1),  # unknown
    ([3, 0, 0, 0, 0, 0, 0, 0, 0, 7], -1),  # not a face
    ([4, 0, 0, 4, 2, 0, 0, 0, 0, 0], -1),  # 4 of 10 is not a majority
    ([5, 0, 0, 2, 2, 0, 0, 0, 0, 0], 0),  # 5 of 9 is
    ([4, 0, 0, 2, 2, 0, 0, 0, 0, 0], -1),  # 4 of 8 is not (exactly half)
])
def test_majority_labels(votes, label):
    v = np.asarray([votes], np.int64)
    assert majority_labels(v).tolist() == [label]
    assert v.tolist() == [votes]  # the input is left alone


def test_majority_and_soft_labels_on_a_batch():
    votes = np.asarray([[0, 6, 0, 0, 0, 0, 0, 0, 0, 0], [5, 5, 0, 0, 0, 0, 0, 0, 0, 0],
                        [0, 0, 0, 0, 0, 0, 0, 0, 0, 10], [2, 0, 0, 0, 0, 0, 0, 6, 1, 1]])
    assert majority_labels(votes).tolist() == [1, -1, -1, 7]
    soft = soft_labels(votes)
    assert soft.shape == (4, 8) and soft.dtype == np.float32
    np.testing.assert_allclose(soft.sum(axis=1), [1, 1, 0, 1], rtol=1e-6)
    np.testing.assert_allclose(soft[1], [0.5, 0.5, 0, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(soft[3], [0.25, 0, 0, 0, 0, 0, 0, 0.75])


# --- 5. Duplicates -----------------------------------------------------------------------------


def small_dataset(splits, roles=None):
    built = {}
    for name, items in splits.items():
        images = np.stack([im for im, _ in items])
        labels = np.asarray([y for _, y in items], np.int64)
        built[name] = Split(name, images, labels, np.arange(len(items)))
    return FERDataset(FER2013_CLASSES, built, roles or {"train": "Training", "val": "PublicTest", "test": "PrivateTest"},
                      "hand-made")


@pytest.fixture
def dup_dataset():
    A, B, C, D, E = (fer_image(400 + i) for i in range(5))
    Z = np.zeros((48, 48), np.uint8)  # blank
    K = np.full((48, 48), 128, np.uint8)  # blank
    return small_dataset({
        "Training": [(A, 0), (A, 0), (B, 1), (Z, 2)],
        "PublicTest": [(B, 3), (C, 4), (Z, 2), (K, 6)],
        "PrivateTest": [(A, 0), (D, 5), (C, 4), (E, 6), (E, 5)],
    })


def test_find_duplicates(dup_dataset):
    r = find_duplicates(dup_dataset)
    assert r.total == 13
    assert r.distinct == 7  # A B C D E Z K
    assert r.groups == 5  # A (3), B, C, Z, E
    assert r.conflicting_groups == 2  # B (1 vs 3) and E (6 vs 5)
    assert r.blank == 3  # Z twice, K
    assert r.within == {"Training": 1, "PublicTest": 0, "PrivateTest": 1}
    assert r.across == {
        "Training": {"PublicTest": 2, "PrivateTest": 2},  # B, Z / A, A
        "PublicTest": {"Training": 2, "PrivateTest": 1},  # B, Z / C
        "PrivateTest": {"Training": 1, "PublicTest": 1},  # A / C
    }
    assert r.as_dict()["groups"] == 5


def test_find_duplicates_without_any():
    ds = small_dataset({"Training": [(fer_image(i), i % 7) for i in range(5)], "PublicTest": [(fer_image(9), 1)]})
    r = find_duplicates(ds)
    assert (r.total, r.distinct, r.groups, r.conflicting_groups, r.blank) == (6, 6, 0, 0, 0)
    assert r.within == {"Training": 0, "PublicTest": 0}
    assert r.across == {"Training": {"PublicTest": 0}, "PublicTest": {"Training": 0}}


def test_deduplicated(dup_dataset):
    assert deduplicated(dup_dataset, "test").tolist() == [1, 3, 4]  # D, E, E: in neither Training nor PublicTest
    assert deduplicated(dup_dataset, "PrivateTest").tolist() == [1, 3, 4]
    assert deduplicated(dup_dataset, "val").tolist() == [3]  # K only
    assert deduplicated(dup_dataset, "train").tolist() == []
    with pytest.raises(DataError):
        deduplicated(small_dataset({"Training": [(fer_image(0), 0)]}), "test")


def test_image_hashes_identify_byte_identical_images():
    a, b = fer_image(1), fer_image(1).copy()
    c = a.copy()
    c[47, 47] ^= 1
    h = image_hashes(np.stack([a, b, c]))
    assert h[0] == h[1] != h[2] and len(h[0]) == 32


# --- 6. Augmentation ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def faces():
    ds = synthetic_dataset(per_class=(2, 1, 1), seed=0)
    return torch.from_numpy(ds.split("train").images).float().div(255).unsqueeze(1)  # (14, 1, 48, 48)


def augment(x, cfg, seed):
    return augment_batch(x, cfg, torch.Generator().manual_seed(seed))


def test_augment_keeps_shape_dtype_and_is_seeded(faces):
    x = faces.clone()
    out = augment(x, AugmentConfig(), 7)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(x, faces)  # the input is not changed in place
    assert torch.equal(out, augment(x, AugmentConfig(), 7))
    assert not torch.equal(out, augment(x, AugmentConfig(), 8))
    per_image = (out - x).abs().flatten(1).amax(dim=1)
    assert bool((per_image > 0.01).all())  # every image changed
    assert torch.isfinite(out).all()


def test_augment_none_is_identity(faces):
    assert torch.equal(augment(faces, AugmentConfig.none(), 0), faces)


def test_augment_flip_only_mirrors(faces):
    cfg = AugmentConfig(flip=1.0, shift=0, rotate=0, zoom=0, contrast=0, erase=0)
    torch.testing.assert_close(augment(faces, cfg, 0), faces.flip(-1), atol=1e-5, rtol=0)


def test_augment_contrast_only_keeps_means(faces):
    cfg = AugmentConfig(flip=0, shift=0, rotate=0, zoom=0, contrast=0.5, erase=0)
    out = augment(faces, cfg, 0)
    torch.testing.assert_close(out.mean(dim=(1, 2, 3)), faces.mean(dim=(1, 2, 3)), atol=1e-5, rtol=0)
    assert not torch.allclose(out, faces)


def test_augment_erase_only_changes_one_rectangle(faces):
    cfg = AugmentConfig(flip=0, shift=0, rotate=0, zoom=0, contrast=0, erase=1.0)
    out = augment(faces, cfg, 0)
    for before, after in zip(faces[:, 0], out[:, 0]):
        changed = (before != after).nonzero()
        assert len(changed) > 0
        (r0, c0), (r1, c1) = changed.min(dim=0).values, changed.max(dim=0).values
        box = (r1 - r0 + 1) * (c1 - c0 + 1)
        assert len(changed) == box  # a filled rectangle
        assert 4 <= r1 - r0 + 1 <= 20 and 4 <= c1 - c0 + 1 <= 20  # 10%..40% of 48


def test_mixup_targets_sum_to_one(faces):
    y = torch.nn.functional.one_hot(torch.arange(len(faces)) % 7, 7).float()
    mx, my = mixup(faces, y, 0.4, torch.Generator().manual_seed(0))
    assert mx.shape == faces.shape and my.shape == y.shape
    torch.testing.assert_close(my.sum(dim=1), torch.ones(len(y)))
    assert bool((my >= 0).all()) and not torch.equal(my, y)
    mx2, my2 = mixup(faces, y, 0.4, torch.Generator().manual_seed(0))
    assert torch.equal(mx, mx2) and torch.equal(my, my2)
    soft = torch.softmax(torch.randn(len(faces), 8, generator=torch.Generator().manual_seed(1)), dim=1)
    torch.testing.assert_close(mixup(faces, soft, 1.0, torch.Generator().manual_seed(2))[1].sum(dim=1),
                               torch.ones(len(y)))
    same_x, same_y = mixup(faces, y, 0.0, torch.Generator().manual_seed(0))  # alpha 0: no mixing
    assert torch.equal(same_x, faces) and torch.equal(same_y, y)


# --- Small helpers of the data set type --------------------------------------------------------


def test_synthetic_dataset_and_subsample():
    ds = synthetic_dataset(per_class=(3, 1, 2), seed=5)
    assert [len(ds.split(r)) for r in ("train", "val", "test")] == [21, 7, 14]
    assert np.bincount(ds.split("test").labels).tolist() == [2] * 7
    assert ds.split("train").images.shape == (21, 48, 48) and ds.split("train").images.dtype == np.uint8
    again = synthetic_dataset(per_class=(3, 1, 2), seed=5)
    np.testing.assert_array_equal(ds.split("train").images, again.split("train").images)
    sub = ds.subsample(5, seed=1)
    assert [len(sub.split(r)) for r in ("train", "val", "test")] == [5, 5, 5]
    tr = sub.split("train")
    assert tr.ids.tolist() == sorted(tr.ids.tolist())
    np.testing.assert_array_equal(tr.images, ds.split("train").images[tr.ids])
    assert sub.split("train").ids.tolist() == ds.subsample(5, seed=1).split("train").ids.tolist()


# --- 7. The real FER2013 (../shared/data, when present) -----------------------------------------


def test_real_fer2013_sizes_and_counts(fer2013):
    assert sum(len(s) for s in fer2013.splits.values()) == 35_887
    assert [len(fer2013.split(r)) for r in ("train", "val", "test")] == [28_709, 3_589, 3_589]
    assert np.bincount(fer2013.split("Training").labels, minlength=7).tolist() == [3995, 436, 4097, 7215, 4830, 3171, 4965]
    assert np.bincount(fer2013.split("PublicTest").labels, minlength=7).tolist() == [467, 56, 496, 895, 653, 415, 607]
    assert np.bincount(fer2013.split("PrivateTest").labels, minlength=7).tolist() == [491, 55, 528, 879, 594, 416, 626]
    assert fer2013.skipped == []


def test_real_fer2013_first_rows_match_the_file(fer2013, fer2013_path):
    with gzip.open(fer2013_path, "rt") as handle:
        assert handle.readline().strip() == "emotion,pixels,Usage"
        rows = [handle.readline().strip().split(",") for _ in range(5)]
    train = fer2013.split("Training")
    for i, (emotion, pixels, usage) in enumerate(rows):
        assert usage == "Training" and train.ids[i] == i
        assert train.labels[i] == int(emotion)
        assert train.images[i].ravel().tolist() == [int(v) for v in pixels.split()]


def test_real_fer2013_duplicates(fer2013):
    r = find_duplicates(fer2013)
    assert (r.total, r.distinct, r.groups, r.conflicting_groups, r.blank) == (35_887, 34_034, 1_516, 57, 12)
    assert r.across["PublicTest"]["Training"] + r.across["PrivateTest"]["Training"] == 568
    assert r.across["PrivateTest"]["PublicTest"] == 44
    clean = deduplicated(fer2013, "test")
    leaked = 3_589 - len(clean)
    assert max(r.across["PrivateTest"]["Training"], 44) <= leaked <= r.across["PrivateTest"]["Training"] + 44


def test_real_fer2013_reload_is_served_from_cache(fer2013, fer2013_path, monkeypatch):
    forbid_parsing(monkeypatch)
    same_dataset(fer2013, load_dataset(fer2013_path))


def test_real_ferplus_majority(fer2013, fer2013_path, monkeypatch):
    votes_path = fer2013_path.parent / "fer2013new.csv"
    if not votes_path.exists():
        pytest.skip(f"FER+ votes not found at {votes_path}")
    forbid_parsing(monkeypatch)  # the FER2013 arrays come from the cache filled by the `fer2013` fixture
    ds = load_dataset(fer2013_path, labels="ferplus")
    assert ds.classes == FERPLUS_CLASSES
    n = sum(len(s) for s in ds.splits.values())
    assert 30_000 < n < 35_887  # unknown, not-a-face and ties are left out
    assert {int(y) for s in ds.splits.values() for y in s.labels} == set(range(8))
