"""``muse build "a snake game with a score"`` and ``muse build --image sketch.png "a landing page
like this"``: one self-contained HTML file, checked in Chromium, written to disk (``--out``; by
default a name from the prompt, never over an existing file) with a report of the checks."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import click

from ..assistant import Assistant, resolve_mode
from ..assistant.result import BuildTrace
from ..errors import ConfigError
from ..types import Delta, Message
from .common import (
    _engine_settings,
    _load_engine,
    _media_settings,
    _safety_settings,
    cli,
    engine_options,
    err,
    handle_errors,
    media_limit_options,
    out,
    safety_options,
)


def default_path(prompt: str, folder: Path = Path(".")) -> Path:
    """``snake-game-with-a-score.html`` from the prompt's first words; ``-2``, ``-3``… when taken."""
    words = re.findall(r"[a-z0-9]+", prompt.lower())
    words = [w for w in words if w not in ("a", "an", "the", "me", "make", "build", "create", "please")][:5]
    stem = "-".join(words) or "page"
    path, n = folder / f"{stem}.html", 1
    while path.exists():
        n += 1
        path = folder / f"{stem}-{n}.html"
    return path


@cli.command("build")
@click.argument("prompt", nargs=-1)
@click.option("--image", "image", envvar="MUSE_BUILD_IMAGE", metavar="PATH|URL",
              help="A sketch or photo of the page's layout: its boxes become the page's sections.")
@click.option("--out", "-o", "out_path", envvar="MUSE_BUILD_OUT", metavar="PATH",
              help="Where to write the HTML ('-': standard output) [default: a name from the prompt].")
@click.option("--template", envvar="MUSE_TEMPLATE", default="auto", show_default=True,
              help="auto (the nearest template), none (the model writes the code) or a template's name.")
@click.option("--repairs", envvar="MUSE_REPAIRS", type=click.IntRange(0, 5), default=2, show_default=True,
              help="Most repairs after a failed check.")
@click.option("--check/--no-check", envvar="MUSE_CHECK", default=True, show_default=True,
              help="Check the file in Chromium (MUSE_CHROMIUM=PATH picks the browser).")
@click.option("--fill", envvar="MUSE_FILL", type=click.Choice(["auto", "simple", "all"]), default="auto",
              show_default=True, help="Template parameters the model writes (auto: simple ones on the embedded model).")
@click.option("--check-timeout", "check_timeout_s", envvar="MUSE_CHECK_TIMEOUT", type=click.FloatRange(0.1, 60),
              default=10.0, show_default=True, help="Seconds for each page load in the checker.")
@click.option("--seed", envvar="MUSE_SEED", type=int, default=None, help="Sampling seed.")
@click.option("--list", "list_templates", is_flag=True, help="List the templates and exit.")
@engine_options
@media_limit_options
@safety_options
@click.option("--json", "as_json", envvar="MUSE_JSON", is_flag=True, help="Print one JSON object.")
@handle_errors
def build(prompt: tuple[str, ...], image: str | None, out_path: str | None, list_templates: bool,
          as_json: bool, **kw) -> None:
    """Build a web page or mini-game as one self-contained HTML file, checked in a real browser."""
    from ..build import spec
    from ..media import parts_from_files

    if list_templates:
        for name in spec.names():
            t = spec.load(name)
            out.print(f"[bold]{name}[/] ({t.kind}): {t.summary}")
        return
    text = " ".join(prompt).strip()
    if text == "-":
        text = sys.stdin.read().strip()
    if not text and not image:
        raise ConfigError("say what to build, e.g. muse build \"a snake game with a score\" (or give --image)")
    options = {k: kw.pop(k) for k in ("template", "repairs", "check", "fill", "check_timeout_s", "seed")}
    mode = resolve_mode("build", options)  # a bad --template is an error before the engine loads
    media_settings = _media_settings(kw)
    safety = _safety_settings(kw)
    content: str | list = text
    if image:
        (part, _name), = parts_from_files("image", [image], media_settings)
        content = [*([{"type": "text", "text": text}] if text else []), part]
    path = None if out_path == "-" else Path(out_path) if out_path else default_path(text or Path(image).stem)
    if path is not None and path.parent and not path.parent.exists():
        raise ConfigError(f"--out: the folder {path.parent} does not exist")
    engine = _load_engine(_engine_settings(kw))
    status = err.status("Building…", spinner="dots")
    status.start()

    def on_event(d: Delta) -> None:
        if d.kind == "status":
            status.update(d.text)
            err.print(f"[dim]· {d.text}[/]", highlight=False)

    try:
        result = Assistant(engine, media_settings, safety=safety).answer(
            [Message(role="user", content=content)], mode, on_event=None if as_json else on_event)
    finally:
        status.stop()
    trace = result.trace
    if not isinstance(trace, BuildTrace):  # a check answered instead of the mode (e.g. a refusal)
        out.print(result.answer, markup=False)
        sys.exit(1)
    if path is None:
        click.echo(trace.html)
    else:
        path.write_text(trace.html, encoding="utf-8")
        trace = trace.model_copy(update={"path": str(path)})
        result = result.model_copy(update={"trace": trace})
    if as_json:
        click.echo(json.dumps(result.to_json(), ensure_ascii=False))
    else:
        _report(trace, result.timings.get("wall_s", 0.0))
    if trace.checked and not trace.passed:
        sys.exit(1)


def _report(t: BuildTrace, wall_s: float) -> None:
    made = f"template {t.template}" if t.template else t.source
    where = f"wrote {t.path}" if t.path else "written to standard output"
    err.print(f"[bold]{where}[/] ({t.bytes / 1000:.1f} kB) from {made} in {wall_s:.1f} s, "
              f"{t.repairs} repair{'s' if t.repairs != 1 else ''}", highlight=False)
    if not t.checked:
        err.print("[yellow]not checked (--no-check)[/]")
        return
    for c in (t.report or {}).get("checks", []):
        mark = "[green]✓[/]" if c["passed"] else "[red]✗[/]"
        extra = ""
        if c["name"] == "interactions":
            tests = (t.report or {}).get("tests", [])
            extra = f" ({sum(x['passed'] for x in tests)}/{len(tests)} tests)"
        err.print(f"  {mark} {c['name']}{extra}" + (f": {c['detail']}" if c["detail"] else ""), highlight=False)
    if t.sketch and "mean_iou" in t.sketch:
        err.print(f"  layout: {len(t.sketch['boxes'])} boxes from the sketch, mean IoU {t.sketch['mean_iou']:.2f}")
    if not t.passed:
        err.print("[red]the file failed its checks; it was written so you can look at it[/]")
