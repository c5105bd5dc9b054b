"""``muse bench agents``: the agent mode measured side by side in one run.

- **deepsearch**: the same list questions (``evals/tasks/deepsearch.py``, seeded) answered by
  1 sub-agent and by N in parallel, alternating per question so both see the same machine load:
  set F1, precision, recall, fully correct, tool calls, completion tokens and wall time per
  question, and the ratios (F1 of N over 1; wall time of 1 over N).
- **toolchoice**: tasks with a known right tool (``evals/tasks/toolchoice.py``) with the planner
  (it routes the task) and without it (the sub-agent picks under ``tool_choice: required``):
  the rate at which the first call used the right tool, overall and per tool; and the rate at
  which the right tool was *picked* (the planner's choice, or the tool the sub-agent's first
  step names even when its call was cut before it parsed); requests a safety check refused.

Everything goes through the ``Assistant``. The report (``results/bench-agents-TIME.json``)
holds the arguments, the environment, every item and the figures.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..assistant import Assistant
from ..assistant.result import AgentRunTrace, Result
from ..evals.tasks import deepsearch, toolchoice
from ..modes.agent.plan import named
from ..records import environment, write_json
from ..types import Message


def _ask(assistant: Assistant, question: str, options: dict[str, Any]) -> tuple[Result, float]:
    t0 = time.perf_counter()
    r = assistant.answer([Message(role="user", content=question)], "agent", options)
    return r, time.perf_counter() - t0


def _trace(r: Result) -> AgentRunTrace | None:
    return r.trace if isinstance(r.trace, AgentRunTrace) else None


def _deepsearch(assistant: Assistant, seed: int, n: int, subagents: int, base: dict[str, Any],
                tick: Callable[[str], None]) -> dict[str, Any]:
    rows = []
    for i, q in enumerate(deepsearch.generate(n, seed)):
        row: dict[str, Any] = {"question": q["question"], "answer": q["answer"]}
        for k in (1, subagents) if i % 2 == 0 else (subagents, 1):
            r, wall = _ask(assistant, q["question"], {**base, "subagents": k})
            got = named(r.answer, q["candidates"]) if r.answer.strip().lower() != "none" else []
            t = _trace(r)
            row[f"n{k}"] = {"answer": r.answer, "got": got, **deepsearch.set_scores(got, q["answer"]),
                            "tool_calls": t.tool_calls if t else 0, "batches": t.batches if t else [],
                            "completion_tokens": r.usage.completion_tokens, "wall_s": round(wall, 2)}
        rows.append(row)
        tick(f"deepsearch {i + 1}/{n}")
    fig = {}
    for k in (1, subagents):
        m = len(rows) or 1
        fig[f"n{k}"] = {x: round(sum(r[f"n{k}"][x] for r in rows) / m, 4)
                        for x in ("f1", "precision", "recall", "fully_correct", "tool_calls",
                                  "completion_tokens", "wall_s")}
    one, many = fig["n1"], fig[f"n{subagents}"]
    fig["f1_ratio"] = round(many["f1"] / one["f1"], 3) if one["f1"] else None
    fig["wall_ratio_1_over_n"] = round(one["wall_s"] / many["wall_s"], 3) if many["wall_s"] else None
    return {"figures": fig, "items": rows}


def _picked(r: Result, planner: bool) -> str | None:
    """The tool chosen, whether or not the call that followed parsed: the planner's choice, or
    the tool a sub-agent's first step names (its call cut by the token limit still names it)."""
    t = _trace(r)
    if t is None:
        return None
    if planner and t.plan:
        return t.plan[0].tool
    first = t.subagents[0].steps[0] if t.subagents and t.subagents[0].steps else None
    if first is None:
        return None
    if first.call is not None:
        return first.call.name
    m = re.search(r'"name"\s*:\s*"([^"]+)"', first.text)
    return m.group(1) if m and m.group(1) in t.tools else None


def _toolchoice(assistant: Assistant, seed: int, n: int, base: dict[str, Any],
                tick: Callable[[str], None]) -> dict[str, Any]:
    rows = []
    for i, q in enumerate(toolchoice.generate(n, seed)):
        row: dict[str, Any] = {"question": q["question"], "tool": q["tool"]}
        for planner in (True, False):
            r, wall = _ask(assistant, q["question"], {**base, "subagents": 1, "steps": 1, "planner": planner})
            got = toolchoice.first_tool(r)
            pick = _picked(r, planner) or got
            row["planner" if planner else "no_planner"] = {"tool": got, "right": got == q["tool"], "picked": pick,
                                                           "picked_right": pick == q["tool"],
                                                           "refused": r.finish_reason == "content_filter",
                                                           "wall_s": round(wall, 2)}
        rows.append(row)
        tick(f"toolchoice {i + 1}/{n}")
    fig: dict[str, Any] = {}
    for key in ("planner", "no_planner"):
        m = len(rows) or 1
        by: dict[str, list[bool]] = {}
        for r in rows:
            by.setdefault(r["tool"], []).append(r[key]["right"])
        fig[key] = {"rate": round(sum(r[key]["right"] for r in rows) / m, 4),
                    "by_tool": {t: round(sum(v) / len(v), 4) for t, v in sorted(by.items())},
                    "picked_rate": round(sum(r[key]["picked_right"] for r in rows) / m, 4),
                    "refused_by_checks": sum(r[key]["refused"] for r in rows)}
    return {"figures": fig, "items": rows}


def run_agents_bench(assistant: Assistant, seed: int, n_search: int, n_choice: int, subagents: int,
                     steps: int, out_path: str | None, console: Any = None) -> tuple[dict[str, Any], Path]:
    t0 = time.perf_counter()
    tick = (lambda s: console.print(f"[dim]{s} · {time.perf_counter() - t0:.0f} s[/]")) if console else (lambda s: None)
    args = {"seed": seed, "n_search": n_search, "n_choice": n_choice, "subagents": subagents, "steps": steps,
            "engine": assistant.engine.name, "model": assistant.engine.model}
    report: dict[str, Any] = {"args": args, "environment": environment()}
    if n_search:
        report["deepsearch"] = _deepsearch(assistant, seed, n_search, subagents, {"steps": steps, "tools": "search"},
                                           tick)
    if n_choice:
        report["toolchoice"] = _toolchoice(assistant, seed, n_choice, {}, tick)
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    path = Path(out_path or f"results/bench-agents-{time.strftime('%Y%m%d-%H%M%S')}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    return report, write_json(path, report)
