"""Agent mode: a planner splits the task, sub-agents with tools work on it in parallel, a
synthesis merges what they found and cites it.

- Plan (``plan.py``): by rule for a question that names its candidates, else by the model under
  a grammar (subtasks and their tools), or only a routed tool for one task.
- Sub-agents (``loop.py``): each a loop of think → tool call → observation with a step limit
  and a time limit; all sub-agents' requests of one step are one ``generate_many`` batch; tool
  calls go through the ``ToolBox`` (``tools/``: built-ins from entry points, MCP servers'
  tools), under its limits, with errors fed back to the model as text.
- Synthesis: with more than one sub-agent, one request writes the final answer from their
  findings and cites the sources (``[S1]``…) they read; with one, its answer is the answer.

Every step is in the ``AgentRunTrace`` (stored with the conversation, shown by ``--json`` and
the server's ``muse`` object). Live events: ``status`` (launched / call / observed / done) and
``agent`` text per sub-agent, then the synthesis as ``answer`` text.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from pydantic import Field

from ... import prompts
from ...assistant.result import AgentRunTrace, Result
from ...engines.base import Engine
from ...errors import ConfigError
from ...tools.base import ToolBox, ToolSettings
from ...types import ChatRequest, Delta, Message, Usage
from ..base import Mode, ModeOptions, OnEvent, last_question
from . import loop
from .plan import kept as keep
from .plan import kind_word, list_items
from .plan import plan as make_plan


class AgentOptions(ModeOptions):
    subagents: int = Field(default=4, ge=1, le=8, description="Most sub-agents working in parallel (1-8).")
    steps: int = Field(default=3, ge=1, le=10, description="Most tool-call rounds per sub-agent.")
    step_tokens: int = Field(default=160, ge=16, le=2048, description="Most tokens a sub-agent writes per step.")
    time_s: float = Field(default=120.0, gt=0, le=3600, description="Most seconds each sub-agent may work.")
    planner: bool = Field(default=True, description="Plan subtasks and their tools (off: the sub-agent picks).")
    tools: str = Field(default="", description="Built-in tools offered, comma-separated (default: calculator, "
                                               "python, search; fetch and web_search when enabled).")


class AgentMode(Mode):
    name = "agent"
    summary = "a planner splits the task; sub-agents search, run code and calculate in parallel; a synthesis cites them"
    Options = AgentOptions
    options: AgentOptions

    def __init__(self, options=None):
        super().__init__(options)
        self.tool_settings = ToolSettings()  # set by the Assistant (the operator's limits and switches)

    def toolbox(self, settings: ToolSettings | None = None) -> ToolBox:
        """The tools this request offers (``ConfigError`` for a name unknown or not enabled)."""
        names = [n.strip() for n in self.options.tools.split(",") if n.strip()] or None
        return ToolBox.load(names, settings or self.tool_settings)

    def run(self, engine: Engine, messages: Sequence[Message], on_event: OnEvent | None = None) -> Result:
        o = self.options
        t0 = time.perf_counter()
        question = last_question(messages)
        box = self.toolbox()
        try:
            if not box.names:
                raise ConfigError("agent mode has no tools to offer")
            how, plan, usage = make_plan(engine, question, box.names, o.subagents, o.planner, o.seed,
                                         {t.name: t.description for t in box.specs()})
            t_plan = time.perf_counter()
            lanes = loop.lanes_for(plan, o.time_s)
            _with_context(lanes, messages)
            sources = loop.Sources()
            batches = loop.run(engine, lanes, box, steps=o.steps, step_tokens=o.step_tokens,
                               temperature=o.temperature, seed=o.seed, on_event=on_event, sources=sources)
        finally:
            box.close()
        t_agents = time.perf_counter()
        usage = usage + sum((ln.trace.usage for ln in lanes), Usage())
        if how == "list":
            answer, synth = _merge_lists(question, lanes, sources, on_event), Usage()
        else:
            answer, synth = _synthesis(engine, question, lanes, sources, o, on_event)
        usage = usage + synth
        trace = AgentRunTrace(planner=how, plan=plan, subagents=[ln.trace for ln in lanes], sources=sources.items,
                              batches=batches, tools=box.names,
                              synthesis=answer if len(lanes) > 1 and how != "list" else "",
                              tool_calls=sum(1 for ln in lanes for s in ln.trace.steps if s.call))
        t1 = time.perf_counter()
        return Result(answer=answer, usage=usage, model=engine.model, mode=self.name, trace=trace,
                      timings={"wall_s": t1 - t0, "plan_s": t_plan - t0, "agents_s": t_agents - t_plan,
                               "synthesis_s": t1 - t_agents})


def _with_context(lanes: list[loop.Lane], messages: Sequence[Message]) -> None:
    """Earlier turns of the conversation go before each sub-agent's task (its own system
    message first)."""
    earlier = [m for m in messages[:-1] if m.role in ("user", "assistant") and not m.tool_calls]
    if earlier:
        for ln in lanes:
            ln.messages[1:1] = earlier[-6:]


def _findings(lanes: list[loop.Lane], sources: loop.Sources) -> str:
    out = []
    for ln in lanes:
        cited = [s for s in sources.items if s["agent"] == ln.index + 1]
        refs = "; ".join(f"[{s['id']}] {s['title']}" for s in cited[:6])
        results = [s.observation.get("text", "") for s in ln.trace.steps
                   if s.observation and s.observation.get("ok") and s.call and s.call.name != "search"]
        line = f"- Helper {ln.index + 1} ({ln.item.task}): {ln.trace.answer or '(no answer)'}"
        if results:
            line += f" Tool results: {' | '.join(r[:200] for r in results[:3])}"
        if refs:
            line += f" Sources: {refs}"
        out.append(line)
    return "\n".join(out)


def _merge_lists(question: str, lanes: list[loop.Lane], sources: loop.Sources, on_event: OnEvent | None) -> str:
    """A list question's answer: the candidates each sub-agent's reading says are of the kind
    asked (``plan.kept``; the shares do not overlap, so their union is the answer), each with
    the source it read."""
    listed = list_items(question)
    kind = kind_word(listed[0]) if listed else None
    kept = []
    for ln in lanes:
        for name in keep(ln.trace.answer, ln.item.items, kind):
            src = next((s for s in sources.items if s["agent"] == ln.index + 1
                        and s["title"].lower() == name.lower()), None)
            kept.append(f"{name} [{src['id']}]" if src else name)
    answer = ", ".join(kept) if kept else "none"
    if on_event:
        on_event(Delta(kind="answer", text=answer))
    return answer


def _synthesis(engine: Engine, question: str, lanes: list[loop.Lane], sources: loop.Sources,
               o: AgentOptions, on_event: OnEvent | None) -> tuple[str, Usage]:
    if len(lanes) == 1:
        ln = lanes[0]
        cited = [s for s in sources.items if s["agent"] == 1 and f"[{s['id']}]" not in ln.trace.answer]
        answer = ln.trace.answer or "(no answer)"
        if cited and not any(f"[{s['id']}]" in answer for s in sources.items):
            answer += "\n\nSources: " + "; ".join(f"[{s['id']}] {s['title']}" for s in cited[:4])
        return answer, Usage()
    p = prompts.load("agent")
    msg = p["synthesis"].format(question=question, findings=_findings(lanes, sources))
    req = ChatRequest(messages=(Message(role="user", content=msg),), max_tokens=o.max_tokens,
                      temperature=o.temperature, seed=o.seed)
    c = engine.generate_many([req], on_delta=on_event)[0]
    return c.text.strip(), c.usage
