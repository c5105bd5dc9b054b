"""``python -m openmuse.bench.early_stop``: early stop in Contemplating mode, studied offline
on traces collected once, tuned on one seed and reported on others.

1. *Collect* (the only model runs). For each seed, every agent is run to the end on every
   generated problem (``bench/problems.py``), through the mode's own ``run_agents_many`` with
   early stop off (items' agents share engine batches). Per item and agent: the extracted
   answer, the tail confidence, summaries of the token log-probabilities (mean, min, last 8;
   the log-probabilities themselves with ``--keep-logprobs``), the approach, the wave it
   would be launched in by the mode's current plan, the finish reason, and the prompt and
   completion tokens; per item its family and target. ``--traces FILE`` re-runs the study
   from such a file without the model.
2. *Simulate.* Agents decode greedily and deterministically, so launching waves and stopping
   after one is taking the first agents of the full run (in the real mode other sequences
   share the engine batch, which can rarely change a greedy token: ``--verify-seed`` runs the
   mode itself with the proposed plan and rule and counts agreement). For each rule and wave
   plan: the confidence-weighted vote of the launched agents against that of all agents
   (accuracy, delta, answers changed), and agent tokens (prompt + completion) against all.
3. *Tune and hold out.* Constants (and the proposed rule's wave plan) are chosen on the
   first seed only: the fewest answers changed against all agents, then the most tokens
   saved. The other seeds are reported unchanged, per family too, with a sweep of the
   proposed rule's constants for the Pareto front.

Results, arguments and environment (``bench.environment``) go to ``early-stop-<stamp>.json``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..engines.base import Engine
from ..modes import ModeSettings
from ..modes.contemplating import ContemplatingMode, waves
from ..modes.contemplating import agents as agents_mod
from ..modes.contemplating.vote import SETTLE_AGREE, SETTLE_CONFIDENCE, SETTLE_WEIGHT, settled, vote
from ..types import Completion, Message
from . import environment
from .problems import generate

CHUNK = 16  # conversations per run_agents_many call (their agents share the engine's batches)


class _Recorder:
    """The engine, recording every raw completion (the mode keeps only tail confidences)."""

    def __init__(self, engine: Engine):
        self._engine = engine
        self.outputs: list[Completion] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def generate_many(self, requests, on_delta=None):
        outs = self._engine.generate_many(requests, on_delta=on_delta)
        self.outputs.extend(outs)
        return outs


def _lp_stats(lps: Sequence[float] | None) -> dict[str, float | None]:
    if not lps:
        return {"lp_mean": None, "lp_min": None, "lp_last8": None}
    last = lps[-8:]
    return {"lp_mean": round(sum(lps) / len(lps), 4), "lp_min": round(min(lps), 4),
            "lp_last8": round(sum(last) / len(last), 4)}


def collect(engine: Engine, seed: int, items: int, agents: int, budget: int,
            progress: Callable[[str], None] | None = None, chunk: int = CHUNK) -> list[dict[str, Any]]:
    """Every agent run to the end on every item of ``generate(items, seed)``: one record an item."""
    say = progress or (lambda _m: None)
    problems = generate(items, seed=seed)
    mode = ContemplatingMode(ModeSettings(agents=agents, budget=budget, early_stop=False))
    specs = agents_mod.specs(agents, None)
    wave_of = [w for w, size in enumerate(waves(agents, True), start=1) for _ in range(size)]
    out: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for start in range(0, items, chunk):
        part = problems[start:start + chunk]
        rec = _Recorder(engine)
        runs = mode.run_agents_many(rec, [[Message(role="user", content=p.question)] for p in part])
        raw = iter(rec.outputs)  # one call, jobs item-major then agent: the order of the traces
        for k, (p, (trs, _)) in enumerate(zip(part, runs)):
            row = {"item": start + k, "family": p.family, "target": p.answer, "question": p.question,
                   "agents": []}
            for spec, tr in zip(specs, trs):
                c = next(raw)
                lps = [round(x, 4) for x in (c.token_logprobs or [])]
                row["agents"].append({
                    "agent": spec.index + 1, "approach": spec.approach, "wave": wave_of[spec.index],
                    "answer": tr.text or None, "confidence": tr.extra["confidence"],
                    "finish_reason": tr.finish_reason, "prompt_tokens": tr.usage.prompt_tokens,
                    "completion_tokens": tr.usage.completion_tokens, **_lp_stats(lps), "logprobs": lps,
                })
            out.append(row)
        done = min(start + chunk, items)
        say(f"seed {seed}: {done}/{items} items, {time.perf_counter() - t0:.0f}s")
    return out


Rule = Callable[[Sequence[dict[str, Any]], int], bool]  # (launched agents' records, remaining) -> stop


def _vote(agents: Sequence[dict[str, Any]]) -> str | None:
    ws = [a["confidence"] for a in agents]
    return vote([a["answer"] for a in agents], ws if any(w is not None for w in ws) else None).winner


def _cost(agents: Sequence[dict[str, Any]]) -> int:
    return sum(a["prompt_tokens"] + a["completion_tokens"] for a in agents)


def simulate(rows: Sequence[dict[str, Any]], rule: Rule, agents: int,
             plan: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Each item as the mode would run it with early stop on: after each wave (``plan``, by
    default the mode's ``waves``), stop when ``rule`` says the launched agents' answers are
    settled. One result an item."""
    out = []
    for r in rows:
        ag = r["agents"][:agents]
        launched = 0
        for size in plan or waves(agents, True):
            launched += size
            if launched < agents and rule(ag[:launched], agents - launched):
                break
        es, full = _vote(ag[:launched]), _vote(ag)
        out.append({"family": r["family"], "launched": launched, "answer": es, "es_hit": es == r["target"],
                    "full_hit": full == r["target"], "same": es == full,
                    "tokens": _cost(ag[:launched]), "tokens_all": _cost(ag)})
    return out


def summarize(sim: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy with early stop and with all agents, their delta, the token saving, how many
    items stopped early and how often the early answer differs from all agents' answer."""
    n = len(sim)
    es, full = sum(s["es_hit"] for s in sim), sum(s["full_hit"] for s in sim)
    tok, tok_all = sum(s["tokens"] for s in sim), sum(s["tokens_all"] for s in sim)
    return {"items": n, "accuracy_all": round(full / n, 4), "accuracy": round(es / n, 4),
            "delta": round((es - full) / n, 4), "token_saving": round(1 - tok / tok_all, 4),
            "stopped_early": sum(s["tokens"] < s["tokens_all"] for s in sim),
            "changed": sum(not s["same"] for s in sim),
            "gained": sum(s["es_hit"] and not s["full_hit"] for s in sim),
            "lost": sum(s["full_hit"] and not s["es_hit"] for s in sim)}


# ---- wave plans and candidate rules -------------------------------------------------------

PLAN_HEAD = (3, 3, 1, 1)  # the proposed waves up to the eighth agent (tuned on seed 11)


def plan(n: int, head: Sequence[int] = PLAN_HEAD) -> list[int]:
    """Wave sizes for ``n`` agents: ``head`` (clipped to ``n``), then waves of four. The
    default is the plan proposed for the mode (8 agents: 3, 3, 1, 1; 16: 3, 3, 1, 1, 4, 4):
    its first boundary is where unanimity can first settle (three agents), and it has no more
    waves than the plan it replaces (2, 2, 2, 2)."""
    sizes, launched = [], 0
    for size in [*head, *[4] * n]:
        if launched >= n:
            break
        sizes.append(min(size, n - launched))
        launched += sizes[-1]
    return sizes


def _answers(ag: Sequence[dict[str, Any]]) -> tuple[list[str | None], list[float | None]]:
    return [a["answer"] for a in ag], [a["confidence"] for a in ag]


def rule_settled(min_confidence: float, max_weight: float, min_agree: int = SETTLE_AGREE,
                 pair_confidence: float | None = None) -> Rule:
    """``vote.settled`` with these constants; ``pair_confidence`` also settles two agreeing
    agents each at least that confident (the old rule's unanimity, for comparison)."""
    def rule(ag: Sequence[dict[str, Any]], remaining: int) -> bool:
        answers, confs = _answers(ag)
        if (pair_confidence is not None and len(ag) >= 2 and answers[0] is not None
                and len(set(answers)) == 1 and min((c or 0.0) for c in confs) >= pair_confidence):
            return True
        return settled(answers, confs, remaining, min_confidence, max_weight, min_agree=min_agree)
    return rule


def rule_old(min_confidence: float = 0.5, max_weight: float = 0.7) -> Rule:
    """The rule this study replaces: two or more agreeing agents each at least
    ``min_confidence`` confident, or a weighted lead over ``remaining * max_weight``."""
    return rule_settled(min_confidence, max_weight, min_agree=2)


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def fit_prior(rows: Sequence[dict[str, Any]], agents: int) -> dict[str, float]:
    """For the posterior rule: a Beta prior on the chance that an agent gives its item's
    winning answer (method of moments over items, all agents' weighted vote the winner), and
    a high tail confidence (the 90th percentile) for the weight of each remaining agent."""
    fr, confs = [], []
    for r in rows:
        ag = r["agents"][:agents]
        w = _vote(ag)
        fr.append(sum(a["answer"] == w for a in ag) / len(ag))
        confs += [a["confidence"] for a in ag if a["confidence"] is not None]
    m = sum(fr) / len(fr)
    v = sum((f - m) ** 2 for f in fr) / len(fr)
    rho = min(max((v / (m * (1 - m)) * agents - 1) / (agents - 1), 1e-3), 0.999)
    s = 1 / rho - 1
    return {"alpha": round(m * s, 4), "beta": round((1 - m) * s, 4),
            "weight": round(sorted(confs)[int(0.9 * (len(confs) - 1))], 4)}


def overturn_probability(answers: Sequence[str | None], confs: Sequence[float | None], remaining: int,
                         alpha: float, beta: float, weight: float) -> float:
    """The chance the remaining agents overturn the weighted leader, if each joins the leader
    with a chance drawn from Beta(alpha + agreeing, beta + others) and otherwise all of them
    back the runner-up, every one with weight ``weight`` (a Beta-binomial tail)."""
    r = vote(answers, [c or 0.0 for c in confs])
    if r.winner is None:
        return 1.0
    lead = r.votes[r.winner] - max((v for a, v in r.votes.items() if a != r.winner), default=0.0)
    a, b = beta + len(answers) - r.agreement, alpha + r.agreement  # Beta of the chance to dissent
    need = math.floor((lead / weight + remaining) / 2) + 1  # dissenters that overturn the lead
    p = 0.0
    for d in range(max(need, 0), remaining + 1):
        p += math.exp(math.lgamma(remaining + 1) - math.lgamma(d + 1) - math.lgamma(remaining - d + 1)
                      + _log_beta(d + a, remaining - d + b) - _log_beta(a, b))
    return p


def rule_posterior(prior: dict[str, float], risk: float) -> Rule:
    def rule(ag: Sequence[dict[str, Any]], remaining: int) -> bool:
        answers, confs = _answers(ag)
        return overturn_probability(answers, confs, remaining, prior["alpha"], prior["beta"],
                                    prior["weight"]) <= risk
    return rule


# ---- the study ----------------------------------------------------------------------------

def evaluate(rows: Sequence[dict[str, Any]], rule: Rule, agents: int, sizes: Sequence[int]) -> dict[str, Any]:
    """``summarize`` overall and per family, and how many items stopped after each wave."""
    sim = simulate(rows, rule, agents, sizes)
    out = summarize(sim)
    out["launched"] = {str(k): sum(s["launched"] == k for s in sim) for k in sorted({s["launched"] for s in sim})}
    out["per_family"] = {f: summarize([s for s in sim if s["family"] == f])
                         for f in sorted({s["family"] for s in sim})}
    return out


def _safest(results: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
    """The tuning criterion: the fewest answers changed against all agents, then the most
    tokens saved. Returns the winning parameters with their result."""
    params, res = min(results, key=lambda pr: (pr[1]["changed"], -pr[1]["token_saving"]))
    return {**params, "result": {k: res[k] for k in ("token_saving", "delta", "changed", "stopped_early")}}


GRID_CONFIDENCE = (0.0, 0.4, 0.5, 0.6, 0.7)
# Lead weights no lower than about the median tail confidence (0.64 on the tuning seed): the
# remaining agents are assumed at least typically confident. Lower weights fit the tuning seed
# by where its near misses happen to fall.
GRID_WEIGHT = (1.0, 0.9, 0.8, 0.7, 0.6)
GRID_RISK = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2)


def heads(agents: int, max_waves: int = 4) -> list[tuple[int, ...]]:
    """Wave plans up to the eighth agent that open with three agents (the first point where
    unanimity can settle) in at most ``max_waves`` waves (the current plan's count at 8)."""
    n = min(agents, 8)
    out: list[tuple[int, ...]] = []

    def grow(h: tuple[int, ...]) -> None:
        if sum(h) == n:
            out.append(h)
        elif len(h) < max_waves:
            for size in range(1, n - sum(h) + 1):
                grow((*h, size))
    grow((min(3, n),))
    return out


def tune(rows: Sequence[dict[str, Any]], agents: int) -> dict[str, Any]:
    """Constants of each rule family chosen on the tuning rows only (``_safest``); for the
    proposed rule, its wave plan too."""
    proposed = _safest([({"waves": plan(agents, h), "min_confidence": c, "max_weight": w},
                         evaluate(rows, rule_settled(c, w), agents, plan(agents, h)))
                        for h in heads(agents) for c in GRID_CONFIDENCE for w in GRID_WEIGHT])
    old = _safest([({"min_confidence": c, "max_weight": w},
                    evaluate(rows, rule_old(c, w), agents, waves(agents, True)))
                   for c in GRID_CONFIDENCE for w in GRID_WEIGHT])
    prior = fit_prior(rows, agents)
    fine = plan(agents, (2, 1, 1, 1, 1, 1, 1))
    posterior = _safest([({"risk": e}, evaluate(rows, rule_posterior(prior, e), agents, fine)) for e in GRID_RISK])
    return {"proposed": proposed, "old": old, "posterior": {**posterior, "prior": prior}}


def candidates(agents: int, tuned: dict[str, Any]) -> list[dict[str, Any]]:
    """The rules compared on every seed: the proposed one with the constants shipped in
    ``vote.py`` (the report says whether they are the ones tuned here), the others with the
    constants tuned on the first seed."""
    o, q = tuned["old"], tuned["posterior"]
    c, w = SETTLE_CONFIDENCE, SETTLE_WEIGHT
    return [
        {"name": "old rule, shipped constants (0.5, 0.7)", "rule": rule_old(0.5, 0.7),
         "waves": waves(agents, True)},
        {"name": f"old rule, retuned ({o['min_confidence']}, {o['max_weight']})",
         "rule": rule_old(o["min_confidence"], o["max_weight"]), "waves": waves(agents, True)},
        {"name": "certain lead only (weight 1, no unanimity)", "rule": rule_settled(1.0, 1.0, min_agree=agents + 1),
         "waves": waves(agents, True)},
        {"name": f"posterior overturn risk <= {q['risk']}", "rule": rule_posterior(q["prior"], q["risk"]),
         "waves": plan(agents, (2, 1, 1, 1, 1, 1, 1))},
        {"name": f"PROPOSED: unanimity of {SETTLE_AGREE} (conf >= {c}) or lead > {w} x remaining",
         "rule": rule_settled(c, w), "waves": plan(agents), "proposed": True},
        {"name": "proposed without the confidence floor (0.0; chosen after seeing seeds 0, 7, 3)",
         "rule": rule_settled(0.0, w), "waves": plan(agents)},
        {"name": "proposed rule on the current wave plan (until waves() changes)", "rule": rule_settled(c, w),
         "waves": waves(agents, True)},
        {"name": "proposed, a boundary after every agent past the third", "rule": rule_settled(c, w),
         "waves": plan(agents, (3, 1, 1, 1, 1, 1))},
        {"name": "proposed plus a confident pair (both >= 0.7) after 2", "rule": rule_settled(c, w, pair_confidence=0.7),
         "waves": plan(agents, (2, 1, 3, 1, 1))},
    ]


def sweep(rows_by_seed: dict[int, list[dict[str, Any]]], agents: int) -> list[dict[str, Any]]:
    """The Pareto front's raw points: the proposed rule's constants and plans, every seed."""
    out = []
    for head in (PLAN_HEAD, (3, 3, 2), (3, 2, 3), (3, 1, 1, 1, 1, 1)):
        for c in (0.0, 0.5):
            for w in (1.0, 0.8, 0.6, 0.4):
                sizes = plan(agents, head)
                res = {str(s): evaluate(rows, rule_settled(c, w), agents, sizes) for s, rows in rows_by_seed.items()}
                out.append({"waves": sizes, "min_confidence": c, "max_weight": w,
                            "seeds": {s: {k: r[k] for k in ("token_saving", "delta", "changed")}
                                      for s, r in res.items()}})
    return out


NOISE_CHUNK = 5  # conversations per call for the batch-noise rerun: items straddle engine sub-batches


def verify(engine: Engine, rows: Sequence[dict[str, Any]], seed: int, agents: int, budget: int,
           rule_args: dict[str, Any], progress: Callable[[str], None] | None = None,
           chunk: int = CHUNK, noise_chunk: int | None = NOISE_CHUNK) -> dict[str, Any]:
    """The mode itself with early stop on (its own ``run_agents_many``, with the proposed wave
    plan and rule put in its place for the run), against the simulation from ``rows``: on how
    many items it launched as many agents, ended with the same answer, and how many of the
    launched agents' answers differ from the traces (greedy tokens depend on which sequences
    share the engine's batch). With ``noise_chunk``, all agents are run again with another
    batch packing: the same comparison between two runs of all agents, the floor any real
    early-stop run is measured against."""
    import openmuse.modes.contemplating as mode_mod

    say = progress or (lambda _m: None)
    problems = generate(len(rows), seed=seed)
    mode = ContemplatingMode(ModeSettings(agents=agents, budget=budget, early_stop=True))
    sizes = plan(agents)
    sim = simulate(rows, rule_settled(**rule_args), agents, sizes)
    saved = mode_mod.waves, mode_mod.settled
    mode_mod.waves = lambda n, early_stop: plan(n) if early_stop and n > 3 else [n]
    mode_mod.settled = lambda a, w, rem, *_args, **_kw: settled(a, w, rem, **rule_args)
    same_launch = same_answer = hits = tokens = agent_diff = launched = 0
    real: list[str | None] = []
    try:
        for start in range(0, len(rows), chunk):
            part = problems[start:start + chunk]
            runs = mode.run_agents_many(engine, [[Message(role="user", content=p.question)] for p in part])
            for k, (p, (trs, _)) in enumerate(zip(part, runs)):
                s = sim[start + k]
                w = vote([t.text or None for t in trs], [t.extra["confidence"] for t in trs]).winner
                real.append(w)
                same_launch += len(trs) == s["launched"]
                same_answer += w == s["answer"]
                hits += w == p.answer
                tokens += sum(t.usage.prompt_tokens + t.usage.completion_tokens for t in trs)
                launched += len(trs)
                agent_diff += sum((t.text or None) != a["answer"] for t, a in zip(trs, rows[start + k]["agents"]))
            say(f"verify seed {seed}: {min(start + chunk, len(rows))}/{len(rows)} items")
    finally:
        mode_mod.waves, mode_mod.settled = saved
    n = len(rows)
    out: dict[str, Any] = {
        "seed": seed, "items": n, "waves": sizes, "rule": rule_args,
        "same_agents_launched": same_launch, "same_answer": same_answer,
        "agent_answers_differing": agent_diff, "agents_launched": launched,
        "accuracy_real": round(hits / n, 4), "accuracy_simulated": round(sum(s["es_hit"] for s in sim) / n, 4),
        "accuracy_all_agents_traces": round(sum(s["full_hit"] for s in sim) / n, 4),
        "tokens_real": tokens, "tokens_simulated": sum(s["tokens"] for s in sim)}
    if noise_chunk:
        again = collect(engine, seed, n, agents, budget, lambda m: say(f"noise rerun: {m}"), chunk=noise_chunk)
        full = [_vote(r["agents"][:agents]) for r in rows]
        full2 = [_vote(r["agents"][:agents]) for r in again]
        out["batch_noise"] = {
            "chunk": noise_chunk,
            "agent_answers_differing": sum(a["answer"] != b["answer"] for r, r2 in zip(rows, again)
                                           for a, b in zip(r["agents"][:agents], r2["agents"][:agents])),
            "agents": n * agents,
            "all_agents_answer_differing": sum(a != b for a, b in zip(full, full2)),
            "accuracy_all_agents_rerun": round(sum(a == p.answer for a, p in zip(full2, problems)) / n, 4),
            "real_early_stop_vs_rerun_answer_differing": sum(a != b for a, b in zip(real, full2)),
            "proposed_on_rerun": {k: v for k, v in evaluate(again, rule_settled(**rule_args), agents, sizes).items()
                                  if k != "per_family"},
        }
    return out


def write_traces(path: Path, rows_by_seed: dict[int, list[dict[str, Any]]], args: dict[str, Any],
                 env: dict[str, Any] | None, keep_logprobs: bool = False) -> Path:
    """The traces file ``--traces`` reads: gzipped JSON, the collection's arguments and environment."""
    seeds = {str(s): [{**r, "agents": [a if keep_logprobs else {k: v for k, v in a.items() if k != "logprobs"}
                                       for a in r["agents"]]} for r in rows] for s, rows in rows_by_seed.items()}
    with gzip.open(path, "wt") as f:
        json.dump({"args": args, "env": env, "seeds": seeds}, f)
    return path


def run_study(engine: Engine | None, seeds: Sequence[int], items: int, agents: int, budget: int,
              out_dir: str | None = None, progress: Callable[[str], None] | None = None,
              traces: str | None = None, verify_seed: int | None = None,
              keep_logprobs: bool = False) -> tuple[dict[str, Any], Path]:
    """Collect (or load ``traces``), tune on ``seeds[0]``, report every seed. Writes
    ``early-stop-<stamp>.json`` (and, when it collected, ``early-stop-traces-<stamp>.json.gz``,
    the token log-probabilities themselves only with ``keep_logprobs``: the study uses their
    summaries) under ``out_dir``; returns the report and the path of its file."""
    say = progress or (lambda _m: None)
    t0 = time.perf_counter()
    out = Path(out_dir or "results")
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rows_by_seed: dict[int, list[dict[str, Any]]] = {}
    trace_env = None
    if traces:
        raw = Path(traces).read_bytes()
        data = json.loads(gzip.decompress(raw) if traces.endswith(".gz") else raw)
        trace_env = data.get("env")
        for s in seeds:
            rows_by_seed[s] = list(data["seeds"][str(s)])[:items]
            if len(rows_by_seed[s]) < items:
                raise SystemExit(f"the traces hold {len(rows_by_seed[s])} items of seed {s}, not {items}")
    else:
        if engine is None:
            raise ValueError("an engine is needed to collect traces")
        for s in seeds:
            rows_by_seed[s] = collect(engine, s, items, agents, budget, say)
        trace_env = environment()
        tpath = write_traces(out / f"early-stop-traces-{stamp}.json.gz", rows_by_seed,
                             {"seeds": list(seeds), "items": items, "agents": agents, "budget": budget,
                              "model": engine.model}, trace_env, keep_logprobs)
        traces = str(tpath)
        say(f"traces: {tpath}")

    tuning = seeds[0]
    tuned = tune(rows_by_seed[tuning], agents)
    rules = candidates(agents, tuned)
    results = []
    for c in rules:
        per_seed = {str(s): evaluate(rows, c["rule"], agents, c["waves"]) for s, rows in rows_by_seed.items()}
        results.append({"name": c["name"], "waves": c["waves"], "proposed": c.get("proposed", False),
                        "seeds": per_seed})
    shipped = {"min_confidence": SETTLE_CONFIDENCE, "max_weight": SETTLE_WEIGHT}
    report: dict[str, Any] = {
        "args": {"seeds": list(seeds), "tuning_seed": tuning, "held_out_seeds": list(seeds[1:]), "items": items,
                 "agents": agents, "budget": budget, "traces": Path(traces).name if traces else None,
                 "model": engine.model if engine is not None else None,
                 "families": sorted({r["family"] for rows in rows_by_seed.values() for r in rows}),
                 "agents_order": [a["approach"] for a in next(iter(rows_by_seed.values()))[0]["agents"]]},
        "env": environment(),
        "traces_env": trace_env,
        "method": ("Every agent run to the end on every item once (greedy, deterministic); early stop "
                   "simulated by taking the agents of the first waves. Accuracy: the confidence-weighted "
                   "vote of the launched agents against that of all agents; tokens: agent prompt + completion "
                   "against all agents. Constants tuned on the tuning seed only: the fewest answers changed "
                   "against all agents, then the most tokens saved."),
        "tuned": tuned,
        "shipped": {**shipped, "min_agree": SETTLE_AGREE, "waves": plan(agents),
                    "matches_tuned": {**shipped, "waves": plan(agents)}
                    == {k: tuned["proposed"][k] for k in (*shipped, "waves")}},
        "rules": results,
        "sweep": sweep(rows_by_seed, agents),
    }
    if verify_seed is not None and engine is not None:
        report["verify"] = verify(engine, rows_by_seed[verify_seed], verify_seed, agents, budget, shipped, say)
    report["wall_s_total"] = round(time.perf_counter() - t0, 1)
    path = out / f"early-stop-{stamp}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    return report, path


def table(report: dict[str, Any]) -> str:
    """Per rule and seed: all-agents accuracy, early-stop accuracy, delta, token saving,
    items stopped early, answers changed (gained/lost)."""
    lines = []
    tuning = str(report["args"]["tuning_seed"])
    for r in report["rules"]:
        lines.append(f"{'* ' if r['proposed'] else ''}{r['name']}  waves {r['waves']}")
        for s, m in r["seeds"].items():
            tag = "tuning" if s == tuning else "held out"
            lines.append(f"  seed {s:>3} ({tag:8}): {m['items']} items, all {m['accuracy_all']:.3f}, "
                         f"early {m['accuracy']:.3f}, delta {m['delta'] * 100:+.1f} pt, "
                         f"saving {m['token_saving'] * 100:.1f}%, stopped {m['stopped_early']}, "
                         f"changed {m['changed']} (+{m['gained']}/-{m['lost']})")
    if "verify" in report:
        v = report["verify"]
        lines.append(f"real mode vs simulation, seed {v['seed']}: same agents launched on "
                     f"{v['same_agents_launched']}/{v['items']}, same answer on {v['same_answer']}/{v['items']}; "
                     f"accuracy {v['accuracy_real']:.3f} real vs {v['accuracy_simulated']:.3f} simulated; "
                     f"tokens {v['tokens_real']} vs {v['tokens_simulated']}; "
                     f"{v['agent_answers_differing']}/{v['agents_launched']} launched agents' answers differ from the traces")
        if "batch_noise" in v:
            b = v["batch_noise"]
            lines.append(f"batch noise, all agents rerun with {b['chunk']} items per call: "
                         f"{b['agent_answers_differing']}/{b['agents']} agents' answers and "
                         f"{b['all_agents_answer_differing']}/{v['items']} final answers differ; accuracy "
                         f"{b['accuracy_all_agents_rerun']:.3f} vs {v['accuracy_all_agents_traces']:.3f}; the real "
                         f"early-stop run's answers differ from the rerun's on "
                         f"{b['real_early_stop_vs_rerun_answer_differing']}/{v['items']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m openmuse.bench.early_stop", description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="11,0,7", help="comma-separated; the first is the tuning seed")
    ap.add_argument("--items", type=int, default=200)
    ap.add_argument("--agents", type=int, default=8)
    ap.add_argument("--budget", type=int, default=64)
    ap.add_argument("--out", default="results")
    ap.add_argument("--traces", help="a traces file written by an earlier run: no model runs")
    ap.add_argument("--verify-seed", type=int, help="also run the mode with early stop on this seed")
    ap.add_argument("--keep-logprobs", action="store_true", help="write token log-probabilities to the traces")
    a = ap.parse_args(argv)
    seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
    engine = None
    if not a.traces or a.verify_seed is not None:
        from ..engines import EngineSettings, create_engine

        engine = create_engine(EngineSettings())
    report, path = run_study(engine, seeds, a.items, a.agents, a.budget, a.out,
                             lambda m: print(m, file=sys.stderr, flush=True), a.traces, a.verify_seed,
                             a.keep_logprobs)
    print(table(report))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
