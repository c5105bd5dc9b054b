"""``muse bench engine``: the local engine's prompt and decode speed for N sequences, decoded in
one multi-sequence batch and one after another, measured side by side in the same run.

Every sequence decodes exactly ``steps`` tokens (end-of-sequence ignored) with its own seed, so
both ways do the same work. The KV cache is cleared before each measured call so that neither
way gets the other's prompt for free. Results, with the arguments and the environment, go to a
JSON file.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ..engines.local import LocalEngine
from ..types import ChatRequest
from . import environment

PROMPT = "Tell me about the history of the city of Lyon, its food, its rivers and its people."


def _requests(n: int, steps: int) -> list[ChatRequest]:
    return [
        ChatRequest(
            messages=[{"role": "system", "content": "You are a helpful assistant."},
                      {"role": "user", "content": PROMPT}],
            max_tokens=steps, temperature=0.8, seed=1000 + i, ignore_eos=True,
        )
        for i in range(n)
    ]


def _measure(engine: LocalEngine, n: int, steps: int) -> dict[str, Any]:
    reqs = _requests(n, steps)
    engine.clear_cache()
    t0 = time.perf_counter()
    batched = engine.generate_many(reqs)
    b_wall = time.perf_counter() - t0
    b = batched[0]
    b_prompt_tok = b.usage.prefilled_tokens
    b_decode_tok = sum(c.usage.completion_tokens for c in batched)

    s_prompt_s = s_decode_s = 0.0
    s_prompt_tok = s_decode_tok = 0
    t0 = time.perf_counter()
    for r in reqs:
        engine.clear_cache()
        c = engine.generate(r)
        s_prompt_s += c.timings["prompt_s"]
        s_decode_s += c.timings["decode_s"]
        s_prompt_tok += c.usage.prefilled_tokens
        s_decode_tok += c.usage.completion_tokens
    s_wall = time.perf_counter() - t0

    batched_tok_s = b_decode_tok / b.timings["decode_s"]
    sequential_tok_s = s_decode_tok / s_decode_s
    return {
        "n": n,
        "batched_tok_s": round(batched_tok_s, 1),
        "sequential_tok_s": round(sequential_tok_s, 1),
        "speedup": round(batched_tok_s / sequential_tok_s, 3),
        "batched_prompt_tok_s": round(b_prompt_tok / b.timings["prompt_s"], 1),
        "sequential_prompt_tok_s": round(s_prompt_tok / s_prompt_s, 1),
        "batched_prompt_tokens": b_prompt_tok,
        "sequential_prompt_tokens": s_prompt_tok,
        "batched_wall_s": round(b_wall, 3),
        "sequential_wall_s": round(s_wall, 3),
        "wall_ratio": round(b_wall / s_wall, 3),
    }


def run_engine_bench(
    engine: LocalEngine, counts: list[int], steps: int, out_path: str | None, progress: Console | None
) -> tuple[dict[str, Any], Path]:
    report: dict[str, Any] = {
        "args": {"ns": counts, "steps": steps, "model": engine.model, "n_ctx": engine.n_ctx,
                 "threads": engine.threads.describe(), "prompt": PROMPT},
        "system_info": engine.system_info,
        "env": environment(),
        "results": [],
    }
    engine.generate(_requests(1, 4)[0])  # warm up
    for n in counts:
        if progress:
            progress.print(f"[dim]measuring {n} sequence(s)…[/]")
        report["results"].append(_measure(engine, n, steps))
    path = Path(out_path) if out_path else Path("results") / f"bench-engine-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    return report, path


def print_table(report: dict[str, Any], console: Console) -> None:
    t = Table(title=f"local engine · {report['args']['model']} · {report['args']['steps']} tokens per sequence")
    for col in ("sequences", "decode tok/s batched", "decode tok/s one by one", "speedup",
                "prompt tok/s batched", "prompt tok/s one by one", "wall batched / one by one"):
        t.add_column(col, justify="right")
    for r in report["results"]:
        t.add_row(str(r["n"]), f"{r['batched_tok_s']:.0f}", f"{r['sequential_tok_s']:.0f}",
                  f"{r['speedup']:.2f}×", f"{r['batched_prompt_tok_s']:.0f}",
                  f"{r['sequential_prompt_tok_s']:.0f}", f"{r['wall_ratio']:.2f}")
    console.print(t)
