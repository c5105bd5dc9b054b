"""``muse "question"`` (the default command, ``ask``) and ``muse chat``: answers streamed, lanes
for Contemplating, ``--json``, media files and ``--ground``."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import click

from ..assistant import Assistant, ContemplationTrace, GroundingTrace, Result, resolve_mode
from ..errors import ConfigError, MuseError
from ..assistant.result import AgentRunTrace
from ..lanes import Lanes
from ..modes.agent import AgentMode
from .agent_lanes import AgentLanes
from ..modes import Mode
from ..modes.base import check_messages
from ..modes.contemplating import ContemplatingMode
from ..modes.grounding import GroundingMode
from ..types import Delta, Message
from .common import (
    _engine_settings,
    _load_engine,
    _media_settings,
    _mode_options,
    _safety_settings,
    _tool_settings,
    cli,
    engine_options,
    err,
    ground_options,
    tool_options,
    handle_errors,
    media_input_options,
    media_limit_options,
    mode_options,
    out,
    safety_options,
)


class Printer:
    """Streams deltas to the terminal: the answer plain, reasoning dimmed (when asked for)."""

    def __init__(self, show_thinking: bool):
        self.show_thinking = show_thinking
        self.last_kind: str | None = None
        self.reasoning_tokens = 0
        self.status = None

    def __call__(self, d: Delta) -> None:
        if d.kind == "status":  # agent lanes: shown by Lanes; one agent streams as an answer
            return
        if d.kind == "reasoning":
            self.reasoning_tokens += 1
            if self.show_thinking:
                out.print(d.text, end="", style="dim", markup=False)
            elif self.status is None:
                self.status = err.status("Thinking…", spinner="dots")
                self.status.start()
            else:
                self.status.update(f"Thinking… ({self.reasoning_tokens} pieces)")
        else:
            self._stop_status()
            text = d.text
            if self.last_kind != "answer":
                text = text.lstrip()  # the answer starts on its own line, without padding
                if not text:
                    return
                if self.last_kind == "reasoning" and self.show_thinking:
                    out.print("\n")
            out.print(text, end="", markup=False)
        self.last_kind = "answer" if d.kind == "agent" else d.kind
        out.file.flush()

    def _stop_status(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None

    def finish(self) -> None:
        self._stop_status()
        out.print()


def _ask(assistant: Assistant, mode: Mode, messages: list[Message], as_json: bool, show_thinking: bool,
         names: dict | None = None, ground_out: str | None = None) -> Result:
    """One question through the Assistant, shown live (lanes for several agents, else the
    streamed answer), then what the result's trace adds."""
    if as_json:
        result = assistant.answer(messages, mode, media_names=names)
        if isinstance(result.trace, GroundingTrace):
            result = _save_grounding(result, names, ground_out)
        click.echo(json.dumps(result.to_json(), ensure_ascii=False))
        return result
    steps = _Steps()
    if isinstance(mode, AgentMode):  # a bad tool list is an error before the lanes are drawn
        mode.toolbox(assistant.tools).close()
    agents = getattr(mode.options, "agents", 1) if isinstance(mode, ContemplatingMode) else 1
    show: Printer | Lanes | AgentLanes = (AgentLanes(out) if isinstance(mode, AgentMode) else
                                          Lanes(out, messages[-1].text(), agents) if agents > 1
                                          else Printer(show_thinking))
    result = None
    try:
        result = assistant.answer(messages, mode, on_event=show, media_names=names, on_step=steps)
    finally:
        if isinstance(show, AgentLanes):
            show.finish(result.answer if result else "",
                        result.trace if result and isinstance(result.trace, AgentRunTrace) else None)
        else:
            show.stop() if isinstance(show, Lanes) else show.finish()
        steps.stop()
    if result.revised_by or (result.finish_reason == "content_filter" and not result.usage.completion_tokens):
        # a check answered before the mode (nothing was shown) or rewrote what was shown
        if result.revised_by:
            err.print(f"[yellow]revised by the {' and '.join(result.revised_by)} check:[/]")
        out.print(result.answer, markup=False)
    for c in result.checks:
        if c.decision != "allow":
            what = ", ".join(x for x in (c.category, c.source) if x)
            err.print(f"[dim]{c.name} {c.stage}: {c.decision} ({what})[/]", markup=True, highlight=False)
    if result.media:
        for p in result.media.parts:
            err.print(f"[dim]{p.part} ({p.name}): {_seen(p.via)}[/]", markup=True, highlight=False)
    if isinstance(result.trace, ContemplationTrace) and agents > 1 and not result.revised_by:
        _show_contemplation(result.trace, show_thinking)
    elif isinstance(result.trace, GroundingTrace):
        _save_grounding(result, names, ground_out)
    return result


class _Steps:
    """A spinner while the media are checked and prepared."""

    def __init__(self):
        self.status = None

    def __call__(self, step: str) -> None:
        self.stop()
        if step == "prepare":
            self.status = err.status("Checking and preparing media…", spinner="dots")
            self.status.start()

    def stop(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None


def _show_contemplation(t: ContemplationTrace, show_thinking: bool) -> None:
    out.print()
    if show_thinking:
        for a in t.agents:
            out.print(f"[bold]agent {a.agent}[/] ({a.approach}) → {a.answer or '—'}")
            out.print(a.reasoning, style="dim", markup=False)
    if t.synthesis is None:
        out.print(f"Final answer: {t.final_answer}", style="bold", markup=False)
    elif t.synthesis.note:
        out.print(t.synthesis.note, style="yellow", markup=False)
    out.print(t.agreement.line, style="bold", markup=False)
    es = t.early_stop
    if es.skipped:
        out.print(f"Early stop: {es.skipped} of {es.requested} agents not needed "
                  f"(about {es.tokens_saved} tokens saved).", style="dim", markup=False)


def _save_grounding(result: Result, names: dict | None, ground_out: str | None) -> Result:
    """Write the annotated PNG; the result's trace then names the file instead of the data."""
    trace = result.trace
    assert isinstance(trace, GroundingTrace) and trace.image
    name = next(iter((names or {}).values()), "image")
    path = Path(ground_out or f"{Path(name).stem or 'image'}-ground.png")
    path.write_bytes(base64.b64decode(trace.image.split(",", 1)[1]))
    err.print(f"[dim]written to {path}[/]")
    return result.model_copy(update={"trace": trace.model_copy(update={"image": str(path)})})


@cli.command()
@click.argument("question", nargs=-1)
@engine_options
@mode_options
@media_input_options
@media_limit_options
@ground_options
@safety_options
@tool_options
@click.option("--json", "as_json", envvar="MUSE_JSON", is_flag=True, help="Print one JSON object.")
@handle_errors
def ask(question: tuple[str, ...], as_json: bool, show_thinking: bool, mode: str,
        images: tuple[str, ...], audios: tuple[str, ...], videos: tuple[str, ...], ground: bool,
        ground_out: str | None, **kw) -> None:
    """Answer QUESTION (the default command), about --image, --audio and --video files if given."""
    from ..media import parts_from_files

    text = " ".join(question).strip()
    if text == "-":
        text = sys.stdin.read().strip()
    media_settings = _media_settings(kw)
    safety = _safety_settings(kw)
    tools = _tool_settings(kw)
    files = [*parts_from_files("image", list(images), media_settings),
             *parts_from_files("audio", list(audios), media_settings),
             *parts_from_files("video", list(videos), media_settings)]
    if files:  # the question first, then the media (as OpenAI's examples order them)
        lead = [{"type": "text", "text": text}] if text else []
        messages = [Message(role="user", content=[*lead, *(p for p, _ in files)])]
        names = {(0, len(lead) + i): name for i, (_, name) in enumerate(files)}
    else:
        messages, names = [Message(role="user", content=text)], {}
    if ground:
        mode = "ground"
    check_messages(messages)
    m = resolve_mode(mode, _mode_options(kw, mode))
    if isinstance(m, GroundingMode) and (len(images) != 1 or audios or videos):
        raise ConfigError("--ground takes exactly one --image and no --audio or --video")
    engine = _load_engine(_engine_settings(kw))
    if isinstance(m, GroundingMode):
        GroundingMode.image_and_question(engine, messages)  # a clear error before anything is sent
    _ask(Assistant(engine, media_settings, safety=safety, tools=tools), m, messages, as_json, show_thinking, names, ground_out)


def _seen(via: str) -> str:
    return {"native": "sent as it is", "ocr": "text read by OCR", "asr": "transcribed",
            "frames+asr": "sent as frames + transcript", "frames-ocr+asr": "frames read by OCR + transcript",
            "frames+audio": "sent as frames + audio track",
            "frames-ocr+audio": "frames read by OCR + audio track"}.get(via, via)


@cli.command()
@engine_options
@mode_options
@safety_options
@tool_options
@handle_errors
def chat(show_thinking: bool, mode: str, **kw) -> None:
    """An interactive conversation that keeps its history.

    Commands: /mode NAME, /budget N, /clear, /exit."""
    safety = _safety_settings(kw)
    tools = _tool_settings(kw)
    options = _mode_options(kw, mode)
    m = resolve_mode(mode, options)
    engine = _load_engine(_engine_settings(kw))
    assistant = Assistant(engine, safety=safety, tools=tools)
    history: list[Message] = []
    err.print(f"[bold]muse chat[/] · {engine.model} · mode {m.name} · /mode /budget /clear /exit")
    while True:
        try:
            line = out.input(f"[bold cyan]{m.name}>[/] ").strip()
        except (EOFError, KeyboardInterrupt):
            out.print()
            return
        if not line:
            continue
        if line.startswith("/"):
            cmd, _, arg = line.partition(" ")
            arg = arg.strip()
            try:
                if cmd in ("/exit", "/quit"):
                    return
                if cmd == "/clear":
                    history.clear()
                    err.print("[dim]history cleared[/]")
                elif cmd == "/mode":
                    m = resolve_mode(arg)  # the new mode's defaults, then what was set that it takes
                    m = resolve_mode(arg, {k: v for k, v in options.items() if k in m.Options.model_fields})
                    err.print(f"[dim]mode {m.name}[/]")
                elif cmd == "/budget":
                    if not arg.isdigit() or int(arg) < 1:
                        raise ConfigError("/budget needs a whole number of at least 1")
                    field = next((f for f in ("budget", "agent_tokens") if f in m.Options.model_fields), None)
                    if field is None:
                        raise ConfigError(f"mode {m.name} has no budget")
                    options = {**options, field: int(arg)}
                    m = resolve_mode(m.name, {**m.options.model_dump(exclude_unset=True), field: int(arg)})
                    err.print(f"[dim]{field.replace('_', ' ')} {arg} tokens[/]")
                else:
                    raise ConfigError(f"unknown command {cmd} (try /mode, /budget, /clear, /exit)")
            except MuseError as e:
                err.print(f"[red]error:[/] {e}")
            continue
        history.append(Message(role="user", content=line))
        try:
            result = _ask(assistant, m, history, False, show_thinking)
        except MuseError as e:
            history.pop()
            err.print(f"[red]error:[/] {e}")
            continue
        history.append(Message(role="assistant", content=result.answer))
