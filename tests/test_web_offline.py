"""Installable and offline: the manifest passes Chromium's installability checks, and after one visit the
service worker serves the page, ONNX Runtime Web and both models with the server stopped and the
browser offline; the game then runs on the device."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from webtools import CHROMIUM, PHONE, chromium_args, running_server, write_fake_camera

if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
expect = sync_api.expect

WEB = Path(__file__).resolve().parents[1] / "src" / "ferkit" / "apps" / "web"
CACHED = """async () => {
    const c = await caches.open((await caches.keys())[0]);
    return (await c.keys()).map((r) => new URL(r.url).pathname);
}"""  # the paths in the service worker's cache


def test_sw_cache_is_named_after_the_runtime():
    """A new vendored runtime must come with a new cache name, or phones keep the old one."""
    version = (WEB / "ort" / "VERSION.txt").read_text().split()[1]
    assert f'const CACHE = "ferkit-web-ort-{version}";' in (WEB / "sw.js").read_text()


def test_package_data_covers_the_web_files():
    """Every file the page needs is in the wheel (pyproject's package-data globs)."""
    import fnmatch
    import tomllib

    globs = tomllib.loads((WEB.parents[3] / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["ferkit"]
    files = [p.relative_to(WEB.parents[1]).as_posix() for p in WEB.rglob("*") if p.is_file()]
    assert {"apps/web/ort/ort-wasm-simd-threaded.wasm", "apps/web/sw.js", "apps/web/manifest.webmanifest"} <= set(files)
    missing = [f for f in files if not any(fnmatch.fnmatch(f, g) and f.count("/") == g.count("/") for g in globs)]
    assert not missing, missing


def test_installable_and_offline(tmp_path):
    video = write_fake_camera(tmp_path / "camera.y4m")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=chromium_args(video))
        context = browser.new_context(**p.devices[PHONE])
        page = context.new_page()
        page.set_default_timeout(60_000)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        with running_server(threads=1) as (url, _):
            page.goto(url + "#game")
            page.wait_for_function("document.body.dataset.engine === 'device'")
            page.wait_for_function("navigator.serviceWorker.controller !== null")
            cached = page.evaluate(CACHED)
            assert {"/", "/app.js", "/ondevice.js", "/ort/ort-wasm-simd-threaded.wasm", "/ondevice.json"} <= set(cached)
            assert sum(path.startswith("/models/") for path in cached) == 2, cached
            # A model an earlier server sent (another --weights): the next ondevice.json drops it from the cache.
            page.evaluate("""async () => (await caches.open((await caches.keys())[0]))
                .put("models/old.0123abcd.onnx", new Response("an old model"))""")
            assert "/models/old.0123abcd.onnx" in page.evaluate(CACHED)
            page.reload()
            page.wait_for_function("document.body.dataset.engine === 'device'")
            models = sorted(path for path in cached if path.startswith("/models/"))
            assert sorted(path for path in page.evaluate(CACHED) if path.startswith("/models/")) == models
            cdp = context.new_cdp_session(page)
            manifest = cdp.send("Page.getAppManifest")
            assert not manifest["errors"], manifest["errors"]
            assert json.loads(manifest["data"])["start_url"] == "./#game"
            problems = [e["errorId"] for e in cdp.send("Page.getInstallabilityErrors")["installabilityErrors"]]
            assert not [e for e in problems if e != "in-incognito"], problems  # Playwright's contexts are incognito
        # The server is gone and the browser is offline.
        context.set_offline(True)
        page.reload()
        expect(page.locator("h1")).to_contain_text("ferkit")
        page.wait_for_function("document.body.dataset.engine === 'device'")
        expect(page.locator("#server-status")).to_have_text(re.compile("^(offline|server unreachable)$"))
        page.evaluate("window.ferkitGame = {rounds: 1, countdownMs: 300, actMs: 1200, holdMs: 400, threshold: 0}")
        page.click("#game-start")
        page.wait_for_function("document.body.dataset.gameState === 'done'")
        assert int(page.locator("#game-rounds .round").first.get_attribute("data-frames")) >= 2
        context.close()
        browser.close()
    assert not errors, errors
