"""`ferkit webcam`: headless lines, errors without camera or display, the live window."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image


def test_webcam_headless_prints_each_recognised_frame(onnx_fp32, clip, tmp_path):
    r = subprocess.run([sys.executable, "-m", "ferkit", "webcam", "--headless", "--source", str(clip), "--weights",
                        str(onnx_fp32.path), "--out", str(tmp_path), "--stride", "5"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("frame ")]
    assert [ln.split()[1] for ln in lines] == ["0", "5", "10", "15"]
    assert all("face 0 " in ln for ln in lines)
    assert (tmp_path / "clip.csv").exists() and (tmp_path / "clip_summary.json").exists()


def test_webcam_without_camera_or_display_is_a_clear_error(onnx_fp32, tmp_path):
    r = subprocess.run([sys.executable, "-m", "ferkit", "webcam", "--headless", "--camera", "97", "--weights",
                        str(onnx_fp32.path), "--out", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and "camera 97: cannot be opened" in r.stderr and "Traceback" not in r.stderr
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    r = subprocess.run([sys.executable, "-m", "ferkit", "webcam", "--weights", str(onnx_fp32.path), "--out",
                        str(tmp_path)], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "use --headless" in r.stderr


def test_webcam_window_shows_annotated_frames(onnx_fp32, clip, tmp_path):
    """Under a virtual X server (Debian's xvfb), the window opens, shows frames and closes on q."""
    import shutil
    import time

    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    display = ":57"
    server = subprocess.Popen(["Xvfb", display, "-screen", "0", "800x600x24"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        code = f"""
import os, numpy as np
from PIL import ImageGrab
from ferkit.apps import webcam as w
shown = []
real = w.LiveWindow.show
def show(self, vf):
    ok = real(self, vf)
    shown.append(vf.index)
    if len(shown) == 8:
        ImageGrab.grab(xdisplay="{display}").save(r"{tmp_path / 'window.png'}")
        self.root.event_generate("q")  # the user quits
        self.root.update()
    return self.open
w.LiveWindow.show = show
res = w.webcam(source=r"{clip}", model=r"{onnx_fp32.path}", out=r"{tmp_path}")
print(len(shown), res.complete, res.frames_read)
"""
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "DISPLAY": display})
    finally:
        server.terminate()
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["8", "False", "8"]  # stopped by the user after 8 frames, not complete
    from ferkit.inference.draw import COLOURS

    shot = np.asarray(Image.open(tmp_path / "window.png").convert("RGB")).astype(int)
    label_pixels = sum(int((np.abs(shot - np.array(c)).max(-1) < 8).sum()) for c in COLOURS.values())
    assert shot[:480, :640].std() > 20 and label_pixels > 200  # the frame, with a coloured box, label and bars


def test_bad_stream_options_are_refused_before_the_model_or_window(clip, tmp_path):
    """``webcam(smoothing=2)`` names --smooth before loading the model, opening a window or writing a file."""
    from ferkit.apps.webcam import webcam
    from ferkit.errors import ConfigError

    with pytest.raises(ConfigError, match="^--smooth must be in"):
        webcam(source=clip, out=tmp_path / "o", model=tmp_path / "no-such-model.onnx", smoothing=2.0)
    assert not (tmp_path / "o").exists()


def test_webcam_help_names_the_csv_of_a_source():
    r = subprocess.run([sys.executable, "-m", "ferkit", "webcam", "--help"], capture_output=True, text=True)
    text = " ".join(r.stdout.split())
    assert "with --source, <out>/<name>.csv after the source's file name" in text
    assert "(default 0; not used with --source)" in text
