"""The web page (``ferkit serve``, ``/``) end to end: Playwright drives Debian's Chromium against a
live server, with a fake camera fed from a Y4M file. Skipped without /usr/bin/chromium or Playwright.

Screenshots go to ``$FERKIT_TEST_ARTIFACTS`` (else a temp folder); with ``$FERKIT_SCREENSHOTS`` set,
``web-photo.png`` and ``web-game.png`` are also written there (for the README)."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
from webtools import CHROMIUM, SHARED_EXAMPLES, chromium_args, running_server, write_fake_camera

if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
expect = sync_api.expect

from ferkit.demo import demo_photo  # noqa: E402

FACES_IN_EXAMPLES = {"oarriaga_test_image.jpg": 6, "sr6033_group.jpg": 3, "fer_justin.jpg": 1, "fer_no-faces.jpg": 0}
CLASSES = ["Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"]
TIMEOUT_MS = 20_000


# --- Fixtures: server, fake camera, browser -----------------------------------------------------

@pytest.fixture(scope="module")
def server_url():
    with running_server() as (url, _):
        yield url


@pytest.fixture(scope="module")
def fake_video(tmp_path_factory) -> Path:
    return write_fake_camera(tmp_path_factory.mktemp("camera") / "camera.y4m")


@pytest.fixture(scope="module")
def browser(fake_video):
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=chromium_args(fake_video))
        yield b
        b.close()


@pytest.fixture
def artifacts(tmp_path) -> Path:
    folder = Path(os.environ.get("FERKIT_TEST_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _readme_shot(page, name: str) -> None:
    folder = os.environ.get("FERKIT_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=True)


class Watched:
    """A page with what it logged and requested."""

    def __init__(self, page, url: str) -> None:
        self.page, self.url = page, url
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.requests: list[str] = []
        page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        page.on("request", lambda r: self.requests.append(r.url))

    def foreign_requests(self) -> list[str]:
        local = ("127.0.0.1", "localhost")
        return [u for u in self.requests if urlparse(u).scheme not in ("data", "blob") and urlparse(u).hostname not in local]


@pytest.fixture
def web(browser, server_url):
    """A fresh browser context (own localStorage) on the page; no script error and no request
    off this server, whatever the test does."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    watched = Watched(page, server_url)
    page.goto(server_url)
    expect(page.locator("#server-status")).to_have_class("server-status ok")
    yield watched
    context.close()
    assert not watched.page_errors, watched.page_errors
    assert not watched.foreign_requests(), watched.foreign_requests()


# --- Tests --------------------------------------------------------------------------------------

def test_page_loads(web, artifacts):
    page = web.page
    expect(page.locator("h1")).to_have_text("ferkit — facial emotion recognition")
    expect(page.locator("footer")).to_contain_text("not stored")
    assert "resnet_sw_fer2013" in page.locator("#server-status").inner_text()
    for tab, panel in (("webcam", "webcam"), ("game", "game"), ("photo", "photo")):
        page.click(f"#tab-{tab}")
        expect(page.locator(f"#panel-{panel}")).to_be_visible()
        expect(page.locator(f"#tab-{tab}")).to_have_attribute("aria-selected", "true")
    assert page.evaluate("document.body.dataset.gameState") == "idle"
    assert page.evaluate("JSON.stringify(window.ferkitGame)") == json.dumps(
        {"rounds": 5, "countdownMs": 3000}, separators=(",", ":"))
    paths = {urlparse(u).path for u in web.requests}
    assert {"/", "/app.js", "/style.css", "/healthz", "/v1/models", "/ondevice.json", "/ondevice.js"} <= paths, paths
    page.screenshot(path=str(artifacts / "web-load.png"), full_page=True)
    assert not web.console_errors, web.console_errors


def _upload(web, path: Path, faces: int) -> None:
    """The page's results for the photo at ``path`` are the server's answer for its bytes: ``faces`` faces, each with
    the API's top emotion and a bar per class showing the API's probability (``pct`` in app.js: rounded half up)."""
    import httpx

    page = web.page
    api = httpx.post(web.url + "v1/predict", files={"file": (path.name, path.read_bytes(), "image/jpeg")}, timeout=60)
    assert api.status_code == 200 and len(api.json()["faces"]) == faces, api.text
    page.set_input_files("#file-input", str(path))
    expect(page.locator("#photo-status")).to_contain_text(path.name)
    expect(page.locator("#photo-status")).to_contain_text(f"{faces} face")
    results = page.locator("#photo-results .face-result")
    expect(results).to_have_count(faces)
    if faces == 0:
        expect(page.locator("#photo-results")).to_contain_text("No face found")
    for emotion in results.evaluate_all("els => els.map(e => e.dataset.emotion)"):
        assert emotion in CLASSES
    for bars in results.evaluate_all("els => els.map(e => e.querySelectorAll('.bar-track').length)"):
        assert bars == 7
    shown = results.evaluate_all("els => els.map(e => [e.dataset.emotion, Array.from(e.querySelectorAll('.bar-name'), "
                                 "n => n.textContent), Array.from(e.querySelectorAll('.bar-pct'), n => n.textContent)])")
    assert shown == [[f["emotion"], CLASSES, [f"{math.floor(100 * f['probs'][c] + 0.5)}%" for c in CLASSES]]
                     for f in api.json()["faces"]]
    expect(page.locator("#photo-canvas")).to_have_attribute("data-faces", str(faces))
    expect(page.locator("#photo-error")).to_be_hidden()


@pytest.mark.parametrize("name", list(FACES_IN_EXAMPLES))
def test_photo_examples(web, artifacts, name):
    path = SHARED_EXAMPLES / name
    if not path.exists():
        pytest.skip(f"{path} not found (the shared examples folder is absent)")
    _upload(web, path, FACES_IN_EXAMPLES[name])
    web.page.screenshot(path=str(artifacts / f"web-photo-{path.stem}.png"), full_page=True)


def test_photo_bundled(web, artifacts):
    _upload(web, demo_photo(), 1)
    # The canvas shows the photo (512x512: square) with its box drawn in the face's colour.
    w, h, boxed = web.page.evaluate("""(() => {
        const c = document.querySelector('#photo-canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const colours = {Angry: [220, 40, 40], Disgust: [120, 160, 40], Fear: [150, 60, 200], Happy: [250, 200, 0],
                         Sad: [50, 120, 220], Surprise: [250, 140, 30], Neutral: [160, 160, 160]};
        const [r, g, b] = colours[document.querySelector('.face-result').dataset.emotion];
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] === r && d[i + 1] === g && d[i + 2] === b) n++;
        return [c.width, c.height, n];
    })()""")
    assert w == h >= 512 and boxed > 100
    web.page.screenshot(path=str(artifacts / "web-photo-bundled.png"), full_page=True)
    _readme_shot(web.page, "web-photo.png")  # the docs show only the bundled photo, never one from ../shared


def test_photo_not_an_image(web, artifacts, server_url, tmp_path):
    import httpx

    fake = tmp_path / "notes.jpg"
    fake.write_text("these are notes, not a photo\n" * 20)
    answer = httpx.post(server_url + "v1/predict", files={"file": (fake.name, fake.read_bytes(), "image/jpeg")})
    assert 400 <= answer.status_code < 500
    message = answer.json()["error"]["message"]
    web.page.set_input_files("#file-input", str(fake))
    expect(web.page.locator("#photo-error")).to_be_visible()
    expect(web.page.locator("#photo-error")).to_have_text(message)
    expect(web.page.locator("#photo-results .face-result")).to_have_count(0)
    web.page.screenshot(path=str(artifacts / "web-photo-error.png"), full_page=True)


def test_webcam(web, artifacts):
    page = web.page
    page.click("#tab-webcam")
    expect(page.locator("#webcam-stop")).to_be_disabled()
    page.click("#webcam-start")
    page.wait_for_function("Number(document.querySelector('#webcam-fps').dataset.frames || 0) >= 3")
    expect(page.locator("#webcam-fps")).to_have_text(re.compile(r"^\d+\.\d frames/s"))
    page.wait_for_function("Number(document.querySelector('#webcam-overlay').dataset.faces) >= 1")
    expect(page.locator("#webcam-bars .face-result .bar-track")).to_have_count(7)
    expect(page.locator("#webcam-error")).to_be_hidden()
    page.screenshot(path=str(artifacts / "web-webcam.png"), full_page=True)
    page.click("#webcam-stop")
    expect(page.locator("#webcam-start")).to_be_enabled()
    expect(page.locator("#webcam-fps")).to_have_text("— frames/s")


# A face for scripted answers: a distinct probability per class (in the game tests three game emotions are over
# the bar of 0.4, three under it).
SCRIPTED_PROBS = {"Angry": 0.12, "Disgust": 0.05, "Fear": 0.23, "Happy": 0.81, "Sad": 0.34, "Surprise": 0.47,
                  "Neutral": 0.66}
LARGE_FACE = {"box": [200, 120, 200, 200], "landmarks": None, "emotion": "Happy", "score": 0.81,
              "probs": SCRIPTED_PROBS}


def _script_answers(page, faces: list[dict]) -> list[str]:
    """Server mode, every ``/v1/predict`` answered with ``faces`` (``page.route``); returns the methods of the
    requests answered, as they come."""
    answer = json.dumps({"width": 640, "height": 480, "model": "scripted", "ms": 1.0, "faces": faces})
    answered: list[str] = []

    def scripted(route):
        answered.append(route.request.method)
        route.fulfill(status=200, content_type="application/json", body=answer)

    page.route("**/v1/predict", scripted)
    page.click("#engine-server")
    return answered


def _play_game(page, settings: str):
    """A Best Actor game played to its end with ``window.ferkitGame`` set to ``settings`` (a JS object); its rounds."""
    page.evaluate(f"window.ferkitGame = {settings}")
    page.click("#tab-game")
    page.click("#game-start")
    page.wait_for_function("document.body.dataset.gameState === 'done'", timeout=30_000)
    return page.locator("#game-rounds .round")


def test_webcam_shows_the_largest_face(web):
    """The webcam tab's card is the answer's largest face: its emotion, and a bar per class with its probability
    (server mode, every frame's answer scripted through ``page.route``: a small Sad face listed before a large Happy
    one)."""
    page = web.page
    small = {"box": [10, 10, 40, 40], "landmarks": None, "emotion": "Sad", "score": 0.9,
             "probs": {c: (0.9 if c == "Sad" else 0.1 / 6) for c in CLASSES}}
    _script_answers(page, [small, LARGE_FACE])
    page.click("#tab-webcam")
    page.click("#webcam-start")
    page.wait_for_function("Number(document.querySelector('#webcam-fps').dataset.frames || 0) >= 2")
    card = page.locator("#webcam-bars .face-result")
    expect(card).to_have_attribute("data-emotion", "Happy")
    expect(card.locator(".face-sub")).to_have_text("largest of 2 faces")
    expect(card.locator(".bar-name")).to_have_text(CLASSES)
    expect(card.locator(".bar-pct")).to_have_text([f"{math.floor(100 * SCRIPTED_PROBS[c] + 0.5)}%" for c in CLASSES])
    expect(page.locator("#webcam-overlay")).to_have_attribute("data-faces", "2")
    page.click("#webcam-stop")


def test_camera_refused(web):
    page = web.page
    page.evaluate("() => { navigator.mediaDevices.getUserMedia = () => "
                  "Promise.reject(new DOMException('Permission denied', 'NotAllowedError')); }")
    page.click("#tab-webcam")
    page.click("#webcam-start")
    expect(page.locator("#webcam-error")).to_contain_text("Camera access was refused")
    expect(page.locator("#webcam-start")).to_be_enabled()
    page.click("#tab-game")
    page.click("#game-start")
    expect(page.locator("#game-error")).to_contain_text("Camera access was refused")
    page.wait_for_function("document.body.dataset.gameState === 'idle'")


def test_best_actor_round(web, artifacts):
    page = web.page
    rounds = _play_game(page, "{rounds: 1, countdownMs: 500, actMs: 1100, holdMs: 800}")
    expect(rounds).to_have_count(1)
    target = rounds.first.get_attribute("data-target")
    score = rounds.first.get_attribute("data-score")
    assert target in CLASSES
    assert score.isdigit() and 0 <= int(score) <= 100
    expect(page.locator("#game-total")).to_have_text(score)
    expect(page.locator("#game-round-score")).to_have_text(score)
    expect(page.locator("#game-target")).to_have_text(target)
    expect(page.locator("#game-result")).to_be_visible()
    expect(page.locator("#game-final")).to_have_text(score)
    expect(page.locator("#game-max")).to_have_text("100")
    assert page.evaluate("localStorage.getItem('ferkit.bestActor.highScore')") == score
    expect(page.locator("#game-highscore")).to_contain_text(score)
    # The card: drawn (many distinct colours, not a blank canvas) and offered as a PNG download.
    colours = page.evaluate("""(() => {
        const c = document.querySelector('#game-card');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const seen = new Set();
        for (let i = 0; i < d.length; i += 4 * 97) seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
        return seen.size;
    })()""")
    assert colours > 200, colours
    link = page.locator("#game-download")
    expect(link).to_have_attribute("download", "best-actor.png")
    href = link.get_attribute("href")
    assert href.startswith(("blob:", "data:image/png"))
    png = page.evaluate("async (u) => { const b = await (await fetch(u)).arrayBuffer(); "
                        "return Array.from(new Uint8Array(b.slice(0, 8))); }", href)
    assert bytes(png) == b"\x89PNG\r\n\x1a\n"
    page.locator("#game-result").scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "web-game.png"), full_page=True)
    _readme_shot(page, "web-game.png")


def test_best_actor_scores_the_targets_probability(web):
    """A round's score is 100 x the model's mean probability of the round's target over the hold, or 0 under the
    bar: with every frame's answer scripted (server mode, ``page.route``), each round's score is its target's
    probability, the total their sum (a score from the top class, a constant or a score over the bar all fail).
    Six rounds ask for each of the six game emotions once (a shuffled bag): both sides of the bar are played."""
    page = web.page
    answered = _script_answers(page, [LARGE_FACE])
    rounds = _play_game(page, "{rounds: 6, countdownMs: 200, actMs: 600, holdMs: 200, threshold: 0.4}")
    expect(rounds).to_have_count(6)
    got = rounds.evaluate_all("els => els.map(e => [e.dataset.target, Number(e.dataset.score)])")
    assert sorted(t for t, _ in got) == sorted(c for c in CLASSES if c != "Disgust"), got
    want = [[t, round(100 * SCRIPTED_PROBS[t]) if SCRIPTED_PROBS[t] >= 0.4 else 0] for t, _ in got]
    assert got == want, got
    expect(page.locator("#game-total")).to_have_text(str(sum(s for _, s in want)))
    assert answered and set(answered) == {"POST"}


def test_api_docs_render_offline(browser, server_url, artifacts):
    """Swagger UI at /docs draws every endpoint from assets served by ferkit itself."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    watched = Watched(page, server_url)
    page.goto(server_url + "docs")
    expect(page.locator(".swagger-ui .opblock")).to_have_count(4, timeout=TIMEOUT_MS)
    expect(page.locator(".swagger-ui")).to_contain_text("/v1/predict/batch")
    page.screenshot(path=str(artifacts / "web-docs.png"), full_page=True)
    context.close()
    assert not watched.page_errors and not watched.foreign_requests(), (watched.page_errors, watched.foreign_requests())
