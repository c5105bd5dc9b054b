"""What the model writes for a build: a template's parameters (JSON under a grammar built from
the template's schema), or, for a capable code model, the whole file and its tests.

A small model (the embedded 135M one) fills the simple parameters only — texts, names from
enums, numbers, lists of short strings — and lists of objects (quiz questions, menu items) keep
their verified defaults; ``fill_all`` lets a bigger model write those too. Whatever comes back is
checked against the schema again, parameter by parameter (``Template.clean``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from .. import prompts
from ..engines.base import Engine
from ..types import ChatRequest, Message, Usage
from .spec import Template

_FENCE = re.compile(r"```(\w*)[ \t]*\n(.*?)(?:```|\Z)", re.S)


def simple(prop: dict[str, Any]) -> bool:
    """A parameter a small model can fill: a scalar, or a list of scalars."""
    if prop.get("type") == "array":
        return (prop.get("items") or {}).get("type") in ("string", "integer", "number", "boolean")
    return prop.get("type") != "object"


def fill_params(engine: Engine, template: Template, request: str, *, fill_all: bool = False,
                seed: int | None = None, max_tokens: int = 400) -> tuple[dict[str, Any], Usage]:
    """The model's parameters for ``template`` from ``request`` (possibly partial or invalid;
    the caller cleans them) and the tokens it spent."""
    keys = [k for k, v in template.params.items() if (fill_all or simple(v)) and k not in TEXT_KEYS]
    if not keys:
        return {}, Usage()
    defaults = template.defaults()
    example = {k: defaults[k] for k in keys}
    props = {k: {kk: vv for kk, vv in template.params[k].items() if kk != "default"} for k in keys}
    schema = {"type": "object", "properties": props, "required": keys, "additionalProperties": False}
    p = prompts.load("build")
    msgs = (Message(role="system", content=p["fill_system"].format(kind=template.kind, summary=template.summary)),
            Message(role="user", content=p["fill_user"].format(example=json.dumps(example, ensure_ascii=False),
                                                               request=request.strip())))
    req = ChatRequest(messages=msgs, max_tokens=max_tokens, temperature=0.0, seed=seed,
                      response_format={"type": "json_schema",
                                       "json_schema": {"name": template.name, "schema": schema, "strict": True}})
    c = engine.generate(req)
    try:
        values = json.loads(c.text)
    except ValueError:
        values = {}
    return (values if isinstance(values, dict) else {}), c.usage


TEXT_KEYS = ("title", "tagline")


def write_texts(engine: Engine, template: Template, request: str, *, seed: int | None = None) -> tuple[dict[str, str], Usage]:
    """The page's title and tagline from ``request`` (few-shot, JSON under a grammar), for the
    keys the template has."""
    keys = [k for k in TEXT_KEYS if k in template.params]
    if not keys:
        return {}, Usage()
    p = prompts.load("build")
    msgs = [Message(role="system", content=p["texts_system"])]
    for q, a in p["texts_examples"]:
        msgs += [Message(role="user", content=q),
                 Message(role="assistant", content=json.dumps({k: a[k] for k in keys}, ensure_ascii=False))]
    msgs.append(Message(role="user", content=request.strip()))
    props = {k: {"type": "string", "maxLength": template.params[k].get("maxLength", 60)} for k in keys}
    schema = {"type": "object", "properties": props, "required": keys, "additionalProperties": False}
    c = engine.generate(ChatRequest(messages=tuple(msgs), max_tokens=80, temperature=0.0, seed=seed,
                                    response_format={"type": "json_schema", "json_schema": {
                                        "name": "texts", "schema": schema, "strict": True}}))
    try:
        got = json.loads(c.text)
    except ValueError:
        got = {}
    got = {k: v.strip() for k, v in got.items() if k in keys and isinstance(v, str) and v.strip()} \
        if isinstance(got, dict) else {}
    return grounded(got, request, [a for _, a in p["texts_examples"]]), c.usage


# Words a title may hold that the request need not name.
GENERIC = frozenset("the and for with your our my page site website home homepage landing game games quiz menu "
                    "portfolio dashboard form sign signup sign-up up join club overview app online shop store "
                    "studio daily new best".split())


def _words(text: str) -> list[str]:
    return [w.rstrip("s") for w in re.findall(r"[a-z0-9][a-z0-9'-]*", text.lower()) if len(w) > 2]


def grounded(texts: dict[str, str], request: str, examples: list[dict[str, str]]) -> dict[str, str]:
    """The model's title and tagline kept only where they come from the request: a small model
    copies its few-shot answers ("Bakery Sales" for a coffee startup). A title keeps the words
    the request names (and generic ones), else becomes the thing the request is "for"; a tagline
    that echoes an example or repeats itself is dropped (the template's default stays)."""
    asked = set(_words(request))
    out = dict(texts)
    if "title" in out:
        kept = [w for w in out["title"].split() if _words(w) and set(_words(w)) <= asked | GENERIC]
        if not any(set(_words(w)) & asked for w in kept):
            m = re.search(r"\bfor (?:a |an |my |our |the )?([\w' -]{3,40}?)(?:\s+(?:with|that|which|where|in|on)\b|[,.!?]|$)",
                          request, re.I)
            kept = m.group(1).split() if m else []
        title = " ".join(w[:1].upper() + w[1:] for w in kept)[:40].strip()
        if title:
            out["title"] = title
        else:
            out.pop("title")
    if "tagline" in out:
        words = _words(out["tagline"])
        echo = any(len(set(words) & set(_words(a.get("tagline", "")))) >= max(2, len(set(words)) // 2)
                   for a in examples)
        if echo or len(set(words)) < 0.7 * len(words):
            out.pop("tagline")
    return out


def write_code(engine: Engine, request: str, *, sketch_note: str = "", seed: int | None = None,
               max_tokens: int = 6000) -> tuple[str, list[dict[str, Any]], Usage]:
    """Free-form: the model writes the file and its tests. Returns (html, tests, usage)."""
    p = prompts.load("build")
    user = p["write_user"].format(request=request.strip()) + (f"\n\n{sketch_note}" if sketch_note else "")
    msgs = (Message(role="system", content=p["write_system"]), Message(role="user", content=user))
    c = engine.generate(ChatRequest(messages=msgs, max_tokens=max_tokens, temperature=0.0, seed=seed))
    html, tests = parse_reply(c.text)
    return html, tests, c.usage


def repair_code(engine: Engine, request: str, html: str, tests: list[dict[str, Any]], feedback: str, *,
                seed: int | None = None, max_tokens: int = 6000) -> tuple[str, list[dict[str, Any]], Usage]:
    """The model's corrected file, given the checker's findings. Keeps the old tests when the
    reply brings none."""
    p = prompts.load("build")
    prior = f"```html\n{html}\n```\n```json\n{json.dumps(tests)}\n```"
    msgs = (Message(role="system", content=p["write_system"]),
            Message(role="user", content=p["write_user"].format(request=request.strip())),
            Message(role="assistant", content=prior),
            Message(role="user", content=p["repair_user"].format(feedback=feedback)))
    c = engine.generate(ChatRequest(messages=msgs, max_tokens=max_tokens, temperature=0.0, seed=seed))
    new_html, new_tests = parse_reply(c.text)
    return (new_html or html), (new_tests or tests), c.usage


def parse_reply(text: str) -> tuple[str, list[dict[str, Any]]]:
    """The HTML (a ```html block, else the text from <!doctype/<html to </html>) and the tests
    (a ```json block holding a list of tests; anything else is dropped)."""
    html, tests = "", []
    for lang, body in _FENCE.findall(text):
        if lang.lower() in ("html", "htm") and not html:
            html = body.strip()
        elif lang.lower() == "json" and not tests:
            try:
                got = json.loads(body)
            except ValueError:
                continue
            if isinstance(got, list):
                tests = [t for t in got if isinstance(t, dict) and isinstance(t.get("steps"), list)]
    if not html:
        m = re.search(r"(<!doctype html.*?</html>|<html.*?</html>)", text, re.S | re.I)
        html = m.group(1).strip() if m else ""
    return html, tests
