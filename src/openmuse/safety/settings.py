"""The safety layer's settings (a module of its own: the pipeline imports it without the layer)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

PROFILES = ("auto", "health", "off")
# The offline classifier used unless one is named: run 6 of `minilm` (the README says why).
DEFAULT_CLASSIFIER: Literal["e5", "minilm"] = "minilm"


class SafetySettings(BaseModel):
    """The safety layer's settings. Every field has a CLI flag and a ``MUSE_*`` variable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    # The offline classifier (``classifier.CLASSIFIERS``): "minilm" (run 6, the default) or "e5" (run 4).
    classifier: Literal["e5", "minilm"] = DEFAULT_CLASSIFIER
    # A guard model behind an OpenAI-compatible endpoint (its /v1 URL) replaces the classifier.
    guard_engine: str | None = None
    guard_model: str | None = None
    guard_format: Literal["auto", "llama-guard", "shieldgemma", "wildguard"] = "auto"
    guard_api_key: str | None = None
    guard_timeout_s: float = Field(default=20.0, gt=0)
    # The health profile: "auto" applies it to medical questions, "health" always, "off" never.
    profile: Literal["auto", "health", "off"] = "auto"
