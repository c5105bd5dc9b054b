"""The agent mode's planner: how a task is split among sub-agents, and which tool each uses.

Three ways, in this order:

- ``list``: a question that names its candidates ("Which of the following were painters:
  A, B, C, D?") is split by rule: each sub-agent checks a share of the candidates with
  ``search``. A small model cannot be trusted to copy a list faithfully into a plan; the rule
  can, and the model still does every lookup and judgement.
- ``model``: otherwise the model writes the plan as JSON under a grammar (``{"subtasks":
  [{"task", "tool"}]}``, the tool one of those offered, at most ``n`` items). With one sub-agent,
  or when the plan comes back empty, the planner only routes: one task (the question) and the
  tool a one-word, grammar-constrained, few-shot choice names.
- ``off`` (``planner: false``): one task per sub-agent (the question), no tool chosen; the
  sub-agent picks its own tool on its first step.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import cache
from typing import Any

from ... import prompts
from ...assistant.result import PlanItem
from ...engines.base import Engine
from ...types import ChatRequest, Message, Usage

# "… which of the following …: A, B, C and D?" / "… among these - A, B, C" (three or more names)
_LIST = re.compile(r"^(?P<head>.*?\b(?:which|what|who)\b.*?(?:of the following|of these|among|from)"
                   r"[^:]*?)(?::|\s[-–]\s)\s*(?P<items>[^?]+?)\s*\??\s*$", re.I | re.S)
_CONJ = re.compile(r"\s+(?:and|or)\s+", re.I)


@cache
def _titles() -> frozenset[str]:
    """Names that hold "and" themselves ("Trinidad and Tobago"): the search corpus's titles."""
    try:
        from ...tools.corpus import load

        return frozenset(a.title.lower() for a in load() if " and " in a.title or " or " in a.title)
    except Exception:  # no corpus installed: split on the conjunction
        return frozenset()


def list_items(question: str) -> tuple[str, list[str]] | None:
    """(the question's head, its candidates) when it names three or more, else None."""
    m = _LIST.match(question.strip())
    if not m:
        return None
    pieces = [x.strip() for x in re.split(r"\s*[,;]\s*", m.group("items"))]
    last = re.sub(r"^(?:and|or)\s+", "", pieces[-1], flags=re.I)
    if last.lower() != pieces[-1].lower() or last.lower() in _titles():
        pieces[-1:] = [last]
    else:  # "A, B and C": the last piece is two names
        pieces[-1:] = _CONJ.split(last, maxsplit=1) if len(pieces) > 1 else _CONJ.split(last)
    items = [i.strip(" .\"'") for i in pieces]
    items = [i for i in items if i and len(i) <= 80]
    if len(items) < 3 or len(set(x.lower() for x in items)) != len(items):
        return None
    return m.group("head").strip().rstrip(":"), items


def shares(items: list[str], n: int) -> list[list[str]]:
    """``items`` split into at most ``n`` contiguous shares as even as can be."""
    n = max(1, min(n, len(items)))
    size, extra = divmod(len(items), n)
    out, i = [], 0
    for k in range(n):
        j = i + size + (1 if k < extra else 0)
        out.append(items[i:j])
        i = j
    return out


def _schema_request(messages: list[Message], schema: dict, max_tokens: int, seed: int | None) -> ChatRequest:
    return ChatRequest(messages=tuple(messages), max_tokens=max_tokens, temperature=0.0, seed=seed,
                       response_format={"type": "json_schema", "json_schema": {
                           "name": "plan", "schema": schema, "strict": True}})


def _fewshot(system: str, examples: Sequence[Sequence[str]], wrap) -> list[Message]:
    msgs = [Message(role="system", content=system)]
    for q, a in examples:
        msgs += [Message(role="user", content=q), Message(role="assistant", content=wrap(a))]
    return msgs


def tool_lines(tools: list[str], descriptions: dict[str, str] | None = None) -> str:
    """One line per tool for the planner's and the router's prompts."""
    briefs = prompts.load("agent")["briefs"]
    lines = []
    for t in tools:
        d = briefs.get(t) or re.split(r"(?<=[.!?])\s", (descriptions or {}).get(t, "") or t)[0]
        lines.append(f"- {t}: {d}")
    return "\n".join(lines)


ROUTE_K = 5  # nearest written examples that vote


@cache
def _route_index() -> tuple[list[str], Any]:
    """The router's written examples (``prompts/agent_routes.yaml``) embedded once: (labels, rows)."""
    from ...safety.classifier import Embedder

    ex = prompts.load("agent_routes")
    labels = [t for t, qs in ex.items() for _ in qs]
    return labels, Embedder().embed([q for qs in ex.values() for q in qs])


def route_by_examples(task: str, tools: list[str]) -> str | None:
    """The tool of ``task``'s nearest written examples (cosine, a vote of ``ROUTE_K``,
    similarity-weighted) among ``tools``; None when no offered tool has examples."""
    from ...safety.classifier import Embedder

    labels, rows = _route_index()
    keep = [i for i, t in enumerate(labels) if t in tools]
    if not keep:
        return None
    sims = rows[keep] @ Embedder().embed([task])[0]
    votes: dict[str, float] = {}
    for j in sims.argsort()[::-1][:ROUTE_K]:
        votes[labels[keep[j]]] = votes.get(labels[keep[j]], 0.0) + float(sims[j])
    return max(votes, key=votes.get)


def route(engine: Engine, task: str, tools: list[str], seed: int | None = None,
          descriptions: dict[str, str] | None = None) -> tuple[str | None, Usage]:
    """The tool that fits ``task`` (one of ``tools``): by the written examples when every offered
    tool has some (the built-ins), else chosen by the model under a grammar (MCP tools)."""
    p = prompts.load("agent")
    if not tools:
        return None, Usage()
    if all(t in prompts.load("agent_routes") for t in tools):
        return route_by_examples(task, tools), Usage()
    examples = [(q, a) for q, a in p["route_examples"] if a in tools]
    msgs = _fewshot(p["route"].format(tools=tool_lines(tools, descriptions)), examples,
                    lambda a: json.dumps({"tool": a}))
    msgs.append(Message(role="user", content=task))
    schema = {"type": "object", "properties": {"tool": {"type": "string", "enum": tools}}, "required": ["tool"]}
    c = engine.generate(_schema_request(msgs, schema, 16, seed))
    try:
        tool = json.loads(c.text)["tool"]
    except (ValueError, KeyError, TypeError):
        tool = None
    return (tool if tool in tools else None), c.usage


def plan(engine: Engine, question: str, tools: list[str], n: int, enabled: bool = True,
         seed: int | None = None, descriptions: dict[str, str] | None = None) -> tuple[str, list[PlanItem], Usage]:
    """(how it was planned: list/model/off, the plan, the planner's usage)."""
    if not enabled:
        return "off", [PlanItem(task=question)], Usage()
    listed = list_items(question)
    if listed and "search" in tools:
        head, items = listed
        p = prompts.load("agent")
        plan_items = []
        for share in shares(items, n):
            task = p["list_task"].format(question=head + "?", items=", ".join(share))
            plan_items.append(PlanItem(task=task + " " + p["list_answer"].format(items=", ".join(share)),
                                       tool="search", items=share,
                                       calls=[json.dumps({"query": c}, ensure_ascii=False) for c in share]))
        return "list", plan_items, Usage()
    usage = Usage()
    items: list[PlanItem] = []
    if n > 1 and compound(question):
        items, usage = _model_plan(engine, question, tools, n, seed, descriptions)
    if not items:
        tool, u = route(engine, question, tools, seed, descriptions)
        items, usage = [PlanItem(task=question, tool=tool)], usage + u
    return "model", [_first_call(it) for it in items], usage


_COMPOUND = re.compile(r"\?.+\?|[,;]\s*(?:and|also|then)\s+(?:what|who|how|when|where|which|why|is|are|compute|"
                       r"calculate|find|list|count)\b|\band\s+(?:what|who|how|when|where|which)\s+(?:is|are|was|were|"
                       r"did|does|many|much)\b", re.I | re.S)


def compound(question: str) -> bool:
    """Whether the question asks several things ("Who wrote Hamlet, and what is 17 * 23?"):
    only then is the model asked to split it (a small model splits a single question into
    fragments)."""
    return bool(_COMPOUND.search(question))


_WORDS = [(r"\bmultiplied by\b|\btimes\b|×", "*"), (r"\bdivided by\b|÷", "/"), (r"\bplus\b", "+"),
          (r"\bminus\b", "-"), (r"\bsquared\b", "**2"), (r"\bcubed\b", "**3"), (r"\bto the power of\b", "**")]
_EXPR = re.compile(r"[\d(][\d\s.,+\-*/^%()]*[\d)](?:\s*\*\*\s*\d+)?")


def expression(task: str) -> str | None:
    """The arithmetic expression a task states ("What is 393 plus 66 times 44?" -> "393 + 66 * 44"),
    when it states one the calculator can evaluate."""
    from ...tools.calculator import evaluate

    text = task
    for rx, sym in _WORDS:
        text = re.sub(rx, f" {sym} ", text, flags=re.I)
    best = None
    for m in _EXPR.finditer(text):
        e = " ".join(m.group(0).split()).strip(" ,")
        if re.search(r"\d\s*(?:\*\*|[+\-*/^%])\s*[\d(]", e) and (best is None or len(e) > len(best)):
            best = e
    if best is None:
        return None
    try:
        evaluate(best)
    except Exception:
        return None
    return best


def _first_call(item: PlanItem) -> PlanItem:
    """The planner makes the first call itself where the task states its argument: a search
    is looked up as the task is written, an arithmetic expression is evaluated as stated (a
    small model retypes the tool's description or an example instead)."""
    if item.calls:
        return item
    if item.tool == "search":
        return item.model_copy(update={"calls": [json.dumps({"query": item.task}, ensure_ascii=False)]})
    if item.tool == "calculator" and (e := expression(item.task)):
        return item.model_copy(update={"calls": [json.dumps({"expression": e}, ensure_ascii=False)]})
    return item


def named(text: str, candidates: list[str]) -> list[str]:
    """The candidates ``text`` names (whole words, case-insensitive; longest first, so
    "Blue Nile" is not also "Nile"), in ``candidates``' order."""
    low = text.lower()
    found = set()
    for c in sorted(candidates, key=len, reverse=True):
        rx = re.compile(r"(?<!\w)" + re.escape(c.lower()) + r"(?!\w)")
        if rx.search(low):
            found.add(c)
            low = rx.sub(" ", low)
    return [c for c in candidates if c in found]


def _model_plan(engine: Engine, question: str, tools: list[str], n: int, seed: int | None,
                descriptions: dict[str, str] | None) -> tuple[list[PlanItem], Usage]:
    p = prompts.load("agent")
    examples = [(q, a) for q, a in p["planner_examples"]
                if all(s["tool"] in tools for s in json.loads(a)["subtasks"])]
    msgs = _fewshot(p["planner"].format(n=n, tools=tool_lines(tools, descriptions)), examples, lambda a: a)
    msgs.append(Message(role="user", content=question))
    item = {"type": "object", "properties": {"task": {"type": "string", "maxLength": 200},
                                             "tool": {"type": "string", "enum": tools}},
            "required": ["task", "tool"]}
    schema = {"type": "object", "properties": {"subtasks": {"type": "array", "items": item, "minItems": 1,
                                                            "maxItems": n}}, "required": ["subtasks"]}
    c = engine.generate(_schema_request(msgs, schema, 64 * n + 32, seed))
    try:
        raw = json.loads(c.text)["subtasks"]
        items = [PlanItem(task=s["task"].strip(), tool=s["tool"]) for s in raw if s.get("task", "").strip()]
    except (ValueError, KeyError, TypeError, AttributeError):
        items = []
    # the same task twice is one task; a plan of one task is no better than routing the question
    seen: set[str] = set()
    items = [it for it in items if not (it.task.lower() in seen or seen.add(it.task.lower()))]
    if len(items) == 1:
        items = []
    return items[:n], c.usage


_KIND = re.compile(r"\b(?:are|were|is|was)\s+(?:the\s+|all\s+)?(?P<kind>[\w\s-]+?)\s*$", re.I)


def kind_word(head: str) -> str | None:
    """The noun a list question asks about ("Which of the following are chemical elements" ->
    "element"), singular; None when the head names no kind."""
    m = _KIND.search(head.strip(" ?:"))
    if not m:
        return None
    word = m.group("kind").split()[-1].lower()
    if word.endswith("ies"):
        return word[:-3] + "y"
    return word[:-1] if word.endswith("s") and not word.endswith("ss") else word


def kept(text: str, items: list[str], kind: str | None) -> list[str]:
    """The candidates whose line in ``text`` (a sub-agent's "Name: what it is" lines) names
    ``kind`` (singular or plural); with no kind, the candidates the text names."""
    if not kind:
        return named(text, items)
    rx = re.compile(r"\b" + re.escape(kind) + r"(?:s|es)?\b" if not kind.endswith("y")
                    else r"\b(?:" + re.escape(kind) + "|" + re.escape(kind[:-1]) + r"ies)\b", re.I)
    out: list[str] = []
    for line in text.splitlines():
        hits = named(line, items)
        if len(hits) == 1 and rx.search(line) and hits[0] not in out:
            out.append(hits[0])
    return [c for c in items if c in out]
