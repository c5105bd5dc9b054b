"""The web app in a real headless Chromium (Debian's `chromium` package) driven by Playwright,
against `muse serve` on loopback with the embedded model: a streamed answer, Contemplating
with 4 agents as 4 lanes and a synthesis, the conversation found again after a reload, rename
and delete, and no request leaving the machine. Run: `.venv/bin/pytest tests/test_webapp.py`.

`.ci/run` installs Chromium; elsewhere the test is skipped with a reason when it is missing."""

from __future__ import annotations

import os
import shutil

import pytest

from .test_server import Server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]

if not os.path.exists(CHROMIUM) and not os.environ.get("CI"):
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("webhome"))
    yield s
    s.stop()


@pytest.fixture()
def page(tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)  # a fresh temporary profile
        pg = browser.new_page()
        outside: list[str] = []
        pg.on("request", lambda r: None if r.url.startswith(("http://127.0.0.1", "data:")) else outside.append(r.url))
        pg.set_default_timeout(180_000)
        yield pg
        browser.close()
        assert outside == [], f"the page reached outside the server: {outside}"


def test_chat_contemplate_reload(server, page, tmp_path):
    from playwright.sync_api import expect

    page.goto(server.url)
    page.fill("#prompt", "What is the capital of France?")
    page.keyboard.press("Enter")
    answer = page.locator(".msg.assistant .answer").last
    answer.wait_for()
    expect(page.locator("#send")).to_be_enabled(timeout=180_000)  # locators: the app's CSP forbids eval
    assert "Paris" in answer.inner_text()
    assert page.locator("#conversations li").count() == 1

    # Contemplating with 4 agents: 4 lanes, then a synthesis
    page.check("input[value=contemplating]")
    page.fill("#agents", "4")
    page.fill("#prompt", "What is 2 + 3?")
    page.click("#send")
    lanes = page.locator(".msg.assistant").last.locator(".lane")
    lanes.first.wait_for()
    assert lanes.count() == 4
    expect(page.locator("#send")).to_be_enabled(timeout=180_000)  # locators: the app's CSP forbids eval
    last = page.locator(".msg.assistant").last
    assert "Agreement:" in last.inner_text()
    # every agent launched is kept and viewable (early stop may leave the last one out)
    assert last.locator("summary").all_inner_texts()[-1] in ("3 agents", "4 agents")
    page.screenshot(path=str(tmp_path / "contemplating.png"))

    # reload: the conversation is in the list and opens with both exchanges
    page.reload()
    page.locator("#conversations li").first.wait_for()
    page.locator("#conversations li .open").first.click()
    page.locator(".msg.user").nth(1).wait_for()
    assert page.locator(".msg.user").count() == 2
    assert "Paris" in page.locator(".msg.assistant").first.inner_text()

    # rename and delete from the list
    page.once("dialog", lambda d: d.accept("Capitals and sums"))
    page.locator("#conversations li .icon").first.click()
    expect(page.locator("#conversations li .open").first).to_have_text("Capitals and sums")
    page.once("dialog", lambda d: d.accept())
    page.locator("#conversations li .icon").nth(1).click()
    expect(page.locator("#conversations li")).to_have_count(0)


def test_markdown_code_gets_a_copy_button(server, page):
    # a stored answer with a code block, rendered by the server's markdown renderer
    from openmuse.server.store import LOCAL_OWNER, Store

    store = Store(f"sqlite:///{server.home / 'openmuse.db'}")
    conv = store.create("code", owner=LOCAL_OWNER)  # a server without keys: the local owner's
    store.add_messages(conv["id"], [
        {"role": "user", "content": "show code"},
        {"role": "assistant", "content": "Here:\n\n```python\nprint('hi')\n```\n\n<script>alert(1)</script>",
         "mode": "instant", "usage": {"prompt_tokens": 1, "completion_tokens": 1}},
    ], owner=LOCAL_OWNER)
    page.goto(server.url)
    page.locator("#conversations li .open", has_text="code").click()
    page.locator(".answer pre").wait_for()
    assert page.locator(".answer pre .copy").count() == 1
    assert "print('hi')" in page.locator(".answer pre code").inner_text()
    assert page.locator(".answer script").count() == 0  # raw HTML is escaped, not run


def test_agent_mode_lanes_and_stored_trace(server, page):
    """Agent mode: one lane per sub-agent while it runs, then the stored trace (each call and
    what came back, the sources) under the answer after the conversation is reopened."""
    from playwright.sync_api import expect

    page.goto(server.url)
    page.check("input[value=agent]")
    page.fill("#prompt", "Which of the following are countries: Peru, Mozart, Ghana, Oxygen?")
    page.click("#send")
    lanes = page.locator(".msg.assistant").last.locator(".lane")
    lanes.first.wait_for()
    expect(page.locator("#send")).to_be_enabled(timeout=180_000)
    # the stored, rendered version replaces the live one: the trace is there, and viewable
    trace = page.locator(".msg.assistant").last.locator("details.agent-trace")
    trace.wait_for()
    assert "4 sub-agents" in trace.locator("summary").inner_text()
    trace.locator("summary").click()
    text = trace.inner_text()
    for name in ("Peru", "Mozart", "Ghana", "Oxygen"):
        assert f'search({{"query": "{name}"}})' in text
    assert "wiki:" in text  # the sources with their references
