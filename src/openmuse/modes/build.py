"""Build mode: one self-contained HTML file — a web page or a mini-game — from a prompt or a
sketch, checked in a real browser before it is handed over (``build/``).

1. Make: a sketch (an image in the last user message) becomes a page with its boxes
   (``build/sketch.py``); otherwise the prompt's nearest template (``build/choose.py``) is
   filled by the model under a grammar (``build/fill.py``), with what the prompt states
   outright (palette, a quoted title) taken by rule. With ``template: none`` — or ``auto`` on an
   engine other than the embedded model when no template is close — the model writes the file
   and its interaction tests itself.
2. Check (``build/check.py``): Chromium loads it; self-contained, no request out, no console
   error, not blank, no serious axe violation, the interaction tests pass.
3. Repair, up to ``repairs`` times, each checked again: a template falls back to its verified
   defaults for what the model wrote; written code is fixed by rule (``build/repair.py``),
   then by the model with the checker's findings and a screenshot summary.

The ``Result``'s answer is a one-line report and the file in an ``html`` block; the
``BuildTrace`` holds the file, the parameters, the checker's report and every attempt.
Live events: ``status`` lines (what is being made, checked, repaired).
"""

from __future__ import annotations

import importlib.util
import io
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from ..assistant.result import BuildAttempt, BuildTrace, Result
from ..engines.base import Engine
from ..errors import ConfigError
from ..types import Delta, Message, Usage
from .base import Mode, ModeOptions, OnEvent, last_question

CLOSE = 0.80  # a template's best example this similar to the prompt is taken in "auto" on any engine


class BuildOptions(ModeOptions):
    template: str = Field(default="auto", description="auto (nearest template), none (the model writes the code) "
                                                       "or a template's name.")
    repairs: int = Field(default=2, ge=0, le=5, description="Most repairs after a failed check.")
    check: bool = Field(default=True, description="Check the file in Chromium before handing it over.")
    fill: Literal["auto", "simple", "all"] = Field(
        default="auto", description="Which template parameters the model writes: simple (texts, choices, "
                                    "numbers), all, or auto (simple on the embedded model).")
    check_timeout_s: float = Field(default=10.0, gt=0, le=60, description="Time limit of each page load in the checker.")


class BuildMode(Mode):
    name = "build"
    summary = "a self-contained web page or mini-game from a prompt or a sketch, checked in a real browser"
    Options = BuildOptions
    shapes_output = True  # the answer is the file; tools and response formats do not apply
    reads_media = True

    def __init__(self, options=None):
        super().__init__(options)
        self.asked: list[Message] = []
        self.media_settings = None

    def run(self, engine: Engine, messages: Sequence[Message], on_event: OnEvent | None = None) -> Result:
        from ..build import spec

        t0 = time.perf_counter()
        o: BuildOptions = self.options  # type: ignore[assignment]
        say = (lambda text: on_event(Delta(kind="status", index=-1, text=text))) if on_event else (lambda _t: None)
        request = last_question(self.asked or messages).strip()
        if o.template not in ("auto", "none") and o.template not in spec.names():
            raise ConfigError(f"no build template '{o.template}' (use auto, none or one of: {', '.join(spec.names())})")
        image = self._sketch_image()
        if not request and image is None:
            raise ConfigError("say what to build (or send a sketch)")
        usage = Usage()
        job = _Job(engine=engine, request=request or "a page like this sketch", options=o, say=say)
        if image is not None:
            job.from_sketch(image)
        else:
            usage += job.make()
        usage += job.check_and_repair()
        tr = job.trace
        tr.html, tr.bytes = job.html, len(job.html.encode("utf-8"))
        tr.authored = job.authored()
        head = (f"Built from {tr.source}" + (f" '{tr.template}'" if tr.template else "") + ": " +
                ("all checks passed" if tr.passed else "NOT checked" if not tr.checked else
                 "checks failed: " + ", ".join(a for a in (tr.attempts[-1].failures if tr.attempts else [])))
                + f" ({tr.repairs} repair{'s' if tr.repairs != 1 else ''}).")
        answer = f"{head}\n\n```html\n{job.html}\n```"
        if on_event:
            on_event(Delta(kind="answer", text=answer))
        return Result(answer=answer, mode=self.name, model=engine.model, usage=usage, trace=tr,
                      timings={"wall_s": time.perf_counter() - t0, "check_s": job.check_s})

    def _sketch_image(self):
        """The last user message's image (decoded), or None."""
        from ..media.parts import find_parts, load_bytes

        users = [i for i, m in enumerate(self.asked) if m.role == "user"]
        if not users:
            return None
        parts = [p for p in find_parts(self.asked) if p.kind == "image" and p.where[0] == users[-1]]
        if not parts:
            return None
        from PIL import Image

        from ..media.settings import MediaSettings

        data = load_bytes(parts[-1], self.media_settings or MediaSettings())
        img = Image.open(io.BytesIO(data))
        img.load()
        return img


class _Job:
    """One build: the artifact as it stands, how it was made, and its attempts."""

    def __init__(self, engine: Engine, request: str, options: BuildOptions, say):
        self.engine, self.request, self.o, self.say = engine, request, options, say
        self.html = ""
        self.tests: list[dict[str, Any]] = []
        self.hinted: dict[str, Any] = {}
        self.trace = BuildTrace(source="template", checked=options.check)
        self.check_s = 0.0
        self.layout: list[Any] = []

    # -- making ---------------------------------------------------------------------------
    def make(self) -> Usage:
        from ..build import choose

        o = self.o
        if o.template == "none":
            return self._write()
        if o.template == "auto":
            ranked = choose.rank(self.request)
            name, sim = ranked[0]
            self.trace.similarity = sim
            if sim < CLOSE and self.engine.name != "local":
                self.say(f"no template close (best {name} {sim:.2f}): the model writes the code")
                return self._write()
        else:
            name = o.template
        return self._fill(name)

    def _fill(self, name: str) -> Usage:
        from ..build import choose, fill, spec

        t = spec.load(name)
        self.say(f"template {name}: filling its settings from the prompt")
        fill_all = self.o.fill == "all" or (self.o.fill == "auto" and self.engine.name != "local")
        texts, usage = fill.write_texts(self.engine, t, self.request, seed=self.o.seed)
        written, more = fill.fill_params(self.engine, t, self.request, fill_all=fill_all, seed=self.o.seed)
        written, usage = {**written, **texts}, usage + more
        self.hinted = choose.hints(self.request, t)
        params, replaced = t.clean({**written, **self.hinted})  # what the prompt states outright wins
        self.trace.template, self.trace.params, self.trace.replaced = name, params, replaced
        self.html, _ = spec.render(name, params)
        self.tests = spec.tests_for(name, params)
        return usage

    def _write(self) -> Usage:
        from ..build import fill

        self.trace.source = "model"
        self.say("the model writes the page")
        self.html, self.tests, usage = fill.write_code(self.engine, self.request, seed=self.o.seed)
        if not self.html:
            self.html = "<!doctype html><html><head></head><body></body></html>"
        return usage

    def from_sketch(self, image) -> None:
        from ..build import choose, sketch, spec

        self.trace.source = "sketch"
        if importlib.util.find_spec("cv2") is None:
            raise ConfigError("reading a sketch needs OpenCV: pip install 'openmuse[build]'")
        self.say("reading the sketch: boxes and labels")
        self.layout = sketch.read_sketch(image)
        hints = choose.hints(self.request, spec.load("landing"))
        colours = spec.palettes()[hints.get("palette", "ocean")]
        title = hints.get("title") or "Home"
        self.html = sketch.layout_html(self.layout, title, colours, spec.CSP, aspect=image.height / image.width)
        self.trace.params = {"title": title, "palette": hints.get("palette", "ocean")}
        self.trace.sketch = {"boxes": [dict(x=b.x, y=b.y, w=b.w, h=b.h, label=b.label, kind=b.kind) for b in self.layout],
                             "size": list(image.size)}
        self._image_size = image.size
        self.tests = sketch_tests(self.layout)

    def authored(self) -> str:
        """The page's text that the model wrote: a template's parameters that are not its own
        defaults (their strings), or all the visible text of written code."""
        from ..build import spec

        if self.trace.source == "model":
            return spec.visible_text(self.html)
        if self.trace.source != "template" or not self.trace.template:
            return ""
        defaults = spec.load(self.trace.template).defaults()
        out: list[str] = []

        def strings(x: Any) -> None:
            if isinstance(x, str):
                out.append(x)
            elif isinstance(x, dict):
                for v in x.values():
                    strings(v)
            elif isinstance(x, list):
                for v in x:
                    strings(v)

        for k, v in self.trace.params.items():
            if v != defaults.get(k):
                strings(v)
        return " ".join(out)

    # -- checking and repairing -------------------------------------------------------------
    def check_and_repair(self) -> Usage:
        if not self.o.check:
            self.trace.attempts.append(BuildAttempt(attempt=0, how=self.trace.source, passed=False,
                                                    failures=["not checked (check off)"]))
            return Usage()
        # Playwright's sync API refuses a thread that runs an asyncio loop (a notebook, an async
        # caller, another Playwright): the browser gets a thread of its own.
        with ThreadPoolExecutor(1, thread_name_prefix="muse-build-check") as ex:
            return ex.submit(self._check_loop).result()

    def _check_loop(self) -> Usage:
        from ..build.check import Browser, check_html

        usage = Usage()
        t0 = time.perf_counter()
        with Browser(timeout_s=self.o.check_timeout_s) as browser:
            how = self.trace.source
            for attempt in range(self.o.repairs + 1):
                self.say("checking in Chromium" + (f" (repair {attempt})" if attempt else ""))
                report = check_html(self.html, self.tests, browser, viewport=self._viewport())
                self._measure_layout(browser)
                fails = [f"{c.name}: {c.detail}"[:300] for c in report.failures()]
                self.trace.attempts.append(BuildAttempt(attempt=attempt, how=how, passed=report.passed,
                                                        failures=fails, wall_s=report.wall_s))
                self.trace.report, self.trace.passed = report.model_dump(mode="json"), report.passed
                if report.passed or attempt == self.o.repairs:
                    break
                self.say(f"failed: {', '.join(c.name for c in report.failures())}; repairing")
                how, spent = self._repair(report, attempt + 1)
                usage += spent
                self.trace.repairs += 1
        self.check_s = time.perf_counter() - t0
        return usage

    def _viewport(self) -> tuple[int, int]:
        if self.trace.source == "sketch":
            from ..build.sketch import viewport_for

            return viewport_for(self._image_size)
        return (1024, 768)

    def _measure_layout(self, browser) -> None:
        if self.trace.source != "sketch":
            return
        from ..build.sketch import layout_iou

        ctx, page, _, _ = browser.open(self.html, self._viewport())
        try:
            got = layout_iou(page, self.layout, width=self._viewport()[0])
        finally:
            ctx.close()
        self.trace.sketch = {**(self.trace.sketch or {}), "mean_iou": round(got["mean_iou"], 4),
                             "per_box": [round(x, 4) if isinstance(x, float) else x for x in got["per_box"]]}

    def _repair(self, report, attempt: int) -> tuple[str, Usage]:
        """Change the artifact for the next check; returns (how, tokens spent)."""
        from ..build import fill, repair, spec

        if self.trace.source == "template":
            t = spec.load(self.trace.template)
            keep = {} if attempt > 1 else self.hinted  # first the model's values go, then the prompt's too
            params, _ = t.clean(keep)
            self.trace.params = params
            self.html, _ = spec.render(t.name, params)
            self.tests = spec.tests_for(t.name, params)
            return "defaults", Usage()
        fixed, done = repair.fix(self.html, title=self.request[:40] or "Page")
        if done and fixed != self.html:
            self.html = fixed
            return "rules: " + "; ".join(done), Usage()
        if self.trace.source == "sketch":
            return "rules: nothing to fix", Usage()
        self.html, self.tests, usage = fill.repair_code(self.engine, self.request, self.html, self.tests,
                                                        report.feedback(), seed=self.o.seed)
        return "model repair", usage


def sketch_tests(boxes) -> list[dict[str, Any]]:
    """Interaction tests for a page built from a sketch: each button answers, each form takes an
    address and thanks the reader, each nav has links."""
    tests: list[dict[str, Any]] = []
    for i, b in enumerate(boxes):
        box = f"[data-box='{i}']"
        if b.kind == "button":
            tests.append({"name": f"the button (box {i + 1}) answers", "steps": [
                {"click": box}, {"see": {"selector": "#status", "contains": "Thanks"}}]})
        elif b.kind == "form":
            tests.append({"name": f"the form (box {i + 1}) takes an address", "steps": [
                {"fill": {"selector": f"{box} input[type=email]", "value": "reader@example.com"}},
                {"click": f"{box} button[type=submit]"},
                {"see": {"selector": f"{box} [role=status]", "contains": "Thank you"}}]})
        elif b.kind == "nav":
            tests.append({"name": f"the navigation (box {i + 1}) has links", "steps": [
                {"see": {"selector": f"{box} a[href]", "min_count": 1}}]})
    return tests
