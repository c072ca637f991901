"""The command line: help texts, listings, the data report, and clear errors on bad input."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ferkit.cli import PARSERS, run


def ferkit(*args, **kw):
    return subprocess.run([sys.executable, "-m", "ferkit", *args], capture_output=True, text=True, **kw)


@pytest.mark.parametrize("cmd", list(PARSERS))  # every command: a help text breaks only when it is printed
def test_help(cmd):
    r = ferkit(cmd, "--help")
    assert r.returncode == 0 and r.stdout.startswith(f"usage: ferkit {cmd} "), r.stdout + r.stderr


def test_closed_stdout_is_quiet():
    """`ferkit recipes | head -1`: the reader is gone before ferkit writes; no BrokenPipeError traceback, and the
    status of a process killed by SIGPIPE."""
    p = subprocess.Popen([sys.executable, "-m", "ferkit", "recipes"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait() == 141 and err == "", err


@pytest.mark.parametrize("args, message", [(["predict"], "ferkit predict needs images"),
                                           (["train", "--data", "fer.csv"], "ferkit train needs --model")])
def test_missing_inputs_are_usage_errors(args, message):
    """Status 2 as for argparse's errors, not 1, which `ferkit predict` gives when files failed."""
    r = ferkit(*args)
    assert r.returncode == 2 and r.stderr.startswith(f"ferkit: error: {message}"), r.stderr


def test_models_lists_params_and_macs(capsys):
    assert run(["models"]) == 0
    out = capsys.readouterr().out
    assert "resnet_s" in out and "MACs" in out
    from ferkit.core.shipped import SHIPPED_MODELS

    shipped = out.splitlines()[-1]
    assert shipped.startswith("shipped, trained models") and all(f"{n} = {f}" in shipped for n, f in SHIPPED_MODELS.items())


def test_bad_data_is_a_clear_error(tmp_path):
    bad = tmp_path / "fer.csv"
    bad.write_text("emotion,pixels,Usage\n3,1 2 3,Training\n")
    r = ferkit("train", "--model", "resnet_s", "--data", str(bad), env={**os.environ, "FERKIT_CACHE_DIR": str(tmp_path)})
    assert r.returncode == 2
    assert f"{bad}:2: expected 2304 pixel values, found 3" in r.stderr
    assert "Traceback" not in r.stderr


def test_unknown_model_is_a_clear_error(tmp_path):
    """The model's name is checked before any data is read: the error is about the model (``tmp_path``, an empty
    folder, would be a data error of its own, so "ferkit: error:" alone would not tell the two apart)."""
    r = ferkit("train", "--model", "nope", "--data", str(tmp_path))
    assert r.returncode == 2 and r.stderr.startswith("ferkit: error: unknown model 'nope'; choose from: "), r.stderr
    assert "resnet_s" in r.stderr and "Traceback" not in r.stderr


def test_data_report_on_a_folder(tmp_path):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for cls in ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"):
            d = tmp_path / "faces" / split / cls
            d.mkdir(parents=True)
            for i in range(12 if split == "train" else 3):
                Image.fromarray(rng.integers(0, 256, (48, 48), dtype=np.uint8)).save(d / f"{i}.png")
    Image.fromarray(np.full((48, 48), 7, np.uint8)).save(tmp_path / "faces" / "test" / "sad" / "blank.png")
    out = tmp_path / "report"
    r = ferkit("data-report", "--data", str(tmp_path / "faces"), "--out", str(out),
               env={**os.environ, "FERKIT_CACHE_DIR": str(tmp_path / "cache")})
    assert r.returncode == 0, r.stderr
    assert "1 blank images" in r.stdout and "total" in r.stdout
    assert (out / "counts.png").exists() and (out / "samples.png").exists() and (out / "report.json").exists()


@pytest.mark.parametrize("code", ["import ferkit", "import ferkit.cli",
                                  "from ferkit.cli import build_parser; build_parser().format_help()",
                                  "import ferkit; ferkit.TrainConfig, ferkit.FER2013_CLASSES"])
def test_start_up_does_not_import_torch(code):
    check = "import sys; heavy = [m for m in ('torch', 'sklearn', 'matplotlib') if m in sys.modules]; print(heavy)"
    r = subprocess.run([sys.executable, "-c", f"{code}\n{check}"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


def test_ctrl_c_during_start_up_is_one_line(tmp_path):
    """SIGINT while ``ferkit predict`` imports its modules (as soon as NumPy is mapped): no traceback."""
    import signal
    import time

    import ferkit

    photo = Path(ferkit.__file__).parent / "assets" / "astronaut.jpg"
    p = subprocess.Popen([sys.executable, "-m", "ferkit", "predict", str(photo), "--out", str(tmp_path)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while "_multiarray_umath" not in Path(f"/proc/{p.pid}/maps").read_text() and time.monotonic() < deadline:
        time.sleep(0.005)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130 and err == "ferkit: interrupted\n", err
    assert out == ""


def test_ctrl_c_that_comes_out_as_another_error_is_still_an_interrupt(monkeypatch, capsys):
    """SIGINT while NumPy's C extension initialises surfaces as that import's ImportError (seen in CI): main()
    still answers "ferkit: interrupted" and 130; the same error without a Ctrl-C keeps its traceback."""
    import signal

    from ferkit import cli

    def run(argv):
        signal.raise_signal(signal.SIGINT)  # through main()'s handler, as a real Ctrl-C

    def swallowed(argv):
        try:
            run(argv)
        except KeyboardInterrupt as exc:
            raise ImportError("PyCapsule_Import could not import module datetime") from exc

    monkeypatch.setattr(cli._Interrupts, "seen", False)
    monkeypatch.setattr(cli, "run", swallowed)
    with pytest.raises(SystemExit) as stop:
        cli.main(["predict"])
    assert stop.value.code == 130 and capsys.readouterr().err == "ferkit: interrupted\n"

    def broken(argv):
        raise ImportError("a real import error")

    monkeypatch.setattr(cli._Interrupts, "seen", False)
    monkeypatch.setattr(cli, "run", broken)
    with pytest.raises(ImportError, match="a real import error"):
        cli.main(["predict"])
    signal.signal(signal.SIGINT, signal.default_int_handler)


def test_errors_about_the_users_paths_are_one_line(tmp_path):
    """``--out`` below a file (NotADirectoryError) is the user's to fix: ``ferkit: error: ...``, exit 2."""
    from ferkit.demo import demo_photo

    (tmp_path / "notes.txt").write_text("")
    r = ferkit("predict", str(demo_photo()), "--out", str(tmp_path / "notes.txt" / "sub"), "--quiet")
    assert r.returncode == 2 and r.stderr.startswith("ferkit: error: ") and "Not a directory" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
