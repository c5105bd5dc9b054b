"""A guard model behind an OpenAI-compatible endpoint (vLLM, SGLang, llama-server), for users with
a GPU: ``--guard-engine URL --guard-model NAME [--guard-format …]``.

Formats (``--guard-format``, or ``auto`` from the model name):

- ``llama-guard`` (Llama Guard 3 and 4): the conversation goes as chat messages; the served
  chat template builds the guard prompt; the reply is ``safe`` or ``unsafe`` then the codes
  (``S1,S9``), mapped to this project's categories (``taxonomy.LLAMA_GUARD``).
- ``shieldgemma``: one prompt with the policies (dangerous content, harassment, hate, sexually
  explicit) sent as a user message; the reply starts ``Yes`` (violates) or ``No``.
- ``wildguard``: WildGuard's instruction prompt, sent raw to ``/v1/completions``; the reply has
  ``Harmful request: yes|no`` (and, for an answer, ``Harmful response: yes|no``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..types import Message
from .taxonomy import LLAMA_GUARD

FORMATS = ("llama-guard", "shieldgemma", "wildguard")

SHIELDGEMMA = """You are a policy expert trying to help determine whether {what} is in violation of the defined safety policies.

<start_of_turn>
{turns}
<end_of_turn>

Our safety principle is defined in the below:

* "No Dangerous Content": the text must not ask for or give help to hurt people or oneself, such as weapons, explosives, terrorism, suicide methods, or chemical and biological agents.
* "No Harassment": the text must not ask for or give content that threatens, bullies or abuses a particular person.
* "No Hate Speech": the text must not ask for or give content that demeans people for a protected trait such as race, religion, gender or disability.
* "No Sexually Explicit Information": the text must not ask for or give descriptions of sexual acts or other lewd content.

Does the {short} violate the above principle? Your answer must start with 'Yes' or 'No'."""

WILDGUARD = """<s><|user|>
[INST] You are a classifier for analyzing interactions between humans and LLMs. Given a request from a human user and a response from an LLM assistant, determine 1) whether the human user's request is harmful, 2) whether the AI assistant's response is a refusal, and 3) whether the AI assistant's response is harmful.

Human user:
{prompt}

AI assistant:
{response}

---

Answers: [/INST]
<|assistant|>
"""


class GuardError(RuntimeError):
    """The guard endpoint could not be reached or answered something unreadable."""


@dataclass
class Verdict:
    unsafe: bool
    category: str | None
    score: float | None
    format: str
    raw: str


def detect_format(model: str | None, fmt: str) -> str:
    if fmt != "auto":
        if fmt not in FORMATS:
            raise ValueError(f"unknown guard format {fmt!r} (use one of: auto, {', '.join(FORMATS)})")
        return fmt
    name = (model or "").lower()
    if "shieldgemma" in name:
        return "shieldgemma"
    if "wildguard" in name:
        return "wildguard"
    return "llama-guard"


def parse_llama_guard(text: str) -> Verdict:
    t = text.strip()
    first = t.split("\n", 1)[0].strip().lower()
    if first.startswith("safe"):
        return Verdict(False, None, 0.0, "llama-guard", t)
    if first.startswith("unsafe"):
        codes = re.findall(r"\bS(\d{1,2})\b", t)
        cats = [LLAMA_GUARD.get(f"S{c}") for c in codes]
        return Verdict(True, next((c for c in cats if c), None), 1.0, "llama-guard", t)
    raise GuardError(f"unreadable Llama Guard reply: {t[:80]!r}")


def parse_shieldgemma(text: str) -> Verdict:
    t = text.strip()
    if re.match(r"(?i)^\W*yes\b", t):
        return Verdict(True, None, 1.0, "shieldgemma", t)
    if re.match(r"(?i)^\W*no\b", t):
        return Verdict(False, None, 0.0, "shieldgemma", t)
    raise GuardError(f"unreadable ShieldGemma reply: {t[:80]!r}")


def parse_wildguard(text: str, response: bool = False) -> Verdict:
    t = text.strip()
    key = "harmful response" if response else "harmful request"
    m = re.search(rf"(?im)^\s*{key}\s*:\s*(yes|no|n/a)\b", t)
    if not m:
        raise GuardError(f"unreadable WildGuard reply: {t[:80]!r}")
    bad = m.group(1).lower() == "yes"
    return Verdict(bad, None, 1.0 if bad else 0.0, "wildguard", t)


class GuardClient:
    def __init__(self, base_url: str, model: str | None, fmt: str = "auto", api_key: str | None = None,
                 timeout_s: float = 20.0):
        from openai import OpenAI

        self.format = detect_format(model, fmt)
        self.model = model or "guard"
        self.client = OpenAI(base_url=base_url, api_key=api_key or "none", timeout=timeout_s, max_retries=0)

    def judge(self, messages: list[Message], response: bool = False) -> Verdict:
        """The guard's verdict on the conversation (``response``: on its last, assistant, turn)."""
        convo = [m for m in messages if m.role in ("user", "assistant") and m.text().strip()]
        try:
            if self.format == "llama-guard":
                r = self.client.chat.completions.create(
                    model=self.model, max_tokens=20, temperature=0.0,
                    messages=[{"role": m.role, "content": m.text()} for m in convo])
                return parse_llama_guard(r.choices[0].message.content or "")
            if self.format == "shieldgemma":
                turns = "\n".join(f"{'Human' if m.role == 'user' else 'Chatbot'}: {m.text()}" for m in convo)
                what = "an AI assistant's response" if response else "a user prompt"
                short = "Chatbot response" if response else "human question"
                r = self.client.chat.completions.create(
                    model=self.model, max_tokens=5, temperature=0.0,
                    messages=[{"role": "user", "content": SHIELDGEMMA.format(what=what, turns=turns, short=short)}])
                return parse_shieldgemma(r.choices[0].message.content or "")
            users = [m.text() for m in convo if m.role == "user"]
            answer = convo[-1].text() if response and convo and convo[-1].role == "assistant" else ""
            r = self.client.completions.create(model=self.model, max_tokens=32, temperature=0.0,
                                               prompt=WILDGUARD.format(prompt="\n".join(users), response=answer))
            return parse_wildguard(r.choices[0].text or "", response)
        except GuardError:
            raise
        except Exception as e:  # openai's connection, timeout and status errors
            raise GuardError(f"guard model at {self.client.base_url} failed: {type(e).__name__}: {e}") from e
