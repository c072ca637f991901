"""Bounded load test of ``ferkit serve`` on loopback: N concurrent clients for S seconds, a share of
their requests bad.

    .venv/bin/python benchmarks/server_load.py [--clients 50] [--seconds 60] [--bad 0] [--concurrency 1] [--out benchmarks/server_load.md]

Starts ``ferkit serve`` in its own process on a free port, then runs the clients in this process
(asyncio + httpx, one connection each, a new request as soon as the last one is answered). A good
request posts the same 640x480 JPEG with one face (the bundled photo on a grey canvas, as in
inference_speed.py) to POST /v1/predict and must get a 200 with one face. With ``--bad``, that share
of the requests (drawn at random, seed 0) is instead one of the bad inputs in ``bad_cases`` (text
named .jpg, truncated and corrupt files, a JPEG with 2,000 scans, a 48-megapixel PNG, broken
multipart, ...), each of which must get its own 4xx (or a 200 with an error entry). Records
requests/s, 5xx, any other unexpected answer, latency percentiles of the good requests as the
clients see them, and the server's resident memory (RSS) after the warm-up, after the load and at
its peak. Then one batch request of 16 bilevel 6300x6300 PNGs (77 kB in all, 635 megapixels
decoded) checks memory amplification: the server's RSS after it and its peak. Client and server
share this machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import socket
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import httpx
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))

from inference_speed import frame_640x480  # noqa: E402

BOUNDARY = "loadtestboundary"


@dataclass(frozen=True)
class Case:
    """One kind of request: what is posted where, and the status it must get."""

    name: str
    path: str
    status: int
    files: list | None = None
    content: bytes | None = None
    params: dict = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


def _scan_bomb(repeats: int) -> bytes:
    """A 1500x1500 progressive JPEG whose last scan is repeated: seconds of decoding in 41 kB."""
    buf = io.BytesIO()
    Image.new("RGB", (1500, 1500), (120, 130, 140)).save(buf, "JPEG", progressive=True)
    data = buf.getvalue()
    return data[:-2] + data[data.rfind(b"\xff\xda"):-2] * repeats + b"\xff\xd9"


def _multipart(disposition: str, data: bytes) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; {disposition}\r\n\r\n").encode() + data + \
        f"\r\n--{BOUNDARY}--\r\n".encode()


def bad_cases(jpeg: bytes) -> list[Case]:
    """The bad inputs, each with the status it must get."""
    png = bytearray(_png(np.zeros((20, 20, 3), np.uint8)))
    png[20] ^= 0xFF  # IHDR no longer matches its CRC
    one = "/v1/predict"
    return [
        Case("text named .jpg", one, 415, [("file", ("photo.jpg", b"not a photo\n" * 50, "image/jpeg"))]),
        Case("empty file", one, 400, [("file", ("empty.jpg", b"", "image/jpeg"))]),
        Case("truncated JPEG", one, 400, [("file", ("cut.jpg", jpeg[:len(jpeg) // 3], "image/jpeg"))]),
        Case("corrupt PNG header", one, 400, [("file", ("broken.png", bytes(png), "image/png"))]),
        Case("JPEG with 2,000 scans", one, 413, [("file", ("bomb.jpg", _scan_bomb(2000), "image/jpeg"))]),
        Case("48-megapixel PNG (6 kB)", one, 413, [("file", ("big.png", _png(np.zeros((8000, 6000), bool)), "image/png"))]),
        Case("no file field", one, 400, content=_multipart('name="other"', b"x")),
        Case("broken multipart", one, 400, content=f"--{BOUNDARY}xx".encode() + bytes(100)),
        Case("detect=maybe", one, 422, [("file", ("photo.jpg", jpeg, "image/jpeg"))], params={"detect": "maybe"}),
        Case("filename*= upload", one, 200, content=_multipart("name=\"file\"; filename*=UTF-8''%E2%82%AC.jpg", jpeg)),
        Case("batch: photo + text", "/v1/predict/batch", 200,
             [("files", ("a.jpg", jpeg, "image/jpeg")), ("files", ("b.jpg", b"text", "image/jpeg"))]),
    ]


async def client(base: str, good: Case, bad: list[Case], share: float, seed: int, stop_at: float,
                 latencies: list[float], seen: dict[str, Counter]) -> None:
    rng = random.Random(seed)
    headers = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
    async with httpx.AsyncClient(timeout=60) as http:
        while time.perf_counter() < stop_at:
            case = rng.choice(bad) if rng.random() < share else good
            t = time.perf_counter()
            try:
                r = await http.post(base + case.path, files=case.files, content=case.content, params=case.params,
                                    headers=headers if case.content is not None else None)
            except httpx.HTTPError as exc:
                seen[case.name][type(exc).__name__] += 1
                continue
            if case is good and r.status_code == 200 and len(r.json()["faces"]) != 1:
                seen[case.name]["200 without its face"] += 1
                continue
            seen[case.name][r.status_code] += 1
            if case is good and r.status_code == 200:
                latencies.append(time.perf_counter() - t)


async def load(base: str, good: Case, bad: list[Case], share: float, clients: int,
               seconds: float) -> tuple[list[float], dict[str, Counter], float]:
    latencies: list[float] = []
    seen: dict[str, Counter] = defaultdict(Counter)
    start = time.perf_counter()
    await asyncio.gather(*(client(base, good, bad, share, i, start + seconds, latencies, seen) for i in range(clients)))
    return latencies, seen, time.perf_counter() - start


def rss_mib(pid: int) -> tuple[int, int]:
    """The process's resident memory now and at its peak, MiB (Linux /proc)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) // 1024, int(fields["VmHWM"].split()[0]) // 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--bad", type=float, default=0.0, help="share of requests that are bad inputs (0..1)")
    ap.add_argument("--concurrency", type=int, default=1, help="ferkit serve --concurrency")
    ap.add_argument("--out", default="benchmarks/server_load.md")
    args = ap.parse_args()
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(frame_640x480(), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    jpeg = jpeg.tobytes()
    good = Case("good 640x480 JPEG", "/v1/predict", 200, [("file", ("frame.jpg", jpeg, "image/jpeg"))])
    bad = bad_cases(jpeg)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", "from ferkit.cli import main; main()", "serve", "--port", str(port), "--concurrency",
                               str(args.concurrency)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
        asyncio.run(load(base, good, bad, 0.5, 4, 5))  # warm-up, good and bad requests, not counted
        rss_before, _ = rss_mib(server.pid)
        latencies, seen, wall = asyncio.run(load(base, good, bad, args.bad, args.clients, args.seconds))
        rss_after, rss_peak = rss_mib(server.pid)
        big = _png(np.zeros((6300, 6300), bool))
        t = time.perf_counter()
        r = httpx.post(f"{base}/v1/predict/batch", files=[("files", (f"{i}.png", big, "image/png")) for i in range(16)],
                       timeout=600)
        batch = (r.status_code, r.json().get("results", []), time.perf_counter() - t, *rss_mib(server.pid))
    finally:
        server.terminate()
        server.wait(10)
    expected = {c.name: c.status for c in [good, *bad]}
    total = sum(sum(c.values()) for c in seen.values())
    fivexx = sum(n for c in seen.values() for status, n in c.items() if isinstance(status, int) and status >= 500)
    unexpected = sum(n for name, c in seen.items() for status, n in c.items() if status != expected[name])
    ms = 1000 * np.array(latencies)
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    rps = total / wall
    print(f"{total} requests in {wall:.1f} s = {rps:.1f}/s; 5xx {fivexx}, unexpected {unexpected}; good requests "
          f"latency p50 {p50:.0f} ms, p95 {p95:.0f} ms, p99 {p99:.0f} ms; server RSS {rss_before} -> {rss_after} MiB "
          f"(peak {rss_peak})")
    cmd = "`.venv/bin/python benchmarks/server_load.py" + (f" --clients {args.clients}" if args.clients != 50 else "") \
        + (f" --seconds {args.seconds:g}" if args.seconds != 60 else "") + (f" --bad {args.bad:g}" if args.bad else "") \
        + (f" --concurrency {args.concurrency}" if args.concurrency != 1 else "") + "`"
    lines = [f"# `ferkit serve` under load ({os.cpu_count()} cores, loopback)", "",
             f"Measured with {cmd}: {args.clients} concurrent clients for {args.seconds:g} s, each posting again as "
             f"soon as it is answered; {args.bad:.0%} of the requests are bad inputs (drawn at random from the "
             "kinds below), the rest a 640x480 JPEG with one face to `POST /v1/predict`; server "
             f"`--concurrency {args.concurrency}`; the clients run on the same cores as the server. Latency is that of the "
             "good requests; RSS is the server's resident memory after the warm-up, after the load, and its peak.", "",
             "| requests | requests/s | 5xx | unexpected answers | good p50 ms | good p95 ms | good p99 ms "
             "| RSS before MiB | RSS after MiB | RSS peak MiB |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
             f"| {total} | {rps:.1f} | {fivexx} | {unexpected} | {p50:.0f} | {p95:.0f} | {p99:.0f} | {rss_before} "
             f"| {rss_after} | {rss_peak} |", "", "| request | expected | sent | answers |", "|---|---:|---:|---|"]
    for name, status in expected.items():
        answers = ", ".join(f"{s}: {n}" for s, n in sorted(seen[name].items(), key=str))
        lines.append(f"| {name} | {status} | {sum(seen[name].values())} | {answers} |")
    status, results, took, rss_batch, peak_batch = batch
    lines += ["", f"Then one batch of 16 bilevel 6300x6300 PNGs ({16 * len(big) / 1000:.0f} kB, 635 megapixels): "
              f"status {status}, {sum('faces' in x for x in results)} images read, "
              f"{sum('error' in x for x in results)} refused (the request's pixel budget), {took:.1f} s; server RSS "
              f"after it {rss_batch} MiB, peak {peak_batch} MiB."]
    print(lines[-1])
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
