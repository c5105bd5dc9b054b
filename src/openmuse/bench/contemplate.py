"""``muse bench contemplate``: the scaling ladder of Contemplating mode on the project's own
seeded problem set (``bench/problems.py``), measured in one run.

1. *Ladder.* Every item gets the full set of agents (the largest N) in one batch. Agents are
   greedy and each one's prompt does not depend on N, and the local engine's batched greedy
   output equals its single output, so agents 1..N of that batch are exactly what an N-agent
   run launches: majority and confidence-weighted votes at each N are read off them. The
   synthesizer really runs at every N > 1 (its requests batched across items).
2. *Single agent.* Agent 1 greedy is the baseline; the same prompt sampled (temperature 0.3,
   seeded) is reported beside it.
3. *Speed.* On ``timing_items`` items, for each N: the mode's agents as one batch, against the
   same requests one after another; plus the synthesis call. Wall times are means per item.
4. *Early stop.* The mode with early stop on, at ``early_stop_agents``, run for real on every
   item: its tokens and accuracy against all agents run to the end.

Accuracy carries a 95% Wilson interval. Results, arguments and environment go to a JSON file,
with a PNG plot of accuracy and tokens against agents.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import __version__
from ..engines.base import Engine
from ..modes import ModeSettings
from ..modes.contemplating import ContemplatingMode
from ..modes.contemplating import agents as agents_mod
from ..modes.contemplating import synthesis
from ..modes.contemplating.vote import vote
from ..types import ChatRequest, Completion, Message
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
    budget: int = 96,
    timing_items: int = 12,
    early_stop_agents: int = 8,
    out_dir: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, Any], Path]:
    say = progress or (lambda _m: None)
    t_start = time.perf_counter()
    problems = generate(items, seed=seed)
    n_max = max(ladder)
    settings = ModeSettings(agents=n_max, budget=budget, early_stop=False, aggregator="majority")
    mode = ContemplatingMode(settings)
    specs = agents_mod.specs(n_max, None)
    batch = engine.capabilities.parallel_sequences

    # 1. all agents of every item, one batch per item
    traces: list[list[Completion]] = []
    for k, p in enumerate(problems):
        msgs = [Message(role="user", content=p.question)]
        outs = engine.generate_many(agents_mod.requests(msgs, specs, budget))
        traces.append([agents_mod.agent_result(s, c, p.question, 1) for s, c in zip(specs, outs)])
        if (k + 1) % 20 == 0:
            say(f"agents: {k + 1}/{items} items")

    def correct(p: Problem, answer: str | None) -> bool:
        return answer is not None and answer == p.answer

    ladder_rows: list[dict[str, Any]] = []
    synth_by_n: dict[int, list[Completion]] = {}
    for n in ladder:
        if n > 1:
            reqs = []
            for p, tr in zip(problems, traces):
                sub = tr[:n]
                w = vote([a.text or None for a in sub], [a.extra["confidence"] for a in sub])
                reqs.append(synthesis.request(p.question, sub, w, 512))
            synth_by_n[n] = _batched(engine, reqs, batch)
            say(f"synthesis at {n} agents done")

    # 3. speed, on a few items (means per item)
    speed: dict[int, dict[str, float]] = {}
    for n in ladder:
        b_wall = s_wall = syn_wall = 0.0
        for p in problems[:timing_items]:
            msgs = [Message(role="user", content=p.question)]
            reqs = agents_mod.requests(msgs, specs[:n], budget)
            t0 = time.perf_counter()
            outs = engine.generate_many(reqs)
            b_wall += time.perf_counter() - t0
            t0 = time.perf_counter()
            for r in reqs:
                engine.generate(r)
            s_wall += time.perf_counter() - t0
            if n > 1:
                tr = [agents_mod.agent_result(s, c, p.question, 1) for s, c in zip(specs, outs)]
                w = vote([a.text or None for a in tr], [a.extra["confidence"] for a in tr])
                t0 = time.perf_counter()
                engine.generate(synthesis.request(p.question, tr, w, 512))
                syn_wall += time.perf_counter() - t0
        m = max(timing_items, 1)
        speed[n] = {"batched_s": b_wall / m, "sequential_s": s_wall / m, "synthesis_s": syn_wall / m}
        say(f"timing at {n} agents: batched {b_wall / m:.2f}s, one by one {s_wall / m:.2f}s per item")

    for n in ladder:
        sub_tr = [tr[:n] for tr in traces]
        agent_tokens = sum(a.usage.completion_tokens for tr in sub_tr for a in tr)
        prompt_tokens = sum(a.usage.prompt_tokens for tr in sub_tr for a in tr)
        for agg in AGGREGATORS if n > 1 else ("single",):
            hits = 0
            tokens, reasoning = agent_tokens + prompt_tokens, agent_tokens
            wall = speed[n]["batched_s"]
            for i, (p, tr) in enumerate(zip(problems, sub_tr)):
                answers = [a.text or None for a in tr]
                if agg == "single":
                    final = answers[0]
                elif agg == "majority":
                    final = vote(answers).winner
                elif agg == "confidence":
                    final = vote(answers, [a.extra["confidence"] for a in tr]).winner
                else:
                    w = vote(answers, [a.extra["confidence"] for a in tr])
                    final, _ = synthesis.decide(synth_by_n[n][i].text, p.question, agents_mod.answer_kind(p.question), w)
                hits += correct(p, final)
            if agg == "synthesis":
                tokens += sum(c.usage.total_tokens for c in synth_by_n[n])
                wall += speed[n]["synthesis_s"]
            ladder_rows.append({
                "agents": n, "aggregator": agg, "accuracy": round(hits / items, 4),
                "ci95": wilson(hits, items), "tokens": tokens, "reasoning_tokens": reasoning,
                "tokens_per_item": round(tokens / items, 1), "wall_s": round(wall, 3),
            })

    # 2. the single agent, sampled
    first = specs[0]
    hot = [r.model_copy(update={"temperature": 0.3, "seed": seed + 7 + i})
           for i, r in enumerate(agents_mod.requests([Message(role="user", content=p.question)], [first], budget)[0]
                                 for p in problems)]
    sampled = _batched(engine, hot, batch)
    sampled_hits = sum(correct(p, agents_mod.agent_result(first, c, p.question, 1).text or None)
                       for p, c in zip(problems, sampled))
    greedy_hits = sum(correct(p, tr[0].text or None) for p, tr in zip(problems, traces))
    say("sampled single agent done")

    # 4. early stop for real, at early_stop_agents
    n_es = early_stop_agents
    es_mode = ContemplatingMode(ModeSettings(agents=n_es, budget=budget, early_stop=True))
    es_hits = {"majority": 0, "confidence": 0}
    full_hits = {"majority": 0, "confidence": 0}
    es_tokens = full_tokens = 0
    stopped = 0
    for p, tr in zip(problems, traces):
        launched, skipped = es_mode.run_agents(engine, [Message(role="user", content=p.question)])
        stopped += skipped > 0
        es_tokens += sum(a.usage.completion_tokens + a.usage.prompt_tokens for a in launched)
        full = tr[:n_es]
        full_tokens += sum(a.usage.completion_tokens + a.usage.prompt_tokens for a in full)
        for agg in es_hits:
            w_es = [a.extra["confidence"] for a in launched] if agg == "confidence" else None
            w_full = [a.extra["confidence"] for a in full] if agg == "confidence" else None
            es_hits[agg] += correct(p, vote([a.text or None for a in launched], w_es).winner)
            full_hits[agg] += correct(p, vote([a.text or None for a in full], w_full).winner)
    say("early stop done")

    best_at = {}
    for row in ladder_rows:
        n = row["agents"]
        if n not in best_at or row["accuracy"] > best_at[n]["accuracy"]:
            best_at[n] = row
    r8 = speed.get(8) or speed[n_max]
    report: dict[str, Any] = {
        "args": {"items": items, "seed": seed, "ladder": list(ladder), "budget": budget,
                 "timing_items": timing_items, "early_stop_agents": n_es, "model": engine.model,
                 "engine": engine.name, "families": sorted({p.family for p in problems}),
                 "approaches": [s.approach for s in specs]},
        "env": {"openmuse": __version__, "python": platform.python_version(),
                "machine": platform.machine(), "cpus": os.cpu_count(),
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
        "ladder": ladder_rows,
        "single_agent": {
            "greedy": {"accuracy": round(greedy_hits / items, 4), "ci95": wilson(greedy_hits, items)},
            "sampled": {"accuracy": round(sampled_hits / items, 4), "ci95": wilson(sampled_hits, items),
                        "temperature": 0.3},
        },
        "per_family_at_1_and_best": _per_family(problems, traces, best_at),
        "batched_vs_sequential": round(r8["batched_s"] / r8["sequential_s"], 3),
        "batched_vs_sequential_by_agents": {
            str(n): {"batched_s": round(v["batched_s"], 3), "sequential_s": round(v["sequential_s"], 3),
                     "ratio": round(v["batched_s"] / v["sequential_s"], 3)} for n, v in speed.items()},
        "early_stop": {
            "agents": n_es,
            "token_saving": round(1 - es_tokens / full_tokens, 4),
            "accuracy_delta": round((es_hits["confidence"] - full_hits["confidence"]) / items, 4),
            "accuracy_delta_majority": round((es_hits["majority"] - full_hits["majority"]) / items, 4),
            "accuracy": round(es_hits["confidence"] / items, 4),
            "accuracy_all_agents": round(full_hits["confidence"] / items, 4),
            "items_stopped_early": stopped,
            "tokens": es_tokens, "tokens_all_agents": full_tokens,
        },
        "wall_s_total": round(time.perf_counter() - t_start, 1),
    }
    out = Path(out_dir or "results")
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = out / f"bench-contemplate-{stamp}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    report["plot"] = str(_plot(report, out / f"bench-contemplate-{stamp}.png"))
    path.write_text(json.dumps(report, indent=2) + "\n")
    return report, path


def _per_family(problems: list[Problem], traces: list[list[Completion]], best_at: dict) -> dict[str, Any]:
    fams: dict[str, Any] = {}
    for p, tr in zip(problems, traces):
        f = fams.setdefault(p.family, {"items": 0, "single": 0, "majority_8": 0})
        f["items"] += 1
        f["single"] += tr[0].text == p.answer
        f["majority_8"] += vote([a.text or None for a in tr[:8]], [a.extra["confidence"] for a in tr[:8]]).winner == p.answer
    return {k: {"items": v["items"], "single": round(v["single"] / v["items"], 3),
                "confidence_vote_8": round(v["majority_8"] / v["items"], 3)} for k, v in fams.items()}


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
