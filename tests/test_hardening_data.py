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


def assert_one_line_error(code, output, message):
    """Exit 2 and exactly one line, ``ferkit: error: MESSAGE``: no traceback, no advice to unpickle."""
    assert code == 2, output
    assert output.splitlines() == [f"ferkit: error: {message}"]
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
    assert kind == "untagged"
    torch.save({"w": torch.zeros(3)}, path)
    return path, "no ferkit-checkpoint-1 format tag"


CHECKPOINT_KINDS = ["empty", "text", "code", "truncated", "old-pickle-truncated", "untagged"]


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
    """A file given as ``--model`` that ONNX Runtime cannot load, and the reason ferkit must give."""
    from ferkit.inference.classifier import default_model_path

    path = tmp_path / f"{kind}.onnx"
    if kind == "checkpoint":  # a ferkit checkpoint where the exported model belongs
        path.write_bytes(default_model_path().with_suffix(".pt").read_bytes())
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
    assert_one_line_error(*run_cli(capsys, *command, "--model", path), f"{path}: {reason}")
