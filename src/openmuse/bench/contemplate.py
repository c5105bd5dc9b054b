"""``muse bench contemplate``: the scaling ladder of Contemplating mode on the project's own
seeded problem set (``bench/problems.py``), measured in one run.

1. *Ladder.* Every N is run for real on every item, all agents to the end, through the mode's
   own ``run_agents_many`` (the agents of several items fill one engine batch, so the machine
   is kept busy). Majority and confidence-weighted votes are read off the same agents; the
   synthesizer runs at every N > 1 (its requests batched across items).
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
from pathlib import Path
from typing import Any

from ..engines.base import Engine
from ..modes import ModeSettings
from ..modes.contemplating import ContemplatingMode, synthesis
from ..modes.contemplating import agents as agents_mod
from ..modes.contemplating.vote import vote
from ..types import ChatRequest, Completion, Message
from . import environment
from .problems import Problem, generate

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
    kinds = [agents_mod.answer_kind(p.question) for p in problems]
    batch = engine.capabilities.parallel_sequences

    def correct(p: Problem, answer: str | None) -> bool:
        return answer is not None and answer == p.answer

    def confidence_vote(tr: list[Completion]):
        return vote([a.text or None for a in tr], [a.extra["confidence"] for a in tr])

    def synthesize(trs: list[list[Completion]], idx: list[int]) -> dict[int, Completion]:
        reqs = [synthesis.request(problems[i].question, trs[i], confidence_vote(trs[i]), 512) for i in idx]
        return dict(zip(idx, _batched(engine, reqs, batch)))

    # 1. the ladder: every N run for real, all agents to the end (items share full batches)
    traces: dict[int, list[list[Completion]]] = {}
    synths: dict[int, dict[int, Completion]] = {}
    for n in ladder:
        t0 = time.perf_counter()
        mode = ContemplatingMode(ModeSettings(agents=n, budget=budget, early_stop=False))
        traces[n] = [tr for tr, _ in mode.run_agents_many(engine, convs)]
        msg = f"{n} agent(s) × {items} items: {time.perf_counter() - t0:.0f}s"
        if n > 1:
            synths[n] = synthesize(traces[n], list(range(items)))
            msg += " (with synthesis)"
        say(msg)

    # 2. one agent sampled: agent 1's prompt at temperature 0.3, seeded
    first = agents_mod.specs(1, None)[0]
    hot = [agents_mod.requests(c, [first], budget)[0].model_copy(update={"temperature": 0.3, "seed": seed + 7 + i})
           for i, c in enumerate(convs)]
    sampled = _batched(engine, hot, batch)
    sampled_hits = sum(correct(p, agents_mod.agent_result(first, c, p.question, 1).text or None)
                       for p, c in zip(problems, sampled))
    say("one agent sampled: done")

    # 3. speed on a few items: one question's agents batched vs one after another
    speed: dict[int, dict[str, float]] = {}
    clear = getattr(engine, "clear_cache", lambda: None)
    for n in ladder:
        specs = agents_mod.specs(n, None)
        b_wall = s_wall = syn_wall = 0.0
        for p, conv in zip(problems[:timing_items], convs[:timing_items]):
            reqs = agents_mod.requests(conv, specs, budget)
            b_best = s_best = math.inf
            for rep in range(timing_repeats):  # best of the repeats, in alternating order
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
                tr = [agents_mod.agent_result(sp, c, p.question, 1) for sp, c in zip(specs, outs)]
                t0 = time.perf_counter()
                engine.generate(synthesis.request(p.question, tr, confidence_vote(tr), 512))
                syn_wall += time.perf_counter() - t0
        m = max(min(timing_items, items), 1)
        speed[n] = {"batched_s": b_wall / m, "sequential_s": s_wall / m, "synthesis_s": syn_wall / m}
        say(f"timing at {n} agents: batched {b_wall / m:.2f}s, one by one {s_wall / m:.2f}s per question")

    ladder_rows: list[dict[str, Any]] = []
    for n in ladder:
        agent_tokens = sum(a.usage.completion_tokens for tr in traces[n] for a in tr)
        prompt_tokens = sum(a.usage.prompt_tokens for tr in traces[n] for a in tr)
        for agg in AGGREGATORS if n > 1 else ("single",):
            hits = 0
            tokens, wall = agent_tokens + prompt_tokens, speed[n]["batched_s"]
            for i, (p, tr) in enumerate(zip(problems, traces[n])):
                if agg == "single":
                    final = tr[0].text or None
                elif agg == "majority":
                    final = vote([a.text or None for a in tr]).winner
                elif agg == "confidence":
                    final = confidence_vote(tr).winner
                else:
                    final, _ = synthesis.decide(synths[n][i].text, p.question, kinds[i], confidence_vote(tr))
                hits += correct(p, final)
            if agg == "synthesis":
                tokens += sum(c.usage.total_tokens for c in synths[n].values())
                wall += speed[n]["synthesis_s"]
            ladder_rows.append({
                "agents": n, "aggregator": agg, "accuracy": round(hits / items, 4),
                "ci95": wilson(hits, items), "tokens": tokens, "reasoning_tokens": agent_tokens,
                "tokens_per_item": round(tokens / items, 1), "wall_s": round(wall, 3),
            })

    # 4. early stop for real at early_stop_agents, against the same N run to the end
    n_es = early_stop_agents
    es_mode = ContemplatingMode(ModeSettings(agents=n_es, budget=budget, early_stop=True))
    es_runs = es_mode.run_agents_many(engine, convs)
    unsettled = [i for i, (_, skipped) in enumerate(es_runs) if not skipped]
    es_synth = synthesize([tr for tr, _ in es_runs], unsettled)
    es: dict[str, Any] = {"agents": n_es, "items_stopped_early": items - len(unsettled)}
    full_tr = traces[n_es]
    agent_cost = lambda tr: sum(a.usage.total_tokens for a in tr)  # noqa: E731
    es_agent_tokens = sum(agent_cost(tr) for tr, _ in es_runs)
    full_agent_tokens = sum(agent_cost(tr) for tr in full_tr)
    es_total = es_agent_tokens + sum(c.usage.total_tokens for c in es_synth.values())
    full_total = full_agent_tokens + sum(c.usage.total_tokens for c in synths[n_es].values())
    hits = {"es": {"majority": 0, "confidence": 0, "synthesis": 0},
            "full": {"majority": 0, "confidence": 0, "synthesis": 0}}
    for i, p in enumerate(problems):
        tr, skipped = es_runs[i]
        for key, t in (("es", tr), ("full", full_tr[i])):
            hits[key]["majority"] += correct(p, vote([a.text or None for a in t]).winner)
            hits[key]["confidence"] += correct(p, confidence_vote(t).winner)
        # the mode itself: settled items skip the synthesizer, the rest synthesize
        es_final = (confidence_vote(tr).winner if skipped else
                    synthesis.decide(es_synth[i].text, p.question, kinds[i], confidence_vote(tr))[0])
        full_final = synthesis.decide(synths[n_es][i].text, p.question, kinds[i], confidence_vote(full_tr[i]))[0]
        hits["es"]["synthesis"] += correct(p, es_final)
        hits["full"]["synthesis"] += correct(p, full_final)
    # The headline is the mode's default aggregator (the confidence-weighted vote): agents only.
    es.update({
        "aggregator": "confidence",
        "token_saving": round(1 - es_agent_tokens / full_agent_tokens, 4),
        "accuracy_delta": round((hits["es"]["confidence"] - hits["full"]["confidence"]) / items, 4),
        "accuracy": round(hits["es"]["confidence"] / items, 4),
        "accuracy_all_agents": round(hits["full"]["confidence"] / items, 4),
        "accuracy_delta_majority": round((hits["es"]["majority"] - hits["full"]["majority"]) / items, 4),
        "tokens": es_agent_tokens, "tokens_all_agents": full_agent_tokens,
        "with_synthesis": {
            "token_saving": round(1 - es_total / full_total, 4),
            "accuracy_delta": round((hits["es"]["synthesis"] - hits["full"]["synthesis"]) / items, 4),
            "accuracy": round(hits["es"]["synthesis"] / items, 4),
            "accuracy_all_agents": round(hits["full"]["synthesis"] / items, 4),
            "tokens": es_total, "tokens_all_agents": full_total,
        },
    })
    say("early stop: done")

    r8 = speed.get(8) or speed[max(ladder)]
    greedy_hits = sum(correct(p, tr[0].text or None) for p, tr in zip(problems, traces[min(ladder)]))
    report: dict[str, Any] = {
        "args": {"items": items, "seed": seed, "ladder": list(ladder), "budget": budget,
                 "timing_items": timing_items, "timing_repeats": timing_repeats, "early_stop_agents": n_es, "model": engine.model,
                 "engine": engine.name, "families": sorted({p.family for p in problems}),
                 "agents": [sp.approach for sp in agents_mod.specs(max(ladder), None)]},
        "env": environment(),
        "ladder": ladder_rows,
        "single_agent": {
            "greedy": {"accuracy": round(greedy_hits / items, 4), "ci95": wilson(greedy_hits, items)},
            "sampled": {"accuracy": round(sampled_hits / items, 4), "ci95": wilson(sampled_hits, items),
                        "temperature": 0.3},
        },
        "per_family": _per_family(problems, traces),
        "batched_vs_sequential": round(r8["batched_s"] / r8["sequential_s"], 3),
        "batched_vs_sequential_by_agents": {
            str(n): {"batched_s": round(v["batched_s"], 3), "sequential_s": round(v["sequential_s"], 3),
                     "ratio": round(v["batched_s"] / v["sequential_s"], 3)} for n, v in speed.items()},
        "early_stop": es,
        "wall_s_total": round(time.perf_counter() - t_start, 1),
    }
    out = Path(out_dir or "results")
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = out / f"bench-contemplate-{stamp}.json"
    report["plot"] = str(_plot(report, out / f"bench-contemplate-{stamp}.png"))
    path.write_text(json.dumps(report, indent=2) + "\n")
    return report, path


def _per_family(problems: list[Problem], traces: dict[int, list[list[Completion]]]) -> dict[str, Any]:
    """Accuracy per family: one agent, and the confidence-weighted vote at each N."""
    fams: dict[str, dict[str, Any]] = {}
    for n, trs in traces.items():
        for p, tr in zip(problems, trs):
            f = fams.setdefault(p.family, {"items": 0, "hits": {}})
            if n == min(traces):
                f["items"] += 1
            w = vote([a.text or None for a in tr], [a.extra["confidence"] for a in tr]).winner
            f["hits"][n] = f["hits"].get(n, 0) + (w == p.answer)
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
