"""The checker: every artifact ``muse build`` hands over is first loaded in headless Chromium
(Playwright driving the system's Chromium; no browser is downloaded) and must pass, in order:

- ``self_contained``: no resource by URL in the file (``<script src>``, stylesheets, images,
  frames, ``@import``, ``url(http…)``) and at most ``MAX_BYTES``;
- ``loads``: the page loads within the time limit;
- ``requests``: no request leaves the artifact: the page is served from a private origin that
  only the checker answers; every other request is aborted and named;
- ``console``: no console error and no uncaught exception while loading and while tested;
- ``renders``: the screenshot is not blank and some text is visible;
- ``accessibility``: axe-core (bundled with ``axe-playwright-python``) finds no serious or
  critical violation;
- ``interactions``: the tests written with the artifact (``spec.py`` documents the steps) pass,
  each on a fresh load.

What it does not cover: whether the page is what the user wanted (the report shows a
screenshot summary for that), behaviour after the time limits, and other browsers.
The artifact runs with the page's own CSP and with no origin of the app: storage, cookies and
service workers are those of a throwaway context.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import time
from collections import Counter
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from ..errors import ConfigError

ORIGIN = "http://artifact.muse.test"
URL = ORIGIN + "/index.html"
MAX_BYTES = 1_000_000
SEE_S = 8.0  # how long a ``see`` waits for what it expects (games run slower on a busy machine)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
CHECKS = ("self_contained", "loads", "requests", "console", "renders", "accessibility", "interactions")
_RESOURCE = re.compile(
    r"""<(?:script|img|iframe|embed|source|audio|video|object)\b[^>]*\b(?:src|data)\s*=\s*["']?\s*(?:https?:)?//"""
    r"""|<link\b[^>]*\bhref\s*=\s*["']?\s*(?:https?:)?//|@import\s+(?:url\()?\s*["']?(?:https?:)?//"""
    r"""|url\(\s*["']?(?:https?:)?//""", re.I)


class Check(BaseModel):
    name: str
    passed: bool
    detail: str = ""


class TestRun(BaseModel):
    name: str
    passed: bool
    detail: str = ""


class CheckReport(BaseModel):
    passed: bool
    checks: list[Check] = Field(default_factory=list)
    console_errors: list[str] = Field(default_factory=list)
    blocked_requests: list[str] = Field(default_factory=list)
    violations: list[dict[str, Any]] = Field(default_factory=list)  # axe: id, impact, help, nodes
    tests: list[TestRun] = Field(default_factory=list)
    screenshot: str = ""  # one line: what the page shows
    wall_s: float = 0.0

    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def feedback(self) -> str:
        """The failures as text for a repair request."""
        lines = [f"- {c.name}: {c.detail}" for c in self.failures()]
        return "\n".join(lines + [f"Screenshot: {self.screenshot}"])


def chromium_path(explicit: str | None = None) -> str:
    path = explicit or os.environ.get("MUSE_CHROMIUM") or next(
        (p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)
    if not path or not os.path.exists(path):
        raise ConfigError("muse build checks pages in Chromium, which was not found: apt-get install chromium "
                          "(or set MUSE_CHROMIUM=PATH)")
    return path


class Browser:
    """One headless Chromium for a run of checks (a context manager; not shared across threads)."""

    def __init__(self, chromium: str | None = None, timeout_s: float = 10.0):
        self.path = chromium_path(chromium)
        self.timeout_ms = int(timeout_s * 1000)
        self._pw = self._browser = None

    def __enter__(self) -> Browser:
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            raise ConfigError("muse build needs Playwright: pip install 'openmuse[build]'") from None
        self._pw = sync_playwright().start()
        try:
            self._browser = self._pw.chromium.launch(executable_path=self.path, args=FLAGS)
        except Exception as e:  # noqa: BLE001 - Playwright's launch errors are long; keep the first line
            self._pw.stop()
            raise ConfigError(f"Chromium did not start ({self.path}): {str(e).splitlines()[0]}") from None
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._browser.close()
        finally:
            self._pw.stop()

    def open(self, html: str, viewport: tuple[int, int] = (1024, 768)):
        """A fresh context and page with ``html`` loaded from the private origin; returns
        (context, page, console errors, blocked requests) — close the context when done."""
        errors: list[str] = []
        blocked: list[str] = []
        body = html.encode("utf-8")
        ctx = self._browser.new_context(viewport={"width": viewport[0], "height": viewport[1]},
                                        service_workers="block", java_script_enabled=True)

        def route(r):
            if r.request.url.split("#")[0] in (URL, ORIGIN, ORIGIN + "/"):
                r.fulfill(status=200, body=body, headers={"content-type": "text/html; charset=utf-8"})
            elif r.request.url.startswith(ORIGIN + "/favicon.ico"):
                r.fulfill(status=204, body=b"")
            else:
                blocked.append(r.request.url[:200])
                r.abort("blockedbyclient")

        ctx.route("**/*", route)
        page = ctx.new_page()
        page.set_default_timeout(self.timeout_ms)
        page.on("console", lambda m: errors.append(m.text[:300]) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"uncaught {str(e).splitlines()[0][:300]}"))
        page.goto(URL, wait_until="load", timeout=self.timeout_ms)
        return ctx, page, errors, blocked


def check_html(html: str, tests: list[dict[str, Any]] | None = None, browser: Browser | None = None,
               viewport: tuple[int, int] = (1024, 768)) -> CheckReport:
    """Every check on ``html`` (see the module docstring); opens a browser when none is given."""
    if browser is None:
        with Browser() as b:
            return check_html(html, tests, b, viewport)
    t0 = time.perf_counter()
    rep = CheckReport(passed=False)
    static = _RESOURCE.search(html)
    size = len(html.encode("utf-8"))
    rep.checks.append(Check(name="self_contained", passed=not static and size <= MAX_BYTES,
                            detail=(f"loads a resource by URL: {static.group(0)[:120]!r}" if static else
                                    f"{size} bytes (most {MAX_BYTES})" if size > MAX_BYTES else "")))
    errors: list[str] = []
    blocked: list[str] = []
    try:
        ctx, page, errors, blocked = browser.open(html, viewport)
    except Exception as e:  # noqa: BLE001 - a page that does not load is a failed check, not a crash
        rep.checks.append(Check(name="loads", passed=False, detail=str(e).splitlines()[0][:300]))
        return _finish(rep, errors, blocked, t0)
    try:
        rep.checks.append(Check(name="loads", passed=True))
        page.wait_for_timeout(300)  # timers that start on load get to run once
        rep.screenshot, blank = _screenshot_summary(page)
        rep.checks.append(Check(name="renders", passed=not blank, detail=rep.screenshot if blank else ""))
        rep.violations = _axe(page)
        serious = [v for v in rep.violations if v["impact"] in ("serious", "critical")]
        rep.checks.append(Check(name="accessibility", passed=not serious, detail="; ".join(
            f"{v['id']} ({v['impact']}): {v['help']} — {v['nodes']}" for v in serious)[:600]))
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - e.g. the page closed itself or hung the renderer
        rep.checks.append(Check(name="renders", passed=False, detail=str(e).splitlines()[0][:300]))
    finally:
        ctx.close()
    for t in tests or []:
        rep.tests.append(_run_test(browser, html, t, viewport, errors, blocked))
    failed = [t for t in rep.tests if not t.passed]
    rep.checks.append(Check(name="interactions", passed=not failed and bool(rep.tests) == bool(tests),
                            detail="; ".join(f"{t.name}: {t.detail}" for t in failed)[:600]))
    return _finish(rep, errors, blocked, t0)


def _finish(rep: CheckReport, errors: list[str], blocked: list[str], t0: float) -> CheckReport:
    rep.console_errors = list(dict.fromkeys(errors))[:20]
    rep.blocked_requests = list(dict.fromkeys(blocked))[:20]
    rep.checks.append(Check(name="requests", passed=not blocked,
                            detail=("requests left the artifact: " + ", ".join(rep.blocked_requests[:5])) if blocked else ""))
    rep.checks.append(Check(name="console", passed=not errors, detail=" | ".join(rep.console_errors[:5])[:600]))
    rep.checks.sort(key=lambda c: CHECKS.index(c.name) if c.name in CHECKS else len(CHECKS))
    rep.passed = all(c.passed for c in rep.checks)
    rep.wall_s = round(time.perf_counter() - t0, 3)
    return rep


def _axe(page) -> list[dict[str, Any]]:
    try:
        from axe_playwright_python.sync_playwright import Axe
    except ImportError:
        raise ConfigError("muse build's accessibility check needs axe: pip install 'openmuse[build]'") from None

    res = Axe().run(page).response
    return [{"id": v["id"], "impact": v.get("impact") or "minor", "help": v.get("help", ""),
             "nodes": ", ".join(" ".join(n.get("target", [""])[:1]) for n in v.get("nodes", [])[:3])}
            for v in res.get("violations", [])]


def _screenshot_summary(page) -> tuple[str, bool]:
    from PIL import Image

    img = Image.open(io.BytesIO(page.screenshot(type="png"))).convert("RGB")
    small = img.resize((128, max(1, 128 * img.height // img.width)))
    counts = Counter(map(tuple, np.asarray(small).reshape(-1, 3).tolist()))
    bg, n_bg = counts.most_common(1)[0]
    total = small.width * small.height
    drawn = 1 - n_bg / total
    top = ", ".join("#%02x%02x%02x" % c for c, _ in counts.most_common(3))
    text = " ".join(page.locator("body").inner_text(timeout=2000).split())
    kinds = {"buttons": "button", "inputs": "input, select, textarea", "links": "a[href]",
             "canvases": "canvas", "images": "img, svg[role=img]"}
    found = ", ".join(f"{n} {k}" for k, sel in kinds.items() if (n := page.locator(sel).count()))
    line = (f"{img.width}x{img.height}: {drawn:.0%} of pixels drawn on {'#%02x%02x%02x' % bg}, colours {top}; "
            f"{found or 'no controls'}; text: {text[:160]!r}")
    return line, drawn < 0.002 or (drawn < 0.01 and not text)


def _run_test(browser: Browser, html: str, test: dict[str, Any], viewport, errors: list[str],
              blocked: list[str]) -> TestRun:
    name = str(test.get("name", "test"))
    try:
        ctx, page, errs, blk = browser.open(html, viewport)
    except Exception as e:  # noqa: BLE001 - the page did not load this time
        return TestRun(name=name, passed=False, detail=str(e).splitlines()[0][:300])
    try:
        before = {s["see"]["selector"]: _text(page, s["see"]["selector"]) for s in test.get("steps", [])
                  if isinstance(s.get("see"), dict) and s["see"].get("changed")}
        for i, step in enumerate(test.get("steps", []), 1):
            try:
                problem = _step(page, step, before)
            except Exception as e:  # noqa: BLE001 - a selector that matches nothing, a key that is no key
                first = str(e).splitlines()[0][:200]
                problem = (f"{_brief(step)}: no visible element answered in time" if "Timeout" in first
                           else f"{_brief(step)}: {first}")
            if problem:
                return TestRun(name=name, passed=False, detail=f"step {i}: {problem}")
        return TestRun(name=name, passed=True)
    finally:
        ctx.close()
        errors.extend(errs)
        blocked.extend(blk)


def _brief(step: dict[str, Any]) -> str:
    k = next(iter(step), "?")
    v = step.get(k)
    return f"{k} {v if not isinstance(v, dict) else v.get('selector', '')}"[:80]


def _text(page, selector: str) -> str:
    loc = page.locator(selector)
    return " ".join(loc.first.inner_text(timeout=2000).split()) if loc.count() else ""


def _step(page, step: dict[str, Any], before: dict[str, str]) -> str:
    """Run one step; returns what went wrong, or ''."""
    if "click" in step:
        page.locator(step["click"]).first.click(timeout=3000)
    elif "press" in step:
        page.keyboard.press(str(step["press"]))
    elif "fill" in step:
        page.locator(step["fill"]["selector"]).first.fill(str(step["fill"]["value"]), timeout=3000)
    elif "wait" in step:
        page.wait_for_timeout(min(int(step["wait"]), 5000))
    elif "see" in step:
        return _see(page, step["see"], before)
    else:
        return f"unknown step {sorted(step)}"
    return ""


def _see(page, see: dict[str, Any], before: dict[str, str], timeout_s: float = SEE_S) -> str:
    sel = see["selector"]
    deadline = time.monotonic() + timeout_s
    while True:
        loc = page.locator(sel)
        n = loc.count()
        text = _text(page, sel) if n and ({"text", "contains", "changed"} & set(see)) else ""
        if "text" in see:
            ok, want = text == str(see["text"]).strip(), f"text {see['text']!r}"
        elif "contains" in see:
            ok, want = str(see["contains"]).lower() in text.lower(), f"text containing {see['contains']!r}"
        elif "changed" in see:
            ok, want = n > 0 and text != before.get(sel, ""), f"its text to change from {before.get(sel, '')!r}"
        elif "visible" in see:
            vis = n > 0 and loc.first.is_visible()
            ok, want = vis == bool(see["visible"]), "visible" if see["visible"] else "hidden"
        elif "count" in see:
            vis_n = sum(1 for i in range(n) if loc.nth(i).is_visible())
            ok, want, text = vis_n == int(see["count"]), f"{see['count']} visible", f"{vis_n} visible"
        elif "min_count" in see:
            vis_n = sum(1 for i in range(n) if loc.nth(i).is_visible())
            ok, want, text = vis_n >= int(see["min_count"]), f"at least {see['min_count']} visible", f"{vis_n} visible"
        elif "attr" in see:
            got = loc.first.get_attribute(see["attr"]["name"]) if n else None
            ok, want, text = got == str(see["attr"]["value"]), f"{see['attr']['name']}={see['attr']['value']!r}", repr(got)
        else:
            return f"unknown expectation {sorted(see)}"
        if ok:
            return ""
        if time.monotonic() > deadline:
            return f"expected {sel} {want}, saw {text[:120]!r}" + ("" if n else " (no such element)")
        page.wait_for_timeout(100)
