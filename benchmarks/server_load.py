"""Bounded load test of ``ferkit serve`` on loopback: N concurrent clients for S seconds.

    .venv/bin/python benchmarks/server_load.py [--clients 50] [--seconds 60] [--workers 1] [--out benchmarks/server_load.md]

Starts ``ferkit serve`` in its own process on a free port, then runs the clients in this process
(asyncio + httpx, one connection each, a new request as soon as the last one is answered), each
posting the same 640x480 JPEG with one face (the bundled photo on a grey canvas, as in
inference_speed.py) to POST /v1/predict. Records requests/s, errors (anything but a 200 with one
face) and latency percentiles as the clients see them. Client and server share this machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from inference_speed import frame_640x480  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def client(url: str, jpeg: bytes, stop_at: float, latencies: list[float], errors: list[str]) -> None:
    async with httpx.AsyncClient(timeout=60) as http:
        while time.perf_counter() < stop_at:
            t = time.perf_counter()
            try:
                r = await http.post(url, files={"file": ("frame.jpg", jpeg, "image/jpeg")})
                ok = r.status_code == 200 and len(r.json()["faces"]) == 1
                if not ok:
                    errors.append(f"{r.status_code} {r.text[:100]}")
            except httpx.HTTPError as exc:
                errors.append(type(exc).__name__)
                continue
            latencies.append(time.perf_counter() - t)


async def load(url: str, jpeg: bytes, clients: int, seconds: float) -> tuple[list[float], list[str], float]:
    latencies: list[float] = []
    errors: list[str] = []
    start = time.perf_counter()
    await asyncio.gather(*(client(url, jpeg, start + seconds, latencies, errors) for _ in range(clients)))
    return latencies, errors, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--workers", type=int, default=1, help="ferkit serve --workers")
    ap.add_argument("--out", default="benchmarks/server_load.md")
    args = ap.parse_args()
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(frame_640x480(), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    jpeg = jpeg.tobytes()
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", "from ferkit.cli import main; main()", "serve", "--port", str(port), "--workers",
                               str(args.workers)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise SystemExit("the server did not start")
        asyncio.run(load(f"{base}/v1/predict", jpeg, 2, 3))  # warm-up, not counted
        latencies, errors, wall = asyncio.run(load(f"{base}/v1/predict", jpeg, args.clients, args.seconds))
    finally:
        server.terminate()
        server.wait(10)
    ms = 1000 * np.array(latencies)
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    rps = len(latencies) / wall
    print(f"{len(latencies)} requests in {wall:.1f} s = {rps:.1f}/s; errors {len(errors)}; "
          f"latency p50 {p50:.0f} ms, p95 {p95:.0f} ms, p99 {p99:.0f} ms")
    cmd = "`.venv/bin/python benchmarks/server_load.py" + (f" --clients {args.clients}" if args.clients != 50 else "") \
        + (f" --seconds {args.seconds:g}" if args.seconds != 60 else "") \
        + (f" --workers {args.workers}" if args.workers != 1 else "") + "`"
    lines = [f"# `ferkit serve` under load ({os.cpu_count()} cores, loopback)", "",
             f"Measured with {cmd}: {args.clients} concurrent clients for {args.seconds:g} s, each posting a "
             "640x480 JPEG with one face to `POST /v1/predict` again as soon as it is answered; server "
             f"`--workers {args.workers}`; the clients run on the same cores as the server.", "",
             "| requests | errors | requests/s | p50 ms | p95 ms | p99 ms |", "|---:|---:|---:|---:|---:|---:|",
             f"| {len(latencies)} | {len(errors)} | {rps:.1f} | {p50:.0f} | {p95:.0f} | {p99:.0f} |"]
    if errors:
        lines += ["", "First errors: " + "; ".join(errors[:5])]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
