"""HTTP API (``ferkit serve``): every endpoint and every kind of bad input, with Starlette's TestClient."""

from __future__ import annotations

import io
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from ferkit.apps.server import Limits, create_app  # noqa: E402
from ferkit.cli import run  # noqa: E402
from ferkit.demo import demo_photo  # noqa: E402
from ferkit.inference import Recognizer, shipped_models  # noqa: E402

ASTRONAUT_FACE = [173, 75, 104, 103]  # as in test_inference
CLASSES = ["Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"]


def _png(array: np.ndarray, fmt: str = "PNG", **save) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **save)
    return buf.getvalue()


def _post(client, data: bytes, name: str = "photo.jpg", ctype: str = "image/jpeg", **params):
    return client.post("/v1/predict", files={"file": (name, data, ctype)}, params=params)


def _error(response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code, body
    return body["error"]["message"]


def test_health_and_models(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    info = client.get("/v1/models").json()
    assert info["default"] == "resnet_sw_fer2013.int8"
    (model,) = info["models"]
    assert model["classes"] == CLASSES and model["detector"] == "blazeface" and model["precision"] == "int8"
    assert model["temperature"] == pytest.approx(0.860, abs=1e-3)  # the default is temperature-scaled
    assert model["input"] == "48x48 grey face"  # the model's own input size
    assert model["limits"]["max_image_bytes"] == Limits().max_image_bytes


@pytest.mark.parametrize("name", sorted(shipped_models()))
def test_every_shipped_model_serves_by_name(name, photo):
    """``ferkit serve --weights NAME``: the API and the page's on-device settings carry that model's own
    classes (8 for a FER+ model), and the astronaut's smile comes back as its Happy class."""
    with TestClient(create_app(model=name), raise_server_exceptions=False) as c:
        classes = list(Recognizer(model=name).classes)
        assert c.get("/v1/models").json()["models"][0]["classes"] == classes
        assert c.get("/ondevice.json").json()["classifier"]["classes"] == classes
        (face,) = _post(c, photo).json()["faces"]
        assert list(face["probs"]) == classes and face["emotion"] in ("Happy", "Happiness")


def test_serve_with_tta(photo):
    """``ferkit serve --tta flip``: the API's answers are the flip-averaged Recognizer's, and the API and the
    page's on-device settings say so (the page then averages the same views)."""
    with TestClient(create_app(model="small", tta="flip"), raise_server_exceptions=False) as c:
        assert c.get("/v1/models").json()["models"][0]["tta"] == "flip"
        assert c.get("/ondevice.json").json()["tta"] == "flip"
        (face,) = _post(c, photo).json()["faces"]
    want = Recognizer(model="small", tta="flip").predict(np.asarray(Image.open(io.BytesIO(photo)).convert("RGB")))[0]
    assert face["probs"] == pytest.approx(want.probs, abs=1e-4)
    assert face["probs"] != pytest.approx(Recognizer(model="small").predict(demo_photo())[0].probs, abs=1e-4)


def test_serve_an_ensemble(photo):
    """``ferkit serve --weights small,default``: the answers are the ensemble Recognizer's, /v1/models names its
    members, and the page's on-device settings list each member's file (served, under its hash) to average."""
    with TestClient(create_app(model="small,default"), raise_server_exceptions=False) as c:
        (model,) = c.get("/v1/models").json()["models"]
        assert (model["name"], model["architecture"], model["precision"]) == (
            "resnet_s_fer2013+resnet_sw_fer2013.int8", "resnet_s+resnet_sw", "fp32+int8")
        assert [m["name"] for m in model["members"]] == ["resnet_s_fer2013", "resnet_sw_fer2013.int8"]
        assert model["members"][1]["temperature"] == pytest.approx(0.860, abs=1e-3)
        urls = c.get("/ondevice.json").json()["classifier"]["urls"]
        assert [u.split("/")[1].rsplit(".", 2)[0] for u in urls] == ["resnet_s_fer2013", "resnet_sw_fer2013.int8"]
        for url, name in zip(urls, ("small", "default")):
            assert c.get("/" + url).content == shipped_models()[name].read_bytes()
        body = _post(c, photo).json()
    assert body["model"] == "resnet_s_fer2013+resnet_sw_fer2013.int8"
    want = Recognizer(model="small,default").predict(np.asarray(Image.open(io.BytesIO(photo)).convert("RGB")))[0]
    assert body["faces"][0]["probs"] == pytest.approx(want.probs, abs=1e-5)


def test_predict_one_photo(client, photo):
    r = _post(client, photo)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["width"], body["height"], body["model"]) == (512, 512, "resnet_sw_fer2013.int8") and body["ms"] > 0
    (face,) = body["faces"]
    assert face["box"] == ASTRONAUT_FACE and len(face["landmarks"]) == 6
    assert list(face["probs"]) == CLASSES and sum(face["probs"].values()) == pytest.approx(1, abs=1e-5)
    assert face["emotion"] == max(face["probs"], key=face["probs"].get) and face["score"] == face["probs"][face["emotion"]]
    local = Recognizer().predict(demo_photo())[0]  # the same answer as the Python API
    assert face["probs"] == pytest.approx(local.probs, abs=1e-6)


def test_no_face_and_whole_image_as_face(client, photo):
    assert _post(client, _png(np.full((120, 160, 3), 127, np.uint8)), "grey.png", "image/png").json()["faces"] == []
    (face,) = _post(client, photo, detect="false").json()["faces"]
    assert face["box"] == [0, 0, 512, 512] and face["landmarks"] is None


def test_format_is_sniffed_not_taken_from_the_name(client, photo):
    """A PNG called .jpg and sent as text/plain is read as the PNG it is; text called .jpg is refused."""
    png = _png(np.asarray(Image.open(io.BytesIO(photo))))
    assert len(_post(client, png, "really-a-png.jpg", "text/plain").json()["faces"]) == 1
    message = _error(_post(client, b"this is not a photo\n" * 20, "photo.jpg", "image/jpeg"), 415, "not_an_image")
    assert "photo.jpg" in message
    ppm = _png(np.zeros((40, 40, 3), np.uint8), fmt="PPM")  # Pillow reads PPM, the server does not take it
    _error(_post(client, ppm, "x.png", "image/png"), 415, "not_an_image")


@pytest.mark.parametrize("case,status,code", [
    ("empty", 400, "empty"), ("truncated", 400, "corrupt"), ("bomb", 413, "too_many_pixels"),
])
def test_bad_images_are_4xx(client, photo, case, status, code):
    data = {"empty": b"", "truncated": photo[:len(photo) // 3],
            "bomb": _png(np.zeros((8000, 6000), bool))}[case]  # 48 Mpixel, 6 kB: refused before decoding
    _error(_post(client, data), status, code)


def test_size_limits():
    small = Limits(max_image_bytes=2000, max_pixels=10_000, max_batch_files=2, max_request_bytes=50_000)
    with TestClient(create_app(limits=small), raise_server_exceptions=False) as c:
        _error(_post(c, bytes(3000)), 413, "image_too_large")
        _error(_post(c, _png(np.zeros((101, 100, 3), np.uint8))), 413, "too_many_pixels")
        _error(_post(c, bytes(60_000)), 413, "request_too_large")  # by Content-Length

        def chunks():  # no Content-Length: refused once the bytes arrive
            yield b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\r\n"
            for _ in range(20):
                yield bytes(5000)
        r = c.post("/v1/predict", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"})
        _error(r, 413, "request_too_large")
        files = [("files", (f"{i}.png", _png(np.zeros((20, 20, 3), np.uint8)), "image/png")) for i in range(3)]
        assert "files" in _error(c.post("/v1/predict/batch", files=files), 400, "bad_request").lower()


def test_requests_without_an_image(client):
    _error(client.post("/v1/predict", data={"other": "x"}), 400, "missing_file")
    _error(client.post("/v1/predict", json={"file": "x"}), 400, "missing_file")
    _error(client.post("/v1/predict/batch", data={}), 400, "missing_file")
    _error(client.get("/v1/predict"), 405, "method_not_allowed")
    _error(client.get("/v1/nothing-here"), 404, "not_found")
    assert "detect" in _error(_post(client, b"x", detect="maybe"), 422, "invalid_request")


def test_no_bad_bytes_give_a_5xx(client, photo):
    """Truncations and byte flips of a JPEG and a PNG, and random bytes: 200 or a 4xx, never a 5xx."""
    rng = np.random.default_rng(0)
    png = _png(np.asarray(Image.open(io.BytesIO(photo)).resize((64, 64))))
    samples = [rng.integers(0, 256, 500, dtype=np.uint8).tobytes()]
    for good in (photo, png):
        samples += [good[:k] for k in (2, 10, 100, len(good) // 2, len(good) - 1)]
        for _ in range(12):
            bad = bytearray(good)
            for i in rng.integers(0, min(len(bad), 2000), 8):
                bad[i] = int(rng.integers(0, 256))
            samples.append(bytes(bad))
    statuses = [_post(client, s).status_code for s in samples]
    assert all(s == 200 or 400 <= s < 500 for s in statuses), statuses
    assert any(s != 200 for s in statuses)


def test_batch_keeps_order_and_reports_each_bad_file(client, photo):
    files = [("files", ("astronaut.jpg", photo, "image/jpeg")),
             ("files", ("notes.jpg", b"not an image", "image/jpeg")),
             ("files", ("grey.png", _png(np.full((90, 120, 3), 127, np.uint8)), "image/png"))]
    r = client.post("/v1/predict/batch", files=files)
    assert r.status_code == 200, r.text
    a, b, c = r.json()["results"]
    assert a["filename"] == "astronaut.jpg" and [f["box"] for f in a["faces"]] == [ASTRONAUT_FACE]
    assert b["filename"] == "notes.jpg" and b["error"]["code"] == "not_an_image" and b["error"]["status"] == 415
    assert c["faces"] == [] and (c["width"], c["height"]) == (120, 90)
    one = _post(client, photo).json()["faces"][0]["probs"]
    assert a["faces"][0]["probs"] == pytest.approx(one, abs=1e-6)


@pytest.mark.parametrize("detector", ["blazeface", "haar"])
def test_concurrent_requests_agree(detector, photo):
    """Photos of two sizes at once on four worker threads, which share one detector, get the answers they get
    alone (two Haar searches at once raised cv2.error before the cascade was locked)."""
    rgb = np.asarray(Image.open(io.BytesIO(photo)).convert("RGB"))
    images = [photo, _png(np.asarray(Image.fromarray(rgb).resize((rgb.shape[1] * 3 // 5, rgb.shape[0] * 3 // 5))))]
    with TestClient(create_app(detector=detector, concurrency=4), raise_server_exceptions=False) as c:
        alone = [_post(c, im).json()["faces"] for im in images]
        with ThreadPoolExecutor(8) as pool:
            bodies = list(pool.map(lambda i: _post(c, images[i % 2]).json(), range(16)))
    assert all(alone) and all(b.get("faces") == alone[i % 2] for i, b in enumerate(bodies)), bodies


def test_inference_runs_off_the_event_loop(photo):
    """While one slow prediction runs, /healthz still answers at once."""
    app = create_app()
    real = app.state.recognizer

    class Slow:
        def predict(self, *args, **kwargs):
            time.sleep(1.5)
            return real.predict(*args, **kwargs)

    app.state.recognizer = Slow()
    answers = []
    with TestClient(app) as c:
        slow = threading.Thread(target=lambda: answers.append(_post(c, photo)))
        slow.start()
        time.sleep(0.3)
        t = time.perf_counter()
        assert c.get("/healthz").status_code == 200
        waited = time.perf_counter() - t
        still_running = slow.is_alive()
        slow.join()
    assert waited < 0.5
    # the slow prediction was running meanwhile, and answered: /healthz did not just beat a request that failed
    (answer,) = answers
    assert still_running and answer.status_code == 200 and len(answer.json()["faces"]) == 1, answer.text


def test_docs_are_served_from_the_package(client):
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        scripts = re.findall(r'src="([^"]+)"', html)
        assert scripts and all(src.startswith("/") and not src.startswith("//") for src in scripts), scripts
        assert all(client.get(src).status_code == 200 for src in scripts)
    spec = client.get("/openapi.json").json()
    assert {"/v1/predict", "/v1/predict/batch", "/v1/models", "/healthz"} <= set(spec["paths"])
    schema = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert schema["properties"]["file"]["format"] == "binary"


def test_web_page_uses_nothing_from_outside(client):
    page = client.get("/")
    assert page.status_code == 200 and "<html" in page.text.lower()
    from ferkit.apps.server import _web_dir

    pages = [p for p in _web_dir().iterdir() if p.suffix in (".html", ".js", ".css", ".webmanifest")]
    assert {"index.html", "app.js", "sw.js", "manifest.webmanifest"} <= {p.name for p in pages}
    for path in pages:  # the page's own files; the vendored runtime runs offline in test_web_offline
        urls = re.findall(r"(?:https?:)?//[\w.-]+\.\w+", path.read_text())  # absolute or protocol-relative
        assert [u for u in urls if not u.endswith(("//localhost", "//127.0.0.1"))] == [], path.name
    for path in _web_dir().rglob("*"):
        if path.is_file():
            assert client.get(f"/{path.relative_to(_web_dir()).as_posix()}").status_code == 200, path.name


def test_serve_cli_checks_its_arguments(capsys):
    with pytest.raises(ValueError, match="--concurrency"):
        run(["serve", "--concurrency", "0"])
    with pytest.raises(SystemExit):
        run(["serve", "--detector", "yolo"])
    assert "argument --detector: invalid choice: 'yolo'" in capsys.readouterr().err  # not "unrecognized arguments"


def test_json_of_a_face_is_plain(client, photo):
    """Only JSON types (no numpy scalars) reach the client: the body round-trips through json."""
    body = _post(client, photo).json()
    assert json.loads(json.dumps(body)) == body
