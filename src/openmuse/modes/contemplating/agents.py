"""The agents: one request each, told apart by approach (``prompts/contemplating.yaml``).

Diversity comes from the approaches, not from heat: agents decode greedily, each with a
distinct prompt (a framing and an approach, in the packaged launch order), so every one of them
is as sharp as a single greedy answer. Only agents past the packaged list would sample, at a low
temperature, each with its own seed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ... import prompts
from ...assistant.result import AgentTrace
from ...types import ChatRequest, Completion, Message
from ..base import has_media, with_system
from ...answers import asks_for_grid, extract, options
from .vote import tail_confidence


@dataclass(frozen=True)
class AgentSpec:
    index: int
    approach: str
    instruction: str
    framing: str  # the framing's system message (short conversations)
    framing_after: str  # the framing written after the conversation (long ones)
    temperature: float
    seed: int


def specs(n: int, seed: int | None) -> list[AgentSpec]:
    """The first ``n`` agents of the packaged launch order (the same agent i for every n)."""
    p = prompts.load("contemplating")
    order = p["agents"]
    base = 0 if seed is None else seed
    out = []
    for i in range(n):
        framing, approach = order[i % len(order)]
        hot = i >= len(order)
        out.append(AgentSpec(
            index=i, approach=f"{framing}/{approach}", instruction=p["approaches"][approach],
            framing=p["framings"][framing]["system"], framing_after=p["framings"][framing]["after"],
            temperature=p["extra_agent_temperature"] if hot else 0.0, seed=base + 1000 + i,
        ))
    return out


def launch_order(n: int) -> list[int]:
    """The order in which early stop launches the first ``n`` agents (0-based): the packaged
    ``early_stop_launch`` (agent numbers) restricted to agents below ``n``, then any others in
    the launch order above. The same agents run as without early stop; only which go first
    changes, so a settled item skips the agents that cost most and agree least."""
    first = [a - 1 for a in prompts.load("contemplating").get("early_stop_launch", []) if a <= n]
    return first + [i for i in range(n) if i not in first]


def shares_prefix(messages: Sequence[Message]) -> bool:
    """Whether the agents' prompts should share the whole conversation as their prefix: when it
    holds more than ``shared_prefix_chars`` characters of text, or any media part. Then its
    prefill, not the wording the launch order was tuned on, is what the agents cost."""
    limit = prompts.load("contemplating")["shared_prefix_chars"]
    return any(has_media(m) for m in messages) or sum(len(m.text()) for m in messages) > limit


def requests(messages: Sequence[Message], agents: Sequence[AgentSpec], max_tokens: int,
             shared: bool | None = None) -> list[ChatRequest]:
    """One request per agent; ``shared`` picks the layout (default: ``shares_prefix``).

    - Not shared (short conversations; the launch order was tuned on this layout): the
      framing is the system message, followed there by the conversation's own system message;
      the approach is appended to the last user turn.
    - Shared (long ones): the conversation unchanged (its own system message, or the packaged
      one), then the framing and the approach after the last user turn. Every agent's prompt so
      starts with the whole conversation, which the local engine prefills once for all of them
      and an HTTP engine's prefix cache (vLLM, SGLang) serves to all.
    """
    p = prompts.load("contemplating")
    if shared is None:
        shared = shares_prefix(messages)
    own = " ".join(m.text() for m in messages if m.role == "system").strip()  # the user's system text
    msgs = with_system(messages, p["system"]) if shared else [m for m in messages if m.role != "system"]
    head, last = msgs[:-1], msgs[-1]
    out = []
    for a in agents:
        tail = " ".join(x for x in (a.framing_after if shared else "", a.instruction, p["answer_format"]) if x)
        if isinstance(last.content, str):
            content: str | list = f"{last.text()}\n\n{tail}".strip()
        else:  # media parts stay where they are; the approach follows them
            content = [*last.content, {"type": "text", "text": f"\n\n{tail}"}]
        first = [] if shared else [Message(role="system", content=f"{a.framing} {own}".strip())]
        out.append(ChatRequest(
            messages=(*first, *head, Message(role="user", content=content)), max_tokens=max_tokens,
            temperature=a.temperature, seed=a.seed, logprobs=True,
        ))
    return out


def answer_kind(question: str) -> str | None:
    """"grid" for a grid puzzle (rows of digits in, a grid out), "choice" when the question
    lists options, "number" when it is about numbers, else None (a short phrase)."""
    if asks_for_grid(question):
        return "grid"
    if options(question):
        return "choice"
    if re.search(r"\d", question) or re.search(r"\bhow (many|much)\b", question, re.IGNORECASE):
        return "number"
    return None


def agent_result(spec: AgentSpec, c: Completion, question: str, wave: int) -> AgentTrace:
    """The agent's trace: its whole text is reasoning, its answer extracted from it."""
    conf = tail_confidence(c.token_logprobs)
    return AgentTrace(
        agent=spec.index + 1, approach=spec.approach, wave=wave, temperature=spec.temperature, seed=spec.seed,
        answer=extract(c.text, question, answer_kind(question)),
        reasoning=c.text.strip(),
        confidence=None if conf is None else round(conf, 4),
        finish_reason=c.finish_reason,
        usage=c.usage.model_copy(update={"reasoning_tokens": c.usage.completion_tokens}),
        timings=c.timings,
    )
