"""The template library of `muse build` (src/openmuse/build/templates): every template passes
the checker (self-contained, no request out, no console error, not blank, no serious axe
violation, its own interaction tests) with its defaults and with parameters pushed to their
bounds; the palettes meet WCAG AA contrast; hostile parameter values stay inert text; bad
values fall back to the defaults. Run: `.venv/bin/pytest tests/test_build_templates.py`.
`.ci/run` installs Chromium; elsewhere the browser tests are skipped with a reason."""

from __future__ import annotations

import os
import shutil

import pytest

from openmuse.build import spec
from openmuse.build.check import Browser, check_html

NEEDED = {"snake", "pong", "breakout", "memory", "quiz", "landing", "menu", "portfolio", "signup", "dashboard"}
browser_needed = pytest.mark.skipif(not shutil.which("chromium") and not os.environ.get("CI"),
                                    reason="Chromium is not installed (apt-get install chromium)")


def _lum(h: str) -> float:
    r, g, b = (int(h.lstrip("#")[i:i + 2], 16) / 255 for i in (0, 2, 4))
    f = lambda c: c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4  # noqa: E731
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b)


def contrast(a: str, b: str) -> float:
    hi, lo = sorted((_lum(a), _lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def bounds(t: spec.Template, i: int) -> dict:
    """Every parameter at a bound: strings at their longest, numbers at their max, lists at
    their shortest (odd ``i``) or longest (even), a palette by ``i``."""
    out = {}
    for k, v in t.params.items():
        d = v.get("default")
        if "enum" in v:
            out[k] = v["enum"][i % len(v["enum"])]
        elif v.get("type") == "string":
            out[k] = ("Wide " * 20)[: v.get("maxLength", 40)].strip()
        elif v.get("type") in ("integer", "number"):
            out[k] = v.get("maximum", d) if i % 2 == 0 else v.get("minimum", d)
        elif v.get("type") == "array" and isinstance(d, list) and d:
            n = v.get("minItems", 1) if i % 2 else min(v.get("maxItems", len(d)), len(d) * 2)
            out[k] = [d[j % len(d)] for j in range(max(n, v.get("minItems", 0)))]
    return out


def test_the_library_has_every_template_with_examples_and_tests():
    assert NEEDED <= set(spec.names())
    for name in spec.names():
        t = spec.load(name)
        assert t.kind in ("game", "page") and t.summary
        assert len(t.examples) >= 8 and len(t.tests) >= 2, name
        assert all("default" in v for v in t.params.values()), name
        assert {"title", "palette"} <= set(t.params), name
        p, replaced = t.clean(t.defaults())
        assert replaced == [], (name, replaced)


def test_palettes_meet_contrast():
    for name, c in spec.palettes().items():
        pairs = [("text", "bg"), ("text", "surface"), ("muted", "bg"), ("muted", "surface"), ("on_primary", "primary"),
                 ("primary", "bg"), ("primary", "surface"), ("accent", "bg"), ("accent", "surface")]
        for fg, bg in pairs:
            assert contrast(c[fg], c[bg]) >= 4.5, (name, fg, bg)


def test_bad_values_fall_back_to_defaults():
    t = spec.load("snake")
    p, replaced = t.clean({"title": "", "palette": "chartreuse", "nonsense": 1, "speed": "fast"})
    assert p["title"] == t.defaults()["title"] and p["palette"] == t.defaults()["palette"]
    assert "nonsense" not in p and p["speed"] == "fast" and set(replaced) == {"title", "palette"}


def test_hostile_text_stays_text():
    evil = '</script><script>alert(1)</script><img src=x onerror=alert(2)>'
    for name in spec.names():
        html, _ = spec.render(name, {"title": evil[: spec.load(name).params["title"].get("maxLength", 40)]})
        assert "<script>alert(1)" not in html and "<img src=x" not in html, name


@pytest.fixture(scope="module")
def browser():
    with Browser() as b:
        yield b


@browser_needed
@pytest.mark.parametrize("name", sorted(NEEDED))
def test_template_passes_the_checker(browser, name):
    for i, values in enumerate(({}, bounds(spec.load(name), 1), bounds(spec.load(name), 2))):
        html, params = spec.render(name, values)
        r = check_html(html, spec.tests_for(name, params), browser)
        assert r.passed, (name, i, values, r.feedback())
        assert r.tests and all(t.passed for t in r.tests)
