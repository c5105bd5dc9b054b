"""The library of verified templates that ``muse build`` parametrises from a prompt.

A template is two packaged files under ``build/templates/``:

``NAME.html``  a Jinja2 page (autoescaped). It is ONE self-contained HTML file: inline CSS and
               JS, no external request of any kind (no CDN, font, image URL; pictures are
               inline SVG or ``data:`` URIs), ``<html lang>``, a ``<title>``, one ``<h1>``,
               landmarks (``<main>``), labels on every control, ``alt`` on every image.
               It receives ``p`` (the parameters, defaults filled in), ``c`` (the palette's
               colours: ``c.bg``, ``c.surface``, ``c.text``, ``c.muted``, ``c.primary``,
               ``c.on_primary``, ``c.accent``, from ``palettes.yaml``) and ``csp`` (the
               Content-Security-Policy the page declares in a ``<meta http-equiv>``). Data for
               scripts goes in as ``{{ p | tojson }}`` (Jinja escapes ``<``, ``>``, ``&`` there).

``NAME.yaml``  what the template is and how it is checked::

    name: snake
    kind: game                      # game | page
    summary: one line, shown to the model and in --help
    examples: [prompts that should pick this template, varied wording]
    params:                         # JSON-schema properties; every one has a default
      title: {type: string, maxLength: 40, default: Snake}
      palette: {enum: [ocean, ...], default: arcade}
      speed: {enum: [slow, normal, fast], default: normal}
      symbols: {type: array, maxItems: 8, items: {type: string, maxLength: 30}, default: [...]}
                                    # (not ``items``, ``keys``, ``values``, ``get``: Jinja's
                                    # ``p.items`` is the dict's method, not the parameter)
    tests:                          # interaction tests run in Chromium on a fresh page each
      - name: the score rises when the snake eats
        steps:
          - click: "#start"          # click a selector
          - press: ArrowUp           # a key, to the focused element (or the page)
          - fill: {selector: "#email", value: "a@b.co"}
          - wait: 300                # milliseconds
          - see: {selector: "#score", changed: true}   # waits up to 8 s for it to hold

    ``see`` takes one of: ``text`` (exact, stripped), ``contains``, ``changed`` (the text
    differs from what it was before the test's first step), ``visible: true|false``,
    ``count`` / ``min_count`` (number of matching elements), ``attr: {name, value}``.
    A test's text may use the parameters: ``{{ p.symbols[0] }}`` is rendered with Jinja (not
    HTML-escaped: the checker compares page text, so "Fish & chips" stays as it is).

Rendering never trusts the parameters: they are validated against the schema (unknown keys
dropped, bad values replaced by the default) before the page sees them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from typing import Any

import jinja2
import jsonschema
import yaml

from ..errors import ConfigError

CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
       "img-src data:; font-src data:; media-src data:; connect-src 'none'; form-action 'none'; base-uri 'none'")


@dataclass(frozen=True)
class Template:
    name: str
    kind: str
    summary: str
    examples: tuple[str, ...]
    params: dict[str, Any]
    tests: tuple[dict[str, Any], ...]
    source: str = field(repr=False)

    def defaults(self) -> dict[str, Any]:
        return {k: copy.deepcopy(v.get("default")) for k, v in self.params.items()}

    def schema(self) -> dict[str, Any]:
        """The JSON schema the model's parameters are written under (no defaults: the grammar
        needs the shape only)."""
        props = {k: {kk: vv for kk, vv in v.items() if kk != "default"} for k, v in self.params.items()}
        return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}

    def clean(self, values: dict[str, Any] | None) -> tuple[dict[str, Any], list[str]]:
        """``values`` checked one by one against the schema: the valid ones kept, the rest
        replaced by the default. Returns the parameters and the names that were replaced."""
        out, replaced = self.defaults(), []
        for k, v in (values or {}).items():
            if k not in self.params:
                continue
            sub = {kk: vv for kk, vv in self.params[k].items() if kk != "default"}
            try:
                jsonschema.validate(v, sub)
            except jsonschema.ValidationError:
                replaced.append(k)
                continue
            if isinstance(v, str) and not v.strip() and (k == "title" or self.params[k].get("minLength", 0) > 0):
                replaced.append(k)  # an empty optional text hides its part; an empty title is no title
                continue
            out[k] = v
        return out, replaced


@cache
def palettes() -> dict[str, dict[str, str]]:
    return yaml.safe_load(files(__package__).joinpath("palettes.yaml").read_text("utf-8"))


@cache
def names() -> tuple[str, ...]:
    d = files(__package__).joinpath("templates")
    return tuple(sorted(p.name[:-5] for p in d.iterdir() if p.name.endswith(".yaml")))


@cache
def load(name: str) -> Template:
    d = files(__package__).joinpath("templates")
    if name not in names():
        raise ConfigError(f"no build template '{name}' (there are: {', '.join(names())})")
    meta = yaml.safe_load(d.joinpath(f"{name}.yaml").read_text("utf-8"))
    return Template(name=meta["name"], kind=meta["kind"], summary=meta["summary"],
                    examples=tuple(meta.get("examples", ())), params=meta["params"],
                    tests=tuple(meta.get("tests", ())), source=d.joinpath(f"{name}.html").read_text("utf-8"))


_ENV = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
_TEST_ENV = jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined)  # texts compared, not shown


def render(name: str, values: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """The page of template ``name`` with ``values`` (cleaned), and the parameters used."""
    t = load(name)
    p, _ = t.clean(values)
    colours = palettes().get(p.get("palette", ""), palettes()["ocean"])
    html = _ENV.from_string(t.source).render(p=p, c=colours, csp=CSP)
    return html, p


def tests_for(name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """The template's interaction tests with their texts rendered from ``params``."""
    def fill(x: Any) -> Any:
        if isinstance(x, str) and ("{{" in x or "{%" in x):
            return _TEST_ENV.from_string(x).render(p=params)
        if isinstance(x, dict):
            return {k: fill(v) for k, v in x.items()}
        if isinstance(x, list):
            return [fill(v) for v in x]
        return x
    return [fill(copy.deepcopy(t)) for t in load(name).tests]


def visible_text(page: str, limit: int = 20_000) -> str:
    """The text a person reads on ``page``: tags, scripts and styles removed, attributes that
    show as text (alt, title, placeholder, aria-label, value) kept. What the safety check judges
    of a built page, which is code, not prose."""
    from html.parser import HTMLParser

    class _Text(HTMLParser):
        def __init__(self):
            super().__init__(convert_charrefs=True)
            self.parts: list[str] = []
            self.skip = 0

        def handle_starttag(self, tag, attrs):
            if tag in ("script", "style", "template"):
                self.skip += 1
            self.parts.extend(v for k, v in attrs if k in ("alt", "title", "placeholder", "aria-label", "value") and v)

        def handle_endtag(self, tag):
            if tag in ("script", "style", "template") and self.skip:
                self.skip -= 1

        def handle_data(self, data):
            if not self.skip and data.strip():
                self.parts.append(data.strip())

    p = _Text()
    p.feed(page)
    p.close()
    return " ".join(p.parts)[:limit]
