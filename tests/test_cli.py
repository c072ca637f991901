"""The command line: help texts, listings, the data report, and clear errors on bad input."""

import os
import subprocess
import sys

import pytest

from ferkit.cli import run


def ferkit(*args, **kw):
    return subprocess.run([sys.executable, "-m", "ferkit", *args], capture_output=True, text=True, **kw)


@pytest.mark.parametrize("cmd", ["train", "evaluate", "export", "predict", "video", "models", "data-report", "demo"])
def test_help(cmd):
    r = ferkit(cmd, "--help")
    assert r.returncode == 0 and "usage: ferkit" in r.stdout


def test_models_lists_params_and_macs(capsys):
    assert run(["models"]) == 0
    out = capsys.readouterr().out
    assert "resnet_s" in out and "MACs" in out


def test_bad_data_is_a_clear_error(tmp_path):
    bad = tmp_path / "fer.csv"
    bad.write_text("emotion,pixels,Usage\n3,1 2 3,Training\n")
    r = ferkit("train", "--model", "resnet_s", "--data", str(bad), env={**os.environ, "FERKIT_CACHE_DIR": str(tmp_path)})
    assert r.returncode == 2
    assert f"{bad}:2: expected 2304 pixel values, found 3" in r.stderr
    assert "Traceback" not in r.stderr


def test_unknown_model_is_a_clear_error(tmp_path):
    r = ferkit("train", "--model", "nope", "--data", str(tmp_path))
    assert r.returncode == 2 and "ferkit: error:" in r.stderr


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
