"""Every command's printed output, once, through the CLI in-process (``ferkit.cli.run``): a tiny
FER2013-style CSV trained for one epoch, then evaluated, exported and used."""

import json
import re

import pytest

from conftest import fer_csv_text, fer_image
from ferkit.cli import run
from ferkit.demo import demo_photo


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    rows = [(i % 7, fer_image(100 * k + i), usage)
            for k, (usage, n) in enumerate((("Training", 42), ("PublicTest", 14), ("PrivateTest", 14))) for i in range(n)]
    (root / "fer2013.csv").write_text(fer_csv_text(rows))
    return root


def test_every_command_prints_what_it_did(workspace, capsys):
    data, runs = str(workspace / "fer2013.csv"), workspace / "runs"

    assert run(["train", "--model", "resnet_s", "--data", data, "--project", str(runs), "--name", "t", "--epochs", "1",
                "--batch-size", "16", "--threads", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"best val accuracy 0\.\d{4} at epoch 1; weights: .*t/best\.pt", out), out

    assert run(["evaluate", str(runs / "t"), "--data", data, "--split", "PrivateTest", "--tta", "flip"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"PrivateTest \(14 images, tta=flip.*\): accuracy 0\.\d{4}", out), out
    report = runs / "t" / "eval-PrivateTest-flip" / "report.html"
    assert str(report) in out and report.exists()

    onnx = workspace / "t.onnx"
    assert run(["export", str(runs / "t"), "--data", data, "--out", str(onnx)]) == 0
    out = capsys.readouterr().out
    assert f"wrote {onnx}" in out and "max |PyTorch - " in out and "validation accuracy: PyTorch 0." in out

    assert run(["demo", "--out", str(workspace / "demo")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"face 0 at x=\d+ y=\d+ w=\d+ h=\d+: \w+ \(\d+%\)", out), out
    assert "annotated photo: " in out

    assert run(["predict", str(demo_photo()), "--weights", str(onnx), "--out", str(workspace / "p"),
                "--quiet"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"1 face\(s\) in 1 image\(s\); results in .*p", out), out

    assert run(["data-report", "--data", data, "--out", str(workspace / "report")]) == 0
    assert "Training" in capsys.readouterr().out

    assert run(["models", "--json"]) == 0
    assert "resnet_s" in {m["name"] for m in json.loads(capsys.readouterr().out)}
