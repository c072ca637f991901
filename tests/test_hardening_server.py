"""Hardening of `ferkit serve` and image decoding (issue 16, items 2, 3 and 10): progressive-JPEG CPU
bombs, decodes stopped at a deadline or when the client goes, request pixel budgets and one image at
a time, stalled bodies, disconnects, `filename*=` uploads, corrupt PNGs, float TIFFs, and the pixel
groups of `ferkit predict` batches. Every fixture is made here."""

from __future__ import annotations

import contextlib
import gc
import io
import logging
import socket
import threading
import time
import weakref
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("httpx")
import httpx  # noqa: E402
import uvicorn  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from ferkit.apps.predict import recognise_batch  # noqa: E402
from ferkit.apps.server import Limits, create_app, uvicorn_config  # noqa: E402
from ferkit.inference import Recognizer, decode_image, read_image  # noqa: E402
from ferkit.inference import images  # noqa: E402

BOUNDARY = "ferkitboundary"


def _png(array: np.ndarray, **save) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", **save)
    return buf.getvalue()


def _scan_bomb(size: int, repeats: int, filler: int = 0) -> bytes:
    """A grey ``size`` x ``size`` progressive JPEG whose last scan (a few bytes, a pass over every
    block) is repeated ``repeats`` times, each copy followed by a ``filler``-byte comment."""
    buf = io.BytesIO()
    Image.new("RGB", (size, size), (120, 130, 140)).save(buf, "JPEG", progressive=True, quality=90)
    data = buf.getvalue()
    assert data.endswith(b"\xff\xd9")
    scan = data[data.rfind(b"\xff\xda"):-2]
    comment = b"\xff\xfe" + (filler + 2).to_bytes(2, "big") + bytes(filler) if filler else b""
    return data[:-2] + (scan + comment) * repeats + b"\xff\xd9"


def _multipart(field: str, disposition_name: str, data: bytes) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"; {disposition_name}\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def _raw_post(path: str, body: bytes, port: int, length: int | None = None, chunked: bool = False) -> bytes:
    """A request as bytes: with ``Content-Length`` (``length``, default the body's), or chunked."""
    if chunked:
        framing, body = "Transfer-Encoding: chunked", f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    else:
        framing = f"Content-Length: {len(body) if length is None else length}"
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n{framing}\r\n\r\n").encode() + body


def _error(response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code, response.json()
    return response.json()["error"]["message"]


@contextlib.contextmanager
def live_server(limits: Limits) -> Iterator[int]:
    """``ferkit serve``'s app under uvicorn in a thread, on a free loopback port (yielded)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn_config(create_app(limits=limits), log_config=None, timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


def _tracebacks(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


# --- item 2: decoder CPU bombs ---------------------------------------------------------------------

def test_jpeg_with_too_many_scans_is_refused_before_decoding(client):
    """2,000 repeats of a 14-byte scan on 1500x1500 pixels (41 kB) take seconds to decode; the scans
    are counted first and the upload refused at once."""
    bomb = _scan_bomb(1500, 2000)
    start = time.perf_counter()
    message = _error(client.post("/v1/predict", files={"file": ("bomb.jpg", bomb, "image/jpeg")}), 413, "too_many_scans")
    assert time.perf_counter() - start < 1.5 and "2,010 counted" in message
    with pytest.raises(images.ImageError, match="scans") as info:
        decode_image(bomb)
    assert info.value.code == "too_many_scans"


def test_scans_of_a_multi_picture_jpeg_are_counted():
    """A multi-picture JPEG (MPO, as phones write; Pillow opens it as JPEG) is counted too: its first
    picture's scans."""
    buf = io.BytesIO()
    Image.new("RGB", (1500, 1500), (120, 130, 140)).save(buf, "MPO", save_all=True, progressive=True,
                                                         append_images=[Image.new("RGB", (64, 64))])
    data = buf.getvalue()
    assert decode_image(data).shape == (1500, 1500, 3)
    end = data.find(b"\xff\xd9")
    bomb = data[:end] + data[data.rfind(b"\xff\xda", 0, end):end] * 2000 + data[end:]  # about 8 s to decode
    with Image.open(io.BytesIO(bomb)) as im:
        assert im.format == "MPO"
    with pytest.raises(images.ImageError, match="scans"):
        decode_image(bomb)


def test_scan_count_starts_at_the_first_real_scan(tmp_path):
    """Pillow's progressive JPEG has 10 scans; SOS bytes in a comment before the first scan are not
    scans; a file on disk is counted alike."""
    rgb = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", progressive=True, comment=b"\xff\xda" * 200)
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        assert images.jpeg_scans(im.fp, im.fp.tell(), 100) == 10
    assert decode_image(buf.getvalue()).shape == (64, 64, 3)
    (tmp_path / "bomb.jpg").write_bytes(_scan_bomb(64, 100))
    with pytest.raises(images.ImageError, match="over 64 scans"):
        read_image(tmp_path / "bomb.jpg")


def test_decode_stops_at_its_time_limit():
    """With the scan cap lifted, a 3,000-scan JPEG (about 10 s of decoding here) is stopped at the
    0.5 s limit (a check before each 64 KiB read) and refused with a 413."""
    bomb = _scan_bomb(1500, 3000, filler=2000)
    limits = Limits(max_jpeg_scans=10**6, max_decode_s=0.5)
    with TestClient(create_app(limits=limits), raise_server_exceptions=False) as c:
        start = time.perf_counter()
        r = c.post("/v1/predict", files={"file": ("slow.jpg", bomb, "image/jpeg")})
        took = time.perf_counter() - start
    assert "0.5 s" in _error(r, 413, "too_slow") and took < 4, took


def test_jpeg_segment_flood_is_stopped_early(client):
    """Pillow parses the segments before a JPEG's first scan in Python, a few reads each: 200,000 empty
    comments (800 kB; 10 MB of them took 7 s, 5 s with the time limit alone, 0.5 s now) are refused
    at the cap on reads."""
    buf = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buf, "JPEG")
    flood = buf.getvalue()[:2] + b"\xff\xfe\x00\x02" * 200_000 + buf.getvalue()[2:]
    message = _error(client.post("/v1/predict", files={"file": ("flood.jpg", flood, "image/jpeg")}), 413, "too_slow")
    assert "100,000 reads" in message


def test_abandoned_uploads_do_not_stall_other_requests(caplog):
    """Two clients post slow JPEGs (about 10 s of decoding each) and go; the next request is answered
    at once, because the running decode is stopped and the queued one never starts. No traceback."""
    caplog.set_level(logging.INFO)
    bomb = _scan_bomb(1500, 3000, filler=2000)
    small = _png(np.full((48, 48, 3), 100, np.uint8))
    with live_server(Limits(max_jpeg_scans=10**6, max_decode_s=120)) as port:
        abandoned = []
        for _ in range(2):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(_raw_post("/v1/predict", _multipart("file", 'filename="slow.jpg"', bomb), port))
            abandoned.append(s)
        time.sleep(1.5)  # both bodies are read: one decode runs, the other waits for the worker
        for s in abandoned:
            s.close()
        start = time.perf_counter()
        r = httpx.post(f"http://127.0.0.1:{port}/v1/predict", params={"detect": "false"},
                       files={"file": ("small.png", small, "image/png")}, timeout=30)
        waited = time.perf_counter() - start
    assert r.status_code == 200 and len(r.json()["faces"]) == 1
    assert waited < 3, f"waited {waited:.1f} s behind abandoned work"
    assert sum("client went away" in r.getMessage() for r in caplog.records) == 2
    assert _tracebacks(caplog) == []


# --- item 10: disconnects, stalled bodies, filename*, corrupt PNG, float TIFF ---------------------------

def test_disconnect_during_upload_is_one_log_line(caplog):
    caplog.set_level(logging.INFO)
    with live_server(Limits()) as port:
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(_raw_post("/v1/predict", _multipart("file", 'filename="a.jpg"', bytes(1000))[:500], port,
                                length=100_000))
            time.sleep(0.5)
        time.sleep(0.5)
    assert sum("client went away" in r.getMessage() for r in caplog.records) == 1
    assert _tracebacks(caplog) == []


def _answer_until_closed(s: socket.socket, seconds: float, trickle: bool = False) -> bytes:
    """What the server sends until it closes the connection (within ``seconds``), sending a byte of
    body every 0.3 s meanwhile if ``trickle``."""
    s.settimeout(0.3)
    answer, start = b"", time.perf_counter()
    while time.perf_counter() - start < seconds:
        try:
            if trickle:
                s.sendall(b"x")
            data = s.recv(4096)
        except TimeoutError:
            continue
        except (ConnectionResetError, BrokenPipeError):  # closed while we were still sending: a reset, not EOF
            return answer
        if not data:
            return answer
        answer += data
    raise AssertionError(f"the connection is still open after {seconds} s; received {answer!r}")


def test_stalled_and_trickled_bodies_get_408_and_are_closed():
    """A body that stops (nothing for 0.5 s) or trickles (not all of it within 2 s) gets a 408 and its
    connection is closed; so does one over the size limit."""
    start_of_body = _multipart("file", 'filename="a.jpg"', b"")[:-30]
    with live_server(Limits(body_idle_s=0.5, body_s=2, max_request_bytes=50_000)) as port:
        for trickle, within in ((False, 1.5), (True, 3)):
            with socket.create_connection(("127.0.0.1", port)) as s:
                start = time.perf_counter()
                s.sendall(_raw_post("/v1/predict", start_of_body, port, length=10_000))
                answer = _answer_until_closed(s, 8, trickle)
                assert time.perf_counter() - start < within
            assert answer.startswith(b"HTTP/1.1 408") and b'"request_timeout"' in answer, answer
            assert b"connection: close" in answer.lower()
        for chunked in (False, True):  # by Content-Length, and once 50,000 bytes have come
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(_raw_post("/v1/predict", start_of_body + bytes(60_000), port, chunked=chunked))
                answer = _answer_until_closed(s, 3)
            assert answer.startswith(b"HTTP/1.1 413") and b"connection: close" in answer.lower(), answer


def test_missing_slow_and_idle_request_heads_are_closed():
    """uvicorn times no request head; with ``head_s`` 0.5 s, a connection that sends nothing, half a
    head, a head a byte at a time, or nothing after an answer (kept alive) is closed after 0.5 s."""
    with live_server(Limits(head_s=0.5)) as port:
        connections = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
        nothing, half, trickle, answered = connections
        half.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        answered.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        start = time.perf_counter()
        assert _answer_until_closed(trickle, 3, trickle=True) == b""
        assert _answer_until_closed(nothing, 3) == _answer_until_closed(half, 3) == b""
        assert _answer_until_closed(answered, 3).startswith(b"HTTP/1.1 200")
        assert time.perf_counter() - start < 2  # uvicorn alone: the first three never, the last after 5 s
        for c in connections:
            c.close()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:  # a client that asks in time is served
            assert [http.get("/healthz").status_code for _ in range(3)] == [200] * 3


def test_filename_star_uploads_are_files(client, photo):
    """RFC 5987 ``filename*=`` (forbidden by RFC 7578, sent by some clients) names the file."""
    headers = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
    body = _multipart("file", "filename*=UTF-8''%E2%82%AC%20rates.jpg", photo)
    r = client.post("/v1/predict", content=body, headers=headers)
    assert r.status_code == 200 and len(r.json()["faces"]) == 1, r.text
    body = _multipart("files", "filename*=UTF-8''caf%C3%A9%22.jpg", b"not an image")
    (entry,) = client.post("/v1/predict/batch", content=body, headers=headers).json()["results"]
    assert entry["filename"] == 'café".jpg' and entry["error"]["code"] == "not_an_image"
    _error(client.post("/v1/predict", content=_multipart("file", "size=3", photo), headers=headers), 400, "missing_file")


def test_part_without_content_disposition_is_400(client, photo):
    """A part with no Content-Disposition header (so no field name) is bad input, not a server error."""
    body = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n\r\n".encode() + photo + f"\r\n--{BOUNDARY}--\r\n".encode()
    for path in ("/v1/predict", "/v1/predict/batch"):
        r = client.post(path, content=body, headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"})
        assert "Content-Disposition" in _error(r, 400, "bad_request")


def test_corrupt_png_is_400_and_text_is_415(client):
    png = bytearray(_png(np.zeros((20, 20, 3), np.uint8)))
    png[20] ^= 0xFF  # inside IHDR: its CRC no longer matches, Pillow cannot open it
    for bad in (bytes(png), bytes(png[:8]), b"\xff\xd8\xff" + bytes(40)):
        _error(client.post("/v1/predict", files={"file": ("x.png", bad, "image/png")}), 400, "corrupt")
    _error(client.post("/v1/predict", files={"file": ("x.png", b"hello" * 20, "image/png")}), 415, "not_an_image")


def test_float_tiffs_in_0_1_are_scaled():
    ramp = np.tile(np.linspace(0, 1, 256, dtype=np.float32), (8, 1))
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, "TIFF")
    rgb = decode_image(buf.getvalue())
    assert rgb[0, 0, 0] == 0 and rgb[0, -1, 0] == 255 and abs(int(rgb[0, 128, 0]) - 128) <= 1
    buf = io.BytesIO()
    Image.fromarray(ramp * 200).save(buf, "TIFF")  # already in 0..255: kept
    assert decode_image(buf.getvalue())[0, -1, 0] == 200


# --- item 3: memory ------------------------------------------------------------------------------------

def test_batch_images_are_decoded_and_searched_one_at_a_time():
    """Each image reaches the recogniser alone, and the one before it has been let go."""
    app = create_app()
    real, seen = app.state.recognizer, []

    class Spy:
        def predict(self, rgb, detect=True):
            gc.collect()
            assert all(ref() is None for ref in seen), "an earlier image is still held"
            seen.append(weakref.ref(rgb))
            return real.predict(rgb, detect=detect)

    app.state.recognizer = Spy()
    files = [("files", (f"{i}.png", _png(np.full((300, 400, 3), 50 * i, np.uint8)), "image/png")) for i in range(4)]
    with TestClient(app) as c:
        results = c.post("/v1/predict/batch", files=files).json()["results"]
    assert [r["width"] for r in results] == [400] * 4 and len(seen) == 4


def test_request_pixel_budget():
    """1-megapixel images against a 2.5-megapixel budget: the first two are read, the others refused
    (each with its 413 entry) without being decoded."""
    bilevel = _png(np.zeros((1000, 1000), bool))  # 1 Mpixel in about 200 bytes
    files = [("files", (f"{i}.png", bilevel, "image/png")) for i in range(4)]
    with TestClient(create_app(limits=Limits(max_request_pixels=2_500_000)), raise_server_exceptions=False) as c:
        results = c.post("/v1/predict/batch", files=files, params={"detect": "false"}).json()["results"]
        assert [r.get("width") for r in results] == [1000, 1000, None, None]
        assert all(r["error"]["status"] == 413 and "budget of 2,500,000" in r["error"]["message"] for r in results[2:])
        _error(c.post("/v1/predict", files={"file": ("big.png", _png(np.zeros((2000, 1300), bool)), "image/png")}),
               413, "too_many_pixels")


def test_pixel_groups_keep_order_and_budget():
    groups = list(images.pixel_groups([3, 4, 2, 9, 1, 1], lambda n: n, budget=6))
    assert groups == [[3], [4, 2], [9], [1, 1]]
    assert list(images.pixel_groups([], lambda n: n, budget=6)) == []


def test_predict_batches_are_read_in_pixel_groups(tmp_path, monkeypatch):
    """``ferkit predict`` reads a batch a pixel group at a time: 4 images of 16.8 Mpixel against the
    50 Mpixel budget reach the recogniser two by two, and the records stay in input order."""
    paths = [tmp_path / f"{i}.png" for i in range(4)]
    for p in paths:
        p.write_bytes(_png(np.zeros((4000, 4200), bool)))
    rec, sizes = Recognizer(), []
    real = rec.predict_batch

    def spy(imgs, **kwargs):
        sizes.append(sum(im.shape[0] * im.shape[1] for im in imgs))
        return real(imgs, **kwargs)

    monkeypatch.setattr(rec, "predict_batch", spy)
    records = recognise_batch(rec, [(str(p), None) for p in paths], tmp_path, detect=False)
    assert [r["file"] for r in records] == [str(p) for p in paths] and all(len(r["faces"]) == 1 for r in records)
    assert sizes == [2 * 16_800_000] * 2 and images.BATCH_PIXELS == 50_000_000
