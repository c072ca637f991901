"""Hardening of `ferkit predict` and `ferkit video` (issue 16): file names that are not UTF-8, hold a
line break or are over 255 bytes, symlink loops under `**`, bad --file-list/--out, per-input
failures, damaged videos, and exit codes of reruns."""

import csv
import glob
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ferkit.apps.predict import expand_inputs, predict_files
from ferkit.cli import main, run
from ferkit.demo import demo_photo
from ferkit.inference import Recognizer

LATIN1 = b"caf\xe9.jpg"  # a Latin-1 name, as old archives hold them: not UTF-8


@pytest.fixture(scope="module")
def rec():
    return Recognizer()


def noise(path, seed: int = 0, size: int = 48) -> Path:
    """A grey noise image (a 'face' for detect=False) at ``path`` (str, Path or bytes)."""
    im = Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8))
    with open(path, "wb") as f:
        im.save(f, format="PNG" if os.fsdecode(path).endswith(".png") else "JPEG")
    return Path(os.fsdecode(path))


def jsonl(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


def csv_files(out: Path) -> list[str]:
    with open(out / "predictions.csv", newline="", encoding="utf-8", errors="surrogateescape") as f:
        return [row[0] for row in csv.reader(f)][1:]


def ferkit(*args) -> subprocess.CompletedProcess:
    """The command in its own process: a crash in OpenCV shows as a return code, not a dead test run."""
    return subprocess.run([sys.executable, "-m", "ferkit", *args], capture_output=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


# --- 1. file names that are not UTF-8 ------------------------------------------------------------------

@pytest.mark.parametrize("images", [True, False], ids=["annotated", "no-save-images"])
def test_non_utf8_file_name_is_recognised_recorded_and_resumed(tmp_path, capsys, images):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.open(demo_photo()).resize((128, 128)).save(os.path.join(os.fsencode(photos), LATIN1))
    noise(photos / "plain.png")
    out = tmp_path / "out"
    args = ["predict", str(photos), "--out", str(out), "--quiet", "--format", "csv,jsonl,parquet",
            *([] if images else ["--no-save-images"])]
    if images:  # OpenCV's imwrite crashed (a segfault) on such a name: in a process of its own
        first = ferkit(*args)
        assert first.returncode == 0, first.stderr.decode(errors="replace")[-2000:]
    else:
        assert run(args) == 0
    name = os.fsdecode(os.path.join(os.fsencode(photos), LATIN1))  # the name as Python gives it (surrogate escape)
    records = jsonl(out)
    assert [r["file"] for r in records] == [name, str(photos / "plain.png")]
    assert records[0]["faces"][0]["emotion"] == "Happy"
    assert csv_files(out)[0] == name  # the CSV holds the name's own bytes
    assert b"caf\xe9.jpg," in (out / "predictions.csv").read_bytes()
    if images:
        assert os.path.isfile(os.path.join(os.fsencode(out), LATIN1))
    pq = pytest.importorskip("pyarrow.parquet")
    assert pq.read_table(out / "predictions.parquet").column("file").to_pylist()[0].endswith("caf\\xe9.jpg")
    capsys.readouterr()
    assert run(args) == 0 and "2 already done" in capsys.readouterr().out
    assert len(jsonl(out)) == 2 and csv_files(out) == [name]  # plain.png: noise, no face


class FailsOnTiny:
    """A recogniser that raises on any batch holding an image smaller than 10x10 pixels."""

    def __init__(self, rec: Recognizer) -> None:
        self.rec = rec

    def __getattr__(self, name):  # classes, classifier, detector ...: the recogniser's
        return getattr(self.rec, name)

    def predict_batch(self, images, **kw):
        if any(min(im.shape[:2]) < 10 for im in images):
            raise ValueError("too small for this model")
        return self.rec.predict_batch(images, **kw)


def test_one_image_that_fails_recognition_is_recorded_not_fatal(rec, tmp_path):
    for i in range(3):
        noise(tmp_path / f"f{i}.png", seed=i)
    noise(tmp_path / "f1b.png", size=4)
    s = predict_files([tmp_path], out=tmp_path / "o", recognizer=FailsOnTiny(rec), detect=False, progress=False)
    records = jsonl(tmp_path / "o")
    assert [("faces" in r, "error" in r) for r in records] == [(True, False), (True, False), (False, True),
                                                               (True, False)]
    assert records[2]["error"] == "recognition failed (ValueError: too small for this model)"
    assert s.images == 3 and len(s.failed) == 1


def test_a_decoder_failing_on_one_file_is_recorded_not_fatal(rec, tmp_path, monkeypatch):
    from ferkit.apps import predict_worker as W

    for name in ("a.png", "b.tif", "c.png"):
        noise(tmp_path / name)
    real = W.read_image

    def read(path):
        if path.endswith(".tif"):
            raise IndexError("list index out of range")  # as a buggy decoder might on a malformed file
        return real(path)

    monkeypatch.setattr(W, "read_image", read)
    s = predict_files([tmp_path], out=tmp_path / "o", recognizer=rec, detect=False, progress=False)
    assert [r.get("error") for r in jsonl(tmp_path / "o")] == [
        None, "cannot be read (IndexError: list index out of range)", None]
    assert s.images == 2 and len(s.failed) == 1


def test_annotated_image_that_cannot_be_written_keeps_its_faces_and_an_error(rec, tmp_path):
    stem = "x" * 251  # x...x.png is 255 bytes; its annotated name x...x.jpg fits, x...x_2.jpg does not
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        noise(tmp_path / folder / f"{stem}.png")
    s = predict_files([tmp_path / "a", tmp_path / "b"], out=tmp_path / "o", recognizer=rec, detect=False,
                      progress=False)
    first, second = jsonl(tmp_path / "o")
    assert first["annotated"] == f"{stem}.jpg" and (tmp_path / "o" / first["annotated"]).is_file()
    assert "annotated" not in second and len(second["faces"]) == 1
    assert second["error"] == f"annotated image {stem}_2.jpg not written (File name too long)"
    assert s.images == 2 and len(s.failed) == 1 and len(csv_files(tmp_path / "o")) == 2


# --- 4. `**` and symlinked folders -----------------------------------------------------------------------

def test_double_star_does_not_follow_a_symlink_loop(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    noise(tmp_path / "d" / "a.png")
    noise(tmp_path / "d" / "sub" / "b.png")
    os.symlink(tmp_path / "d", tmp_path / "d" / "sub" / "loop")  # d/sub/loop -> d
    found = list(expand_inputs([f"{tmp_path}/d/**/*.png"]))
    assert found == [tmp_path / "d" / "a.png", tmp_path / "d" / "sub" / "b.png"]
    assert found == list(expand_inputs([tmp_path / "d"]))  # as the folder walk, which skips symlinked folders


def test_glob_matches_as_the_standard_glob_without_symlinks(tmp_path, monkeypatch):
    for rel in ("a/x.png", "a/b/y.png", "a/b/c/z.jpg", "a/.hidden/h.png", "a/.dot.png", "top.png", "a/b/[1].png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        noise(tmp_path / rel)
    monkeypatch.chdir(tmp_path)
    for pattern in ("a/**/*.png", "**/*.png", "a/**", "a/*/*.png", "a/.*.png", "*/b/*", "a/b/[[]1].png",
                    f"{tmp_path}/a/**/*.jpg", "a/**/c/*.jpg"):
        want = sorted(Path(m) for m in glob.glob(pattern, recursive=True) if os.path.isfile(m))
        assert sorted(expand_inputs([pattern])) == want, pattern


# --- 5. a line break in a file name ------------------------------------------------------------------------

class StopsAt:
    """The recogniser, with Ctrl-C at its ``at``-th batch."""

    def __init__(self, rec: Recognizer, at: int) -> None:
        self.rec, self.at, self.calls = rec, at, 0

    def __getattr__(self, name):  # classes, classifier, detector ...: the recogniser's
        return getattr(self.rec, name)

    def predict_batch(self, images, **kw):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return self.rec.predict_batch(images, **kw)


def test_line_break_in_a_file_name_resumes_without_loss_or_doubles(rec, tmp_path):
    for i, name in enumerate(("a\nb.png", "c.png", 'd "e"\n.png', "f.png")):
        noise(tmp_path / name, seed=i)
    kw = dict(recognizer=rec, detect=False, progress=False, save_images=False)
    predict_files([tmp_path], out=tmp_path / "clean", **kw)
    with pytest.raises(KeyboardInterrupt):
        predict_files([tmp_path], out=tmp_path / "o", batch=1, **{**kw, "recognizer": StopsAt(rec, at=4)})
    with open(tmp_path / "o" / "predictions.csv", "a") as f:
        f.write(f'"{tmp_path}/f.png\n')  # a record a crash cut inside its quotes: whole lines, odd quotes
    s = predict_files([tmp_path], out=tmp_path / "o", **kw)
    assert (s.skipped, s.images) == (3, 1)
    assert (tmp_path / "o" / "predictions.csv").read_bytes() == (tmp_path / "clean" / "predictions.csv").read_bytes()
    assert [r["file"] for r in jsonl(tmp_path / "o")] == csv_files(tmp_path / "o") == [
        str(tmp_path / n) for n in ("a\nb.png", "c.png", 'd "e"\n.png', "f.png")]


# --- 6. names over 255 bytes, --file-list naming a folder, --out naming a file ----------------------------

def test_too_long_name_in_a_file_list_is_a_recorded_error(rec, tmp_path, capsys):
    good = noise(tmp_path / "good.png")
    long = tmp_path / ("y" * 300 + ".png")
    (tmp_path / "list.txt").write_text(f"{long}\n{good}\n{tmp_path}/{'z' * 300}*.png\n")
    assert run(["predict", "--file-list", str(tmp_path / "list.txt"), "--out", str(tmp_path / "o"), "--quiet",
                "--no-detect"]) == 1
    records = jsonl(tmp_path / "o")
    assert [r["file"] for r in records] == [str(long), str(good), f"{tmp_path}/{'z' * 300}*.png"]
    assert records[0]["error"] == "cannot be read (File name too long)" and len(records[1]["faces"]) == 1
    assert "2 file(s) failed" in capsys.readouterr().out


def test_non_utf8_bytes_in_a_file_list_name_the_file(rec, tmp_path, monkeypatch):
    path = os.path.join(os.fsencode(tmp_path), LATIN1)
    noise(path)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(path + b"\n")))
    s = predict_files(file_list="-", out=tmp_path / "o", recognizer=rec, detect=False, progress=False)
    assert s.images == 1 and jsonl(tmp_path / "o")[0]["file"] == os.fsdecode(path)


@pytest.mark.parametrize("case", ["file-list-is-a-folder", "out-is-a-file"])
def test_bad_file_list_or_out_is_a_one_line_error(tmp_path, capsys, case):
    noise(tmp_path / "a.png")
    (tmp_path / "taken").write_text("a file")
    args = (["--file-list", str(tmp_path), "--out", str(tmp_path / "o")] if case == "file-list-is-a-folder" else
            [str(tmp_path / "a.png"), "--out", str(tmp_path / "taken")])
    with pytest.raises(SystemExit) as stop:
        main(["predict", *args, "--quiet"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("ferkit: error: ") and (
        "Is a directory" in err if case == "file-list-is-a-folder" else "must be a folder" in err)
    if case == "file-list-is-a-folder":
        assert not (tmp_path / "o").exists()  # refused before anything is written


# --- 10. a rerun over recorded failures exits 1 ---------------------------------------------------------------

def test_rerun_with_recorded_failures_exits_1(tmp_path, capsys):
    noise(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    args = ["predict", str(tmp_path), "--out", str(tmp_path / "o"), "--quiet", "--no-detect"]
    assert run(args) == 1
    assert run(args) == 1
    assert "1 file(s) failed in an earlier run" in capsys.readouterr().out
    (tmp_path / "bad.png").unlink()  # another input set into the same folder: the old failure is not this run's
    assert run(["predict", str(tmp_path / "good.png"), "--out", str(tmp_path / "o"), "--quiet", "--no-detect"]) == 0


# --- 10. `ferkit train --name NAME` that is taken -------------------------------------------------------------

def test_train_refuses_a_taken_name_and_numbers_only_its_own(tmp_path):
    from ferkit.data.synthetic import synthetic_dataset
    from ferkit.training import train
    from ferkit.training.trainer import next_run_dir

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("an earlier run's")
    with pytest.raises(ValueError, match=r"run folder .*mine already exists: choose another --name, or continue"):
        train(dataset=synthetic_dataset(per_class=(2, 1, 1), seed=0), data="synthetic", model="clemson_cnn2",
              project=str(tmp_path), name="mine", epochs=1, progress=False, threads=1)
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]
    (tmp_path / "resnet_s").mkdir()
    assert next_run_dir(tmp_path, None, "resnet_s") == tmp_path / "resnet_s2"  # no --name: numbered as before
    assert next_run_dir(tmp_path, "new", "resnet_s") == tmp_path / "new"


# --- 1 and 8. `ferkit video`: names that are not UTF-8, damaged files, SIGTERM ---------------------------------

def write_clip(path, frames: int = 20, fourcc: str = "MJPG", size: tuple[int, int] = (320, 240)) -> Path:
    """An AVI (Motion JPEG: each frame its own JPEG) of the bundled photo drifting right; ``path`` may be bytes."""
    import cv2

    photo = cv2.resize(cv2.imread(str(demo_photo())), (200, 200))
    ascii_path = os.fsdecode(os.path.dirname(path) or ".") + "/writing.avi"
    w = cv2.VideoWriter(ascii_path, cv2.VideoWriter_fourcc(*fourcc), 10.0, size)
    for i in range(frames):
        frame = np.full((size[1], size[0], 3), 128, np.uint8)
        x = 20 + 2 * i % (size[0] - 220)
        frame[20:220, x:x + 200] = photo
        w.write(frame)
    w.release()
    os.rename(ascii_path, path)
    return Path(os.fsdecode(path))


def frames_in(path) -> int:
    import cv2

    cap = cv2.VideoCapture(os.fsdecode(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def test_video_with_a_non_utf8_name(tmp_path):
    src = write_clip(os.path.join(os.fsencode(tmp_path), b"caf\xe9.avi"), frames=8)
    done = ferkit("video", src, "--out", tmp_path / "o", "--quiet")  # OpenCV crashed (a segfault) on such names
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    out = os.fsencode(tmp_path / "o")
    for suffix in (b".mp4", b".csv", b"_timeline.png", b"_summary.json"):
        assert os.path.isfile(os.path.join(out, b"caf\xe9" + suffix)), suffix
    os.rename(os.path.join(out, b"caf\xe9.mp4"), tmp_path / "o" / "plain.mp4")
    assert frames_in(tmp_path / "o" / "plain.mp4") == 8
    summary = json.loads(open(os.path.join(out, b"caf\xe9_summary.json")).read())
    assert summary["complete"] and summary["source"] == str(src) and summary["frames_read"] == 8


@pytest.mark.parametrize("case", ["truncated", "bit-damaged"])
def test_damaged_video_is_not_complete_and_exits_1(rec, tmp_path, capsys, case):
    clip = write_clip(tmp_path / "clip.avi")
    data = clip.read_bytes()
    if case == "truncated":
        data = data[:len(data) * 4 // 10]  # AVI: the first frames stay readable, the header still says 20
    else:
        k = data.index(b"\xff\xd8", data.index(b"\xff\xd8") + 100) + 3000  # inside the second frame's JPEG
        data = data[:k] + b"\xff\xd9" + data[k + 2:]  # an end-of-image marker too early: every frame read, one garbled
    damaged = tmp_path / "damaged.avi"
    damaged.write_bytes(data)
    res = video_file_(damaged, out=tmp_path / "o", recognizer=rec, save_video=False, progress=False)
    summary = json.loads((tmp_path / "o" / "damaged_summary.json").read_text())
    assert not res.complete and summary["damaged"] and not summary["complete"] and summary["frames_declared"] == 20
    if case == "truncated":
        assert 3 <= res.frames_read < 10 and res.damage.startswith(f"{res.frames_read} of 20 declared frames read")
    else:
        assert res.frames_read == 20 and "decoder error(s), the first: [mjpeg" in res.damage
        assert summary["decoder_messages"]
    assert run(["video", str(damaged), "--out", str(tmp_path / "o2"), "--no-save-video", "--quiet"]) == 1
    assert "looks damaged" in capsys.readouterr().err
    sound = video_file_(clip, out=tmp_path / "o3", recognizer=rec, save_video=False, progress=False)
    assert sound.complete and sound.damage is None and sound.frames_read == 20


def video_file_(*args, **kwargs):
    from ferkit.apps.video import video_file

    return video_file(*args, **kwargs)


def test_sigterm_finishes_the_summary_and_a_playable_mp4(tmp_path):
    import signal
    import time

    clip = write_clip(tmp_path / "long.avi", frames=400, size=(240, 240))
    proc = subprocess.Popen([sys.executable, "-m", "ferkit", "video", str(clip), "--out", str(tmp_path / "o"),
                             "--quiet", "--detector", "haar"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    csv_path = tmp_path / "o" / "long.csv"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not csv_path.exists() or len(csv_path.read_text().splitlines()) < 6):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and b"Traceback" not in err and b"interrupted" in err
    summary = json.loads((tmp_path / "o" / "long_summary.json").read_text())
    assert summary["complete"] is False and 2 <= summary["last_frame"] < 399
    assert frames_in(tmp_path / "o" / "long.mp4") >= summary["last_frame"] + 1  # closed properly: playable
