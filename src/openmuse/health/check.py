"""The health profile: a check the ``Assistant`` runs around the mode for medical questions
(``profile="auto"``: when the question reads as medical) or always (``--profile health``).

Before the mode it adds a careful clinician's instructions (``HEALTH_GUIDE``: ask for missing
context, state red flags and when to seek urgent care, keep what is known apart from what is a
guess, no dose or diagnosis it cannot support, what to ask a clinician), and the red flags the
message matches (``data/redflags.yaml``, each with its public source).

After the mode it makes sure of what a small model may forget:

- an emergency red flag: the answer starts with the flag's advice (call an ambulance …) unless
  it already sends them to emergency care; an urgent one: same-day care;
- a medication dose in the answer is taken out and replaced with who can give one;
- missing context that matters for a symptom question (age, duration, medicines …) is asked
  for when the answer asks nothing.

Its records (decision ``care``, category ``health``) list the red flags, the context asked for
and what it changed.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from typing import Any

import yaml

from ..assistant.result import CheckRecord, Result
from ..types import Message

_I = re.IGNORECASE
HEALTH_GUIDE = (
    "You are answering a health question. Be careful and kind, like a good clinician:\n"
    "- If the message describes a red flag, say first and plainly where to get help and how fast.\n"
    "- Ask for missing context that matters (age, how long, other symptoms, medicines, pregnancy).\n"
    "- Keep what is known apart from what is a guess; do not diagnose with certainty.\n"
    "- Do not give medication doses; say who can (a pharmacist or doctor).\n"
    "- End with what to ask or tell a clinician.")
REFERRAL = re.compile(r"\b(?:call (?:\d{3}|an ambulance|emergency|your local emergency)|dial \d{3}|\b(?:911|999|112)\b|"
                      r"emergency (?:room|department|services|number|care)|\bA&E\b|\bER\b|go to (?:the )?hospital|"
                      r"ambulance)", _I)
URGENT = re.compile(r"\b(?:today|same[- ]day|urgent(?:ly)?|right away|as soon as possible|straight away|"
                    r"NHS 111|urgent care)\b", _I)
NO_DOSE = ("I can't give a dose here: the right one depends on age, weight, kidney and liver health and other "
           "medicines. A pharmacist or doctor can tell you, or follow the label of the product you have.")
SYMPTOM = re.compile(r"\b(?:pain|pains|painful|ache|aches|aching|hurts?|hurting|fever|temperature|rash|cough\w*|"
                     r"dizz\w*|vomit\w*|throw(?:ing)? up|nause\w*|bleed\w*|blood|swell\w*|swollen|sore|itch\w*|"
                     r"lump|numb\w*|tingl\w*|breath\w*|faint\w*|tired|fatigue|diarrh\w*|constipat\w*|"
                     r"symptom\w*|unwell|sick|burn\w*|headaches?|migraine|cramps?|wheez\w*|dose|dosage|"
                     r"how (?:much|many) (?:mg|ml|tablets?|pills?))\b", _I)


@dataclass
class Flag:
    id: str
    name: str
    level: str
    patterns: list[re.Pattern[str]]
    advice: str
    source: str
    require_any: list[re.Pattern[str]] = field(default_factory=list)
    exclude: list[re.Pattern[str]] = field(default_factory=list)

    def matches(self, text: str) -> bool:
        if not any(p.search(text) for p in self.patterns):
            return False
        if self.require_any and not any(p.search(text) for p in self.require_any):
            return False
        return not any(p.search(text) for p in self.exclude)


@dataclass
class Rules:
    flags: list[Flag]
    context: list[dict[str, Any]]
    dose: list[re.Pattern[str]]
    medical: re.Pattern[str]
    crisis_lines: list[str]
    reviewed: str
    gate: re.Pattern[str] = re.compile(r"$^")  # stems the triage model's word needs (``triage_gate``)


@cache
def rules() -> Rules:
    """The reviewed red-flag file (``health/data/redflags.yaml``), compiled."""
    d = yaml.safe_load(files("openmuse.health").joinpath("data/redflags.yaml").read_text("utf-8"))
    comp = lambda xs: [re.compile(x, _I) for x in xs or []]
    flags = [Flag(f["id"], f["name"], f["level"], comp(f["patterns"]), f["advice"].strip(), f["source"],
                  comp(f.get("require_any")), comp(f.get("exclude"))) for f in d["flags"]]
    context = [{"id": c["id"], "ask": c["ask"], "present": comp(c.get("present"))} for c in d.get("context_questions", [])]
    terms = sorted({t.strip() for t in d.get("medical_terms", []) if t and t.strip()}, key=len, reverse=True)
    medical = re.compile(r"\b(?:" + "|".join(re.escape(t) for t in terms) + r")\b", _I) if terms else re.compile(r"$^")
    lines = [c if isinstance(c, str) else " ".join(str(v) for v in c.values()) for c in d.get("crisis_lines", [])]
    stems = sorted({t.strip() for t in d.get("triage_gate", []) if t and t.strip()}, key=len, reverse=True)
    gate = re.compile(r"\b(?:" + "|".join(re.escape(t) for t in stems) + r")", _I) if stems else re.compile(r"$^")
    return Rules(flags, context, comp(d.get("dose_patterns")), medical, lines, str(d.get("reviewed", "")), gate)


def red_flags(text: str) -> list[Flag]:
    return [f for f in rules().flags if f.matches(text)]


GENERIC = {"emergency": Flag("emergency", "a possible emergency", "emergency", [], (
    "Call your local emergency number (911 in the US, 999 in the UK, 112 in the EU) or go to the nearest "
    "emergency department now."), "NHS — \"When to call 999\""),
    "urgent": Flag("urgent", "something that needs a doctor today", "urgent", [], (
        "Please contact a doctor, urgent care or NHS 111 today; treat it as an emergency if it gets worse."),
        "NHS — \"When to use NHS 111\"")}


def assess(text: str, use_model: bool = True) -> tuple[list[Flag], str, float]:
    """The red flags of ``text`` (patterns first, then the triage model), its triage label and
    the model's probability that it is medical."""
    flags = red_flags(text)
    if not use_model:
        return flags, ("emergency" if any(f.level == "emergency" for f in flags) else
                       "urgent" if flags else "routine" if is_medical(text) else "not_medical"), 1.0
    from .triage import available, default_triage

    if not available():  # a checkout without the trained triage: the patterns alone
        return assess(text, use_model=False)
    t = default_triage().triage(text)
    label = t.label
    if not flags and not rules().medical.search(text) and not rules().gate.search(text):
        # no health word at all: the model alone does not make a message medical
        return flags, "not_medical", t.p_medical
    if any(f.level == "emergency" for f in flags):
        label = "emergency"
    elif flags and label not in ("emergency",):
        label = "urgent"
    if label in ("emergency", "urgent") and not [f for f in flags if f.level == label]:
        byid = {f.id: f for f in rules().flags}
        near = byid.get(t.flag or "")
        flags = [*flags, near if near is not None and near.level == label else GENERIC[label]]
    return flags, label, t.p_medical


def is_medical(text: str) -> bool:
    return bool(rules().medical.search(text) or red_flags(text))


def missing_context(text: str) -> list[dict[str, Any]]:
    """The context questions whose answer ``text`` does not already give."""
    return [c for c in rules().context if c["present"] and not any(p.search(text) for p in c["present"])]


def strip_doses(answer: str) -> tuple[str, bool]:
    """``answer`` without the sentences that give a dose (one note in their place)."""
    parts = re.split(r"(?<=[.!?])\s+|\n", answer)
    kept, cut = [], False
    for p in parts:
        if any(rx.search(p) for rx in rules().dose):
            cut = True
            continue
        kept.append(p)
    if not cut:
        return answer, False
    text = " ".join(k for k in kept if k.strip()).strip()
    return (f"{text}\n\n{NO_DOSE}" if text else NO_DOSE), True


class HealthCheck:
    name = "health"
    order = 20  # after the safety layer

    def before(self, request: Any) -> tuple[Result | None, CheckRecord | None]:
        profile = getattr(request, "profile", "auto")
        if profile == "off":
            return None, None
        t0 = time.perf_counter()
        text = _user_text(request.messages)
        flags, label, p_medical = assess(text)
        if profile != "health" and label == "not_medical" and not flags:
            return None, None
        guide = HEALTH_GUIDE
        if flags:
            guide += "\nThis message describes possible red flags: " + "; ".join(
                f"{f.name} ({f.level}: {f.advice})" for f in flags)
        request.messages = [Message(role="system", content=guide), *request.messages]
        symptomatic = label in ("routine", "urgent") and bool(SYMPTOM.search(text))
        request.notes["health"] = {"flags": flags, "missing": missing_context(text) if symptomatic else []}
        return None, CheckRecord(stage="before", name="health", decision="care", category="health",
                                 score=round(p_medical, 4), source="red-flags" if flags else "triage",
                                 detail="; ".join(f"{f.name} — {f.source}" for f in flags),
                                 flags=[f"triage:{label}"] + [f"red_flag:{f.id}" for f in flags] +
                                       [f"missing:{c['id']}" for c in request.notes["health"]["missing"]],
                                 ms=round((time.perf_counter() - t0) * 1000, 2))

    def after(self, request: Any) -> tuple[Result | None, CheckRecord | None]:
        info = request.notes.get("health")
        res = request.result
        if info is None or res is None or res.finish_reason == "content_filter":
            return None, None
        if res.tool_calls or getattr(request, "output", None) is not None and request.output.active:
            # a function call or JSON the client parses: advice written into it would break it
            return None, CheckRecord(stage="after", name="health", decision="allow", category="health",
                                     source="profile", detail="structured answer left as it is")
        answer, changes = revise(res.answer, info["flags"], info["missing"])
        rec = CheckRecord(stage="after", name="health", decision="care", category="health", source="profile",
                          flags=changes)
        return (res.model_copy(update={"answer": answer}) if changes else None), rec


def revise(answer: str, flags: list[Flag], missing: list[dict[str, Any]]) -> tuple[str, list[str]]:
    """``answer`` with the emergency advice, doses out and the follow-up questions; what changed."""
    changes: list[str] = []
    answer, cut = strip_doses(answer)
    if cut:
        changes.append("dose_removed")
    emergency = [f for f in flags if f.level == "emergency"]
    urgent = [f for f in flags if f.level != "emergency"]
    if emergency and not REFERRAL.search(answer):
        answer = f"**This could be an emergency.** {emergency[0].advice}\n\n{answer}".strip()
        changes.append("emergency_advice_added")
    elif urgent and not emergency and not (URGENT.search(answer) or REFERRAL.search(answer)):
        answer = f"**Please get medical advice today.** {urgent[0].advice}\n\n{answer}".strip()
        changes.append("urgent_advice_added")
    if missing and not emergency and "?" not in answer:
        asks = " ".join(c["ask"] for c in missing[:3])
        answer = f"{answer}\n\nTo help further: {asks}".strip()
        changes.append("follow_up_added")
    return answer, changes


def _user_text(messages: list[Message]) -> str:
    users = [m.text() for m in messages if m.role == "user"]
    return "\n".join(users[-3:])
