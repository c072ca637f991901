"""Helpers for the browser tests (test_web_ondevice.py, test_web_offline.py) and benchmarks/web_fps.py:
a ferkit server in a thread that records every request it gets, a Y4M clip for Chromium's fake camera,
and Chromium's launch options (Debian's /usr/bin/chromium; Playwright never downloads a browser)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

CHROMIUM = Path("/usr/bin/chromium")
SHARED_EXAMPLES = Path(__file__).resolve().parents[2] / "shared" / "examples"
VIDEO_W, VIDEO_H, VIDEO_FPS = 640, 480, 15
PHONE = "Pixel 7"  # Playwright's device profile: 412x915 CSS px, touch, mobile user agent


class Recorder:
    """ASGI middleware that notes (method, path) of every HTTP request the server gets."""

    def __init__(self, app: Any) -> None:
        self.app, self.requests = app, []

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.requests.append((scope["method"], scope["path"]))
        await self.app(scope, receive, send)

    def posts(self) -> list[tuple[str, str]]:
        return [r for r in self.requests if r[0] != "GET"]


@contextlib.contextmanager
def running_server(**app_options: Any) -> Iterator[tuple[str, Recorder]]:
    """A ferkit server on a free port of 127.0.0.1: its URL and its request recorder; stopped on exit."""
    import uvicorn

    from ferkit.apps.server import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    recorder = Recorder(create_app(**app_options))
    server = uvicorn.Server(uvicorn.Config(recorder, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url + "healthz", timeout=2) as r:
                if json.load(r) == {"status": "ok"}:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError("the ferkit server did not start")
        time.sleep(0.1)
    try:
        yield url, recorder
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def fit(bgr: np.ndarray, width: int = VIDEO_W, height: int = VIDEO_H) -> np.ndarray:
    """``bgr`` shrunk or grown to fit width x height, centred on grey."""
    canvas = np.full((height, width, 3), 128, np.uint8)
    h, w = bgr.shape[:2]
    s = min(width / w, height / h)
    nw, nh = int(round(w * s)), int(round(h * s))
    small = cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    x, y = (width - nw) // 2, (height - nh) // 2
    canvas[y:y + nh, x:x + nw] = small
    return canvas


def write_fake_camera(path: Path, seconds: float = 3) -> Path:
    """A 640x480 Y4M clip for Chromium's fake camera: the woman of ``fer_woman2.mp4`` when ../shared is
    there, else the bundled astronaut photo, still. Screenshots for the docs ($FERKIT_SCREENSHOTS) always show
    the astronaut (public domain): nothing from ../shared may be shipped."""
    from ferkit.demo import demo_photo

    frames: list[np.ndarray] = []
    n = int(seconds * VIDEO_FPS)
    clip = SHARED_EXAMPLES / "fer_woman2.mp4"
    if clip.exists() and not os.environ.get("FERKIT_SCREENSHOTS"):
        cap = cv2.VideoCapture(str(clip))
        step = max(1, round((cap.get(cv2.CAP_PROP_FPS) or 30) / VIDEO_FPS))
        i = 0
        while len(frames) < n:
            ok, frame = cap.read()
            if not ok:
                break
            if i % step == 0:
                frames.append(fit(frame))
            i += 1
        cap.release()
    if not frames:
        frames = [fit(cv2.imread(str(demo_photo())))] * n
    with path.open("wb") as f:
        f.write(f"YUV4MPEG2 W{VIDEO_W} H{VIDEO_H} F{VIDEO_FPS}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            f.write(b"FRAME\n")
            f.write(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


def chromium_args(fake_video: Path) -> list[str]:
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={fake_video}"]
