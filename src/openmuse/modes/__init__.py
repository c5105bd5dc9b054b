"""Modes: ``instant``, ``thinking`` (and later ``contemplating``), registered through the
``openmuse.modes`` entry point group."""

from __future__ import annotations

from .. import registry
from .base import Mode, ModeSettings

__all__ = ["Mode", "ModeSettings", "create_mode"]


def create_mode(name: str, settings: ModeSettings | None = None) -> Mode:
    return registry.load("mode", name)(settings)
