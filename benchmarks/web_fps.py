"""Webcam frames per second and per-frame latency of the web page, on the device (ONNX Runtime Web in
Chromium, wasm, one thread) against the server path (JPEG upload to POST /v1/predict on this machine),
under a Pixel 7 profile with the fake camera (640x480, one face). Modes alternate for ``--rounds``
rounds of ``--seconds`` each; medians are printed as a Markdown table.

    OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python benchmarks/web_fps.py --rounds 3 --seconds 15
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from webtools import CHROMIUM, PHONE, chromium_args, running_server, write_fake_camera  # noqa: E402


def measure(page, mode: str, seconds: float) -> tuple[float, float, float]:
    """(frames/s, median ms, 90th percentile ms) of the webcam loop in ``mode`` ("device" or "server")."""
    page.click(f"#engine-{mode}")
    page.click("#webcam-start")
    page.wait_for_function("window.ferkitStats.frames >= 3", timeout=120_000)
    page.evaluate("window.ferkitStats = {frames: 0, ms: [], started: 0}")
    time.sleep(seconds)
    frames, ms, started, now = page.evaluate(
        "[window.ferkitStats.frames, window.ferkitStats.ms, window.ferkitStats.started, performance.now()]")
    page.click("#webcam-stop")
    ms = sorted(ms)
    return frames / ((now - started) / 1000), statistics.median(ms), ms[int(0.9 * (len(ms) - 1))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=15)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    results: dict[str, list[tuple[float, float, float]]] = {"device": [], "server": []}
    with tempfile.TemporaryDirectory() as tmp, running_server(threads=1) as (url, _), sync_playwright() as p:
        video = write_fake_camera(Path(tmp) / "camera.y4m", seconds=3)
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=chromium_args(video))
        context = browser.new_context(**p.devices[PHONE], service_workers="block")
        page = context.new_page()
        page.goto(url + "#webcam")
        page.wait_for_function("document.body.dataset.engine === 'device'", timeout=120_000)
        for _ in range(args.rounds):
            for mode in ("device", "server"):
                results[mode].append(measure(page, mode, args.seconds))
                print(mode, *(f"{v:.1f}" for v in results[mode][-1]), file=sys.stderr)
        browser.close()
    print("| path | frames/s | latency median (ms) | latency p90 (ms) |")
    print("|---|---|---|---|")
    names = {"device": "on the device (ONNX Runtime Web, wasm, 1 thread)", "server": "server (JPEG to POST /v1/predict, 1 thread)"}
    for mode, runs in results.items():
        fps, med, p90 = (statistics.median(r[i] for r in runs) for i in range(3))
        print(f"| {names[mode]} | {fps:.1f} | {med:.0f} | {p90:.0f} |")


if __name__ == "__main__":
    main()
