"""The one typed result every request ends in, whatever the mode and the front door.

``Result`` holds the answer and its reasoning, ``Usage`` (prompt, prefilled, cached, completion
and reasoning tokens), timings, one typed ``trace`` (what the mode did: ``ThinkingTrace``,
``ContemplationTrace`` with its ``AgentTrace``s, ``GroundingTrace``), the ``MediaReport`` (how
each media part was seen), the ``EngineReport`` (which engine and how it ran, kept apart from
the answer) and the checks the pipeline ran around the mode (``CheckRecord``; the safety layer
fills them). Front doors dispatch on these types (``isinstance(result.trace,
ContemplationTrace)``), never on a mode's name or a dict key.

``Result.to_json()`` is the CLI's ``--json`` object and the server's ``muse`` object; its JSON
schema is ``docs/result.schema.json`` (``muse schema`` writes it).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..media.grounding import Grounding
from ..types import FinishReason, TokenLogprob, ToolCall, Usage


class _Typed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ThinkingTrace(_Typed):
    """Thinking: the budget the reasoning ran under and whether it ran out."""

    type: Literal["thinking"] = "thinking"
    budget: int
    budget_exhausted: bool
    reasoning_tokens: int = 0
    # the answer request came back empty and the reasoning's stated answer was used
    answer_from_reasoning: bool = False


class AgentTrace(_Typed):
    """One Contemplating agent: its approach, its whole text (``reasoning``) and the answer
    read from it, its tail confidence (None where the engine gave no log-probabilities)."""

    agent: int  # 1-based
    approach: str
    wave: int
    temperature: float = 0.0
    seed: int | None = None
    answer: str | None = None
    reasoning: str = ""
    confidence: float | None = None
    finish_reason: FinishReason = "stop"
    usage: Usage = Field(default_factory=Usage)
    timings: dict[str, float] = Field(default_factory=dict)


class Agreement(_Typed):
    answer: str | None
    agents: int  # how many gave ``answer``
    of: int  # how many voted
    counts: dict[str, int] = Field(default_factory=dict)
    clear_majority: bool = False
    line: str = ""  # "Agreement: 5 of 8 agents answered 15; …"


class EarlyStop(_Typed):
    enabled: bool
    requested: int
    launched: int
    skipped: int = 0
    tokens_saved: int = 0
    prompt_tokens_saved: int = 0
    token_saving: float = 0.0  # saved / (saved + spent), agents' completion tokens
    synthesis_skipped: bool = False
    rule: str = ""  # which test settled the answers ("" when none did)


class Synthesis(_Typed):
    text: str
    note: str = ""  # set when a clear majority was kept against the synthesizer
    usage: Usage = Field(default_factory=Usage)


class ContemplationTrace(_Typed):
    """Contemplating: the agents, how their answers were merged, and what early stop saved."""

    type: Literal["contemplation"] = "contemplation"
    final_answer: str | None
    aggregator: Literal["single", "synthesis", "confidence", "majority"]
    agreement: Agreement
    votes: dict[str, str | None] = Field(default_factory=dict)  # "majority", "confidence" -> winner
    synthesis: Synthesis | None = None
    early_stop: EarlyStop
    agents: list[AgentTrace] = Field(default_factory=list)


class GroundingTrace(_Typed):
    """Grounding: what the model pointed at, and the annotated image as a PNG data URL (kept
    out of the store, which records its hash and size)."""

    type: Literal["grounding"] = "grounding"
    grounding: Grounding
    image: str | None = None


class ToolStep(_Typed):
    """One step of a sub-agent: what the model wrote, the call it made and what came back."""

    step: int  # 1-based
    text: str = ""  # the model's text at this step (its answer on the last one)
    call: ToolCall | None = None
    observation: dict[str, Any] | None = None  # Observation.to_json(): tool, ok, text, ms, flags, sources
    usage: Usage = Field(default_factory=Usage)


class PlanItem(_Typed):
    task: str
    tool: str | None = None  # the tool the planner chose (None: the sub-agent chooses)
    # first calls the planner made for the sub-agent (JSON arguments of ``tool``): a list
    # question's candidates are looked up as named, not as a small model retypes them
    calls: list[str] = Field(default_factory=list)
    items: list[str] = Field(default_factory=list)  # a list question's candidates in this share


class SubAgentTrace(_Typed):
    """One sub-agent of the agent mode: its task, every step, its answer and why it stopped."""

    agent: int  # 1-based
    task: str
    tool: str | None = None
    steps: list[ToolStep] = Field(default_factory=list)
    answer: str = ""
    finish: Literal["answered", "step_limit", "time_limit", "error"] = "answered"
    usage: Usage = Field(default_factory=Usage)
    wall_s: float = 0.0


class AgentRunTrace(_Typed):
    """Agent mode: the plan, the sub-agents (run in parallel: one engine batch per step), the
    sources they read (``S1``…, cited by the synthesis) and the synthesis."""

    type: Literal["agent"] = "agent"
    planner: Literal["model", "list", "off"]
    plan: list[PlanItem] = Field(default_factory=list)
    subagents: list[SubAgentTrace] = Field(default_factory=list)
    sources: list[dict[str, Any]] = Field(default_factory=list)  # {"id", "title", "text", "ref", "agent"}
    batches: list[int] = Field(default_factory=list)  # sequences sent to the engine at each step
    tool_calls: int = 0
    tools: list[str] = Field(default_factory=list)  # the tools offered
    synthesis: str = ""


class BuildAttempt(_Typed):
    """One artifact the checker loaded: how it was made and what failed."""

    attempt: int  # 0: the first build; 1…: repairs
    how: str  # "template", "model", "rules", "defaults", "model repair"
    passed: bool
    failures: list[str] = Field(default_factory=list)  # "check: detail"
    wall_s: float = 0.0


class BuildTrace(_Typed):
    """``muse build``: the artifact, how it was made (template and parameters, or free-form code),
    the checker's report on the file handed over, and every repair before it."""

    type: Literal["build"] = "build"
    source: Literal["template", "model", "sketch"]
    template: str | None = None
    similarity: float | None = None  # the prompt's nearest template example (cosine)
    params: dict[str, Any] = Field(default_factory=dict)
    replaced: list[str] = Field(default_factory=list)  # model parameters that failed the schema
    html: str = ""
    bytes: int = 0
    path: str | None = None  # where the CLI wrote it
    checked: bool = True
    passed: bool = False
    report: dict[str, Any] | None = None  # build.check.CheckReport of the artifact handed over
    attempts: list[BuildAttempt] = Field(default_factory=list)
    repairs: int = 0
    sketch: dict[str, Any] | None = None  # boxes found and the layout IoU of the rendered page
    # the page's text the model wrote (a template's own text is the project's): what the safety
    # check judges after the build
    authored: str = ""


Trace = Annotated[ThinkingTrace | ContemplationTrace | GroundingTrace | AgentRunTrace | BuildTrace,
                  Field(discriminator="type")]


class MediaPartReport(BaseModel):
    """One media part: where it sits, what it is, and how the engine got to see it."""

    model_config = ConfigDict(extra="allow")

    part: str  # "image 1"
    kind: str
    name: str = ""
    via: str = ""  # native, ocr, asr, frames+asr, …


class MediaReport(_Typed):
    parts: list[MediaPartReport] = Field(default_factory=list)


class EngineReport(_Typed):
    """The engine that answered and how it ran (the local engine's buffers and threads)."""

    name: str
    model: str
    runtime: dict[str, Any] | None = None


class CheckRecord(_Typed):
    """A check run around the mode (the safety layer's hook): its stage, name and decision."""

    stage: Literal["before", "after"]
    name: str
    decision: str
    category: str | None = None
    score: float | None = None
    detail: str = ""
    source: str = ""  # what decided: "rules", "classifier", "guard:<format>", "red-flags" …
    flags: list[str] = Field(default_factory=list)  # e.g. jailbreak markers, red flags, missing context
    ms: float = 0.0  # time the check took


class Result(_Typed):
    answer: str = ""
    reasoning: str = ""
    # function calls the answer is made of (finish_reason "tool_calls"); OpenAI's tools
    tool_calls: list[ToolCall] = Field(default_factory=list)
    # the answer's tokens with their log-probabilities, when the request asked for them
    logprobs: list[TokenLogprob] | None = None
    mode: str
    model: str = ""
    finish_reason: FinishReason = "stop"
    usage: Usage = Field(default_factory=Usage)
    timings: dict[str, float] = Field(default_factory=dict)
    trace: Trace | None = None
    media: MediaReport | None = None
    engine: EngineReport | None = None
    checks: list[CheckRecord] = Field(default_factory=list)
    # checks that rewrote the mode's answer after it ran (a streamed answer was sent before)
    revised_by: list[str] = Field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` / ``muse`` object (``docs/result.schema.json``)."""
        return self.model_dump(mode="json", exclude_none=False)

    @property
    def agents(self) -> list[AgentTrace]:
        return self.trace.agents if isinstance(self.trace, ContemplationTrace) else []


def schema() -> dict[str, Any]:
    """The JSON schema of ``Result.to_json()``."""
    return Result.model_json_schema(mode="serialization")
