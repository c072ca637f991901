"""`ferkit predict` as a command: bad files are reported and skipped."""

import json
import os
import subprocess
import sys

import numpy as np
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
