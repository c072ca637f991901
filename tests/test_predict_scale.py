"""`ferkit predict` at scale: streamed inputs (folders, globs, file lists, stdin), appended CSV /
JSON Lines / Parquet, resuming after a crash with nothing lost or doubled, and the Ray Data engine."""

import io
import itertools
import json
import multiprocessing
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from repo_scripts import load_script

from ferkit.apps import predict as P
from ferkit.apps import predict_outputs
from ferkit.apps.predict import expand_inputs, predict_files
from ferkit.cli import run
from ferkit.demo import demo_photo
from ferkit.errors import ConfigError
from ferkit.inference import Recognizer

ALL = ("csv", "jsonl", "parquet")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """300 images in nested folders: 298 48x48 noise 'faces' (for detect=False) and the bundled photo
    twice, under one name in two folders (annotated as astronaut.jpg and astronaut_2.jpg)."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(298):
        folder = root / ("a", "b", "b/c", "d")[i % 4]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (48, 48), dtype=np.uint8)).save(folder / f"f{i:03d}.png")
    face = Image.open(demo_photo()).resize((128, 128))
    face.save(root / "astronaut.jpg")
    face.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(root / "b" / "astronaut.png")
    return root


@pytest.fixture(scope="module")
def rec():
    return Recognizer()


@pytest.fixture(scope="module")
def clean(photos, rec, tmp_path_factory) -> Path:
    """One uninterrupted run over ``photos``, every format: the reference."""
    out = tmp_path_factory.mktemp("clean")
    s = predict_files([photos], out=out, recognizer=rec, detect=False, formats=ALL, progress=False)
    assert s.images == 300 and not s.failed
    return out


class Stopping:
    """The recogniser, stopped at its ``at``-th batch: KeyboardInterrupt (Ctrl-C), or ``os._exit``
    (a kill: no ``finally``, no flush)."""

    def __init__(self, rec: Recognizer, at: int, kill: bool = False) -> None:
        self.rec, self.at, self.kill, self.calls = rec, at, kill, 0

    def __getattr__(self, name):  # classes, classifier, detector ...: the recogniser's
        return getattr(self.rec, name)

    def predict_batch(self, images, **kw):
        self.calls += 1
        if self.calls == self.at:
            if self.kill:
                os._exit(3)
            raise KeyboardInterrupt
        return self.rec.predict_batch(images, **kw)


def jsonl(out: Path) -> list[str]:
    return (out / "predictions.jsonl").read_text().splitlines()


def parquet_rows(out: Path) -> list[dict]:
    pq = pytest.importorskip("pyarrow.parquet")
    rows = pq.read_table(out / "predictions.parquet").to_pylist()
    return [{k: v for k, v in r.items() if v is not None} for r in rows]


def assert_same_results(out: Path, ref: Path) -> None:
    """Every input exactly once, with the reference run's rows, in every format, in the same order."""
    lines = jsonl(out)
    files = [json.loads(line)["file"] for line in lines]
    assert len(files) == len(set(files))
    assert lines == jsonl(ref)
    assert (out / "predictions.csv").read_text() == (ref / "predictions.csv").read_text()
    assert parquet_rows(out) == parquet_rows(ref) == [json.loads(line) for line in lines]
    assert sorted(p.name for p in out.glob("*.jpg")) == sorted(p.name for p in ref.glob("*.jpg"))


# --- streamed inputs --------------------------------------------------------------------------------

def test_folders_are_walked_lazily_in_sorted_order(photos, monkeypatch):
    old = sorted(f for f in photos.rglob("*") if f.is_file() and f.suffix.lower() in P.IMAGE_SUFFIXES)
    assert list(expand_inputs([photos])) == old  # the order of the former sorted(rglob)
    scanned = []
    real = os.scandir
    monkeypatch.setattr(P.os, "scandir", lambda d: scanned.append(d) or real(d))
    first = next(expand_inputs([photos]))
    assert first == photos / "a" / "f000.png" and len(scanned) == 2  # the root and a/ only, not b/, b/c/, d/


def test_output_folder_inside_an_input_is_not_read(photos, rec, tmp_path):
    for name in ("x.png", "y.png"):
        Image.open(photos / "a" / "f000.png").save(tmp_path / name)
    for overwrite in (False, True):  # the second run sees the first one's annotated JPEGs in tmp_path/run
        s = predict_files([tmp_path, f"{tmp_path}/**/*.jpg"], out=tmp_path / "run", recognizer=rec, detect=False,
                          progress=False, overwrite=overwrite)
        assert s.images == 2 and (tmp_path / "run" / "x.jpg").exists()


@pytest.mark.parametrize("given", ["{d}", "{d}/sub", "{d}/a.jpg", "{d}/*.jpg", "list"])
def test_an_input_in_the_output_folder_is_refused(rec, tmp_path, given):
    """``predict photos --out photos`` wrote each annotated JPEG over its photo, and ``photos/a.jpg --out photos``
    left the photo out without a word: an input that is the output folder or lies in it (a folder, a file, a glob's
    folder) is refused, before anything is written; a file list's line when it is reached."""
    d = tmp_path / "photos"
    (d / "sub").mkdir(parents=True)
    for path in (d / "a.jpg", d / "sub" / "b.jpg"):
        Image.open(demo_photo()).resize((64, 64)).save(path)
    before = {p: p.read_bytes() for p in d.rglob("*") if p.is_file()}
    (tmp_path / "list.txt").write_text(f"{d / 'a.jpg'}\n")
    inputs, file_list = ([], tmp_path / "list.txt") if given == "list" else ([given.format(d=d)], None)
    with pytest.raises(ConfigError, match=r"the output folder \(--out .*\).*give --out a folder of its own"):
        predict_files(inputs, out=d, recognizer=rec, detect=False, progress=False, file_list=file_list)
    after = {p: p.read_bytes() for p in d.rglob("*") if p.is_file()}
    assert after == before if given != "list" else after.items() >= before.items()


def test_inputs_stream_into_batches(photos, rec, tmp_path):
    """An endless input stream: the run reads only what its batches need before it is stopped."""
    pulled = []

    def endless():
        for i in itertools.count():
            pulled.append(i)
            assert i < 1000, "the inputs were read ahead of the batches"
            yield photos / ("a", "b", "b/c", "d")[i % 4] / f"f{i:03d}.png" if i < 298 else f"gone{i}.png"

    with pytest.raises(KeyboardInterrupt):
        predict_files(endless(), out=tmp_path, recognizer=Stopping(rec, at=3), detect=False, progress=False)
    assert len(pulled) <= 3 * 16 + 1 and len(jsonl(tmp_path)) == 2 * 16


def test_file_list_from_a_file_and_from_stdin(photos, rec, tmp_path, monkeypatch, capsys):
    listing = (f"# some of the photos\n\n{photos / 'astronaut.jpg'}\n  {photos / 'b' / 'c'}  \n{photos}/d/f00*.png\n"
               f"{photos / 'astronaut.jpg'}\n")  # given twice, done once
    (tmp_path / "list.txt").write_text(listing)
    s = predict_files(file_list=tmp_path / "list.txt", out=tmp_path / "o1", recognizer=rec, detect=False,
                      progress=False)
    expected = ["astronaut.jpg", *(f"b/c/f{i:03d}.png" for i in range(2, 298, 4))]
    files = [json.loads(line)["file"] for line in jsonl(tmp_path / "o1")]
    assert files[:len(expected)] == [str(photos / e) for e in expected]
    assert sorted(files[len(expected):]) == [str(photos / "d" / f"f{i:03d}.png") for i in (3, 7)]
    assert s.images == len(files) == len(expected) + 2 and s.skipped == 1
    monkeypatch.setattr(sys, "stdin", io.StringIO(listing))
    assert run(["predict", "--file-list", "-", "--out", str(tmp_path / "o2"), "--no-detect", "--quiet"]) == 0
    assert jsonl(tmp_path / "o2") == jsonl(tmp_path / "o1")
    assert "77 image(s)" in capsys.readouterr().out


# --- appended, resumable outputs ----------------------------------------------------------------------

def test_rerun_after_ctrl_c_skips_what_is_done(photos, rec, clean, tmp_path, monkeypatch):
    monkeypatch.setattr(predict_outputs, "PARQUET_GROUP_ROWS", 20)
    monkeypatch.setattr(predict_outputs, "PARQUET_PART_ROWS", 50)  # several Parquet parts
    with pytest.raises(KeyboardInterrupt):
        predict_files([photos], out=tmp_path, recognizer=Stopping(rec, at=5), detect=False, formats=ALL, progress=False)
    assert len(jsonl(tmp_path)) == 4 * 16 and len(parquet_rows(tmp_path)) == 4 * 16  # Ctrl-C keeps every batch done
    s = predict_files([photos], out=tmp_path, recognizer=rec, detect=False, formats=ALL, progress=False)
    assert s.skipped == 4 * 16 and s.images == 300 - 4 * 16
    assert_same_results(tmp_path, clean)
    assert len(list((tmp_path / "predictions.parquet").glob("part-*.parquet"))) > 2
    s = predict_files([photos], out=tmp_path, recognizer=rec, detect=False, formats=ALL, progress=False)
    assert (s.images, s.skipped) == (0, 300)
    assert_same_results(tmp_path, clean)


def _killed_run(photos, out):
    predict_outputs.PARQUET_GROUP_ROWS = 16  # a Parquet row group per batch, so the kill leaves an unfinished part
    predict_files([photos], out=out, recognizer=Stopping(Recognizer(), at=4, kill=True), detect=False, formats=ALL,
                  progress=False)


def test_rerun_after_a_kill_repairs_and_completes(photos, rec, clean, tmp_path):
    """Killed without clean-up (os._exit, in a forked process): the next run cuts off half-written
    last lines, replaces the unfinished Parquet part, rebuilds its rows and completes every format."""
    child = multiprocessing.get_context("fork").Process(target=_killed_run, args=(photos, tmp_path))
    child.start()
    child.join(60)
    assert child.exitcode == 3
    assert [p.name for p in (tmp_path / "predictions.parquet").iterdir()] == [".part-00000.parquet"]
    assert len(jsonl(tmp_path)) == 3 * 16
    with open(tmp_path / "predictions.jsonl", "a") as f:
        f.write('{"file": "' + str(photos / "d" / "f099.png"))  # a line cut short
    with open(tmp_path / "predictions.csv", "a") as f:
        f.write(str(photos / "d" / "f099.png") + ",0,0,0,4")
    s = predict_files([photos], out=tmp_path, recognizer=rec, detect=False, formats=ALL, progress=False)
    assert s.skipped == 3 * 16
    assert_same_results(tmp_path, clean)
    assert [p.name for p in (tmp_path / "predictions.parquet").iterdir()] == ["part-00000.parquet"]


def test_csv_and_parquet_catch_up_with_the_record(photos, rec, clean, tmp_path):
    """A run that wrote only JSON Lines, continued with every format: the CSV and Parquet files get
    the rows of the inputs done before, from predictions.jsonl, without recognising them again."""
    with pytest.raises(KeyboardInterrupt):
        predict_files([photos], out=tmp_path, recognizer=Stopping(rec, at=3), detect=False, formats=["jsonl"],
                      progress=False)
    assert not (tmp_path / "predictions.csv").exists()
    stopping = Stopping(rec, at=0)
    predict_files([photos], out=tmp_path, recognizer=stopping, detect=False, formats=ALL, progress=False)
    assert stopping.calls == (300 - 2 * 16 + 15) // 16
    assert_same_results(tmp_path, clean)


def test_bad_files_are_recorded_once(photos, rec, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    (bad / "empty.png").write_bytes(b"")
    Image.open(photos / "astronaut.jpg").save(bad / "good.jpg")
    args = ["predict", str(bad), str(tmp_path / "missing.jpg"), "--out", str(tmp_path / "o"), "--quiet"]
    assert run(args) == 1
    assert run(args) == 1  # nothing new, but the record holds failures
    out = capsys.readouterr()
    assert out.err.count("broken.jpg") == 1 and "3 file(s) failed" in out.out and "4 already done" in out.out
    assert "3 file(s) failed in an earlier run" in out.out
    records = [json.loads(line) for line in jsonl(tmp_path / "o")]
    assert [(Path(r["file"]).name, "error" in r) for r in records] == [
        ("broken.jpg", True), ("empty.png", True), ("good.jpg", False), ("missing.jpg", True)]
    assert records[2]["faces"][0]["emotion"] == "Happy" and len(records[2]["faces"][0]["landmarks"]) == 6


def test_annotated_names_are_those_of_a_run_without_a_stop(photos, rec, tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    (tmp_path / "a" / "x.jpg").write_bytes(b"broken")  # holds the name x.jpg all the same
    Image.open(photos / "a" / "f000.png").save(tmp_path / "b" / "x.png")
    with pytest.raises(KeyboardInterrupt):
        predict_files([tmp_path / "a", tmp_path / "b"], out=tmp_path / "o", recognizer=Stopping(rec, at=2),
                      detect=False, batch=1, progress=False)
    predict_files([tmp_path / "a", tmp_path / "b"], out=tmp_path / "o", recognizer=rec, detect=False, progress=False)
    assert json.loads(jsonl(tmp_path / "o")[1])["annotated"] == "x_2.jpg"


def test_parquet_rows_are_the_json_lines(photos, tmp_path):
    """Real detections (landmarks, several faces, none) and errors: one Parquet row per JSON line."""
    pytest.importorskip("pyarrow")
    (tmp_path / "bad.jpg").write_bytes(b"no")
    grid = Image.new("RGB", (260, 130), "grey")
    grid.paste(Image.open(photos / "astronaut.jpg"), (0, 0))
    grid.paste(Image.open(photos / "b" / "astronaut.png"), (130, 0))
    grid.save(tmp_path / "two.png")
    Image.new("RGB", (64, 64), "white").save(tmp_path / "none.png")
    predict_files([tmp_path], out=tmp_path / "o", formats=["parquet"], progress=False)
    rows = parquet_rows(tmp_path / "o")
    assert rows == [json.loads(line) for line in jsonl(tmp_path / "o")]
    assert [len(r.get("faces", [])) for r in rows] == [0, 0, 2] and "error" in rows[0]
    assert not (tmp_path / "o" / "predictions.csv").exists()


def test_outputs_that_do_not_match_are_a_clear_error(photos, rec, tmp_path):
    def again(formats=ALL):
        predict_files([photos / "a"], out=tmp_path, recognizer=rec, detect=False, formats=formats, progress=False)

    again()
    lines = jsonl(tmp_path)
    (tmp_path / "predictions.jsonl").write_text("\n".join(lines[:10]) + "\n")  # the record lost rows
    for formats in (["csv"], ["parquet"]):
        with pytest.raises(ValueError, match="have rows that predictions.jsonl lacks"):
            again(formats)
    (tmp_path / "predictions.jsonl").write_text("\n".join(lines[:10] + ["oops"] + lines[10:]) + "\n")
    with pytest.raises(ValueError, match=r"predictions.jsonl:11: not a ferkit record"):
        again()
    (tmp_path / "predictions.jsonl").write_text("\n".join(lines) + "\n")
    csv_text = (tmp_path / "predictions.csv").read_text()
    (tmp_path / "predictions.csv").write_text(csv_text.replace("Neutral", "Contempt", 1))
    with pytest.raises(ValueError, match="predictions.csv has other columns"):
        again()


def test_overwrite_and_option_errors(photos, rec, clean, tmp_path, monkeypatch):
    predict_files([photos / "a"], out=tmp_path, recognizer=rec, detect=False, formats=ALL, progress=False)
    s = predict_files([photos], out=tmp_path, recognizer=rec, detect=False, formats=ALL, progress=False, overwrite=True)
    assert s.skipped == 0 and s.images == 300
    assert_same_results(tmp_path, clean)
    with pytest.raises(ValueError, match="unknown format"):
        predict_files([photos], out=tmp_path, formats=["xlsx"])
    with pytest.raises(ValueError, match="engine='ray'"):
        predict_files([photos], out=tmp_path, workers=2)
    with pytest.raises(ConfigError, match="needs images, folders or globs, or --file-list"):
        run(["predict", "--out", str(tmp_path)])
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(ImportError, match=r"pip install 'ferkit\[parquet\]'"):
        predict_files([photos], out=tmp_path / "p", recognizer=rec, formats=ALL)
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"pip install 'ferkit\[ray\]'"):
        predict_files([photos], out=tmp_path / "r", engine="ray")


# --- the Ray Data engine -------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray Data's own
def test_ray_engine_with_two_workers_gives_the_local_rows(photos, clean, tmp_path):
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR")
    try:
        s = predict_files([photos], out=tmp_path, detect=False, formats=ALL, engine="ray", workers=2, progress=False)
        resources = ray.cluster_resources()
    finally:
        ray.shutdown()
    assert (s.images, s.faces, s.failed) == (300, 300, []) and resources["CPU"] == 2
    assert_same_results(tmp_path, clean)


def test_the_benchmarks_driver_write_rate_writes_every_record(clean, rec, tmp_path):
    """benchmarks/predict_scale.py's driver_write_us: the records appended again and again, in every format (it
    stopped with a TypeError once Outputs took the settings record)."""
    pytest.importorskip("pyarrow")
    bench = load_script("benchmarks/predict_scale.py")
    assert bench.driver_write_us(clean / "predictions.jsonl", tmp_path / "w", tuple(rec.classes), repeat=2) > 0
    assert len(jsonl(tmp_path / "w")) == 2 * len(jsonl(clean)) and len(parquet_rows(tmp_path / "w")) == 600
