"""`ferkit predict` as a command: bad files are reported and skipped."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from ferkit.demo import demo_photo


def test_predict_command_goes_on_after_bad_files(onnx_fp32, tmp_path):
    Image.open(demo_photo()).save(tmp_path / "a.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    (tmp_path / "sub").mkdir()
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(tmp_path / "sub" / "blank.jpg")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "ferkit", "predict", str(tmp_path), "--weights", str(onnx_fp32.path),
                        "--out", str(out), "--quiet"], capture_output=True, text=True, env=os.environ)
    assert r.returncode == 1, r.stderr  # one file failed
    assert "broken.jpg" in r.stderr and "Traceback" not in r.stderr
    assert "1 face(s) in 2 image(s)" in r.stdout and "1 file(s) failed" in r.stdout
    rows = (out / "predictions.csv").read_text().splitlines()
    assert rows[0].startswith("file,face,x,y,w,h,emotion,score,Angry") and len(rows) == 2
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [len(r.get("faces", [])) for r in records] == [1, 0, 0]
    assert "error" in records[1] and records[2]["faces"] == []
    assert (out / "a.jpg").exists() and (out / "blank.jpg").exists()


def test_predict_command_with_no_readable_image_fails(tmp_path):
    r = subprocess.run([sys.executable, "-m", "ferkit", "predict", str(tmp_path / "nothing*.jpg"), "--out",
                        str(tmp_path / "o"), "--quiet"], capture_output=True, text=True)
    assert r.returncode == 1 and "no such file" in r.stderr


def test_bad_counts_name_their_option(tmp_path):
    """A count below 1 is refused naming the command-line option and the Python keyword, before any model loads."""
    from ferkit.apps.predict import predict_files
    from ferkit.errors import ConfigError

    for kw, message in ((dict(batch=0), "--batch-size (batch) must be >= 1, not 0"),
                        (dict(threads=-1), "--threads (threads) must be >= 1, not -1"),
                        (dict(engine="ray", workers=0), "--ray-workers (workers) must be >= 1, not 0"),
                        (dict(workers=2), "workers (--ray-workers) are for engine='ray'")):
        with pytest.raises(ConfigError, match=re.escape(message)):
            predict_files([tmp_path / "a.png"], out=tmp_path / "o", progress=False, **kw)


def test_resuming_with_other_settings_is_refused(tmp_path):
    """An --out holds one model's answers: appending with another model, TTA, detector or alignment is refused
    (predict_settings.json records them); the same settings resume, --overwrite starts afresh."""
    import pytest

    from ferkit.apps.predict import predict_files
    from ferkit.errors import ConfigError

    Image.open(demo_photo()).save(tmp_path / "a.png")
    out = tmp_path / "out"
    kw = dict(out=out, progress=False, save_images=False)
    assert predict_files([tmp_path / "a.png"], model="small", **kw).images == 1
    settings = json.loads((out / "predict_settings.json").read_text())
    assert settings["tta"] == "none" and settings["models"][0].startswith("resnet_s_fer2013.onnx (sha256 ")
    assert predict_files([tmp_path / "a.png"], model="small", **kw).images == 0  # resumed: done already
    with pytest.raises(ConfigError, match=r"other settings \(tta: 'none' there, 'flip' now\); use --overwrite"):
        predict_files([tmp_path / "a.png"], model="small", tta="flip", **kw)
    with pytest.raises(ConfigError, match="models: .*resnet_s_fer2013.onnx.*resnet_sw_fer2013.int8.onnx"):
        predict_files([tmp_path / "a.png"], model="small,default", **kw)
    assert predict_files([tmp_path / "a.png"], model="small,default", overwrite=True, **kw).images == 1
    assert len(json.loads((out / "predict_settings.json").read_text())["models"]) == 2


def test_ray_workers_get_the_models_files(tmp_path, monkeypatch):
    """``--engine ray`` hands its workers the members' absolute files, which a worker in another folder (or
    on another machine with the package at the same place) opens; a shipped name made into a path would not be."""
    from ferkit.apps import predict_ray
    from ferkit.apps.predict import predict_files
    from ferkit.inference import Recognizer, shipped_models

    seen = {}
    monkeypatch.setattr(predict_ray, "run_ray", lambda batches, consume, workers, **kw: seen.update(kw))
    Image.open(demo_photo()).save(tmp_path / "a.png")
    predict_files([tmp_path / "a.png"], out=tmp_path / "o", model="flagship,default", engine="ray", progress=False)
    assert seen["model"] == [str(shipped_models()[n].resolve()) for n in ("flagship", "default")]
    monkeypatch.chdir(tmp_path)
    assert Recognizer(model=seen["model"]).classifier.name == "resnet_m_fer2013.int8+resnet_sw_fer2013.int8"
