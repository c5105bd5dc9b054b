"""The one request pipeline: every front door (CLI, server, evals, benches) answers through
``Assistant.answer``, and nothing else prepares media or picks a mode.

In order:

1. ``validate``: a user message with text or media; the mode and its options (a mode's own
   ``Options``; an unknown option is a ``ConfigError`` naming it).
2. ``prepare``: every media part checked against the limits and prepared for this engine
   (native pass-through, or the offline fallbacks: frames, speech to text, OCR) — ``media/``.
3. ``check:before``: the registered checks (entry point group ``openmuse.checks``; the safety
   layer plugs in here) see the prepared conversation; one may stop the request with its own
   ``Result`` (a refusal) or let it through.
4. ``mode``: the mode runs on the engine bound to this request's ``RequestControl``
   (cancellation, queue deadline, work cap — ``engines/control.py``).
5. ``check:after``: the checks see the answer; one may replace it.
6. ``report``: the ``Result`` gets its media report, the engine report and the checks' records.

``on_step(name)`` is told each step as it starts (front doors show progress with it; tests
spy on it). Exceptions are the front doors' to turn into one-line errors or error objects.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .. import registry
from ..engines.base import Engine
from ..engines.control import RequestControl, bound
from ..errors import ConfigError
from ..functions import grammar as fn_grammar
from ..functions.spec import Output
from ..media import MediaSettings, prepare_media
from ..modes import Mode, ModeOptions, mode_class
from ..modes.base import OnEvent, check_messages
from ..safety.settings import PROFILES, SafetySettings
from ..tools.base import ToolSettings
from ..types import Message
from .result import CheckRecord, EngineReport, MediaPartReport, MediaReport, Result

STEPS = ("validate", "prepare", "check:before", "mode", "check:after", "report")
OnStep = Callable[[str], None]


@dataclass
class Request:
    """What a check sees: the conversation (media prepared: OCR text and transcripts are text
    here), the mode and its options, and, after the mode, its result."""

    messages: list[Message]
    mode: Mode
    media: MediaReport | None = None
    asked: list[Message] = field(default_factory=list)  # the conversation as it came, media unprepared
    result: Result | None = None
    # The profile asked for ("health"; "auto": a check decides, e.g. the health profile for a
    # medical question; "off"). A ``before`` check may also add guidance to ``messages``.
    profile: str = "auto"
    notes: dict[str, Any] = field(default_factory=dict)  # what a check keeps from before to after
    # The answer's shape (tools, tool_choice, response_format: ``functions.spec``) and the
    # answer request's own fields (``stop``, ``logprobs``, ``top_logprobs``)
    output: Output = field(default_factory=Output)
    answer_fields: dict[str, Any] = field(default_factory=dict)


class Check(Protocol):
    """A check around the mode. ``before`` may return a ``Result`` that answers instead of the
    mode (a refusal); ``after`` may return a replacement ``Result``. Either returns
    ``(result or None, record or None)``."""

    name: str

    def before(self, request: Request) -> tuple[Result | None, CheckRecord | None]: ...

    def after(self, request: Request) -> tuple[Result | None, CheckRecord | None]: ...


def resolve_mode(name: str | Mode, options: ModeOptions | Mapping[str, Any] | None = None) -> Mode:
    """The mode ``name`` (a registered one) with ``options`` validated against its own
    ``Options``: ``ConfigError`` for an unknown mode, ``OptionError`` naming a bad option. Front
    doors call this to refuse bad options before loading an engine."""
    if isinstance(name, Mode):
        return name if options is None else type(name)(options)
    return mode_class(name)(options)


def registered_checks(settings: SafetySettings | None = None) -> list[Check]:
    """One instance of every check registered in ``openmuse.checks``, in their ``order`` (the
    safety layer first, then the health profile, then the rest by name). A check class whose
    constructor takes an argument is given the ``SafetySettings``."""
    settings = settings or SafetySettings()
    classes = [registry.load("check", name) for name in registry.names("check")]
    classes.sort(key=lambda c: getattr(c, "order", 50))
    out = []
    for cls in classes:
        try:
            takes = bool(inspect.signature(cls).parameters)
        except (TypeError, ValueError):
            takes = False
        out.append(cls(settings) if takes else cls())
    return out


@dataclass
class Assistant:
    engine: Engine
    media: MediaSettings = field(default_factory=MediaSettings)
    checks: Sequence[Check] | None = None  # None: the registered ones, built with ``safety``
    safety: SafetySettings = field(default_factory=SafetySettings)
    # Each request's hold on the engine (engines/control.py): None waits / allows any size.
    queue_timeout_s: float | None = None
    max_request_tokens: int | None = None
    # The operator's tool limits and switches (sandbox limits, fetch, MCP servers): modes that
    # call tools (agent) get them; a request cannot change them.
    tools: ToolSettings = field(default_factory=ToolSettings)

    def __post_init__(self) -> None:
        if self.checks is None:
            self.checks = registered_checks(self.safety)

    def mode(self, name: str | Mode, options: ModeOptions | Mapping[str, Any] | None = None) -> Mode:
        return resolve_mode(name, options)

    def control(self) -> RequestControl:
        return RequestControl(queue_timeout_s=self.queue_timeout_s, max_work_tokens=self.max_request_tokens)

    def answer(self, messages: Sequence[Message], mode: str | Mode = "instant",
               options: ModeOptions | Mapping[str, Any] | None = None, on_event: OnEvent | None = None, *,
               media_names: Mapping[tuple[int, int], str] | None = None, control: RequestControl | None = None,
               on_step: OnStep | None = None, profile: str | None = None, output: Output | None = None,
               answer_fields: Mapping[str, Any] | None = None) -> Result:
        """Answer ``messages`` with ``mode``: the six steps of the module docstring, in order."""
        req = self.prepare(messages, mode, options, media_names=media_names, on_step=on_step, profile=profile,
                           output=output, answer_fields=answer_fields)
        return self.run(req, on_event, control=control, on_step=on_step)

    def prepare(self, messages: Sequence[Message], mode: str | Mode = "instant",
                options: ModeOptions | Mapping[str, Any] | None = None, *,
                media_names: Mapping[tuple[int, int], str] | None = None, on_step: OnStep | None = None,
                profile: str | None = None, output: Output | None = None,
                answer_fields: Mapping[str, Any] | None = None) -> Request:
        """Steps 1-2 alone: the conversation and the mode validated, the media checked and
        prepared. A front door that must act before the mode runs (the server stores the
        question) calls ``prepare`` then ``run``; ``answer`` does both."""
        step = on_step or (lambda _s: None)
        step("validate")
        msgs = [m if isinstance(m, Message) else Message(**m) for m in messages]
        check_messages(msgs)
        m = self.mode(mode, options)
        profile = profile or self.safety.profile
        if profile not in PROFILES:
            raise ConfigError(f"unknown profile '{profile}' (use one of: {', '.join(PROFILES)})")
        output = output or Output()
        if output.active and self.engine.capabilities.grammar:
            fn_grammar.check(output)  # a schema the grammar cannot express is refused now
        step("prepare")
        prepared = prepare_media(msgs, self.engine.capabilities, self.media, dict(media_names or {}))
        return Request(messages=prepared.messages, mode=m, media=_media_report(prepared.report()), asked=msgs,
                       profile=profile, output=output, answer_fields=dict(answer_fields or {}))

    def fork(self, req: Request, choice: int) -> Request:
        """An independent copy of a prepared request for another choice (OpenAI's ``n``): its
        own mode instance, its seed moved by ``choice`` when one was set. Choices asked together
        are decoded together by the engine's scheduler."""
        o = req.mode.options
        seed = None if o.seed is None else o.seed + choice
        mode = type(req.mode)(o.model_copy(update={"seed": seed}))
        return Request(messages=list(req.messages), mode=mode, media=req.media, asked=list(req.asked),
                       profile=req.profile, output=req.output, answer_fields=dict(req.answer_fields))

    def run(self, req: Request, on_event: OnEvent | None = None, *, control: RequestControl | None = None,
            on_step: OnStep | None = None) -> Result:
        """Steps 3-6 on a prepared request: checks before, the mode, checks after, the report."""
        step = on_step or (lambda _s: None)
        records: list[CheckRecord] = []
        step("check:before")
        result = self._run_checks("before", req, records)
        if result is None:
            step("mode")
            ctl = control or self.control()
            ctl.check()
            engine = bound(self.engine, ctl)
            req.mode.output, req.mode.answer_fields = req.output, dict(req.answer_fields)
            if hasattr(req.mode, "tool_settings"):
                req.mode.tool_settings = self.tools
            if getattr(req.mode, "reads_media", False):  # a mode that reads the media as sent (build)
                req.mode.asked, req.mode.media_settings = list(req.asked), self.media
            req.result = req.mode.run(engine, req.messages, on_event)
            if not req.mode.shapes_output:
                req.result = _shaped(req, engine)
            step("check:after")
            result = self._run_checks("after", req, records) or req.result
        step("report")
        runtime = getattr(self.engine, "runtime", None)
        engine = EngineReport(name=self.engine.name, model=self.engine.model,
                              runtime={k: v for k, v in runtime().items() if k != "system_info"} if runtime else None)
        return result.model_copy(update={"media": req.media, "engine": engine, "checks": records})

    def _run_checks(self, stage: str, req: Request, records: list[CheckRecord]) -> Result | None:
        for c in self.checks or ():
            replaced, record = getattr(c, stage)(req)
            if record is not None:
                records.append(record)
            if replaced is not None:
                replaced = replaced.model_copy(update={"mode": replaced.mode or req.mode.name})
                if stage == "before":
                    return replaced
                req.result = replaced.model_copy(update={"revised_by": [*replaced.revised_by, c.name]})
        return None if stage == "before" else req.result


def _shaped(req: Request, engine: Engine) -> Result:
    """The answer of a mode that does not apply the output itself: in the requested shape (one
    more request, ``Mode.shape``), and cut at the first ``stop`` string."""
    res = req.result
    assert res is not None
    if req.output.active and res.finish_reason != "content_filter":
        res = req.mode.shape(engine, req.messages, res)
    stops = [s for s in req.answer_fields.get("stop") or () if s]
    cut = min((i for i in (res.answer.find(s) for s in stops) if i >= 0), default=-1)
    return res.model_copy(update={"answer": res.answer[:cut], "finish_reason": "stop"}) if cut >= 0 else res


def _media_report(raw: dict[str, Any] | None) -> MediaReport | None:
    if not raw:
        return None
    return MediaReport(parts=[MediaPartReport(**p) for p in raw["parts"]])
