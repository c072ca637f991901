"""The page's on-device mode in Chromium under a phone profile (Playwright, fake camera): the browser
pipeline (ondevice.js on ONNX Runtime Web) gives the Python pipeline's faces and probabilities for the
same pixels, and the webcam tab and the game run with no frame sent anywhere.

With ``$FERKIT_SCREENSHOTS`` set, ``web-phone-game.png`` and ``web-phone-result.png`` are written there
(for the README)."""

from __future__ import annotations

import base64
import contextlib
import os
from pathlib import Path

import pytest

from webtools import CHROMIUM, PHONE, SHARED_EXAMPLES, chromium_args, running_server, write_fake_camera

if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
expect = sync_api.expect

TIMEOUT_MS = 60_000
# Stated tolerance of the browser pipeline against Python's on the same pixels: the same faces, boxes
# within 2 px, and every probability within 0.03 for an fp32 model (OpenCV's fixed-point resizes and warps
# round a few crop pixels differently by one grey level; measured worst case in the test's output). The
# shipped default is static int8, whose activation steps turn those grey levels into larger differences:
# 0.05 for it (measured 0.0345 on 11 faces with the default of 2026-12-04 morning, 0.0230 with the one since,
# 0.0234 with its 7-bit weights of 2026-12-05, 0.0131 with kdm40-resnet_sw, the default on 2026-12-05 morning,
# 0.0201 with kdr12-resnet_sw, the default that afternoon, 0.0346 with soup-kdr12, 0.0257 with ko12-resnet_sw, 0.0312
# with soup-kp12's percentile-calibrated file, the default since 2026-12-06 night; its min-max-calibrated file, 0.0659
# off here, was not shipped). The int8 flagship is held to the same 0.05 (0.0186 with fx20-resnet_m's file, shipped
# since 2026-12-07; small,default 0.0228 that day).
BOX_PX, PROB_TOL, INT8_PROB_TOL = 2, 0.03, 0.05


@pytest.fixture(scope="module")
def servers():
    """``servers(model)``: (URL, request recorder) of a server of ``model`` (a shipped model's name, "default"
    for the package's default, or several comma-separated: an ensemble, whose members the page runs and
    averages), started on first use and stopped with the module."""
    with contextlib.ExitStack() as stack:
        started: dict[str, tuple] = {}

        def get(model: str) -> tuple:
            if model not in started:
                options = {} if model == "default" else {"model": model}
                started[model] = stack.enter_context(running_server(threads=1, **options))
            return started[model]

        yield get


@pytest.fixture(scope="module")
def server(servers):
    return servers("default")


@pytest.fixture(scope="module")
def playwright_and_browser(tmp_path_factory):
    video = write_fake_camera(tmp_path_factory.mktemp("camera") / "camera.y4m")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=chromium_args(video))
        yield p, browser
        browser.close()


@pytest.fixture
def phone(playwright_and_browser, server):
    """A fresh phone-sized context on the page, service workers blocked so that ``page.route`` sees every
    request; yields (page, list of (method, url) the page made)."""
    yield from _phone_on(playwright_and_browser, server[0])


@pytest.fixture
def small_phone(playwright_and_browser, servers):
    """The same on a server of the fp32 ``small`` model, for the pipeline's own tolerance."""
    yield from _phone_on(playwright_and_browser, servers("small")[0])


@pytest.fixture
def model_phone(playwright_and_browser, servers, model):
    """The same on a server of the test's ``model`` parameter."""
    yield from _phone_on(playwright_and_browser, servers(model)[0])


def _phone_on(playwright_and_browser, url: str):
    p, browser = playwright_and_browser
    context = browser.new_context(**p.devices[PHONE], service_workers="block")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    seen: list[tuple[str, str]] = []
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    def note(route, request):
        seen.append((request.method, request.url))
        route.continue_()

    page.route("**/*", note)
    page.goto(url + "#game")
    page.wait_for_function("document.body.dataset.engine === 'device'")
    yield page, seen
    context.close()
    assert not errors, errors


def _python_faces(rgb, align: bool = True, model: str = "default", tta: str = "none"):
    from ferkit.inference import Recognizer

    return Recognizer(model=model, threads=1, align=align, tta=tta).predict(rgb)


def _browser_faces(page, rgb, align: bool = True, tta: str = "none"):
    """The page's on-device pipeline on ``rgb``, as ondevice.json sets it up (its ``align`` and ``tta`` as given)."""
    data = base64.b64encode(rgb.tobytes()).decode()
    return page.evaluate("""async ([b64, w, h, align, tta]) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const info = await (await fetch('ondevice.json')).json();
        info.align = align;  // what `ferkit serve --no-align` writes there
        info.tta = tta;  // and `ferkit serve --tta`
        const od = await ferkitOnDevice.OnDevice.create(info);
        const r = await od.predict(ferkitOnDevice.image(bytes, w, h, 3));
        return r.faces;
    }""", [data, int(rgb.shape[1]), int(rgb.shape[0]), align, tta])


def _images():
    from ferkit.demo import demo_photo
    from ferkit.inference import read_image

    yield "astronaut", read_image(demo_photo())
    for name in ("oarriaga_test_image.jpg", "sr6033_group.jpg", "fer_justin.jpg"):
        if (SHARED_EXAMPLES / name).exists():
            yield name, read_image(SHARED_EXAMPLES / name)


@pytest.mark.parametrize("model, tol", [("small", PROB_TOL), ("default", INT8_PROB_TOL),
                                        ("small,default", INT8_PROB_TOL), ("flagship", INT8_PROB_TOL)])
def test_browser_pipeline_matches_python(model_phone, model, tol):
    """The same RGB pixels through both pipelines: the same faces, boxes within BOX_PX, every
    probability within PROB_TOL (fp32 ``small``) or INT8_PROB_TOL (the int8 default or flagship, or an
    ensemble with the default, whose members the page runs and averages as the Recognizer does)."""
    page, _ = model_phone
    worst_prob, worst_box, faces = 0.0, 0, 0
    for name, rgb in _images():
        want = _python_faces(rgb, model=model)
        got = _browser_faces(page, rgb)
        assert len(got) == len(want), (name, len(got), len(want))
        for g, w in zip(got, want):
            worst_box = max(worst_box, max(abs(a - b) for a, b in zip(g["box"], w.box)))
            worst_prob = max(worst_prob, max(abs(g["probs"][c] - w.probs[c]) for c in w.probs))
            assert g["emotion"] == w.emotion or abs(g["probs"][w.emotion] - w.score) <= tol, (name, g, w)
            faces += 1
    print(f"{model}: {faces} faces: worst box difference {worst_box} px, worst probability difference {worst_prob:.4f}")
    assert faces >= 1
    assert worst_box <= BOX_PX and worst_prob <= tol, (worst_box, worst_prob)


def test_browser_skips_alignment_when_the_server_does(small_phone):
    """With ``serve --no-align`` (ondevice.json's align false) the page crops faces unaligned, as Python does."""
    page, _ = small_phone
    name, rgb = next(_images())
    for align in (False, True):
        want, got = _python_faces(rgb, align, model="small"), _browser_faces(page, rgb, align)
        assert len(got) == len(want) == 1, name
        assert max(abs(got[0]["probs"][c] - want[0].probs[c]) for c in want[0].probs) <= PROB_TOL, align
    unaligned, aligned = _browser_faces(page, rgb, False)[0]["probs"], _browser_faces(page, rgb, True)[0]["probs"]
    assert unaligned != aligned  # the switch changes the crop


@pytest.mark.parametrize("tta", ["flip", "tencrop"])
def test_browser_averages_the_servers_tta(small_phone, tta):
    """With ``serve --tta`` (ondevice.json's tta) the page averages the same views as Python: its probabilities
    stay within PROB_TOL of the Recognizer's with that TTA, and differ from its own without."""
    page, _ = small_phone
    worst = 0.0
    for name, rgb in _images():
        want, got = _python_faces(rgb, model="small", tta=tta), _browser_faces(page, rgb, tta=tta)
        assert len(got) == len(want) >= 1, name
        for g, w in zip(got, want):
            worst = max(worst, max(abs(g["probs"][c] - w.probs[c]) for c in w.probs))
    print(f"tta={tta}: worst probability difference {worst:.4f}")
    assert worst <= PROB_TOL
    name, rgb = next(_images())
    assert _browser_faces(page, rgb, tta=tta)[0]["probs"] != _browser_faces(page, rgb)[0]["probs"]


def _shot(page, name: str) -> None:
    folder = os.environ.get("FERKIT_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=True, scale="css")


def test_game_on_device_sends_no_frame(phone, server):
    """Two rounds of Best Actor and a few webcam frames on the device: frames are analysed (each round
    saw some) and the page sent no POST and asked for no prediction; the server saw none either."""
    page, seen = phone
    url, recorder = server
    before = len(recorder.requests)
    expect(page.locator("#panel-game [data-privacy]")).to_contain_text("never leave")
    page.evaluate("window.ferkitGame = {rounds: 2, countdownMs: 400, actMs: 1500, holdMs: 500, threshold: 0}")
    page.click("#game-start")
    page.wait_for_function("document.body.dataset.gameState === 'playing' && "
                           "!document.querySelector('#game-act').hidden && "
                           "Number(document.querySelector('#game-overlay').dataset.faces) >= 1")
    _shot(page, "web-phone-game.png")
    page.wait_for_function("document.body.dataset.gameState === 'done'")
    rounds = page.locator("#game-rounds .round")
    expect(rounds).to_have_count(2)
    targets = rounds.evaluate_all("els => els.map(e => e.dataset.target)")
    assert "Disgust" not in targets and len(set(targets)) == 2, targets
    for frames in rounds.evaluate_all("els => els.map(e => Number(e.dataset.frames))"):
        assert frames >= 2
    bests = page.evaluate("JSON.parse(localStorage.getItem('ferkit.bestActor.bestPerEmotion'))")
    scores = dict(zip(targets, (int(s) for s in rounds.evaluate_all("els => els.map(e => e.dataset.score)"))))
    assert {k: v for k, v in scores.items() if v > 0} == bests, (scores, bests)
    expect(page.locator("#game-bests .best-tile")).to_have_count(6)
    page.locator("#game-result").scroll_into_view_if_needed()
    _shot(page, "web-phone-result.png")

    page.click("#tab-webcam")  # the game left the camera on: the webcam loop starts with the tab
    page.wait_for_function("window.ferkitStats.frames >= 3")
    page.click("#webcam-stop")

    assert not [r for r in seen if r[0] != "GET" or "/v1/predict" in r[1]], seen
    assert not recorder.posts()[before:] and not [r for r in recorder.requests[before:] if r[1].startswith("/v1/predict")]


def test_server_mode_still_works(phone, server):
    """The switch to the server: webcam frames go to POST /v1/predict (the fallback path)."""
    page, seen = phone
    page.click("#engine-server")
    expect(page.locator("#panel-webcam [data-privacy]")).to_contain_text("sent to the ferkit server")
    page.click("#tab-webcam")
    page.click("#webcam-start")
    page.wait_for_function("window.ferkitStats.frames >= 2")
    page.click("#webcam-stop")
    assert any(m == "POST" and u.endswith("/v1/predict") for m, u in seen)
    assert page.evaluate("localStorage.getItem('ferkit.engine')") == "server"
