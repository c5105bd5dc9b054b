"""One registry for engines, modes, evaluation tasks (and later tools), fed by Python entry points.

Built-ins register exactly like plugins do, in ``pyproject.toml``::

    [project.entry-points."openmuse.engines"]
    local = "openmuse.engines.local:LocalEngine"

A third-party package adds its own entries to the same groups; no dispatch code changes.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import Any

from .errors import ConfigError

GROUPS = {"engine": "openmuse.engines", "mode": "openmuse.modes", "eval": "openmuse.evals",
          "check": "openmuse.checks", "tool": "openmuse.tools"}


@cache
def _entries(kind: str) -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=GROUPS[kind])}


def names(kind: str) -> list[str]:
    return sorted(_entries(kind))


def load(kind: str, name: str) -> Any:
    """The class registered as ``name`` in ``kind`` ('engine', 'mode', 'eval' or 'check')."""
    entries = _entries(kind)
    if name not in entries:
        raise ConfigError(f"unknown {kind} '{name}' (available: {', '.join(sorted(entries)) or 'none'})")
    return entries[name].load()
