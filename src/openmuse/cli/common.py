"""What every ``muse`` command shares: the consoles, the root group with its default command,
the option stacks (engine, media, grounding, mode) with their ``MUSE_*`` variables, and the
settings built from them."""

from __future__ import annotations

import functools
from collections.abc import Callable

import click
from pydantic import ValidationError
from rich.console import Console

from .. import __version__
from ..engines import EngineSettings, create_engine
from ..errors import ConfigError
from ..modes import mode_classes
from ..safety.settings import DEFAULT_CLASSIFIER

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
        click.option("--reproducible/--no-reproducible", envvar="MUSE_REPRODUCIBLE", default=False,
                     show_default=True,
                     help="local: greedy answers that do not depend on what else is decoding (no prefix "
                          "reuse; for comparing runs). Without it, a cached prefix can change a near tie."),
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
                     help="Point at what the question names in the one --image (the mode `ground`): "
                          "count, points, annotated PNG."),
        click.option("--ground-out", envvar="MUSE_GROUND_OUT", default=None, metavar="PATH",
                     help="The annotated PNG (default: IMAGE-ground.png in the current folder)."),
    ]
    return _stack(f, opts)


def safety_options(f: Callable) -> Callable:
    """The safety layer and the health profile (``SafetySettings``)."""
    return _stack(f, [
        click.option("--safety/--no-safety", "safety_enabled", envvar="MUSE_SAFETY", default=True, show_default=True,
                     help="The safety check before and after the mode."),
        click.option("--safety-classifier", envvar="MUSE_SAFETY_CLASSIFIER", default=DEFAULT_CLASSIFIER,
                     show_default=True, type=click.Choice(["e5", "minilm"]),
                     help="The offline classifier: minilm (a fine-tuned all-MiniLM-L6-v2 run by llama.cpp) or "
                          "e5 (e5-small + a small network: the default until run 6; README, Safety layer)."),
        click.option("--guard-engine", envvar="MUSE_GUARD_ENGINE", default=None, metavar="URL",
                     help="A guard model's OpenAI-compatible /v1 URL (Llama Guard, ShieldGemma, WildGuard); "
                          "it replaces the offline classifier."),
        click.option("--guard-model", envvar="MUSE_GUARD_MODEL", default=None, help="The guard model's name."),
        click.option("--guard-format", envvar="MUSE_GUARD_FORMAT", default="auto", show_default=True,
                     type=click.Choice(["auto", "llama-guard", "shieldgemma", "wildguard"]),
                     help="The guard's prompt and reply format (auto: from the model name)."),
        click.option("--guard-api-key", envvar="MUSE_GUARD_API_KEY", default=None, help="Key for --guard-engine."),
        click.option("--profile", envvar="MUSE_PROFILE", default="auto", show_default=True,
                     type=click.Choice(["auto", "health", "off"]),
                     help="health: the health profile always; auto: for medical questions; off: never."),
    ])


def tool_options(f: Callable) -> Callable:
    """The operator's tool limits and switches (``ToolSettings``): a request cannot change them."""
    return _stack(f, [
        click.option("--tool-timeout", "tool_timeout_s", envvar="MUSE_TOOL_TIMEOUT", type=float, default=10.0,
                     show_default=True, help="Most seconds one tool call may run (the sandbox is killed then)."),
        click.option("--sandbox-memory-mb", envvar="MUSE_SANDBOX_MEMORY_MB", type=int, default=256,
                     show_default=True, help="Memory of the Python sandbox (MiB)."),
        click.option("--tool-output-chars", envvar="MUSE_TOOL_OUTPUT_CHARS", type=int, default=2000,
                     show_default=True, help="Most characters a tool call returns to the model."),
        click.option("--fetch-tool/--no-fetch-tool", envvar="MUSE_FETCH_TOOL", default=False, show_default=True,
                     help="Offer the fetch tool (public URLs only, under the SSRF rules)."),
        click.option("--fetch-tool-allow", envvar="MUSE_FETCH_TOOL_ALLOW", multiple=True, metavar="HOST[:PORT]",
                     help="A private host the fetch tool may reach (repeatable)."),
        click.option("--web-search-url", envvar="MUSE_WEB_SEARCH_URL", default=None, metavar="URL",
                     help="A SearXNG-style JSON search endpoint; offers the web_search tool."),
        click.option("--mcp-config", envvar="MUSE_MCP_CONFIG", default=None, metavar="FILE",
                     type=click.Path(dir_okay=False),
                     help="A JSON file naming MCP servers (stdio or HTTP) whose tools are offered."),
    ])


def _tool_settings(kw: dict):
    from pathlib import Path

    from ..tools.base import ToolSettings

    mcp = kw.pop("mcp_config")
    if mcp and not Path(mcp).is_file():
        raise ConfigError(f"--mcp-config: no such file: {mcp}")
    try:
        return ToolSettings(timeout_s=kw.pop("tool_timeout_s"), memory_mb=kw.pop("sandbox_memory_mb"),
                            output_chars=kw.pop("tool_output_chars"), fetch=kw.pop("fetch_tool"),
                            fetch_allow=tuple(kw.pop("fetch_tool_allow")), web_search_url=kw.pop("web_search_url"),
                            mcp_config=Path(mcp) if mcp else None)
    except ValidationError as e:
        first = e.errors()[0]
        raise ConfigError(f"tool option {'.'.join(str(x) for x in first['loc'])}: {first['msg']}") from None


def _safety_settings(kw: dict):
    from ..safety.settings import SafetySettings

    return SafetySettings(enabled=kw.pop("safety_enabled"), guard_engine=kw.pop("guard_engine"),
                          guard_model=kw.pop("guard_model"), guard_format=kw.pop("guard_format"),
                          guard_api_key=kw.pop("guard_api_key"), profile=kw.pop("profile"),
                          classifier=kw.pop("safety_classifier"))


def _media_settings(kw: dict, serve_host: str | None = None):
    """``serve_host``: the bind of `muse serve`, which decides whether URLs are fetched by default."""
    from ..media import MediaSettings
    from ..media.fetch import fetching_on, parse_allow

    keys = ("max_media_mb", "max_megapixels", "max_duration_s", "frame_rate", "max_frames", "fetch_timeout_s",
            "max_url_parts", "max_parts", "max_total_megapixels", "max_total_duration_s", "max_decode_s")
    fetch, allow = kw.pop("fetch_urls"), tuple(kw.pop("fetch_allow"))
    parse_allow(allow)  # a bad entry is an error now, not at the first request
    fetch = fetching_on(serve_host, fetch) if serve_host is not None else fetch is not False
    return MediaSettings(**{k: kw.pop(k) for k in keys}, fetch_urls=fetch, fetch_allow=allow)


def mode_options(f: Callable) -> Callable:
    """``--mode``, one flag per option of every registered mode (``cli/mode_flags.py``), and
    ``--show-thinking``."""
    from .mode_flags import mode_flags

    names = ", ".join(f"{n} ({cls.summary})" if cls.summary else n for n, cls in mode_classes().items())
    opts = [
        click.option("--mode", envvar="MUSE_MODE", default="instant", show_default=True, help=f"One of: {names}."),
        *mode_flags(),
        click.option("--show-thinking", envvar="MUSE_SHOW_THINKING", is_flag=True,
                     help="Stream the reasoning too (dimmed)."),
    ]
    return _stack(f, opts)


def _engine_settings(kw: dict) -> EngineSettings:
    return EngineSettings(**{k: kw.pop(k) for k in ("engine", "model", "base_url", "api_key", "n_ctx", "n_threads", "prefill", "reasoning",
                                            "modalities", "extra_buffers", "reproducible")})


def _mode_options(kw: dict, mode: str) -> dict:
    """Pop every mode flag from ``kw``; the values given for ``mode`` (``cli/mode_flags.py``)."""
    from .mode_flags import options_for

    return options_for(kw, mode, click.get_current_context(silent=True))


def _load_engine(settings: EngineSettings, *, shared: bool = True):
    with err.status(f"Loading {settings.engine} engine…", spinner="dots"):
        return create_engine(settings, shared=shared)


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


def _int_list(text: str, flag: str) -> list[int]:
    """``"1,4,8"`` as ``[1, 4, 8]``; a clear error for anything else."""
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{flag} takes whole numbers separated by commas, not {text!r}") from None
