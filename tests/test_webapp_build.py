"""The web app's Build view in a real headless Chromium (Debian's `chromium`, driven by
Playwright) against `muse serve` with the embedded model: prompt → preview → download. The
preview runs in a sandboxed frame served with its own CSP: it plays, and it cannot read the
app's storage (where the API key is kept) or its API. Run: `.venv/bin/pytest tests/test_webapp_build.py`.

`.ci/run` installs Chromium; elsewhere the test is skipped with a reason when it is missing."""

from __future__ import annotations

import httpx
import pytest

from .test_server import Server
from .test_webapp import CHROMIUM, FLAGS  # noqa: F401 - skips the module where Chromium is missing


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("buildhome"))
    yield s
    s.stop()


def test_build_view_preview_and_download(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(accept_downloads=True)
        outside: list[str] = []
        page.on("request", lambda r: None if r.url.startswith(("http://127.0.0.1", "data:", "blob:")) else outside.append(r.url))
        page.set_default_timeout(180_000)
        page.goto(server.url)
        page.evaluate("localStorage.setItem('muse-key', 'app-secret')")
        page.check("input[value=build]")
        page.fill("#prompt", "a memory game with fruit cards")
        page.click("#send")
        expect(page.locator("#send")).to_be_enabled(timeout=300_000)
        view = page.locator(".msg.assistant").last.locator(".build")
        view.wait_for()
        assert "Built from template memory" in view.locator(".build-head").inner_text()
        assert "7/7 checks passed" in view.locator(".build-head").inner_text()
        frame_el = view.locator("iframe.preview")
        assert frame_el.get_attribute("sandbox") == "allow-scripts"
        expect(frame_el).to_have_attribute("src", __import__("re").compile(r"^/preview/[\w-]{16,}$"))

        # the game plays inside the frame
        game = page.frame_locator(".build iframe.preview").first
        game.locator("h1").wait_for()
        moves_before = game.locator("#moves").inner_text()
        game.locator("[data-card='0a']").click()
        game.locator("[data-card='0b']").click()
        expect(game.locator("#moves")).not_to_have_text(moves_before)

        # isolation: an opaque origin with no storage, and no way into the app
        frame = next(f for f in page.frames if "/preview/" in f.url)
        probe = frame.evaluate("""() => {
            const r = {};
            try { r.own = String(localStorage.length); } catch (e) { r.own = 'blocked:' + e.name; }
            try { r.parent = String(parent.localStorage.getItem('muse-key')); } catch (e) { r.parent = 'blocked:' + e.name; }
            try { r.cookie = document.cookie; } catch (e) { r.cookie = 'blocked:' + e.name; }
            r.origin = self.origin;
            return r; }""")
        assert probe["own"].startswith("blocked:") and probe["parent"].startswith("blocked:"), probe
        assert probe["origin"] == "null"

        # download: the same file
        with page.expect_download() as dl:
            view.locator("button.download").click()
        saved = tmp_path / "got.html"
        dl.value.save_as(saved)
        text = saved.read_text()
        assert text.lower().startswith("<!doctype html>") and "memory" in dl.value.suggested_filename
        page.screenshot(path=str(tmp_path / "build.png"))
        browser.close()
    assert outside == [], f"the page reached outside the server: {outside}"

    # the preview page itself is sandboxed by its own headers, and previews need the key to create
    r = httpx.get(server.url + "/preview/not-a-real-id")
    assert r.status_code == 404 and r.json()["error"]["code"] == "preview_not_found"
    r = httpx.post(server.url + "/v1/previews", json={"html": "<p>x</p>", "extra": 1})
    assert r.status_code == 422 and r.json()["error"]["param"] == "extra"
    made = httpx.post(server.url + "/v1/previews", json={"html": "<!doctype html><p>x</p>"}).json()
    got = httpx.get(server.url + made["url"])
    assert got.headers["content-security-policy"].startswith("sandbox allow-scripts;")
    assert "frame-ancestors 'self'" in got.headers["content-security-policy"]
