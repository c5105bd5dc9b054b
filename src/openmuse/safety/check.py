"""The safety check the ``Assistant`` runs before and after every mode (``openmuse.checks``).

Before the mode it reads the conversation as the mode will see it (OCR text and transcripts
are text there) and decides:

- ``refuse``: a never-pass rule matched (``rules.py``), the guard model said unsafe, or the
  classifier's harm score reached its threshold (a lower one when the request is wrapped in a
  jailbreak: role-play, "ignore previous instructions", an encoding …). The mode does not run;
  the answer is a short, kind refusal that offers safe help (for self-harm: where to get help).
- ``care``: the score is in the band below the threshold; the mode runs with a note asking for
  general, safety-minded information. Injected instructions in OCR'd, transcribed, fetched or
  tool text also give ``care``: the mode is told to treat that text as data.
- ``allow``.

After the mode it reads the answer (and the reasoning) and replaces it with the refusal when an
answer rule matches (lab steps next to a named agent, working malware, a never-pass request
rule), the guard model says unsafe, or — for a request that was in doubt (``care``) — the
classifier's score reaches ``refuse_answer``: the catch for what slipped past the first check.
(The classifier was trained on requests; on the answers to clearly allowed requests it refused
too many ordinary ones, so there only the rules judge.) A built page (``muse build``) is judged
by the text the model wrote into it (a template's own text is the project's; markup and scripts
are not prose), and its code by the malware rule. Every decision is a ``CheckRecord`` (category, score, source, detail): in
``--json``, in the server's ``muse`` object and in the stored conversation.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ..assistant.result import CheckRecord, Result
from ..types import Message
from . import rules
from .classifier import Classifier, default_classifier
from .guard import GuardClient, GuardError
from .settings import SafetySettings
from .taxonomy import CATEGORIES, INJECTION_NOTE, refusal_text
from .views import markers, views

log = logging.getLogger(__name__)
REFUSALS = frozenset({c.refusal for c in CATEGORIES.values()} | {refusal_text(None)})  # the layer's own answers
STRONG_MARKERS = {"ignore_instructions", "persona", "role_play", "encoding", "no_refusal"}
CARE_NOTE = ("This request touches on {title}. Answer helpfully with general, factual, safety-minded "
             "information; do not give step-by-step instructions that could be used to cause harm.")


def user_texts(messages: list[Message], turns: int = 4) -> list[str]:
    """The last user message, and the last ``turns`` user messages joined (a request split
    across turns is judged whole). A turn the layer refused (the next message is one of its
    refusals) is left out of the join: it had its own check, and must not hold every later
    question hostage."""
    users: list[str] = []
    for i, m in enumerate(messages):
        if m.role != "user" or not m.text().strip():
            continue
        nxt = messages[i + 1] if i + 1 < len(messages) else None
        if nxt is not None and nxt.role == "assistant" and nxt.text().strip() in REFUSALS:
            continue
        users.append(m.text())
    last = next((m.text() for m in reversed(messages) if m.role == "user" and m.text().strip()), None)
    if last is None:
        return []
    recent = users[-turns:]
    return [last, "\n".join(recent)] if len(recent) > 1 and recent[-1] == last else [last]


def _record(stage: str, decision: str, category: str | None = None, score: float | None = None,
            source: str = "", detail: str = "", flags: list[str] | None = None, ms: float = 0.0) -> CheckRecord:
    return CheckRecord(stage=stage, name="safety", decision=decision, category=category,
                       score=None if score is None else round(score, 4), source=source, detail=detail,
                       flags=flags or [], ms=round(ms, 2))


class SafetyCheck:
    name = "safety"
    order = 10  # before the health profile

    def __init__(self, settings: SafetySettings | None = None, classifier: Classifier | None = None):
        self.settings = settings or SafetySettings()
        self._classifier = classifier
        self.guard = (GuardClient(self.settings.guard_engine, self.settings.guard_model, self.settings.guard_format,
                                  self.settings.guard_api_key, self.settings.guard_timeout_s)
                      if self.settings.guard_engine else None)

    @property
    def classifier(self) -> Classifier:
        if self._classifier is None:
            self._classifier = default_classifier(self.settings.classifier)
        return self._classifier

    # -- before -------------------------------------------------------------------------------
    def judge_request(self, messages: list[Message], media: Any = None) -> CheckRecord:
        """The decision on a conversation, without running anything (also ``muse safety check``)."""
        t0 = time.perf_counter()
        texts = user_texts(messages)
        flags = sorted({m for t in texts for m in markers(t)})
        injected = self._injections(messages, media)
        ms = lambda: (time.perf_counter() - t0) * 1000
        for t in texts:
            hit = rules.match_request(t)
            if hit is None:
                hit = next((h for v in views(t)[1:] if (h := rules.match_request(v.text))), None)
            if hit:
                return _record("before", "refuse", hit.category, 1.0, "rules", hit.rule, flags, ms())
        if self.guard is not None:
            try:
                v = self.guard.judge(messages)
                if v.unsafe:
                    return _record("before", "refuse", v.category, v.score, f"guard:{v.format}", v.raw[:200],
                                   flags, ms())
                if injected:
                    return _record("before", "care", "injection", None, "rules", injected[0], flags, ms())
                return _record("before", "allow", None, v.score, f"guard:{v.format}", "", flags, ms())
            except GuardError as e:  # the offline classifier still stands
                log.warning("guard model unreachable, the offline classifier decides: %s", e)
                flags = [*flags, "guard_unreachable"]
        th = self.classifier.thresholds
        wrapped = bool(STRONG_MARKERS & set(flags))
        tau = th["refuse_wrapped"] if wrapped else th["refuse"]
        s = self.classifier.score(texts[:1], whole=texts[1:])
        detail = f"{s.how}: {s.piece[:160]}"
        if s.logit >= tau and s.category:
            return _record("before", "refuse", s.category, s.harm, "classifier", detail, flags, ms())
        if injected:
            return _record("before", "care", "injection", s.harm, "rules", injected[0], flags, ms())
        if s.logit >= th["care"] and s.category:
            return _record("before", "care", s.category, s.harm, "classifier", detail, flags, ms())
        return _record("before", "allow", None, s.harm, "classifier", "", flags, ms())

    def _injections(self, messages: list[Message], media: Any) -> list[str]:
        """Instructions found in text that came from media (OCR, transcripts) or tools."""
        found: list[str] = []
        for p in getattr(media, "parts", None) or []:
            raw = p.model_dump() if hasattr(p, "model_dump") else dict(p)
            pieces = [raw.get("ocr") or "", *[s.get("text", "") for s in raw.get("transcript") or []],
                      *[f.get("ocr", "") for f in raw.get("frames") or []]]
            for text in pieces:
                if text and (hit := rules.injection(text)):
                    found.append(f"{raw.get('kind', 'media')} {raw.get('via', '')}: {hit}".strip())
        for m in messages:
            if m.role == "tool" and (hit := rules.injection(m.text())):
                found.append(f"tool output: {hit}")
        return found

    def before(self, request: Any) -> tuple[Result | None, CheckRecord | None]:
        if not self.settings.enabled:
            return None, None
        rec = self.judge_request(request.messages, request.media)
        request.notes["safety"] = rec.decision
        if rec.decision == "refuse":
            return Result(answer=refusal_text(rec.category), mode=request.mode.name,
                          finish_reason="content_filter"), rec
        if rec.decision == "care":
            note = INJECTION_NOTE if rec.category == "injection" else CARE_NOTE.format(
                title=CATEGORIES[rec.category].title.lower())
            request.messages = [Message(role="system", content=note), *request.messages]
        return None, rec

    # -- after --------------------------------------------------------------------------------
    def judge_answer(self, messages: list[Message], answer: str, doubt: bool = True) -> CheckRecord:
        """The after-check. The classifier was trained on requests, not answers: it judges an
        answer only when the request itself was in doubt (``doubt``: decided ``care``); the
        answer rules and a guard model judge every answer."""
        t0 = time.perf_counter()
        ms = lambda: (time.perf_counter() - t0) * 1000
        if not answer.strip():
            return _record("after", "allow", ms=ms())
        hit = rules.match_answer(answer)
        if hit:
            return _record("after", "refuse", hit.category, 1.0, "rules", hit.rule, ms=ms())
        if self.guard is not None:
            try:
                v = self.guard.judge([*messages, Message(role="assistant", content=answer)], response=True)
                return _record("after", "refuse" if v.unsafe else "allow", v.category if v.unsafe else None,
                               v.score, f"guard:{v.format}", v.raw[:200] if v.unsafe else "", ms=ms())
            except GuardError as e:
                log.warning("guard model unreachable, the offline classifier decides: %s", e)
        if not doubt:
            return _record("after", "allow", None, None, "rules", ms=ms())
        s = self.classifier.score(answer)
        if s.logit >= self.classifier.thresholds["refuse_answer"] and s.category:
            return _record("after", "refuse", s.category, s.harm, "classifier", f"{s.how}: {s.piece[:160]}", ms=ms())
        return _record("after", "allow", None, s.harm, "classifier", ms=ms())

    def after(self, request: Any) -> tuple[Result | None, CheckRecord | None]:
        res = request.result
        if not self.settings.enabled or res is None or res.finish_reason == "content_filter":
            return None, None
        calls = [f"{c.name}({c.arguments})" for c in res.tool_calls]  # a call's arguments are output too
        answer = res.answer
        if getattr(res.trace, "type", None) == "build":  # a built page: the text the model wrote, and its code
            hit = rules.match_code(res.trace.html)
            if hit:
                rec = _record("after", "refuse", hit.category, 1.0, "rules", hit.rule)
                return res.model_copy(update={"answer": refusal_text(rec.category), "reasoning": "", "trace": None,
                                              "finish_reason": "content_filter"}), rec
            answer = res.trace.authored
        text = "\n".join(t for t in (res.reasoning, answer, *calls) if t)
        rec = self.judge_answer(request.messages, text, doubt=request.notes.get("safety") == "care")
        if rec.decision == "refuse":
            # the trace holds the agents' and the draft's text: it goes with the answer
            return res.model_copy(update={"answer": refusal_text(rec.category), "reasoning": "", "trace": None,
                                          "tool_calls": [], "finish_reason": "content_filter"}), rec
        return None, rec
