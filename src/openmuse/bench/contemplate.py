"""``muse bench contemplate``: the scaling ladder of Contemplating mode on the project's own
seeded problem set (``problems.py``), measured in one run.

1. *Ladder.* Every N is run for real on every item, all agents to the end, through the mode's
   own stages: ``run_agents_many`` (the agents of several items fill one engine batch, so the
   machine is kept busy) and ``merge`` (the votes and the synthesizer, as the mode runs them;
   items merge concurrently, so the engine batches their synthesis calls). Majority,
   confidence-weighted and synthesized answers are read off the same ``ContemplationTrace``.
   (Questions go through these stages rather than ``Assistant.answer`` so that every N sees
   the same batch composition; the stages are the mode's own code.)
2. *Single agent.* Agent 1 greedy is the baseline; the same prompt sampled (temperature 0.3,
   seeded) is reported beside it.
3. *Speed.* On ``timing_items`` items, for each N: the mode's agents as one batch, against the
   same requests one after another; plus the synthesis call. Each way is timed
   ``timing_repeats`` times in alternating order and the best time kept (so a busy machine
   disturbs the ratio less); wall times are means per item of those best times.
4. *Early stop.* The mode with early stop on, at ``early_stop_agents``, run for real on every
   item: its tokens (prompt and completion) and accuracy against the same N run to the end,
   for the default aggregator (the confidence-weighted vote), and with the synthesizer (which
   settled items skip) beside it.

Accuracy carries a 95% Wilson interval. Results, arguments and environment go to a JSON file,
with a PNG plot of accuracy and tokens against agents.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..assistant.result import AgentTrace, ContemplationTrace
from ..engines.base import Engine
from ..modes.contemplating import AgentsRun, ContemplatingMode
from ..modes.contemplating import agents as agents_mod
from ..problems import Problem, generate
from ..types import ChatRequest, Completion, Message
from . import environment

AGGREGATORS = ("majority", "confidence", "synthesis")


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 0.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (round(max(0.0, c - h), 4), round(min(1.0, c + h), 4))


def _batched(engine: Engine, reqs: list[ChatRequest], size: int) -> list[Completion]:
    out: list[Completion] = []
    for i in range(0, len(reqs), size):
        out.extend(engine.generate_many(reqs[i:i + size]))
    return out


def _correct(p: Problem, answer: str | None) -> bool:
    return answer is not None and answer == p.answer


def _contemplate(engine: Engine, convs: list[list[Message]], problems: list[Problem], n: int, budget: int,
                 early_stop: bool) -> tuple[list[AgentsRun], list[ContemplationTrace]]:
    """The mode's two stages on every item: agents (batched across items), then ``merge``
    with the synthesis aggregator (items in parallel threads; settled items skip it)."""
    mode = ContemplatingMode({"agents": n, "agent_tokens": budget, "early_stop": early_stop,
                              "aggregator": "synthesis"})
    runs = mode.run_agents_many(engine, convs)
    with ThreadPoolExecutor(max_workers=16) as pool:
        merged = list(pool.map(lambda i: mode.merge(engine, problems[i].question, runs[i])[1], range(len(runs))))
    return runs, merged


def _final(t: ContemplationTrace, aggregator: str) -> str | None:
    if aggregator == "single":
        return t.agents[0].answer
    return t.final_answer if aggregator == "synthesis" else t.votes[aggregator]


def _cost(traces: list[AgentTrace]) -> int:
    return sum(a.usage.total_tokens for a in traces)


def _synth_cost(t: ContemplationTrace) -> int:
    return t.synthesis.usage.total_tokens if t.synthesis else 0


def _speed(engine: Engine, convs: list[list[Message]], n: int, budget: int, items: int, repeats: int) -> dict[str, float]:
    """One question's agents batched against one after another (best of ``repeats``, in
    alternating order), and the synthesis call; mean seconds per question."""
    specs = agents_mod.specs(n, None)
    clear = getattr(engine, "clear_cache", lambda: None)
    mode = ContemplatingMode({"agents": n, "agent_tokens": budget, "early_stop": False, "aggregator": "synthesis"})
    b_wall = s_wall = syn_wall = 0.0
    for conv in convs[:items]:
        reqs = agents_mod.requests(conv, specs, budget)
        b_best = s_best = math.inf
        for rep in range(repeats):
            for way in (("b", "s") if rep % 2 == 0 else ("s", "b")):
                clear()  # neither way starts with the other's prompt in the cache
                t0 = time.perf_counter()
                if way == "b":
                    outs = engine.generate_many(reqs)
                    b_best = min(b_best, time.perf_counter() - t0)
                else:
                    for r in reqs:  # one after another (each reuses what the previous left)
                        engine.generate(r)
                    s_best = min(s_best, time.perf_counter() - t0)
        b_wall += b_best
        s_wall += s_best
        if n > 1:
            question = conv[-1].text()
            run = AgentsRun([agents_mod.agent_result(sp, c, question, 1) for sp, c in zip(specs, outs)])
            t0 = time.perf_counter()
            mode.merge(engine, question, run)
            syn_wall += time.perf_counter() - t0
    m = max(min(items, len(convs)), 1)
    return {"batched_s": b_wall / m, "sequential_s": s_wall / m, "synthesis_s": syn_wall / m}


def _ladder_rows(problems: list[Problem], runs: dict[int, list[AgentsRun]], merged: dict[int, list[ContemplationTrace]],
                 speed: dict[int, dict[str, float]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    items = len(problems)
    for n, trs in merged.items():
        agent_tokens = sum(a.usage.completion_tokens for r in runs[n] for a in r.traces)
        base = sum(_cost(r.traces) for r in runs[n])
        for agg in AGGREGATORS if n > 1 else ("single",):
            hits = sum(_correct(p, _final(t, agg)) for p, t in zip(problems, trs))
            tokens, wall = base, speed[n]["batched_s"]
            if agg == "synthesis":
                tokens += sum(_synth_cost(t) for t in trs)
                wall += speed[n]["synthesis_s"]
            rows.append({
                "agents": n, "aggregator": agg, "accuracy": round(hits / items, 4),
                "ci95": wilson(hits, items), "tokens": tokens, "reasoning_tokens": agent_tokens,
                "tokens_per_item": round(tokens / items, 1), "wall_s": round(wall, 3),
            })
    return rows


def _early_stop(problems: list[Problem], n: int, es: tuple[list[AgentsRun], list[ContemplationTrace]],
                full: tuple[list[AgentsRun], list[ContemplationTrace]]) -> dict[str, Any]:
    """Early stop at ``n`` agents against the same N run to the end: tokens and accuracy for the
    default aggregator (the confidence-weighted vote) and with the synthesizer beside it."""
    items = len(problems)
    (es_runs, es_tr), (full_runs, full_tr) = es, full
    es_agents, full_agents = sum(_cost(r.traces) for r in es_runs), sum(_cost(r.traces) for r in full_runs)
    es_total = es_agents + sum(_synth_cost(t) for t in es_tr)
    full_total = full_agents + sum(_synth_cost(t) for t in full_tr)
    hits = {key: {agg: sum(_correct(p, _final(t, agg)) for p, t in zip(problems, trs)) for agg in AGGREGATORS}
            for key, trs in (("es", es_tr), ("full", full_tr))}
    return {
        "agents": n, "items_stopped_early": sum(1 for r in es_runs if r.skipped), "aggregator": "confidence",
        # the engine's batch noise: launched agents whose answer or confidence differs from the
        # same agent in the full run (0 on a reproducible engine), and final answers that differ
        "agents_differing": sum(a.answer != b.answer or a.confidence != b.confidence
                                for re, rf in zip(es_runs, full_runs) for a in re.traces
                                for b in rf.traces if b.agent == a.agent),
        "answers_changed": sum(_final(a, "confidence") != _final(b, "confidence") for a, b in zip(es_tr, full_tr)),
        "token_saving": round(1 - es_agents / full_agents, 4),
        "accuracy_delta": round((hits["es"]["confidence"] - hits["full"]["confidence"]) / items, 4),
        "accuracy": round(hits["es"]["confidence"] / items, 4),
        "accuracy_all_agents": round(hits["full"]["confidence"] / items, 4),
        "accuracy_delta_majority": round((hits["es"]["majority"] - hits["full"]["majority"]) / items, 4),
        "tokens": es_agents, "tokens_all_agents": full_agents,
        "with_synthesis": {
            "token_saving": round(1 - es_total / full_total, 4),
            "accuracy_delta": round((hits["es"]["synthesis"] - hits["full"]["synthesis"]) / items, 4),
            "accuracy": round(hits["es"]["synthesis"] / items, 4),
            "accuracy_all_agents": round(hits["full"]["synthesis"] / items, 4),
            "tokens": es_total, "tokens_all_agents": full_total,
        },
    }


def run_contemplate_bench(
    engine: Engine,
    items: int = 200,
    seed: int = 0,
    ladder: tuple[int, ...] = (1, 2, 4, 8, 16),
    budget: int = 64,
    timing_items: int = 12,
    timing_repeats: int = 3,
    early_stop_agents: int = 8,
    out_dir: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, Any], Path]:
    say = progress or (lambda _m: None)
    t_start = time.perf_counter()
    problems = generate(items, seed=seed)
    convs = [[Message(role="user", content=p.question)] for p in problems]

    # 1. the ladder: every N run for real, all agents to the end
    runs: dict[int, list[AgentsRun]] = {}
    merged: dict[int, list[ContemplationTrace]] = {}
    for n in ladder:
        t0 = time.perf_counter()
        runs[n], merged[n] = _contemplate(engine, convs, problems, n, budget, early_stop=False)
        say(f"{n} agent(s) × {items} items: {time.perf_counter() - t0:.0f}s")

    # 2. one agent sampled: agent 1's prompt at temperature 0.3, seeded
    first = agents_mod.specs(1, None)[0]
    hot = [agents_mod.requests(c, [first], budget)[0].model_copy(update={"temperature": 0.3, "seed": seed + 7 + i})
           for i, c in enumerate(convs)]
    sampled = _batched(engine, hot, engine.capabilities.parallel_sequences)
    sampled_hits = sum(_correct(p, agents_mod.agent_result(first, c, p.question, 1).answer)
                       for p, c in zip(problems, sampled))
    say("one agent sampled: done")

    # 3. speed on a few items: one question's agents batched vs one after another
    speed: dict[int, dict[str, float]] = {}
    for n in ladder:
        speed[n] = _speed(engine, convs, n, budget, timing_items, timing_repeats)
        say(f"timing at {n} agents: batched {speed[n]['batched_s']:.2f}s, "
            f"one by one {speed[n]['sequential_s']:.2f}s per question")

    # 4. early stop for real at early_stop_agents, against the same N run to the end
    n_es = early_stop_agents
    full = (runs[n_es], merged[n_es]) if n_es in runs else _contemplate(engine, convs, problems, n_es, budget, False)
    es = _early_stop(problems, n_es, _contemplate(engine, convs, problems, n_es, budget, early_stop=True), full)
    say("early stop: done")

    args = {"items": items, "seed": seed, "ladder": list(ladder), "budget": budget, "timing_items": timing_items,
            "timing_repeats": timing_repeats, "early_stop_agents": n_es}
    report = _report(_args(engine, args, problems, ladder), problems, runs, merged, speed, sampled_hits, es)
    report["wall_s_total"] = round(time.perf_counter() - t_start, 1)
    out = Path(out_dir or "results")
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = out / f"bench-contemplate-{stamp}.json"
    report["plot"] = str(_plot(report, out / f"bench-contemplate-{stamp}.png"))
    path.write_text(json.dumps(report, indent=2) + "\n")
    return report, path


def _args(engine: Engine, args: dict[str, Any], problems: list[Problem], ladder: tuple[int, ...]) -> dict[str, Any]:
    """The run's arguments with the engine's: model, engine, whether it was reproducible."""
    return {**args, "model": engine.model, "engine": engine.name,
            "reproducible": bool(getattr(getattr(engine, "settings", None), "reproducible", False)),
            "families": sorted({p.family for p in problems}),
            "agents": [sp.approach for sp in agents_mod.specs(max(ladder), None)],
            "early_stop_launch": [i + 1 for i in agents_mod.launch_order(args["early_stop_agents"])]}


def _report(args: dict[str, Any], problems: list[Problem], runs: dict[int, list[AgentsRun]],
            merged: dict[int, list[ContemplationTrace]], speed: dict[int, dict[str, float]], sampled_hits: int,
            es: dict[str, Any]) -> dict[str, Any]:
    items, ladder = len(problems), args["ladder"]
    r8 = speed.get(8) or speed[max(ladder)]
    greedy_hits = sum(_correct(p, t.agents[0].answer) for p, t in zip(problems, merged[min(ladder)]))
    return {
        "args": args,
        "env": environment(),
        "ladder": _ladder_rows(problems, runs, merged, speed),
        "single_agent": {
            "greedy": {"accuracy": round(greedy_hits / items, 4), "ci95": wilson(greedy_hits, items)},
            "sampled": {"accuracy": round(sampled_hits / items, 4), "ci95": wilson(sampled_hits, items),
                        "temperature": 0.3},
        },
        "per_family": _per_family(problems, merged),
        "batched_vs_sequential": round(r8["batched_s"] / r8["sequential_s"], 3),
        "batched_vs_sequential_by_agents": {
            str(n): {"batched_s": round(v["batched_s"], 3), "sequential_s": round(v["sequential_s"], 3),
                     "ratio": round(v["batched_s"] / v["sequential_s"], 3)} for n, v in speed.items()},
        "early_stop": es,
    }


def _per_family(problems: list[Problem], merged: dict[int, list[ContemplationTrace]]) -> dict[str, Any]:
    """Accuracy per family: the confidence-weighted vote at each N (one agent at N = 1)."""
    fams: dict[str, dict[str, Any]] = {}
    for n, trs in merged.items():
        for p, tr in zip(problems, trs):
            f = fams.setdefault(p.family, {"items": 0, "hits": {}})
            if n == min(merged):
                f["items"] += 1
            f["hits"][n] = f["hits"].get(n, 0) + (tr.votes["confidence"] == p.answer)
    return {k: {"items": v["items"], **{f"confidence_vote_{n}": round(h / v["items"], 3)
                                         for n, h in sorted(v["hits"].items())}}
            for k, v in fams.items()}


def _plot(report: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    rows = report["ladder"]
    single = [r for r in rows if r["aggregator"] == "single"]
    for agg, style in (("majority", "o-"), ("confidence", "s-"), ("synthesis", "^-")):
        pts = single + [r for r in rows if r["aggregator"] == agg]
        xs = [r["agents"] for r in pts]
        ys = [r["accuracy"] for r in pts]
        err = [[r["accuracy"] - r["ci95"][0] for r in pts], [r["ci95"][1] - r["accuracy"] for r in pts]]
        ax.errorbar(xs, ys, yerr=err, fmt=style, capsize=3, label=agg)
    sampled = report["single_agent"]["sampled"]["accuracy"]
    ax.axhline(sampled, color="grey", linestyle=":", label="one agent, sampled T=0.3")
    ax.set_xscale("log", base=2)
    ax.set_xticks(report["args"]["ladder"], [str(n) for n in report["args"]["ladder"]])
    ax.set_xlabel("agents")
    ax.set_ylabel("accuracy (95% interval)")
    ax2 = ax.twinx()
    maj = [r for r in rows if r["aggregator"] in ("single", "majority")]
    ax2.bar([r["agents"] for r in maj], [r["tokens_per_item"] for r in maj], alpha=0.15,
            width=[0.3 * r["agents"] for r in maj], color="tab:purple", label="tokens per item")
    ax2.set_ylabel("tokens per item (agents)")
    lines, labels = ax.get_legend_handles_labels()
    l2, lb2 = ax2.get_legend_handles_labels()
    ax.legend(lines + l2, labels + lb2, loc="lower right", fontsize=8)
    ax.set_title(f"Contemplating on {report['args']['model']} · {report['args']['items']} items")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
