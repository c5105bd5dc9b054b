"""Engines: ``local`` (embedded llama.cpp, the offline default) and ``openai`` (any
OpenAI-compatible endpoint). Both register through the ``openmuse.engines`` entry point group."""

from __future__ import annotations

from .. import registry
from .base import Engine, EngineSettings

__all__ = ["Engine", "EngineSettings", "create_engine"]


def create_engine(settings: EngineSettings) -> Engine:
    """The engine these settings name; local engines are shared within the process."""
    cls = registry.load("engine", settings.engine)
    shared = getattr(cls, "shared", None)
    return shared(settings) if shared else cls(settings)
