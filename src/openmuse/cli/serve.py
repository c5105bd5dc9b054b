"""``muse models``, ``muse doctor`` and ``muse serve``: what the engine is, what this machine
does, and the API with the web app."""

from __future__ import annotations

import json
import sys

import click

from .. import registry
from ..errors import ConfigError
from .common import (
    _engine_settings,
    _load_engine,
    _media_settings,
    _safety_settings,
    _tool_settings,
    cli,
    engine_options,
    err,
    handle_errors,
    media_limit_options,
    out,
    safety_options,
    tool_options,
)


@cli.command()
@engine_options
@handle_errors
def models(**kw) -> None:
    """The engines and models available, with their capabilities."""
    from ..engines.local import default_model_path

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
    from ..doctor import print_report, report

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
@click.option("--queue-timeout", "queue_timeout_s", envvar="MUSE_QUEUE_TIMEOUT", type=click.FloatRange(min=0.1),
              default=60.0, show_default=True,
              help="Longest a request waits for the engine before it gets a 503 (engine_overloaded).")
@click.option("--max-request-tokens", envvar="MUSE_MAX_REQUEST_TOKENS", type=click.IntRange(min=1), default=None,
              help="Most engine work one request may ask for: prompt + max_tokens of every sequence "
                   "(agents × tokens), summed over its calls; past it a 400 (request_too_large). Default: no cap.")
@media_limit_options
@safety_options
@tool_options
@handle_errors
def serve(host: str, port: int, database_url: str | None, api_keys: tuple[str, ...], allow_remote: bool,
          max_body_mb: float, allowed_hosts: tuple[str, ...], queue_timeout_s: float,
          max_request_tokens: int | None, **kw) -> None:
    """The OpenAI-compatible API and the web app."""
    import ipaddress

    import uvicorn
    from rich.markup import escape
    from sqlalchemy.engine import make_url

    from ..server.app import ServerConfig, create_app
    from ..server.security import LOOPBACK_HOSTS

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
                          media=_media_settings(kw, serve_host=host), allowed_hosts=hosts,
                          queue_timeout_s=queue_timeout_s, max_request_tokens=max_request_tokens,
                          safety=_safety_settings(kw), tools=_tool_settings(kw))
    if config.tools.mcp_config:  # connect now: a broken server is an error at start, not per request
        from ..tools.base import mcp_tools

        err.print(f"[dim]MCP: {len(mcp_tools(config.tools))} tools from {config.tools.mcp_config}[/]")
    app = create_app(config, engine=_load_engine(config.engine))
    store = escape(make_url(config.database_url).render_as_string(hide_password=True))  # no password printed
    err.print(f"[bold]OpenMuse[/] on http://{host}:{port}  ·  store {store}  ·  "
              f"{'API keys required' if keys else 'no API keys'}")
    uvicorn.run(app, host=host, port=port, log_level="warning")


@cli.command()
@click.option("--out", "out_path", default=None, metavar="PATH", help="Write the schema here instead of printing it.")
@handle_errors
def schema(out_path: str | None) -> None:
    """The JSON schema of a result: the `--json` object and the server's `muse` object."""
    import json
    from pathlib import Path

    from ..assistant.result import schema as result_schema

    text = json.dumps(result_schema(), indent=2) + "\n"
    if out_path:
        Path(out_path).write_text(text)
        err.print(f"[dim]written to {out_path}[/]")
    else:
        click.echo(text, nl=False)
