"""The ``muse`` command. ``muse "question"`` asks (the default command); ``muse chat``,
``muse models`` and ``muse bench engine`` do the rest. Every option reads a ``MUSE_*`` variable.

Errors a user can act on print one line (``error: …``) and exit non-zero; no traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from collections.abc import Callable

import click
from pydantic import ValidationError
from rich.console import Console

from . import __version__, registry
from .engines import EngineSettings, create_engine
from .errors import ConfigError, MuseError
from .modes import ModeSettings, create_mode
from .modes.base import check_messages
from .types import Completion, Delta, Message

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)


class DefaultGroup(click.Group):
    """A group whose unknown first word is the question for the default command."""

    default_command = "ask"

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args = [self.default_command, *args]
        elif not args:
            args = [self.default_command]
        return super().parse_args(ctx, args)


def _stack(f: Callable, opts: list[Callable]) -> Callable:
    """Apply option decorators so that they show in the order listed."""
    for opt in reversed(opts):
        f = opt(f)
    return f


class ThreadsType(click.ParamType):
    """``auto`` (None) or a whole number of threads ≥ 1."""

    name = "auto|N"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, int):
            return value
        text = str(value).strip().lower()
        if text == "auto":
            return None
        try:
            n = int(text)
        except ValueError:
            n = 0
        if n < 1:
            self.fail(f"{value!r} is neither auto nor a whole number of threads ≥ 1", param, ctx)
        return n


def engine_options(f: Callable) -> Callable:
    opts = [
        click.option("--engine", envvar="MUSE_ENGINE", default="local", show_default=True,
                     help="Engine: local (embedded llama.cpp) or openai (any OpenAI-compatible endpoint)."),
        click.option("--model", envvar="MUSE_MODEL", default=None,
                     help="local: path to a GGUF (default: packaged SmolLM2-135M-Instruct); openai: model name."),
        click.option("--base-url", envvar="MUSE_BASE_URL", default=None,
                     help="Base URL of an OpenAI-compatible endpoint, e.g. http://localhost:8000/v1."),
        click.option("--api-key", envvar="MUSE_API_KEY", default=None, help="API key for --base-url."),
        click.option("--ctx", "n_ctx", envvar="MUSE_CTX", type=click.IntRange(min=256), default=8192,
                     show_default=True, help="local: context size shared by all sequences."),
        click.option("--threads", "n_threads", envvar="MUSE_THREADS", type=ThreadsType(), default="auto",
                     show_default=True,
                     help="local: CPU threads, or auto: as many as the cores other processes leave free "
                          "(re-measured while decoding, up to the physical cores)."),
        click.option("--extra-buffers", envvar="MUSE_EXTRA_BUFFERS", type=click.Choice(["auto", "on", "off"]),
                     default="auto", show_default=True,
                     help="local: llama.cpp's extra weight buffer types (AMX, repacked weights); auto "
                          "skips those known to crash (AMX in this llama.cpp). `muse doctor` shows the choice."),
        click.option("--prefill", envvar="MUSE_PREFILL", type=click.Choice(["auto", "yes", "no"]),
                     default="auto", show_default=True,
                     help="openai: whether the endpoint continues a final assistant message."),
        click.option("--reasoning", envvar="MUSE_REASONING", type=click.Choice(["auto", "native", "prompted"]),
                     default="auto", show_default=True,
                     help="Whether the model reasons natively in <think> (auto: from its chat template)."),
        click.option("--modalities", envvar="MUSE_MODALITIES", default="text", show_default=True,
                     help="openai: what the served model takes, from text,image,audio,video (it cannot be "
                          "probed); other parts go through the offline fallbacks."),
    ]
    return _stack(f, opts)


def media_limit_options(f: Callable) -> Callable:
    opts = [
        click.option("--max-media-mb", envvar="MUSE_MAX_MEDIA_MB", type=click.FloatRange(min=0.001),
                     default=20.0, show_default=True, help="Largest media part (decoded), in MB."),
        click.option("--max-megapixels", envvar="MUSE_MAX_MEGAPIXELS", type=click.FloatRange(min=0.001),
                     default=40.0, show_default=True, help="Largest image or video frame, from its header."),
        click.option("--max-duration", "max_duration_s", envvar="MUSE_MAX_DURATION",
                     type=click.FloatRange(min=0.1), default=600.0, show_default=True,
                     help="Longest audio or video, in seconds, from its header."),
        click.option("--frame-rate", envvar="MUSE_FRAME_RATE", type=click.FloatRange(0.01, 30), default=1.0,
                     show_default=True, help="Video frames sampled per second for engines without video."),
        click.option("--max-frames", envvar="MUSE_MAX_FRAMES", type=click.IntRange(1, 256), default=16,
                     show_default=True, help="Most frames sampled from one video (spread over it)."),
        click.option("--fetch-urls/--no-fetch-urls", envvar="MUSE_FETCH_URLS", default=None,
                     help="Media URLs: fetched for a fallback, checked before an engine gets them  "
                          "[default: on; `serve`: on for a loopback bind only]."),
        click.option("--fetch-allow", envvar="MUSE_FETCH_ALLOW", multiple=True, metavar="CIDR|HOST[:PORT]",
                     help="Also fetch from this non-public network, address or host (repeatable)."),
        click.option("--fetch-timeout", "fetch_timeout_s", envvar="MUSE_FETCH_TIMEOUT",
                     type=click.FloatRange(0.1, 600), default=15.0, show_default=True,
                     help="Total seconds for one URL fetch, redirects and body included."),
        click.option("--max-url-parts", envvar="MUSE_MAX_URL_PARTS", type=click.IntRange(0, 64), default=4,
                     show_default=True, help="Most URL parts in one request."),
        click.option("--max-parts", envvar="MUSE_MAX_PARTS", type=click.IntRange(1, 1024), default=32,
                     show_default=True, help="Most media parts (every kind) in one request."),
        click.option("--max-total-megapixels", envvar="MUSE_MAX_TOTAL_MEGAPIXELS",
                     type=click.FloatRange(min=0.001), default=100.0, show_default=True,
                     help="Most pixels across a request's images and sampled video frames."),
        click.option("--max-total-duration", "max_total_duration_s", envvar="MUSE_MAX_TOTAL_DURATION",
                     type=click.FloatRange(min=0.1), default=1200.0, show_default=True,
                     help="Most seconds across a request's audio and video."),
        click.option("--max-decode-seconds", "max_decode_s", envvar="MUSE_MAX_DECODE_SECONDS",
                     type=click.FloatRange(min=0.1), default=60.0, show_default=True,
                     help="Wall-clock limit of one audio or video decode."),
    ]
    return _stack(f, opts)


def media_input_options(f: Callable) -> Callable:
    opts = [
        click.option("--image", "images", envvar="MUSE_IMAGE", multiple=True, metavar="PATH|URL",
                     help="An image to ask about (repeatable)."),
        click.option("--audio", "audios", envvar="MUSE_AUDIO", multiple=True, metavar="PATH|URL",
                     help="An audio file: wav, mp3, ogg, flac (repeatable)."),
        click.option("--video", "videos", envvar="MUSE_VIDEO", multiple=True, metavar="PATH|URL",
                     help="A video: mp4, webm, mov, mkv (repeatable)."),
    ]
    return _stack(f, opts)


def ground_options(f: Callable) -> Callable:
    opts = [
        click.option("--ground", envvar="MUSE_GROUND", is_flag=True,
                     help="Point at what the question names in the one --image: count, points, annotated PNG."),
        click.option("--ground-kind", envvar="MUSE_GROUND_KIND", type=click.Choice(["points", "boxes"]),
                     default="points", show_default=True, help="Ask for points or for boxes."),
        click.option("--ground-convention", envvar="MUSE_GROUND_CONVENTION", default="auto", show_default=True,
                     type=click.Choice(["auto", "qwen2.5-vl", "qwen3-vl", "molmo", "qwen2-vl"]),
                     help="How the model writes coordinates (auto: from the model's name and its reply)."),
        click.option("--ground-out", envvar="MUSE_GROUND_OUT", default=None, metavar="PATH",
                     help="The annotated PNG (default: IMAGE-ground.png in the current folder)."),
    ]
    return _stack(f, opts)


def _media_settings(kw: dict, serve_host: str | None = None):
    """``serve_host``: the bind of `muse serve`, which decides whether URLs are fetched by default."""
    from .media import MediaSettings
    from .media.fetch import fetching_on, parse_allow

    keys = ("max_media_mb", "max_megapixels", "max_duration_s", "frame_rate", "max_frames", "fetch_timeout_s",
            "max_url_parts", "max_parts", "max_total_megapixels", "max_total_duration_s", "max_decode_s")
    fetch, allow = kw.pop("fetch_urls"), tuple(kw.pop("fetch_allow"))
    parse_allow(allow)  # a bad entry is an error now, not at the first request
    fetch = fetching_on(serve_host, fetch) if serve_host is not None else fetch is not False
    return MediaSettings(**{k: kw.pop(k) for k in keys}, fetch_urls=fetch, fetch_allow=allow)


def mode_options(f: Callable) -> Callable:
    opts = [
        click.option("--mode", envvar="MUSE_MODE", default="instant", show_default=True,
                     help="instant (answer at once), thinking (reason first, under --budget) or "
                          "contemplating (--agents reason in parallel, then a synthesis)."),
        click.option("--agents", envvar="MUSE_AGENTS", type=click.IntRange(1, 16), default=4,
                     show_default=True, help="Contemplating: number of agents (1-16)."),
        click.option("--early-stop/--no-early-stop", envvar="MUSE_EARLY_STOP", default=True,
                     show_default=True, help="Contemplating: stop launching agents once answers agree."),
        click.option("--aggregator", envvar="MUSE_AGGREGATOR",
                     type=click.Choice(["synthesis", "confidence", "majority"]), default="confidence",
                     show_default=True, help="Contemplating: what decides the final answer."),
        click.option("--budget", envvar="MUSE_BUDGET", type=click.IntRange(min=1), default=256,
                     show_default=True, help="Thinking budget in tokens (per agent in contemplating)."),
        click.option("--max-tokens", envvar="MUSE_MAX_TOKENS", type=click.IntRange(min=1), default=512,
                     show_default=True, help="Most tokens in the answer."),
        click.option("--temperature", envvar="MUSE_TEMPERATURE", type=click.FloatRange(min=0.0),
                     default=0.0, show_default=True, help="0 decodes greedily."),
        click.option("--seed", envvar="MUSE_SEED", type=int, default=None, help="Sampling seed."),
        click.option("--show-thinking", envvar="MUSE_SHOW_THINKING", is_flag=True,
                     help="Stream the reasoning too (dimmed)."),
    ]
    return _stack(f, opts)


def _engine_settings(kw: dict) -> EngineSettings:
    return EngineSettings(**{k: kw.pop(k) for k in ("engine", "model", "base_url", "api_key", "n_ctx", "n_threads", "prefill", "reasoning",
                                            "modalities", "extra_buffers")})


def _mode_settings(kw: dict) -> ModeSettings:
    keys = ("max_tokens", "temperature", "seed", "budget", "agents", "early_stop", "aggregator")
    return ModeSettings(**{k: kw.pop(k) for k in keys})


def _load_engine(settings: EngineSettings):
    with err.status(f"Loading {settings.engine} engine…", spinner="dots"):
        return create_engine(settings)


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
        from .lanes import Lanes

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


def handle_errors(f: Callable) -> Callable:
    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        try:
            return f(*args, **kwargs)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            raise ConfigError(f"{where}: {first['msg']}") from None
    return wrapper


@click.group(cls=DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="muse")
def cli() -> None:
    """OpenMuse: an open, self-hostable reasoning assistant.

    \b
    muse "What is the capital of France?"
    muse "Is 91 prime?" --mode thinking --budget 128 --show-thinking
    muse chat
    """


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
    from .media import parts_from_files, prepare_media

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
    from .media import prepare_media
    from .media.grounding import ground, render

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


@cli.command()
@engine_options
@handle_errors
def models(**kw) -> None:
    """The engines and models available, with their capabilities."""
    from .engines.local import default_model_path

    settings = _engine_settings(kw)
    out.print(f"[bold]engines[/]: {', '.join(registry.names('engine'))}")
    out.print(f"[bold]modes[/]: {', '.join(registry.names('mode'))}")
    if settings.engine == "local":
        out.print(f"[bold]default local model[/]: {default_model_path()}")
    engine = _load_engine(settings)
    out.print(f"[bold]{settings.engine}[/] → {engine.model}")
    for k, v in engine.capabilities.model_dump().items():
        out.print(f"  {k}: {v}")
    runtime = getattr(engine, "runtime", None)
    if runtime:
        rt = runtime()
        eb, th = rt["extra_buffers"], rt["threads"]
        out.print(f"  extra weight buffers: {'on' if eb['used'] else 'off'} ({eb['reason']})", highlight=False)
        out.print("  weights in: " + ", ".join(f"{k} {v:g} MiB" for k, v in rt["weight_buffers_mib"].items()),
                  highlight=False)
        out.print(f"  threads: {th['policy']}, {th['current']} now, at most {th['most']}", highlight=False)
        out.print(f"  llama.cpp: {rt['system_info']}", highlight=False, markup=False)
    lister = getattr(engine, "list_models", None)
    if lister:
        out.print(f"  served models: {', '.join(lister())}")


@cli.command()
@engine_options
@click.option("--json", "as_json", envvar="MUSE_JSON", is_flag=True, help="Print one JSON object (for bug reports).")
@handle_errors
def doctor(as_json: bool, **kw) -> None:
    """CPU, llama.cpp build, buffer types, threads, tools, and one timed generation."""
    from .doctor import print_report, report

    settings = _engine_settings(kw)
    with err.status("Checking the machine and running one generation…", spinner="dots"):
        rep = report(settings)
    if as_json:
        click.echo(json.dumps(rep))
    else:
        print_report(rep, out)
    if not rep["probe"].get("ok"):
        sys.exit(1)


def _default_database_url() -> str:
    import os
    from pathlib import Path

    home = Path(os.environ.get("MUSE_HOME") or Path.home() / ".local" / "share" / "openmuse")
    home.mkdir(mode=0o700, parents=True, exist_ok=True)  # the store holds conversations: owner only
    return f"sqlite:///{home / 'openmuse.db'}"


@cli.command()
@engine_options
@click.option("--host", envvar="MUSE_HOST", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", envvar="MUSE_PORT", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option("--database-url", envvar="MUSE_DATABASE_URL", default=None,
              help="SQLAlchemy URL of the conversation store (default: a SQLite file under MUSE_HOME, "
                   "~/.local/share/openmuse).")
@click.option("--server-key", "api_keys", envvar="MUSE_SERVER_KEYS", multiple=True,
              help="API key clients must send as a bearer token (repeatable; MUSE_SERVER_KEYS takes "
                   "several separated by spaces). --api-key is the key for a remote engine.")
@click.option("--allow-remote", envvar="MUSE_ALLOW_REMOTE", is_flag=True,
              help="Bind to a non-loopback address without API keys.")
@click.option("--max-body-mb", envvar="MUSE_MAX_BODY_MB", type=click.FloatRange(min=0.001), default=8.0,
              show_default=True, help="Largest request body accepted (media parts travel in it as base64).")
@click.option("--allowed-host", "allowed_hosts", envvar="MUSE_ALLOWED_HOSTS", multiple=True,
              help="Host header name the server answers besides localhost, 127.0.0.1, [::1] and the bind "
                   "host (repeatable; MUSE_ALLOWED_HOSTS takes several separated by spaces; '*' for any). "
                   "Guards against DNS rebinding.")
@media_limit_options
@handle_errors
def serve(host: str, port: int, database_url: str | None, api_keys: tuple[str, ...], allow_remote: bool,
          max_body_mb: float, allowed_hosts: tuple[str, ...], **kw) -> None:
    """The OpenAI-compatible API and the web app."""
    import ipaddress

    import uvicorn

    from rich.markup import escape
    from sqlalchemy.engine import make_url

    from .server.app import ServerConfig, create_app
    from .server.security import LOOPBACK_HOSTS

    keys = tuple(k for key in api_keys for k in key.split() if k)
    hosts = (*LOOPBACK_HOSTS, host, *(h for entry in allowed_hosts for h in entry.split() if h))
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not keys and not loopback and not allow_remote:
        raise ConfigError(f"refusing to serve {host} without API keys: pass --server-key KEY, or --allow-remote")
    config = ServerConfig(engine=_engine_settings(kw), database_url=database_url or _default_database_url(),
                          api_keys=keys, max_body_bytes=int(max_body_mb * 1024 * 1024),
                          media=_media_settings(kw, serve_host=host), allowed_hosts=hosts)
    app = create_app(config, engine=_load_engine(config.engine))
    store = escape(make_url(config.database_url).render_as_string(hide_password=True))  # no password printed
    err.print(f"[bold]OpenMuse[/] on http://{host}:{port}  ·  store {store}  ·  "
              f"{'API keys required' if keys else 'no API keys'}")
    uvicorn.run(app, host=host, port=port, log_level="warning")


def _int_list(text: str, flag: str) -> list[int]:
    """``"1,4,8"`` as ``[1, 4, 8]``; a clear error for anything else."""
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{flag} takes whole numbers separated by commas, not {text!r}") from None


@cli.group()
def bench() -> None:
    """Benchmarks that print ratios measured side by side in one run."""


@bench.command("engine")
@engine_options
@click.option("--ns", default="1,4,8,16", show_default=True, help="Sequence counts to measure.")
@click.option("--steps", type=click.IntRange(min=1), default=96, show_default=True, help="Tokens decoded per sequence.")
@click.option("--out", "out_path", default=None, help="Results file (default: results/bench-engine-TIME.json).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--contention", is_flag=True,
              help="Instead: one sequence's tok/s idle and with busy processes beside it, per thread policy.")
@click.option("--burners", type=click.IntRange(min=1), default=1, show_default=True,
              help="--contention: CPU-burning processes started beside the engine.")
@click.option("--seconds", type=click.FloatRange(min=1), default=20.0, show_default=True,
              help="--contention: longest time one measurement decodes.")
@click.option("--repeats", type=click.IntRange(min=1), default=2, show_default=True,
              help="--contention: measurements per policy (the median is reported).")
@handle_errors
def bench_engine(ns: str, steps: int, out_path: str | None, as_json: bool, contention: bool, burners: int,
                 seconds: float, repeats: int, **kw) -> None:
    """Prompt and decode tokens/s of the local engine, batched against one after another
    (or, with --contention, idle against beside busy processes)."""
    from .bench import contention as cb
    from .bench import engine as eb

    counts = _int_list(ns, "--ns")
    settings = _engine_settings(kw)
    if settings.engine != "local":
        raise ConfigError("bench engine measures the local engine; use --engine local")
    if not counts or min(counts) < 1 or max(counts) > settings.n_seq_max:
        raise ConfigError(f"--ns must lie between 1 and {settings.n_seq_max}")
    engine = _load_engine(settings)
    progress = None if as_json else err
    if contention:
        report, path = cb.run_contention_bench(engine, steps, burners, seconds, repeats, out_path, progress)
    else:
        report, path = eb.run_engine_bench(engine, counts, steps, out_path, progress)
    if as_json:
        click.echo(json.dumps(report))
        return
    (cb if contention else eb).print_table(report, out)
    out.print(f"[dim]written to {path}[/]")


@bench.command("contemplate")
@engine_options
@click.option("--items", type=click.IntRange(min=4), default=200, show_default=True, help="Problems in the set.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the problem generator.")
@click.option("--ladder", default="1,2,4,8,16", show_default=True, help="Agent counts.")
@click.option("--budget", type=click.IntRange(min=8), default=64, show_default=True, help="Tokens per agent.")
@click.option("--timing-items", type=click.IntRange(min=1), default=12, show_default=True,
              help="Items on which batched and one-by-one agents are timed.")
@click.option("--timing-repeats", type=click.IntRange(min=1), default=3, show_default=True,
              help="Timings per item and way; the best is kept.")
@click.option("--out", "out_dir", default=None, help="Folder for the JSON and PNG (default: results/).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@handle_errors
def bench_contemplate(items: int, seed: int, ladder: str, budget: int, timing_items: int,
                      timing_repeats: int, out_dir: str | None, as_json: bool, **kw) -> None:
    """Contemplating's scaling ladder: accuracy, tokens and time at 1-16 agents."""
    from .bench.contemplate import run_contemplate_bench

    counts = tuple(sorted(set(_int_list(ladder, "--ladder"))))
    if not counts or counts[0] < 1 or counts[-1] > 16:
        raise ConfigError("--ladder values must lie between 1 and 16")
    engine = _load_engine(_engine_settings(kw))
    report, path = run_contemplate_bench(
        engine, items=items, seed=seed, ladder=counts, budget=budget, timing_items=timing_items,
        timing_repeats=timing_repeats, early_stop_agents=8 if 8 in counts else counts[-1], out_dir=out_dir,
        progress=None if as_json else (lambda m: err.print(f"[dim]{m}[/]")),
    )
    if as_json:
        click.echo(json.dumps(report))
        return
    from rich.table import Table

    t = Table(title=f"Contemplating ladder · {report['args']['model']} · {items} items")
    for col in ("agents", "aggregator", "accuracy", "95% interval", "tokens/item", "wall s/item"):
        t.add_column(col, justify="right")
    for r in report["ladder"]:
        t.add_row(str(r["agents"]), r["aggregator"], f"{r['accuracy']:.3f}",
                  f"{r['ci95'][0]:.3f}–{r['ci95'][1]:.3f}", f"{r['tokens_per_item']:.0f}", f"{r['wall_s']:.2f}")
    out.print(t)
    sa = report["single_agent"]
    es = report["early_stop"]
    out.print(f"single agent: greedy {sa['greedy']['accuracy']:.3f}, sampled (T=0.3) {sa['sampled']['accuracy']:.3f}")
    n_ratio = 8 if 8 in counts else counts[-1]
    out.print(f"wall time of {n_ratio} agents batched / one after another: {report['batched_vs_sequential']:.2f}")
    ws = es["with_synthesis"]
    out.print(f"early stop at {es['agents']} agents: {es['token_saving']:.0%} of tokens saved, accuracy "
              f"{es['accuracy_delta']:+.3f} ({es['items_stopped_early']} of {items} items stopped early); "
              f"with the synthesizer {ws['token_saving']:.0%} saved, accuracy {ws['accuracy_delta']:+.3f}")
    out.print(f"[dim]written to {path} and {report['plot']}[/]")


@bench.command("serve")
@engine_options
@click.option("--levels", default="1,4,16", show_default=True, help="Concurrency levels.")
@click.option("--requests", type=click.IntRange(min=1), default=16, show_default=True, help="Requests per level.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--out", "out_path", default=None, help="Results file (default: results/bench-serve-TIME.json).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@handle_errors
def bench_serve(levels: str, requests: int, max_tokens: int, out_path: str | None, as_json: bool, **kw) -> None:
    """Server requests/s and p50/p95 latency, and its overhead against the engine called directly."""
    from .bench.serve import run_serve_bench

    counts = tuple(_int_list(levels, "--levels"))
    if not counts or min(counts) < 1:
        raise ConfigError("--levels must be at least 1")
    engine = _load_engine(_engine_settings(kw))
    report, path = run_serve_bench(engine, counts, requests, max_tokens, out_path,
                                   progress=None if as_json else (lambda m: err.print(f"[dim]{m}[/]")))
    if as_json:
        click.echo(json.dumps(report))
        return
    from rich.table import Table

    t = Table(title=f"muse serve · {report['args']['model']} · {requests} requests a level")
    for col in ("concurrency", "server req/s", "p50 s", "p95 s", "direct req/s", "direct p50 s"):
        t.add_column(col, justify="right")
    for h, d in zip(report["levels"], report["direct"]):
        t.add_row(str(h["concurrency"]), f"{h['rps']:.2f}", f"{h['p50_s']:.2f}", f"{h['p95_s']:.2f}",
                  f"{d['rps']:.2f}", f"{d['p50_s']:.2f}")
    out.print(t)
    out.print(f"server overhead against the engine called directly: {report['overhead']:+.1%}")
    out.print(f"[dim]written to {path}[/]")


# --- muse eval: the evaluation harness (openmuse.evals) ---------------------------------------

class EvalGroup(click.Group):
    """``muse eval TASK …`` runs a task; ``muse eval compare RUN…`` sets runs side by side."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@cli.group("eval", cls=EvalGroup)
def eval_group() -> None:
    """Evaluations: muse eval TASK [--mode … --limit K --out DIR]; muse eval compare RUN…

    \b
    Tasks: arithmetic, arc-agi-2, refusal (offline); mcq, math, healthbench (--data PATH);
    charts (engines that take images). A run folder resumes where it stopped."""


@eval_group.command("run")
@click.argument("task_name", metavar="TASK")
@engine_options
@mode_options
@click.option("--limit", envvar="MUSE_EVAL_LIMIT", type=int, default=None, help="Run the first K items only.")
@click.option("--out", "out_dir", envvar="MUSE_EVAL_OUT", default=None,
              help="Run folder (default: results/eval-TASK-MODE-TIME); an existing one is resumed.")
@click.option("--data", envvar="MUSE_EVAL_DATA", default=None, help="Local data file (mcq, math, healthbench).")
@click.option("--task-seed", envvar="MUSE_EVAL_SEED", type=int, default=0, show_default=True,
              help="Seed of generated items (arithmetic, charts) and of option shuffling (mcq).")
@click.option("--repeats", envvar="MUSE_EVAL_REPEATS", type=click.IntRange(min=1), default=1, show_default=True,
              help="mcq: each question this many times, options shuffled anew.")
@click.option("--judge", envvar="MUSE_EVAL_JUDGE", type=click.Choice(["rules", "engine"]), default="rules",
              show_default=True, help="refusal: rule-based classifier, or the (grader) engine as judge.")
@click.option("--grader-engine", envvar="MUSE_GRADER_ENGINE", default=None,
              help="Grader/judge engine (default: the engine under test).")
@click.option("--grader-model", envvar="MUSE_GRADER_MODEL", default=None, help="Grader model.")
@click.option("--grader-base-url", envvar="MUSE_GRADER_BASE_URL", default=None, help="Grader endpoint /v1 URL.")
@click.option("--grader-api-key", envvar="MUSE_GRADER_API_KEY", default=None, help="Key for the grader endpoint.")
@click.option("--json", "as_json", envvar="MUSE_JSON", is_flag=True, help="Print the summary as JSON.")
@handle_errors
def eval_run(task_name: str, mode: str, show_thinking: bool, limit: int | None, out_dir: str | None,
             data: str | None, task_seed: int, repeats: int, judge: str, grader_engine: str | None,
             grader_model: str | None, grader_base_url: str | None, grader_api_key: str | None,
             as_json: bool, **kw) -> None:
    """Run TASK on a mode and an engine; write items.jsonl, summary.json, summary.md, plot.png."""
    from click.core import ParameterSource

    from .evals import TaskOptions, create_task
    from .evals.runner import run_eval

    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1, not {limit}")
    task = create_task(task_name, TaskOptions(data=data, seed=task_seed, repeats=repeats, judge=judge))
    if click.get_current_context().get_parameter_source("max_tokens") == ParameterSource.DEFAULT:
        kw["max_tokens"] = task.default_max_tokens
    mode_settings = _mode_settings(kw)
    registry.load("mode", mode)
    task.items()  # a missing or malformed data file fails here, before the model loads
    settings = _engine_settings(kw)
    engine = _load_engine(settings)
    grader = grader_info = None
    if grader_engine or grader_model or grader_base_url:
        gs = settings.model_copy(update={"engine": grader_engine or settings.engine, "model": grader_model,
                                         "base_url": grader_base_url or settings.base_url,
                                         "api_key": grader_api_key or settings.api_key})
        grader, grader_info = _load_engine(gs), gs.model_dump(exclude={"api_key"})
    summary, path = run_eval(task, mode, mode_settings, engine, settings.model_dump(exclude={"api_key"}),
                             limit=limit, out_dir=out_dir, grader=grader, grader_info=grader_info,
                             console=None if as_json else err)
    if as_json:
        click.echo(json.dumps(summary))
        return
    out.print((path / "summary.md").read_text(), markup=False)
    r = summary["run"]
    out.print(f"[dim]{r['items_run']} items run, {r['items_resumed']} already done · written to {path}[/]")


@eval_group.command("compare")
@click.argument("runs", nargs=-1, required=True)
@click.option("--out", "out_path", envvar="MUSE_EVAL_COMPARE_OUT", default=None,
              help="Plot file (default: compare.png beside the first run); a .md table goes beside it.")
@click.option("--json", "as_json", envvar="MUSE_JSON", is_flag=True, help="Print the rows as JSON.")
@handle_errors
def eval_compare(runs: tuple[str, ...], out_path: str | None, as_json: bool) -> None:
    """Several run folders side by side: figures, tokens and time, and one plot."""
    from .evals.compare import compare

    rows, table, plot = compare(list(runs), out_path)
    if as_json:
        click.echo(json.dumps({"rows": rows, "plot": str(plot)}))
        return
    out.print(table, markup=False)
    out.print(f"[dim]plot: {plot}[/]")


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        err.print("aborted")
        sys.exit(130)
    except click.ClickException as e:
        err.print(f"[red]error:[/] {e.format_message()}", markup=True, soft_wrap=True)
        sys.exit(2)
    except MuseError as e:
        err.print(f"[red]error:[/] {e}", highlight=False, soft_wrap=True)  # one line, never wrapped
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
