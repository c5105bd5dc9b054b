"""``muse "question"`` (the default command, ``ask``) and ``muse chat``: answers streamed, lanes
for Contemplating, ``--json``, media files and ``--ground``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..errors import ConfigError, MuseError
from ..modes import create_mode
from ..modes.base import check_messages
from ..types import Completion, Delta, Message
from .common import (_engine_settings, _load_engine, _media_settings, _mode_settings, cli, engine_options, err,
                     ground_options, handle_errors, media_input_options, media_limit_options, mode_options, out)

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


def _ask(engine, mode, messages: list[Message], as_json: bool, show_thinking: bool,
         media: dict | None = None) -> Completion:
    if as_json:
        result = mode.run(engine, messages)
        if media:
            result.extra["media"] = media
        runtime = getattr(engine, "runtime", None)
        if runtime:  # how the local engine runs on this CPU: buffer types and threads
            result.extra["runtime"] = {k: v for k, v in runtime().items() if k != "system_info"}
        click.echo(json.dumps(result.to_json(), ensure_ascii=False))
        return result
    if mode.name == "contemplating" and mode.settings.agents > 1:
        from ..lanes import Lanes

        lanes = Lanes(out, messages[-1].text(), mode.settings.agents)
        try:
            result = mode.run(engine, messages, on_event=lanes)
        finally:
            lanes.stop()
        if media:
            result.extra["media"] = media
        out.print()
        if show_thinking:
            for a in result.agents:
                out.print(f"[bold]agent {a.extra['agent']}[/] ({a.extra['approach']}) → {a.text or '—'}")
                out.print(a.reasoning, style="dim", markup=False)
        syn = result.extra.get("synthesis")
        if syn is None:
            out.print(f"Final answer: {result.extra['final_answer']}", style="bold", markup=False)
        elif syn["note"]:
            out.print(syn["note"], style="yellow", markup=False)
        out.print(result.extra["agreement"]["line"], style="bold", markup=False)
        es = result.extra["early_stop"]
        if es["skipped"]:
            out.print(f"Early stop: {es['skipped']} of {es['requested']} agents not needed "
                      f"(about {es['tokens_saved']} tokens saved).", style="dim", markup=False)
        return result
    printer = Printer(show_thinking)
    try:
        result = mode.run(engine, messages, on_event=printer)
    finally:
        printer.finish()
    if media:
        result.extra["media"] = media
    return result


@cli.command()
@click.argument("question", nargs=-1)
@engine_options
@mode_options
@media_input_options
@media_limit_options
@ground_options
@click.option("--json", "as_json", envvar="MUSE_JSON", is_flag=True, help="Print one JSON object.")
@handle_errors
def ask(question: tuple[str, ...], as_json: bool, show_thinking: bool, mode: str,
        images: tuple[str, ...], audios: tuple[str, ...], videos: tuple[str, ...], **kw) -> None:
    """Answer QUESTION (the default command), about --image, --audio and --video files if given."""
    from ..media import parts_from_files, prepare_media

    text = " ".join(question).strip()
    if text == "-":
        text = sys.stdin.read().strip()
    media_settings = _media_settings(kw)
    files = [*parts_from_files("image", list(images), media_settings),
             *parts_from_files("audio", list(audios), media_settings),
             *parts_from_files("video", list(videos), media_settings)]
    if files:  # the question first, then the media (as OpenAI's examples order them)
        lead = [{"type": "text", "text": text}] if text else []
        messages = [Message(role="user", content=[*lead, *(p for p, _ in files)])]
        names = {(0, len(lead) + i): name for i, (_, name) in enumerate(files)}
    else:
        messages, names = [Message(role="user", content=text)], {}
    check_messages(messages)
    grounding = {k: kw.pop(k) for k in ("ground", "ground_kind", "ground_convention", "ground_out")}
    m = create_mode(mode, _mode_settings(kw))
    engine = _load_engine(_engine_settings(kw))
    if grounding["ground"]:
        _ground(engine, text, images, audios or videos, files, names, media_settings, as_json, grounding)
        return
    media = None
    if files:
        with err.status("Checking and preparing media…", spinner="dots"):
            prepared = prepare_media(messages, engine.capabilities, media_settings, names)
        messages, media = prepared.messages, prepared.report()
        if not as_json:
            for p in media["parts"]:
                err.print(f"[dim]{p['part']} ({p['name']}): {_seen(p)}[/]", markup=True, highlight=False)
    _ask(engine, m, messages, as_json, show_thinking, media)


def _ground(engine, text: str, images: tuple[str, ...], other_media: tuple[str, ...], files: list,
            names: dict, media_settings, as_json: bool, opts: dict) -> None:
    """``--ground``: one request to a vision engine, its points parsed, drawn and printed."""
    from ..media import prepare_media
    from ..media.grounding import ground, render

    if len(images) != 1 or other_media:
        raise ConfigError("--ground takes exactly one --image and no --audio or --video")
    if "image" not in engine.capabilities.input_modalities:
        raise ConfigError(f"--ground needs an engine that sees images; {engine.model} takes only "
                          f"{', '.join(engine.capabilities.input_modalities)} (serve a vision model and use "
                          "--engine openai --modalities text,image)")
    if not text:
        raise ConfigError("--ground needs a question naming what to point at")
    messages = [Message(role="user", content=[{"type": "text", "text": text}, files[0][0]])]
    prepare_media(messages, engine.capabilities, media_settings, names)  # the same checks as any image
    part, name = files[0]
    with err.status("Grounding…", spinner="dots"):
        g = ground(engine, part, text, convention=opts["ground_convention"], kind=opts["ground_kind"])
    out_path = Path(opts["ground_out"] or f"{Path(name).stem or 'image'}-ground.png")
    render(part, g, out_path)
    if as_json:
        click.echo(json.dumps({**g.to_json(), "image": str(out_path)}, ensure_ascii=False))
        return
    for line in g.lines():
        out.print(line, markup=False, highlight=False)
    err.print(f"[dim]written to {out_path}[/]")


def _seen(p: dict) -> str:
    return {"native": "sent as it is", "ocr": "text read by OCR", "asr": "transcribed",
            "frames+asr": "sent as frames + transcript", "frames-ocr+asr": "frames read by OCR + transcript",
            "frames+audio": "sent as frames + audio track",
            "frames-ocr+audio": "frames read by OCR + audio track"}.get(p["via"], p["via"])


@cli.command()
@engine_options
@mode_options
@handle_errors
def chat(show_thinking: bool, mode: str, **kw) -> None:
    """An interactive conversation that keeps its history.

    Commands: /mode NAME, /budget N, /clear, /exit."""
    mode_settings = _mode_settings(kw)
    m = create_mode(mode, mode_settings)
    engine = _load_engine(_engine_settings(kw))
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
                    m = create_mode(arg, mode_settings)
                    err.print(f"[dim]mode {m.name}[/]")
                elif cmd == "/budget":
                    if not arg.isdigit() or int(arg) < 1:
                        raise ConfigError("/budget needs a whole number of at least 1")
                    mode_settings = mode_settings.model_copy(update={"budget": int(arg)})
                    m = create_mode(m.name, mode_settings)
                    err.print(f"[dim]budget {arg} tokens[/]")
                else:
                    raise ConfigError(f"unknown command {cmd} (try /mode, /budget, /clear, /exit)")
            except MuseError as e:
                err.print(f"[red]error:[/] {e}")
            continue
        history.append(Message(role="user", content=line))
        try:
            result = _ask(engine, m, history, False, show_thinking)
        except MuseError as e:
            history.pop()
            err.print(f"[red]error:[/] {e}")
            continue
        history.append(Message(role="assistant", content=result.text))
