"""Modes, registered through the ``openmuse.modes`` entry point group (built-ins included):
``instant``, ``thinking``, ``contemplating`` and ``ground``. A plugin package adds its own the
same way; its ``Options`` become CLI flags, ``muse`` fields and a ``muse-<name>`` model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import registry
from .base import Mode, ModeOptions

__all__ = ["Mode", "ModeOptions", "create_mode", "mode_class", "mode_classes"]


def mode_class(name: str) -> type[Mode]:
    return registry.load("mode", name)


def mode_classes() -> dict[str, type[Mode]]:
    """Every registered mode by name."""
    return {name: mode_class(name) for name in registry.names("mode")}


def create_mode(name: str, options: ModeOptions | Mapping[str, Any] | None = None) -> Mode:
    return mode_class(name)(options)
