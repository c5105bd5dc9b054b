"""Engines: ``local`` (embedded llama.cpp, the offline default) and ``openai`` (any
OpenAI-compatible endpoint). Both register through the ``openmuse.engines`` entry point group."""

from __future__ import annotations

from .. import registry
from .base import Engine, EngineSettings

__all__ = ["Engine", "EngineSettings", "create_engine"]


def create_engine(settings: EngineSettings, *, shared: bool = True) -> Engine:
    """The engine these settings name; local engines are shared within the process, unless
    ``shared`` is False: then a private one, which its caller may ``close``."""
    cls = registry.load("engine", settings.engine)
    make = getattr(cls, "shared", None) if shared else None
    return make(settings) if make else cls(settings)
