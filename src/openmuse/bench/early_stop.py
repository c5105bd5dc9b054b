"""``python -m openmuse.bench.early_stop``: early stop in Contemplating mode, studied offline
on traces collected once, tuned on one seed and reported on others.

1. *Collect* (the only model runs). For each seed, every agent is run to the end on every
   generated problem (``problems.py``), through the mode's own ``run_agents_many`` with
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
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..engines.base import Engine
from ..modes.contemplating import ContemplatingMode, waves
from ..modes.contemplating import agents as agents_mod
from ..modes.contemplating.vote import SETTLE_AGREE, SETTLE_CONFIDENCE, SETTLE_WEIGHT, vote
from ..problems import generate
from ..types import Completion, Message
from . import environment
from .early_stop_rules import (OLD_HEAD, PLAN_HEAD, Rule, _vote, candidates, evaluate, heads, overturn_probability, plan,
                               rule_old, rule_posterior, rule_settled, simulate, summarize, sweep, tune)

__all__ = ["OLD_HEAD", "PLAN_HEAD", "Rule", "collect", "heads", "overturn_probability", "plan", "rule_old",
           "rule_posterior", "rule_settled", "run_study", "simulate", "summarize", "verify"]

CHUNK = 16  # conversations per run_agents_many call (their agents share the engine's batches)


class _Recorder:
    """The engine, recording every raw completion (the mode keeps only tail confidences)."""

    def __init__(self, engine: Engine):
        self._engine = engine
        self.outputs: list[Completion] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def generate_many(self, requests, on_delta=None, control=None):
        outs = self._engine.generate_many(requests, on_delta=on_delta, control=control)
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
    mode = ContemplatingMode({"agents": agents, "agent_tokens": budget, "early_stop": False})
    specs = agents_mod.specs(agents, None)
    wave_of = [w for w, size in enumerate(waves(agents, True), start=1) for _ in range(size)]
    out: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for start in range(0, items, chunk):
        part = problems[start:start + chunk]
        rec = _Recorder(engine)
        runs = mode.run_agents_many(rec, [[Message(role="user", content=p.question)] for p in part])
        raw = iter(rec.outputs)  # one call, jobs item-major then agent: the order of the traces
        for k, (p, run) in enumerate(zip(part, runs)):
            trs = run.traces
            row = {"item": start + k, "family": p.family, "target": p.answer, "question": p.question,
                   "agents": []}
            for spec, tr in zip(specs, trs):
                c = next(raw)
                lps = [round(x, 4) for x in (c.token_logprobs or [])]
                row["agents"].append({
                    "agent": spec.index + 1, "approach": spec.approach, "wave": wave_of[spec.index],
                    "answer": tr.answer, "confidence": tr.confidence,
                    "finish_reason": tr.finish_reason, "prompt_tokens": tr.usage.prompt_tokens,
                    "completion_tokens": tr.usage.completion_tokens, **_lp_stats(lps), "logprobs": lps,
                })
            out.append(row)
        done = min(start + chunk, items)
        say(f"seed {seed}: {done}/{items} items, {time.perf_counter() - t0:.0f}s")
    return out




NOISE_CHUNK = 5  # conversations per call for the batch-noise rerun: items straddle engine sub-batches


def verify(engine: Engine, rows: Sequence[dict[str, Any]], seed: int, agents: int, budget: int,
           rule_args: dict[str, Any], progress: Callable[[str], None] | None = None,
           chunk: int = CHUNK, noise_chunk: int | None = NOISE_CHUNK) -> dict[str, Any]:
    """The mode itself with early stop on (its own ``run_agents_many``, its wave plan, the rule
    with ``rule_args`` as its options), against the simulation from ``rows``: on how
    many items it launched as many agents, ended with the same answer, and how many of the
    launched agents' answers differ from the traces (greedy tokens depend on which sequences
    share the engine's batch). With ``noise_chunk``, all agents are run again with another
    batch packing: the same comparison between two runs of all agents, the floor any real
    early-stop run is measured against."""
    say = progress or (lambda _m: None)
    problems = generate(len(rows), seed=seed)
    names = {"min_confidence": "settle_confidence", "max_weight": "settle_weight", "min_agree": "settle_agree"}
    mode = ContemplatingMode({"agents": agents, "agent_tokens": budget, "early_stop": True,
                              **{names[k]: v for k, v in rule_args.items()}})
    sizes, launch = waves(agents, True), agents_mod.launch_order(agents)
    sim = simulate(rows, rule_settled(**rule_args), agents, sizes, launch)
    same_launch = same_answer = hits = tokens = agent_diff = launched = 0
    real: list[str | None] = []
    for start in range(0, len(rows), chunk):
        part = problems[start:start + chunk]
        runs = mode.run_agents_many(engine, [[Message(role="user", content=p.question)] for p in part])
        for k, (p, run) in enumerate(zip(part, runs)):
            s, trs = sim[start + k], run.traces
            w = vote([t.answer for t in trs], [t.confidence for t in trs]).winner
            real.append(w)
            same_launch += len(trs) == s["launched"]
            same_answer += w == s["answer"]
            hits += w == p.answer
            tokens += sum(t.usage.prompt_tokens + t.usage.completion_tokens for t in trs)
            launched += len(trs)
            agent_diff += sum(t.answer != rows[start + k]["agents"][t.agent - 1]["answer"] for t in trs)
        say(f"verify seed {seed}: {min(start + chunk, len(rows))}/{len(rows)} items")
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
            "proposed_on_rerun": {k: v for k, v in evaluate(again, rule_settled(**rule_args), agents, sizes,
                                                             launch).items()
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


def read_traces(traces: str, seeds: Sequence[int], items: int) -> tuple[dict[int, list[dict[str, Any]]], Any]:
    """The first ``items`` rows of each seed in a traces file, and the environment that made it."""
    raw = Path(traces).read_bytes()
    data = json.loads(gzip.decompress(raw) if traces.endswith(".gz") else raw)
    rows_by_seed = {s: list(data["seeds"][str(s)])[:items] for s in seeds}
    for s, rows in rows_by_seed.items():
        if len(rows) < items:
            raise SystemExit(f"the traces hold {len(rows)} items of seed {s}, not {items}")
    return rows_by_seed, data.get("env")


def _rows(engine: Engine | None, seeds: Sequence[int], items: int, agents: int, budget: int,
          traces: str | None, keep_logprobs: bool, path: Path, say: Callable[[str], None]
          ) -> tuple[dict[int, list[dict[str, Any]]], Any, str]:
    """The traces of every seed: read from ``traces``, or collected and written to ``path``."""
    if traces:
        rows_by_seed, trace_env = read_traces(traces, seeds, items)
        return rows_by_seed, trace_env, traces
    if engine is None:
        raise ValueError("an engine is needed to collect traces")
    rows_by_seed = {s: collect(engine, s, items, agents, budget, say) for s in seeds}
    trace_env = environment()
    settings = getattr(engine, "settings", None)
    write_traces(path, rows_by_seed, {"seeds": list(seeds), "items": items, "agents": agents, "budget": budget,
                                      "model": engine.model,
                                      "reproducible": bool(getattr(settings, "reproducible", False))},
                 trace_env, keep_logprobs)
    say(f"traces: {path}")
    return rows_by_seed, trace_env, str(path)


def run_study(engine: Engine | None, seeds: Sequence[int], items: int, agents: int, budget: int,
              out_dir: str | None = None, progress: Callable[[str], None] | None = None,
              traces: str | None = None, verify_seed: int | None = None,
              keep_logprobs: bool = False, tune_seeds: int = 1) -> tuple[dict[str, Any], Path]:
    """Collect (or load ``traces``), tune on the first ``tune_seeds`` seeds pooled, report every
    seed. Writes
    ``early-stop-<stamp>.json`` (and, when it collected, ``early-stop-traces-<stamp>.json.gz``,
    the token log-probabilities themselves only with ``keep_logprobs``: the study uses their
    summaries) under ``out_dir``; returns the report and the path of its file."""
    say, t0, out = progress or (lambda _m: None), time.perf_counter(), Path(out_dir or "results")
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rows_by_seed, trace_env, traces = _rows(engine, seeds, items, agents, budget, traces, keep_logprobs,
                                            out / f"early-stop-traces-{stamp}.json.gz", say)
    tuning = list(seeds[:tune_seeds])
    tuned = tune([r for s in tuning for r in rows_by_seed[s]], agents)
    rules = candidates(agents, tuned)
    results = []
    for c in rules:
        per_seed = {str(s): evaluate(rows, c["rule"], agents, c["waves"], c.get("launch"))
                    for s, rows in rows_by_seed.items()}
        results.append({"name": c["name"], "waves": c["waves"], "proposed": c.get("proposed", False),
                        "launch": [i + 1 for i in c.get("launch", range(agents))], "seeds": per_seed})
    shipped = {"min_confidence": SETTLE_CONFIDENCE, "max_weight": SETTLE_WEIGHT}
    mode_plan = {"waves": waves(agents, True), "launch": agents_mod.launch_order(agents)}
    report: dict[str, Any] = {
        "args": {"seeds": list(seeds), "tuning_seeds": tuning, "held_out_seeds": list(seeds[tune_seeds:]),
                 "items": items,
                 "agents": agents, "budget": budget, "traces": Path(traces).name if traces else None,
                 "model": engine.model if engine is not None else None,
                 "families": sorted({r["family"] for rows in rows_by_seed.values() for r in rows}),
                 "agents_order": [a["approach"] for a in next(iter(rows_by_seed.values()))[0]["agents"]]},
        "env": environment(),
        "traces_env": trace_env,
        "method": ("Every agent run to the end on every item once (greedy, reproducible engine); early stop "
                   "simulated by launching agents in waves in the launch order. Accuracy: the confidence-"
                   "weighted vote of the launched agents against that of all agents; tokens: agent prompt + "
                   "completion against all agents. The proposed rule's launch order, waves and constants "
                   "are tuned on the tuning seeds only, pooled (bench.early_stop_rules.tune_proposed)."),
        "tuned": tuned,
        "shipped": {**shipped, "min_agree": SETTLE_AGREE, "waves": mode_plan["waves"],
                    "launch": [i + 1 for i in mode_plan["launch"]],
                    "matches_tuned": {**shipped, **mode_plan}
                    == {k: tuned["proposed"][k] for k in (*shipped, *mode_plan)}},
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
    tuning = [str(s) for s in report["args"]["tuning_seeds"]]
    for r in report["rules"]:
        lines.append(f"{'* ' if r['proposed'] else ''}{r['name']}  waves {r['waves']}")
        for s, m in r["seeds"].items():
            tag = "tuning" if s in tuning else "held out"
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
    ap.add_argument("--seeds", default="11,0,7", help="comma-separated; the first --tune-seeds tune")
    ap.add_argument("--tune-seeds", type=int, default=1, help="how many of the first seeds tune (pooled)")
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
                             a.keep_logprobs, a.tune_seeds)
    print(table(report))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
