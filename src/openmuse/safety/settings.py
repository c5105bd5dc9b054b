"""The safety layer's settings (a module of its own: the pipeline imports it without the layer)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

PROFILES = ("auto", "health", "off")


class SafetySettings(BaseModel):
    """The safety layer's settings. Every field has a CLI flag and a ``MUSE_*`` variable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    # The offline classifier (``classifier.CLASSIFIERS``): "e5" (runs 1-4, the default) or "minilm" (run 5).
    classifier: Literal["e5", "minilm"] = "e5"
    # A guard model behind an OpenAI-compatible endpoint (its /v1 URL) replaces the classifier.
    guard_engine: str | None = None
    guard_model: str | None = None
    guard_format: Literal["auto", "llama-guard", "shieldgemma", "wildguard"] = "auto"
    guard_api_key: str | None = None
    guard_timeout_s: float = Field(default=20.0, gt=0)
    # The health profile: "auto" applies it to medical questions, "health" always, "off" never.
    profile: Literal["auto", "health", "off"] = "auto"
