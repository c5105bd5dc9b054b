"""Contemplating's agent prompt layout, before and after, side by side in one run.

- before (commit fd585fd): each agent's framing is its system message, its approach follows
  the question; agents with different framings share no prompt prefix.
- after: the conversation first (its own system message, or the packaged one), each agent's
  framing and approach after it; all agents share the conversation as their prefix. This is
  `agents.requests(..., shared=True)`; since this comparison Contemplating uses it only for
  conversations over `shared_prefix_chars` (or with media), and the before layout otherwise.

Part 1, accuracy: the bench's seeded problems (`bench/problems.py`), every agent of the first
N run greedily with a 64-token budget, single-agent accuracy and the confidence/majority votes
at 1, 2, 4 and 8 agents. Part 2, cost: 4 agents on each of the first ARC-AGI-2 test inputs
(2-5 k-token prompts), 8 tokens each; tokens prefilled and wall time, from an empty cache.

Run from the repository root (needs git): `.venv/bin/python docs/bench/layout_ab.py --seed 0
--items 200 --agents 8 --arc 6 --out docs/bench/layout-ab.json`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from functools import partial

from openmuse.bench import environment
from openmuse.problems import generate
from openmuse.engines.base import EngineSettings
from openmuse.engines.local import LocalEngine
from openmuse.evals.task import TaskOptions
from openmuse.evals.tasks.arc import ArcTask
from openmuse.modes.contemplating import agents as after
from openmuse.modes.contemplating.vote import vote
from openmuse.types import Message

BEFORE_COMMIT = "fd585fd"


def before_module():
    """agents.py as it was at BEFORE_COMMIT, loaded from git history."""
    src = subprocess.run(["git", "show", f"{BEFORE_COMMIT}:src/openmuse/modes/contemplating/agents.py"],
                         check=True, capture_output=True, text=True).stdout
    for rel, absolute in (("from ... import", "from openmuse import"), ("from ...types", "from openmuse.types"),
                          ("from .answers", "from openmuse.answers"),
                          ("from .vote", "from openmuse.modes.contemplating.vote")):
        src = src.replace(rel, absolute)
    mod = type(sys)("agents_before")
    sys.modules[mod.__name__] = mod
    exec(compile(src, mod.__name__, "exec"), mod.__dict__)
    return mod


def arms(n: int):
    old = before_module()
    specs = after.specs(n, None)
    # AgentSpec.framing is the framing's system message, the same text the old layout used
    old_specs = [old.AgentSpec(**{k: v for k, v in s.__dict__.items() if k != "framing_after"}) for s in specs]
    return {"before": (old.requests, old_specs), "after": (partial(after.requests, shared=True), specs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--items", type=int, default=200)
    ap.add_argument("--agents", type=int, default=8)
    ap.add_argument("--arc", type=int, default=6, help="ARC-AGI-2 test inputs for the cost part")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default="docs/bench/layout-ab.json")
    args = ap.parse_args()
    eng = LocalEngine.shared(EngineSettings(n_threads=args.threads))
    problems = generate(args.items, seed=args.seed)
    report: dict = {"args": vars(args), "environment": environment(), "before_commit": BEFORE_COMMIT,
                    "accuracy": {}, "cost": {}}
    layouts = arms(args.agents)
    # Part 1: accuracy
    for name, (build, specs) in layouts.items():
        reqs = [r for p in problems for r in build([Message(role="user", content=p.question)], specs, 64)]
        eng.clear_cache()
        t0 = time.perf_counter()
        comps = []
        for a in range(0, len(reqs), 16):
            comps.extend(eng.generate_many(reqs[a:a + 16]))
        wall = time.perf_counter() - t0
        n = args.agents
        traces = [[after.agent_result(specs[j], comps[i * n + j], p.question, 1) for j in range(n)]
                  for i, p in enumerate(problems)]
        per_agent = [sum((tr[j].text or None) == p.answer for tr, p in zip(traces, problems)) / len(problems)
                     for j in range(n)]
        votes = {}
        for k in sorted(k for k in {1, 2, 4, n} if k <= n):
            conf = sum(vote([t.text or None for t in tr[:k]], [t.extra["confidence"] for t in tr[:k]]).winner == p.answer
                       for tr, p in zip(traces, problems))
            maj = sum(vote([t.text or None for t in tr[:k]]).winner == p.answer for tr, p in zip(traces, problems))
            votes[k] = {"confidence": conf / len(problems), "majority": maj / len(problems)}
        report["accuracy"][name] = {"per_agent": per_agent, "votes": votes, "wall_s": round(wall, 1),
                                    "completion_tokens": sum(c.usage.completion_tokens for c in comps)}
        print(name, "accuracy", json.dumps(report["accuracy"][name]), flush=True)
    # Part 2: cost on long prompts
    task = ArcTask(TaskOptions())
    inputs = [att[0] for it in task.items() for att in task.prompts(it)]
    inputs = [m for m in inputs if len(eng.prompt_tokens(after.requests(m, after.specs(1, None), 8, shared=True)[0])) < 5000]
    inputs = inputs[:args.arc]
    for name, (build, specs4) in arms(4).items():
        prefilled = prompt = 0
        wall = 0.0
        for msgs in inputs:
            eng.clear_cache()
            before = eng.stats["prompt_tokens_prefilled"]
            t0 = time.perf_counter()
            outs = eng.generate_many(build(msgs, specs4, 8))
            wall += time.perf_counter() - t0
            prefilled += eng.stats["prompt_tokens_prefilled"] - before
            prompt += sum(c.usage.prompt_tokens for c in outs)
        report["cost"][name] = {"inputs": len(inputs), "prompt_tokens": prompt, "prefilled_tokens": prefilled,
                                "wall_s": round(wall, 1)}
        print(name, "cost", json.dumps(report["cost"][name]), flush=True)
    b, a = report["cost"]["before"], report["cost"]["after"]
    report["ratios"] = {"prefilled_after_over_before": round(a["prefilled_tokens"] / b["prefilled_tokens"], 3),
                        "wall_after_over_before": round(a["wall_s"] / b["wall_s"], 3)}
    print("ratios", json.dumps(report["ratios"]))
    with open(args.out, "w") as fh:
        json.dump(report, fh, indent=1)
        fh.write("\n")


if __name__ == "__main__":
    main()
