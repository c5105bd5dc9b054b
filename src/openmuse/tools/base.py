"""What a tool is, and the one place every tool call goes through.

A built-in tool subclasses ``BuiltinTool`` (a name, a description, a JSON schema for its
arguments, ``call(**args)``) and registers under the entry-point group ``openmuse.tools``, as
modes and engines do; MCP servers' tools are wrapped into the same shape (``mcp.py``). The
model sees every tool the same way: an OpenAI function (``spec()``), called through the
function calling of ``functions/`` (grammar-constrained on the local engine).

``ToolBox.call`` is the only way a call runs: it checks the arguments against the schema,
runs the tool under its time limit, caps what comes back, flags instructions injected into
the output (the safety layer's rules) and turns every failure into an ``Observation`` with
``ok=False`` and a one-line error that is fed back to the model — never a traceback.
Off-by-default tools (``fetch``, ``web_search``) are loaded only when named explicitly.
"""

from __future__ import annotations

import atexit
import json
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
from pydantic import BaseModel, ConfigDict, Field

from .. import registry
from ..errors import ConfigError
from ..functions.spec import Tool
from ..types import ToolCall


class ToolSettings(BaseModel):
    """Limits and switches shared by every tool (CLI flags / the ``muse`` field set them)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float = Field(default=10.0, gt=0, le=300, description="Most seconds one tool call may run.")
    memory_mb: int = Field(default=256, ge=16, le=4096, description="Sandbox memory limit (MiB).")
    output_chars: int = Field(default=2000, ge=100, le=100_000, description="Most characters a call returns.")
    search_k: int = Field(default=3, ge=1, le=20, description="Passages a search returns.")
    fetch: bool = Field(default=False, description="Allow the fetch tool (public URLs only, SSRF rules).")
    fetch_allow: tuple[str, ...] = Field(default=(), description="Hosts fetch may reach although private.")
    web_search_url: str | None = Field(default=None, description="A search endpoint; enables web_search.")
    mcp_config: Path | None = Field(default=None, description="A JSON file naming MCP servers.")


@dataclass
class Source:
    """A passage or result a tool returned, so an answer can cite it: ``ref`` is where it
    came from (``wiki:Title``, a URL, ``sandbox``)."""

    id: str  # "S1"
    title: str
    text: str
    ref: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "text": self.text, "ref": self.ref}


@dataclass
class Observation:
    """What one call gave back: the text the model reads next, its sources, how it went."""

    tool: str
    ok: bool
    text: str
    sources: list[Source] = field(default_factory=list)
    ms: float = 0.0
    truncated: bool = False
    flags: list[str] = field(default_factory=list)  # injected instructions found in the output

    def for_model(self) -> str:
        return self.text if self.ok else f"error: {self.text}"

    def to_json(self) -> dict[str, Any]:
        return {"tool": self.tool, "ok": self.ok, "text": self.text, "ms": round(self.ms, 1),
                "truncated": self.truncated, "flags": list(self.flags),
                "sources": [s.to_json() for s in self.sources]}


class ToolError(Exception):
    """A failure the model should read (bad argument, nothing found, limit hit): one line."""


class BuiltinTool(ABC):
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    parameters: ClassVar[dict[str, Any]] = {"type": "object", "properties": {}}
    default: ClassVar[bool] = True  # loaded when no tool list is named
    # whether the tool enforces its own time limit (the sandbox kills its process); other
    # tools run in a thread that ToolBox stops waiting for at ``timeout_s``
    own_deadline: ClassVar[bool] = False

    def __init__(self, settings: ToolSettings):
        self.settings = settings

    def spec(self) -> Tool:
        return Tool(name=self.name, description=self.description, parameters=self.parameters)

    @abstractmethod
    def call(self, **args: Any) -> Observation | str:
        """Run the tool; return its text (or a full ``Observation``); raise ``ToolError``."""

    def close(self) -> None:
        pass


def builtin_names(default_only: bool = False) -> list[str]:
    return [n for n in registry.names("tool") if not default_only or registry.load("tool", n).default]


OFF_HINT = {"fetch": "the operator enables it with --fetch-tool",
            "web_search": "the operator enables it with --web-search-url"}


def _enabled(name: str, settings: ToolSettings) -> bool:
    """Whether a built-in may be offered: opt-in ones only when the operator enabled them."""
    if name == "fetch":
        return settings.fetch
    if name == "web_search":
        return bool(settings.web_search_url)
    return True


_MCP: dict[tuple[str, float], dict[str, Any]] = {}
_MCP_LOCK = threading.Lock()


def mcp_tools(settings: ToolSettings) -> dict[str, Any]:
    """The MCP servers' tools of ``settings.mcp_config``, connected once per process (per file
    version) and kept for every request; closed at exit. A clash with a built-in's name, or a
    server that cannot start, is a ``ConfigError``."""
    if not settings.mcp_config:
        return {}
    path = Path(settings.mcp_config)
    try:
        key = (str(path.resolve()), path.stat().st_mtime)
    except OSError:  # unreadable: load_servers says so in its own words
        key = (str(path), -1.0)
    with _MCP_LOCK:
        if key not in _MCP:
            from .mcp import load_servers

            loaded = load_servers(path, settings)
            clash = next((t.name for t in loaded if t.name in builtin_names()), None)
            if clash:
                for t in loaded:  # their servers' processes must not outlive the error
                    t.close()
                raise ConfigError(f"MCP tool '{clash}' clashes with a built-in tool of that name")
            _MCP[key] = {t.name: t for t in loaded}
            if len(_MCP) == 1:
                atexit.register(close_mcp)
        return _MCP[key]


def close_mcp() -> None:
    """Close every MCP server this process connected (at exit, or to reload a config)."""
    with _MCP_LOCK:
        for tools in _MCP.values():
            for t in tools.values():
                try:
                    t.close()
                except Exception:
                    pass
        _MCP.clear()


class ToolBox:
    """The tools one request may use, by name; ``call`` runs one ``ToolCall``."""

    def __init__(self, tools: dict[str, Any], settings: ToolSettings):
        self.tools = tools
        self.settings = settings

    @classmethod
    def load(cls, names: list[str] | tuple[str, ...] | None = None,
             settings: ToolSettings | None = None) -> ToolBox:
        """The tools named (default: the built-ins on by default and the opt-in ones the operator
        enabled), and the MCP servers' tools: all of them, or only those named when ``names``
        names any (``server__tool``). An unknown name, or an opt-in tool its operator has not
        enabled, is a ``ConfigError``."""
        settings = settings or ToolSettings()
        available = [n for n in builtin_names() if _enabled(n, settings)]
        mcp = mcp_tools(settings)
        if names:
            unknown = [n for n in names if n not in available and n not in mcp]
            if unknown:
                off = [n for n in unknown if n in builtin_names()]
                hint = f" ({off[0]} is off: {OFF_HINT.get(off[0], 'not enabled')})" if off else ""
                raise ConfigError(f"unknown tool '{unknown[0]}'{hint} (available: "
                                  f"{', '.join([*available, *mcp]) or 'none'})")
            chosen = list(names)
            if not any(n in mcp for n in names):
                chosen += list(mcp)
        else:
            chosen = [n for n in available if registry.load("tool", n).default or n in ("fetch", "web_search")]
            chosen += list(mcp)
        tools = {n: mcp[n] if n in mcp else registry.load("tool", n)(settings) for n in chosen}
        return cls(tools, settings)

    @property
    def names(self) -> list[str]:
        return list(self.tools)

    def specs(self, only: list[str] | None = None) -> tuple[Tool, ...]:
        return tuple(t.spec() for n, t in self.tools.items() if only is None or n in only)

    def call(self, tc: ToolCall) -> Observation:
        t0 = time.perf_counter()
        tool = self.tools.get(tc.name)
        if tool is None:
            return self._done(Observation(tc.name, False, f"no tool named '{tc.name}' "
                                          f"(tools: {', '.join(self.tools)})"), t0)
        try:
            args = json.loads(tc.arguments or "{}")
            if not isinstance(args, dict):
                raise ToolError("the arguments must be a JSON object")
            jsonschema.validate(args, tool.spec().parameters)
        except json.JSONDecodeError as e:
            return self._done(Observation(tc.name, False, f"the arguments are not JSON ({e.msg})"), t0)
        except jsonschema.ValidationError as e:
            where = ".".join(str(p) for p in e.absolute_path) or "arguments"
            return self._done(Observation(tc.name, False, f"bad arguments ({where}): {e.message}"), t0)
        except ToolError as e:
            return self._done(Observation(tc.name, False, str(e)), t0)
        out = self._run(tool, args)
        return self._done(out, t0)

    def _run(self, tool: Any, args: dict[str, Any]) -> Observation:
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["out"] = tool.call(**args)
            except ToolError as e:
                box["err"] = str(e)
            except Exception as e:  # a tool's bug reaches the model as one line, never a traceback
                box["err"] = f"{tool.name} failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"

        if getattr(tool, "own_deadline", False):
            work()
        else:
            th = threading.Thread(target=work, daemon=True, name=f"tool-{tool.name}")
            th.start()
            th.join(self.settings.timeout_s)
            if th.is_alive():
                return Observation(tool.name, False, f"{tool.name} ran past its {self.settings.timeout_s:g} s limit")
        if "err" in box:
            return Observation(tool.name, False, box["err"])
        out = box.get("out")
        if isinstance(out, Observation):
            return out
        return Observation(tool.name, True, str(out if out is not None else ""))

    def _done(self, obs: Observation, t0: float) -> Observation:
        from ..safety import rules

        cap = self.settings.output_chars
        if len(obs.text) > cap:
            obs.text = obs.text[:cap] + f"\n[… cut at {cap} characters]"
            obs.truncated = True
        pieces = [obs.text, *(s.text for s in obs.sources)]
        for p in pieces:
            if p and (hit := rules.injection(p)):
                obs.flags.append(f"injection: {hit}")
        obs.ms = (time.perf_counter() - t0) * 1000
        return obs

    def close(self) -> None:
        """Close the built-ins of this box (MCP tools stay connected for the next request)."""
        shared = {id(t) for tools in _MCP.values() for t in tools.values()}
        for t in self.tools.values():
            if id(t) in shared:
                continue
            try:
                t.close()
            except Exception:
                pass
