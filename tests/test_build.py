"""`muse build`: the checker in a real headless Chromium (Debian's `chromium`, driven by
Playwright), the repair loop, the build mode on the embedded model and the command as a user
runs it. Run: `.venv/bin/pytest tests/test_build.py`.

- A clean page passes every check and its interaction test; a deliberately broken one (an
  external script, a script error, an image without alt text, an unlabelled input) fails each
  check with the right reason.
- The rule repairs fix the seeded bugs they cover; the repair loop sends a script error back to
  a code model with the checker's text and a screenshot summary, and the fixed file passes. The
  code model is a scripted OpenAI-compatible endpoint (a test double at the outer HTTP seam: no
  code model runs offline here); everything else is real.
- The embedded model builds a game and a page that pass every check; bad input (an unknown
  template, no prompt, a missing folder, a corrupt sketch, no Chromium) is one line, and an
  existing file is never overwritten by the default name.
`.ci/run` installs Chromium; elsewhere the browser tests are skipped with a reason."""

from __future__ import annotations

import json
import os
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from openmuse.assistant import Assistant
from openmuse.assistant.result import BuildTrace
from openmuse.build import repair
from openmuse.build.check import Browser, check_html
from openmuse.engines import EngineSettings, create_engine
from openmuse.types import Message

from .conftest import run_muse

if not shutil.which("chromium") and not os.environ.get("CI"):
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)

CLEAN = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>Counter</title></head><body><main><h1>Counter</h1><p id="n" aria-live="polite">0</p>
<button id="add">Add one</button></main>
<script>document.getElementById('add').addEventListener('click', () => {
  const n = document.getElementById('n'); n.textContent = String(Number(n.textContent) + 1); });</script>
</body></html>"""
COUNTER_TEST = [{"name": "adds one", "steps": [{"click": "#add"}, {"see": {"selector": "#n", "text": "1"}}]}]
BROKEN = """<!doctype html><html><head><meta charset="utf-8"><title>Shop</title>
<script src="https://cdn.example.com/lib.js"></script></head>
<body><main><h1>Shop</h1><img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">
<input id="q"><p id="n">0</p></main>
<script>startShop();</script></body></html>"""


@pytest.fixture(scope="module")
def browser():
    with Browser() as b:
        yield b


def names(report) -> set[str]:
    return {c.name for c in report.failures()}


def test_clean_page_passes_every_check(browser):
    r = check_html(CLEAN, COUNTER_TEST, browser)
    assert r.passed, r.feedback()
    assert [c.name for c in r.checks] == ["self_contained", "loads", "requests", "console", "renders",
                                          "accessibility", "interactions"]
    assert r.tests[0].passed and "1 buttons" in r.screenshot and "Counter" in r.screenshot


def test_broken_page_fails_with_the_right_reasons(browser):
    r = check_html(BROKEN, [{"name": "search", "steps": [{"click": "#missing"}]}], browser)
    assert not r.passed
    assert names(r) == {"self_contained", "requests", "console", "accessibility", "interactions"}
    by = {c.name: c.detail for c in r.checks}
    assert "cdn.example.com" in by["requests"] and "script src" in by["self_contained"]
    assert "startShop is not defined" in by["console"]
    ids = {v["id"] for v in r.violations if v["impact"] in ("serious", "critical")}
    assert {"image-alt", "label", "html-has-lang"} <= ids
    assert "search: step 1" in by["interactions"]


def test_an_interaction_that_does_not_happen_fails(browser):
    r = check_html(CLEAN, [{"name": "adds two", "steps": [{"click": "#add"}, {"see": {"selector": "#n", "text": "2"}}]}],
                   browser)
    assert names(r) == {"interactions"}
    assert "expected #n text '2', saw '1'" in r.checks[-1].detail


def test_a_blank_page_does_not_render(browser):
    r = check_html('<!doctype html><html lang="en"><head><title>x</title></head><body><main></main></body></html>',
                   None, browser)
    assert "renders" in names(r)


def test_rule_repairs_fix_the_seeded_bugs(browser):
    page = BROKEN.replace("<script>startShop();</script>", "")
    before = check_html(page, None, browser)
    assert {"self_contained", "requests", "accessibility"} <= names(before)
    fixed, done = repair.fix(page, title="Shop")
    assert any("external script" in d for d in done) and any("alt" in d for d in done)
    after = check_html(fixed, None, browser)
    assert after.passed, after.feedback()
    assert repair.fix(fixed, title="Shop")[1] == []  # nothing left to fix


class CodeModel:
    """A scripted OpenAI-compatible code model: the first reply has a script error, any later
    one the fixed file. It records every request."""

    def __init__(self, first: str, fixed: str):
        self.replies, self.requests = [first, fixed], []
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                body = json.dumps({"object": "list", "data": [{"id": "code-model", "object": "model"}]}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                req = json.loads(self.rfile.read(int(self.headers["content-length"])))
                outer.requests.append(req)
                text = outer.replies[min(len(outer.requests), len(outer.replies)) - 1]
                usage = {"prompt_tokens": 50, "completion_tokens": 400, "total_tokens": 450}
                head = {"id": "x", "created": 0, "model": "code-model"}
                if req.get("stream"):  # the pipeline streams: one chunk of text, then the usage
                    chunks = [{**head, "object": "chat.completion.chunk",
                               "choices": [{"index": 0, "delta": {"role": "assistant", "content": text},
                                            "finish_reason": None}]},
                              {**head, "object": "chat.completion.chunk",
                               "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                              {**head, "object": "chat.completion.chunk", "choices": [], "usage": usage}]
                    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks).encode() + b"data: [DONE]\n\n"
                    ctype = "text/event-stream"
                else:
                    body = json.dumps({**head, "object": "chat.completion", "usage": usage,
                                       "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                                    "finish_reason": "stop"}]}).encode()
                    ctype = "application/json"
                self.send_response(200)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"


def test_repair_loop_sends_the_error_to_the_model_and_the_fix_passes():
    buggy = CLEAN.replace("n.textContent = String", "n.textContent = Sting")
    model = CodeModel(f"```html\n{buggy}\n```\n```json\n{json.dumps(COUNTER_TEST)}\n```", f"```html\n{CLEAN}\n```")
    try:
        engine = create_engine(EngineSettings(engine="openai", base_url=model.url, model="code-model", api_key="x"))
        r = Assistant(engine).answer([Message(role="user", content="a counter with an add button")], "build",
                                     {"template": "none"})
    finally:
        model.server.shutdown()
    t = r.trace
    assert isinstance(t, BuildTrace) and t.source == "model"
    assert t.passed and t.repairs == 1, t.attempts
    assert [a.passed for a in t.attempts] == [False, True] and t.attempts[1].how == "model repair"
    assert any("Sting is not defined" in f for f in t.attempts[0].failures)
    repair_prompt = model.requests[1]["messages"][-1]["content"]
    assert "Sting is not defined" in repair_prompt and "Screenshot:" in repair_prompt
    assert t.html.strip() == CLEAN.strip() and r.answer.startswith("Built from model: all checks passed")


@pytest.mark.parametrize("prompt,template", [("a snake game with a score", "snake"),
                                             ("a sign-up page for a chess club", "signup")])
def test_the_embedded_model_builds_a_page_that_passes(engine, prompt, template):
    events = []
    r = Assistant(engine).answer([Message(role="user", content=prompt)], "build", on_event=events.append)
    t = r.trace
    assert isinstance(t, BuildTrace) and t.template == template and t.source == "template"
    assert t.passed, t.attempts
    assert t.report["tests"] and all(x["passed"] for x in t.report["tests"])
    assert t.html.lower().startswith("<!doctype html>") and "http://" not in t.html and "https://" not in t.html
    assert any(e.kind == "status" and "Chromium" in e.text for e in events)
    assert "```html" in r.answer


def test_build_command_writes_the_file_and_never_overwrites(tmp_path):
    (tmp_path / "pong-game.html").write_text("mine")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        p = run_muse("build", "pong game")
    finally:
        os.chdir(cwd)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "pong-game.html").read_text() == "mine"  # kept
    built = (tmp_path / "pong-game-2.html").read_text()
    assert "<canvas" in built and "wrote pong-game-2.html" in p.stderr and "✓ interactions" in p.stderr


@pytest.mark.parametrize("args,message", [
    (["build", "--template", "tetris", "a game"], "no build template 'tetris'"),
    (["build"], "say what to build"),
    (["build", "x", "--out", "no/such/dir/x.html"], "the folder no/such/dir does not exist"),
    (["build", "--image", "{bad}", "a page like this"], "image 1"),
])
def test_bad_input_is_one_line(tmp_path, args, message):
    bad = tmp_path / "sketch.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    args = [a.replace("{bad}", str(bad)) for a in args]
    p = run_muse(*args)
    assert p.returncode != 0
    assert message in p.stderr and "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_missing_chromium_is_one_line():
    p = run_muse("build", "a quiz", env={"MUSE_CHROMIUM": "/nonexistent/chromium"})
    assert p.returncode == 1 and "Chromium, which was not found" in p.stderr and "Traceback" not in p.stderr


def test_copied_titles_and_taglines_are_not_kept():
    from openmuse.build.fill import grounded

    examples = [{"title": "Bakery Sales", "tagline": "Today's sales at a glance."}]
    got = grounded({"title": "Bakery Sales", "tagline": "Today's sales at a glance!"},
                   "a landing page for my coffee startup", examples)
    assert got == {"title": "Coffee Startup"}  # the thing the request is for; the echoed tagline dropped
    assert grounded({"title": "Bakery Breakout"}, "a breakout game", examples) == {"title": "Breakout"}
    assert grounded({"title": "Geography Quiz", "tagline": "Best, best, best, best."}, "a quiz on geography",
                    examples) == {"title": "Geography Quiz"}
    assert grounded({"title": "Zebra"}, "snake please", examples) == {}  # nothing to keep: the default stays
