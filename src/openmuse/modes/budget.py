"""Token budgets checked whole before a mode decodes anything.

What it covers: a mode that runs several engine calls (Thinking's reasoning then answer,
Contemplating's agent waves then synthesis) adds up the worst case of every call before the
first one, and raises ``ContextOverflow`` naming the numbers when it passes the engine's
context, so no reasoning is spent on a request whose last phase could not fit:

- Thinking: the reasoning prompt + ``budget`` + the closing/answer prefix + ``max_tokens``.
- Contemplating: each agent's prompt + ``budget``; with the synthesis aggregator, the
  synthesizer's worst-case prompt — its packaged text, the question and every agent's line at
  its longest (the answer ``budget`` tokens, written twice: in the agent's line and in the
  agreement line; the summary ``budget`` tokens, at most what the agent wrote) — + its
  ``max_tokens``.

What it does not cover: engines that cannot count a prompt (HTTP engines: ``count_prompt``
returns None) or report no context length are not checked here; their server refuses a prompt
that does not fit, after the earlier phases ran. Counts assume text read back from the model
takes no more tokens than the model spent writing it (true of its own byte-level BPE output in
practice, not proven), and a phrase's few tokens of separators are counted as ``SLACK``.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..engines.base import Engine
from ..errors import ContextOverflow
from ..types import ChatRequest

SLACK = 8  # separators around an agent's answer in the agreement line ("; 1 answered ")


def check(engine: Engine, what: str, parts: Sequence[tuple[str, int | None]]) -> None:
    """Raise ``ContextOverflow`` when the ``parts`` ((label, tokens)) pass the engine's context;
    do nothing when the engine reports no context length or a part could not be counted."""
    ctx = engine.capabilities.context_length
    if not ctx or any(n is None for _, n in parts):
        return
    total = sum(n for _, n in parts)
    if total > ctx:
        said = " + ".join(f"{n} ({label})" for label, n in parts)
        raise ContextOverflow(
            f"{what} needs up to {total} tokens ({said}), more than the context of {ctx} tokens; "
            "lower the budget or max_tokens, or use a larger context (--ctx)"
        )


def prompt_size(engine: Engine, request: ChatRequest) -> int | None:
    return engine.count_prompt(request)


def text_size(engine: Engine, text: str) -> int | None:
    return engine.count_tokens(text) if text else 0
