"""The request pipeline (``pipeline.py``: ``Assistant.answer``) and the typed ``Result`` it
returns (``result.py``). Every front door answers through here."""

from __future__ import annotations

from .pipeline import STEPS, Assistant, Check, Request, registered_checks, resolve_mode
from .result import (
                     AgentTrace,
                     CheckRecord,
                     ContemplationTrace,
                     EngineReport,
                     GroundingTrace,
                     MediaReport,
                     Result,
                     ThinkingTrace,
)

__all__ = ["STEPS", "AgentTrace", "Assistant", "Check", "CheckRecord", "ContemplationTrace", "EngineReport",
           "GroundingTrace", "MediaReport", "Request", "Result", "ThinkingTrace", "registered_checks", "resolve_mode"]
