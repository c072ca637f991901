"""Issue 16, hardening: corrupt gzip/tar streams, unreadable checkpoints and ONNX models, spaced or
quoted CSV headers; each a one-line ``ferkit: error: ...`` with exit code 2 from the real CLI."""

import pytest

from ferkit.cli import main
from ferkit.data.errors import DataError
from ferkit.errors import FerkitError
from ferkit.inference.images import ImageError
from ferkit.inference.recognizer import VideoError


def run_cli(capsys, *args):
    """``ferkit ARGS`` in this process: (exit code, stdout + stderr)."""
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return exc.value.code, out.out + out.err


def shown(output):
    """The lines of ``output`` as a terminal shows them: progress bars erased, blank lines left out."""
    return [line.rsplit("\r", 1)[-1] for line in output.split("\n") if line.rsplit("\r", 1)[-1].strip()]


def assert_one_line_error(code, output, message):
    """Exit 2 and exactly one line, ``ferkit: error: MESSAGE``: no traceback, no advice to unpickle."""
    assert code == 2, output
    assert shown(output) == [f"ferkit: error: {message}"]
    assert "Traceback" not in output and "weights_only=False" not in output


# --- FerkitError: the base of user-facing errors --------------------------------------------------


@pytest.mark.parametrize("error", [DataError("f.csv", "bad"), ImageError("a.jpg", "bad"), VideoError("v.mp4: bad")])
def test_user_facing_errors_are_ferkit_errors_and_still_value_errors(error):
    assert isinstance(error, FerkitError) and isinstance(error, ValueError)


def test_cli_reports_a_ferkit_error_as_one_line(capsys, monkeypatch):
    class Unexpected(FerkitError):  # a FerkitError that is no ValueError: main still reports it in one line
        pass

    def fail(argv):
        raise Unexpected("x.bin: something the user can fix")

    monkeypatch.setattr("ferkit.cli.run", fail)
    assert_one_line_error(*run_cli(capsys, "models"), "x.bin: something the user can fix")


# --- Item 9: unreadable checkpoints and ONNX models -----------------------------------------------


class RunsCode:
    """Unpickling this would run ``touch MARKER``: a safe loader must refuse it without running it."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def bad_checkpoint(tmp_path, kind):
    """A file named like a checkpoint that is not one, and the reason ferkit must give."""
    import torch

    path = tmp_path / "bad" / "last.pt"
    path.parent.mkdir()
    if kind == "empty":
        path.write_bytes(b"")
        return path, "empty file (0 bytes)"
    if kind == "text":
        path.write_text("hello, I am not a checkpoint\n" * 20)
        return path, "neither a zip archive nor a pickle"
    if kind == "code":
        torch.save({"format": "ferkit-checkpoint-1", "x": RunsCode(tmp_path / "PWNED")}, path)
        return path, "a pickle that imports posix.system; refused without running it"
    if kind == "truncated":
        torch.save({"format": "ferkit-checkpoint-1", "w": torch.zeros(1000)}, path)
        path.write_bytes(path.read_bytes()[:2000])
        return path, "truncated or damaged zip archive"
    if kind == "old-pickle-truncated":
        torch.save({"w": torch.zeros(10)}, path, _use_new_zipfile_serialization=False)
        path.write_bytes(path.read_bytes()[:100])
        return path, "truncated file"
    if kind == "incomplete":
        torch.save({"format": "ferkit-checkpoint-1", "model": "resnet_s"}, path)
        return path, "no classes, state_dict in it"
    assert kind == "untagged"
    torch.save({"w": torch.zeros(3)}, path)
    return path, "no ferkit-checkpoint-1 format tag"


CHECKPOINT_KINDS = ["empty", "text", "code", "truncated", "old-pickle-truncated", "untagged", "incomplete"]


@pytest.mark.parametrize("kind", CHECKPOINT_KINDS)
def test_load_checkpoint_names_file_and_reason(tmp_path, kind):
    from ferkit.training.checkpoint import CheckpointError, load_checkpoint

    path, reason = bad_checkpoint(tmp_path, kind)
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    assert str(exc.value) == f"{path}: not a ferkit checkpoint ({reason})"
    assert isinstance(exc.value, ValueError) and exc.value.__cause__ is None and exc.value.__context__ is None
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("kind", CHECKPOINT_KINDS)
def test_evaluate_with_a_bad_checkpoint_is_one_line(tmp_path, capsys, kind):
    path, reason = bad_checkpoint(tmp_path, kind)
    code, output = run_cli(capsys, "evaluate", path, "--data", tmp_path / "unused.csv")
    assert_one_line_error(code, output, f"{path}: not a ferkit checkpoint ({reason})")
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("kind", ["empty", "code"])
def test_export_and_resume_with_a_bad_checkpoint_are_one_line(tmp_path, capsys, kind):
    path, reason = bad_checkpoint(tmp_path, kind)
    message = f"{path}: not a ferkit checkpoint ({reason})"
    assert_one_line_error(*run_cli(capsys, "export", path, "--out", tmp_path / "m.onnx"), message)
    assert_one_line_error(*run_cli(capsys, "train", "--resume", path.parent, "--quiet"), message)
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "m.onnx").exists()


def test_teacher_that_is_not_a_checkpoint_is_one_line(tmp_path, capsys, fer_rows):
    from conftest import write_fer_csv

    data = write_fer_csv(tmp_path / "fer.csv", fer_rows)
    path, reason = bad_checkpoint(tmp_path, "text")
    code, output = run_cli(capsys, "train", "--model", "resnet_s", "--data", data, "--teacher", path,
                           "--project", tmp_path / "runs", "--epochs", "1", "--quiet")
    assert_one_line_error(code, output, f"{path}: not a ferkit checkpoint ({reason})")


def bad_onnx(tmp_path, kind):
    """A file given as ``--weights`` that ONNX Runtime cannot load, and the reason ferkit must give."""
    from ferkit.inference.classifier import default_model_path

    path = tmp_path / f"{kind}.onnx"
    if kind == "checkpoint":  # a ferkit checkpoint where the exported model belongs
        path.write_bytes(default_model_path().with_name("resnet_s_fer2013.pt").read_bytes())
        return path, "not an ONNX model (Protobuf parsing failed)"
    if kind == "truncated":
        path.write_bytes(default_model_path().read_bytes()[:5000])
        return path, "not an ONNX model (Protobuf parsing failed)"
    assert kind == "empty"
    path.write_bytes(b"")
    return path, "not an ONNX model (No graph was found in the protobuf)"


@pytest.mark.parametrize("kind", ["checkpoint", "truncated", "empty"])
def test_classifier_names_a_file_that_is_not_an_onnx_model(tmp_path, kind):
    from ferkit.inference.classifier import EmotionClassifier
    from ferkit.inference.runtime import ModelError

    path, reason = bad_onnx(tmp_path, kind)
    with pytest.raises(ModelError) as exc:
        EmotionClassifier(path)
    assert str(exc.value) == f"{path}: {reason}" and isinstance(exc.value, ValueError)


def test_classifier_names_a_model_whose_class_list_is_not_json(tmp_path):
    import onnx

    from ferkit.inference.classifier import EmotionClassifier, default_model_path
    from ferkit.inference.runtime import ModelError

    model = onnx.load(str(default_model_path()))
    for prop in model.metadata_props:
        if prop.key == "classes":
            prop.value = "angry happy"
    path = tmp_path / "odd.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelError, match=r"not a ferkit ONNX model \(its class list is not a JSON list of names: "
                                         r"'angry happy'\)"):
        EmotionClassifier(path)


@pytest.mark.parametrize("command", [["predict", "face.png", "--out", "out"], ["video", "clip.mp4", "--out", "out"],
                                     ["serve", "--port", "0"]])
def test_predict_video_serve_with_a_bad_model_are_one_line(tmp_path, capsys, monkeypatch, command):
    import numpy as np
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    Image.fromarray(np.zeros((48, 48), np.uint8)).save("face.png")
    (tmp_path / "clip.mp4").write_bytes(b"\0" * 100)
    path, reason = bad_onnx(tmp_path, "checkpoint")
    assert_one_line_error(*run_cli(capsys, *command, "--weights", path), f"{path}: {reason}")


# --- Item 7: corrupt gzip and tar.gz streams ------------------------------------------------------

TRUNCATED = "truncated: compressed file ended before the end-of-stream marker was reached"


def fer_rows_40():
    from conftest import fer_image

    usage = ["Training"] * 28 + ["PublicTest"] * 6 + ["PrivateTest"] * 6
    return [(i % 7, fer_image(i), u) for i, u in enumerate(usage)]


def good_archive(tmp_path, container):
    """A small intact archive: a fer2013-style .csv.gz, the Kaggle .tar.gz, or a .tar.gz of image folders."""
    import io
    import tarfile

    import numpy as np
    from PIL import Image

    from conftest import fer_image, write_fer_csv, write_fer_tar

    if container == "csv.gz":
        return write_fer_csv(tmp_path / "fer2013.csv.gz", fer_rows_40())
    if container == "tar.gz":
        return write_fer_tar(tmp_path / "fer2013.tar.gz", fer_rows_40())
    path = tmp_path / "faces.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for i in range(28):
            png = io.BytesIO()
            Image.fromarray(np.asarray(fer_image(i))).save(png, format="PNG")
            info = tarfile.TarInfo(f"faces/train/{['angry', 'happy', 'sad', 'neutral'][i % 4]}/{i}.png")
            info.size = png.tell()
            tar.addfile(info, io.BytesIO(png.getvalue()))
    return path


def zlib_verdict(data):
    """What zlib itself says of a gzip file: None when intact, else its error message."""
    import zlib

    try:
        inflater = zlib.decompressobj(31)
        inflater.decompress(data)
        return None if inflater.eof else "truncated"
    except zlib.error as exc:
        return str(exc).rsplit(": ", 1)[-1]


def damage(data, kind):
    """``data`` damaged in the middle: ``deflate`` (a deflate block zlib rejects), ``garbled`` (deflate still
    decodes, to wrong bytes: only the CRC tells), ``crc`` (the stored CRC changed) or ``truncated`` (cut in half).
    Returns (damaged bytes, the reason ferkit must give, or its start)."""
    if kind == "truncated":
        return data[: len(data) // 2], TRUNCATED
    if kind == "crc":
        return data[:-8] + bytes(b ^ 0xFF for b in data[-8:-4]) + data[-4:], "CRC check failed"
    for offset in range(len(data) // 2, len(data) - 8):
        bad = data[:offset] + bytes(b ^ 0xFF for b in data[offset:offset + 4]) + data[offset + 4:]
        verdict = zlib_verdict(bad)
        if kind == "garbled" and verdict == "incorrect data check":
            return bad, "CRC check failed"
        if kind == "deflate" and verdict not in (None, "truncated", "incorrect data check", "incorrect length check"):
            return bad, verdict
    raise AssertionError(f"no {kind} damage found")


@pytest.mark.parametrize("skip", [False, True], ids=["stop", "skip-bad-rows"])
@pytest.mark.parametrize("kind", ["deflate", "garbled", "crc", "truncated"])
@pytest.mark.parametrize("container", ["csv.gz", "tar.gz", "image-folder.tar.gz"])
def test_corrupt_gzip_stream_is_a_data_error(tmp_path, container, kind, skip):
    from ferkit.data import load_dataset

    path = good_archive(tmp_path, container)
    bad, reason = damage(path.read_bytes(), kind)
    path.write_bytes(bad)
    with pytest.raises(DataError) as exc:
        load_dataset(path, skip_bad_rows=skip, cache=False)
    assert str(exc.value).startswith(f"{path}: corrupt gzip stream ({reason}")
    assert str(exc.value).endswith(")") and "\n" not in str(exc.value) and "skip-bad-rows" not in str(exc.value)


def test_intact_archives_still_load(tmp_path):
    from ferkit.data import load_dataset

    assert len(load_dataset(good_archive(tmp_path, "csv.gz"), cache=False).split("train")) == 28
    assert len(load_dataset(good_archive(tmp_path, "tar.gz"), cache=False).split("train")) == 28
    with pytest.raises(DataError, match="archive holds no .csv file"):  # image-folder archives are not read
        load_dataset(good_archive(tmp_path, "image-folder.tar.gz"), cache=False)


@pytest.mark.parametrize("skip", [[], ["--skip-bad-rows"]], ids=["stop", "skip-bad-rows"])
@pytest.mark.parametrize("container, kind", [("csv.gz", "deflate"), ("csv.gz", "truncated"), ("tar.gz", "deflate"),
                                             ("tar.gz", "truncated"), ("image-folder.tar.gz", "deflate")])
def test_cli_reports_a_corrupt_gzip_stream_in_one_line(tmp_path, capsys, container, kind, skip):
    path = good_archive(tmp_path, container)
    bad, reason = damage(path.read_bytes(), kind)
    path.write_bytes(bad)
    message = f"{path}: corrupt gzip stream ({reason})"
    assert_one_line_error(*run_cli(capsys, "data-report", "--data", path, "--out", tmp_path / "report", *skip), message)
    assert_one_line_error(*run_cli(capsys, "train", "--model", "resnet_s", "--data", path, "--project",
                                   tmp_path / "runs", "--quiet", *skip), message)


# --- Item 10 (parts): quoted or spaced CSV headers ------------------------------------------------


def csv_with_header(path, header, row):
    """A FER2013 CSV of :func:`fer_rows_40` with ``header`` and each row written by ``row(emotion, pixels, usage)``."""
    from conftest import pixels_text

    lines = [header] + [row(y, pixels_text(image), usage) for y, image, usage in fer_rows_40()]
    path.write_text("\n".join(lines) + "\n")
    return path


HEADERS = {
    "quoted": ('"emotion","pixels","Usage"', lambda y, p, u: f'{y},"{p}",{u}'),
    "all-quoted": ('"emotion","pixels","Usage"', lambda y, p, u: f'"{y}","{p}","{u}"'),
    "spaced": ("emotion, pixels, Usage", lambda y, p, u: f"{y}, {p}, {u}"),
    "icml_face_data": ("emotion, Usage, pixels", lambda y, p, u: f"{y},{u},{p}"),  # Kaggle's icml_face_data.csv
    "quoted-and-spaced": (' "emotion" , "Usage" , "pixels" ', lambda y, p, u: f'{y}, {u}, " {p} "'),
}


@pytest.mark.parametrize("style", list(HEADERS))
def test_quoted_or_spaced_header_is_read(tmp_path, style):
    from conftest import fer_image
    from ferkit.data import load_dataset

    path = csv_with_header(tmp_path / "icml_face_data.csv", *HEADERS[style])
    ds = load_dataset(path, cache=False)
    assert ds.skipped == [] and {k: len(v) for k, v in ds.splits.items()} == {"Training": 28, "PublicTest": 6,
                                                                             "PrivateTest": 6}
    train = ds.split("train")
    assert train.labels.tolist() == [i % 7 for i in range(28)]
    assert all((train.images[i] == fer_image(i)).all() for i in range(28))


def test_cli_reads_a_spaced_header_and_names_a_missing_column_in_one_line(tmp_path, capsys):
    path = csv_with_header(tmp_path / "icml_face_data.csv", *HEADERS["icml_face_data"])
    code, output = run_cli(capsys, "data-report", "--data", path, "--out", tmp_path / "report")
    assert code == 0 and f"{path}: 40 images, 7 classes" in output and "error" not in output
    bad = csv_with_header(tmp_path / "no-pixels.csv", '"emotion", "image", "Usage"', lambda y, p, u: f"{y},{p},{u}")
    assert_one_line_error(*run_cli(capsys, "data-report", "--data", bad, "--out", tmp_path / "report"),
                          f"{bad}:1: missing column(s) pixels; header is ['emotion', 'image', 'Usage']")


# --- Noticed on the way: damaged cache entries, empty or binary fer2013new.csv --------------------


@pytest.mark.parametrize("damage_entry", [lambda b: b[: len(b) // 2], lambda b: b[:1000] + b"\xff" * 64 + b[1064:],
                                          lambda b: b""], ids=["truncated", "bad-crc", "empty"])
def test_damaged_cache_entry_is_rebuilt(tmp_path, monkeypatch, damage_entry):
    from ferkit.data import load_dataset

    monkeypatch.setenv("FERKIT_CACHE_DIR", str(tmp_path / "cache"))
    path = good_archive(tmp_path, "csv.gz")
    first = load_dataset(path)
    (entry,) = (tmp_path / "cache").glob("*.npz")
    intact = entry.read_bytes()
    entry.write_bytes(damage_entry(intact))
    again = load_dataset(path)
    assert (again.split("train").images == first.split("train").images).all()
    assert entry.read_bytes() == intact


@pytest.mark.parametrize("content, message", [
    (b"", ":1: missing column(s) neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF"),
    (bytes(range(256)), ": cannot read: 'utf-8' codec can't decode byte 0x80 in position 128: invalid start byte"),
], ids=["empty", "binary"])
def test_empty_or_binary_ferplus_file_is_one_line(tmp_path, capsys, content, message):
    from conftest import write_fer_csv

    data = write_fer_csv(tmp_path / "fer2013.csv", fer_rows_40())
    votes = tmp_path / "fer2013new.csv"
    votes.write_bytes(content)
    code, output = run_cli(capsys, "data-report", "--data", data, "--labels", "ferplus", "--out", tmp_path / "report")
    assert_one_line_error(code, output, f"{votes}{message}")


# --- Through a real `ferkit` process: torch's warnings and ONNX Runtime's native logs would show here


def test_bad_inputs_through_the_ferkit_process(tmp_path):
    """One interpreter runs ``ferkit evaluate`` and ``ferkit predict`` (its stderr seen at the file-descriptor level)."""
    import os
    import pickle
    import subprocess
    import sys

    code_pickle = tmp_path / "protocol4.pt"  # a bare pickle: torch warns about its protocol, then refuses it
    code_pickle.write_bytes(pickle.dumps({"run": RunsCode(tmp_path / "PWNED")}, protocol=4))
    onnx_path, onnx_reason = bad_onnx(tmp_path, "truncated")
    commands = [["evaluate", str(code_pickle), "--data", str(tmp_path / "unused.csv")],
                ["predict", str(onnx_path), "--weights", str(onnx_path), "--out", str(tmp_path / "out")]]
    script = ("import sys\nfrom ferkit.cli import main\n"
              f"for argv in {commands!r}:\n"
              "    try:\n        main(argv)\n    except SystemExit as exc:\n"
              "        print(f'EXIT {exc.code}', file=sys.stderr, flush=True)\n")
    env = {**os.environ, "FERKIT_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and r.stdout == "", r.stdout + r.stderr
    checkpoint_message = (f"{code_pickle}: not a ferkit checkpoint (a pickle that holds more than tensors and numbers; "
                          "refused without running it)")
    assert r.stderr.splitlines() == [f"ferkit: error: {checkpoint_message}", "EXIT 2",
                                     f"ferkit: error: {onnx_path}: {onnx_reason}", "EXIT 2"]
    assert not (tmp_path / "PWNED").exists()


def giant_png_header(side):
    """A few hundred bytes of PNG whose header claims ``side`` x ``side`` pixels (a decompression bomb)."""
    import io
    import struct
    import zlib

    import numpy as np
    from PIL import Image

    png = io.BytesIO()
    Image.fromarray(np.zeros((48, 48), np.uint8)).save(png, format="PNG")
    data = bytearray(png.getvalue())
    data[16:24] = struct.pack(">II", side, side)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@pytest.mark.parametrize("side", [10_000, 20_000], ids=["warned-by-pil", "refused-by-pil"])
def test_giant_image_in_a_face_folder_is_a_bad_file(tmp_path, capsys, side):
    import numpy as np
    from PIL import Image

    from conftest import fer_image
    from ferkit.data.labels import FER2013_CLASSES

    for split, count in (("train", 12), ("test", 3)):
        for c, name in enumerate(FER2013_CLASSES):
            folder = tmp_path / "faces" / split / name.lower()
            folder.mkdir(parents=True)
            for i in range(count):
                Image.fromarray(np.asarray(fer_image(100 * c + i))).save(folder / f"{i}.png")
    giant = tmp_path / "faces" / "train" / "happy" / "giant.png"
    giant.write_bytes(giant_png_header(side))
    out = ["--data", tmp_path / "faces", "--out", tmp_path / "report"]
    code, output = run_cli(capsys, "data-report", *out)
    (line,) = shown(output)
    assert code == 2 and "Traceback" not in output
    assert line.startswith(f"ferkit: error: {giant}: unreadable image: Image size ({side * side} pixels) exceeds limit")
    assert line.endswith("(use --skip-bad-rows to skip such files)")
    code, output = run_cli(capsys, "data-report", *out, "--skip-bad-rows")
    assert code == 0 and "skipped 1 bad rows" in output
