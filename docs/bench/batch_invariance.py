"""What batch invariance costs the local engine, side by side in one run.

1. Prefill: one long prompt (``--prompt-tokens`` words, 1 token decoded) from an empty cache,
   with llama.cpp micro-batches of 512 tokens (the default engine) and of 63 (``--reproducible``:
   under the CPU flash-attention kernel's 64-row tile), alternating, best of ``--repeats``.
2. Agents: Contemplating's 8 agents run to the end on ``--items`` generated problems, then the
   same problems with early stop, on the default engine and on ``--reproducible``: wall time,
   and how many launched agents' answers or confidences differ from the full run's same agent.

Run from the repository root: `.venv/bin/python docs/bench/batch_invariance.py --out
docs/bench/batch-invariance.json`.
"""

from __future__ import annotations

import argparse
import json
import time

from openmuse.bench import environment
from openmuse.engines import EngineSettings, create_engine
from openmuse.modes.contemplating import ContemplatingMode
from openmuse.problems import generate
from openmuse.types import ChatRequest, Message


def prefill(ubatch: int, tokens: int) -> tuple[int, float]:
    """Prompt tokens and seconds to prefill them (one token decoded), micro-batches of ``ubatch``."""
    engine = create_engine(EngineSettings(reproducible=ubatch < 64), shared=False)
    words = " ".join(f"word{i}" for i in range(tokens))
    req = ChatRequest(messages=[Message(role="user", content=words)], max_tokens=1)
    n = len(engine.prompt_tokens(req))
    engine.generate(req.model_copy(update={"messages": (Message(role="user", content="Hi"),)}))  # warm up
    engine.clear_cache()
    t0 = time.perf_counter()
    engine.generate(req)
    seconds = time.perf_counter() - t0
    engine.close()
    return n, seconds


def agents(reproducible: bool, items: int) -> dict:
    engine = create_engine(EngineSettings(reproducible=reproducible), shared=False)
    convs = [[Message(role="user", content=p.question)] for p in generate(items, seed=29)]
    full_mode = ContemplatingMode({"agents": 8, "agent_tokens": 64, "early_stop": False})
    es_mode = ContemplatingMode({"agents": 8, "agent_tokens": 64, "early_stop": True})
    t0 = time.perf_counter()
    full = full_mode.run_agents_many(engine, convs)
    t1 = time.perf_counter()
    early = es_mode.run_agents_many(engine, convs)
    t2 = time.perf_counter()
    engine.close()
    differ = sum(a.answer != b.answer or a.confidence != b.confidence
                 for f, e in zip(full, early) for a in e.traces for b in f.traces if b.agent == a.agent)
    return {"reproducible": reproducible, "full_s": round(t1 - t0, 1), "early_stop_s": round(t2 - t1, 1),
            "launched": sum(len(e.traces) for e in early), "launched_differing": differ}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompt-tokens", type=int, default=1500)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--items", type=int, default=32)
    ap.add_argument("--out", default="batch-invariance.json")
    a = ap.parse_args()
    runs: dict[int, list[float]] = {512: [], 63: []}
    for _ in range(a.repeats):  # alternate, so a busy machine disturbs both alike
        for ub in (512, 63):
            n, t = prefill(ub, a.prompt_tokens)
            runs[ub].append(t)
    best = {ub: min(ts) for ub, ts in runs.items()}
    report = {
        "args": vars(a), "env": environment(), "prompt_tokens": n,
        "prefill_s": {str(k): [round(t, 3) for t in v] for k, v in runs.items()},
        "prefill_ratio_63_over_512": round(best[63] / best[512], 3),
        "agents": [agents(False, a.items), agents(True, a.items)],
    }
    with open(a.out, "w") as f:
        json.dump(report, f, indent=2)
    print(json.dumps({k: v for k, v in report.items() if k not in ("env",)}, indent=2))


if __name__ == "__main__":
    main()
