"""The synthesizer: reads the question, every agent's answer and a short summary of its
reasoning, and writes the final answer.

Its turn opens with the agreement, computed from the vote ("Agreement: 5 of 8 agents answered
15; 2 answered 55; 1 gave no answer."), so the synthesis always states it. A clear majority
(more than half of all agents) is not overruled: where the synthesizer names another answer,
the majority stands and the result says so.
"""

from __future__ import annotations

from collections.abc import Sequence

from ... import prompts
from ...assistant.result import AgentTrace
from ...types import ChatRequest, Message
from ...answers import display, extract
from .vote import VoteResult

SUMMARY_CHARS = 120
SYNTHESIS_TOKENS = 96  # the final answer and a sentence on the disagreement


def summary(reasoning: str) -> str:
    """A short summary of a trace: its last lines, up to SUMMARY_CHARS characters."""
    text = " ".join(reasoning.split())
    return text if len(text) <= SUMMARY_CHARS else "…" + text[-SUMMARY_CHARS:]


def agreement_line(result: VoteResult) -> str:
    if result.winner is None:
        return f"Agreement: none of the {result.total} agents gave a usable answer."
    parts = [f"Agreement: {result.agreement} of {result.total} agents answered {display(result.winner)}"]
    others = sorted(((c, a) for a, c in result.counts.items() if a != result.winner), reverse=True)
    for c, a in others:
        parts.append(f"{c} answered {display(a)}")
    missing = result.total - result.answered
    if missing:
        parts.append(f"{missing} gave no answer")
    return "; ".join(parts) + "."


def request(question: str, agents: Sequence[AgentTrace], result: VoteResult, max_tokens: int,
            prefill: bool = True) -> ChatRequest:
    """The synthesizer's request. With ``prefill`` (engines that continue an assistant message)
    its turn opens with the agreement; otherwise it is asked to open that way."""
    p = prompts.load("contemplating")["synthesis"]
    lines = []
    for a in agents:
        ans = display(a.answer) or "no answer"
        lines.append(f"Agent {a.agent} ({a.approach}): answer {ans}. Reasoning: {summary(a.reasoning)}")
    user = p["user"].format(question=question, n=len(agents), agents="\n".join(lines))
    opener = p["opener"].format(agreement=agreement_line(result))
    msgs = [Message(role="system", content=p["system"]), Message(role="user", content=user)]
    if prefill:
        msgs.append(Message(role="assistant", content=opener))
    else:
        msgs[-1] = Message(role="user", content=f"{user}\n\n{p['no_prefill'].format(opener=opener)}")
    return ChatRequest(
        messages=tuple(msgs),
        max_tokens=min(max_tokens, SYNTHESIS_TOKENS),
        stop=("\n\n",) if prefill else (),
    )


def decide(text: str, question: str, kind: str | None, result: VoteResult) -> tuple[str | None, str]:
    """(final answer, note). The synthesizer's answer, unless it would overrule a clear majority."""
    text = text.strip()
    marker = text.lower().rfind("final answer:")
    if marker >= 0:  # a synthesizer that wrote its own opener (no prefill)
        text = text[marker + len("final answer:"):].strip()
    if kind == "grid":  # a grid spans lines
        proposed = extract(text, question, kind) if text else None
    else:
        proposed = extract("Answer: " + text.split("\n")[0], question, kind) if text else None
    if result.clear_majority and proposed != result.winner:
        shown = display(proposed) if proposed is not None else "no clear answer"
        return result.winner, (
            f"The synthesizer proposed {shown}; a clear majority ({result.agreement} of {result.total}) "
            f"answered {display(result.winner)}, which stands."
        )
    if proposed is None:
        return result.winner, "The synthesizer gave no clear answer; the vote decides."
    return proposed, ""
