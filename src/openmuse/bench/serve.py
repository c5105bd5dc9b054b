"""``muse bench serve``: the HTTP server's throughput and latency at several concurrency levels,
and its overhead against calling the engine directly, measured side by side in one run.

The server runs in this process (uvicorn on a free loopback port, a real socket); clients are
threads posting ``/v1/chat/completions`` with httpx. The direct baseline runs the same Instant
requests through the same ``Assistant`` and engine at the same concurrency. ``scaling`` is each
level's requests/s over that of one client (the engine's scheduler merges concurrent requests
into one batch). The prompts ask for stories,
so the model writes up to ``max_tokens`` and both paths decode the same tokens (greedy).
"""

from __future__ import annotations

import json
import socket
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from ..assistant import Assistant
from ..engines.base import Engine
from ..types import Message
from . import environment

PROMPTS = [f"Write a short story about a lighthouse keeper named {n}." for n in
           ("Ada", "Ben", "Cleo", "Dan", "Eve", "Finn", "Gus", "Hana")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def _level(call, n: int, concurrency: int) -> dict[str, float]:
    lat: list[float] = []

    def one(i: int) -> None:
        t0 = time.perf_counter()
        call(i)
        lat.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(n)))
    wall = time.perf_counter() - t0
    return {"rps": n / wall, "p50_s": statistics.median(lat), "p95_s": _percentile(lat, 0.95), "wall_s": wall}


def run_serve_bench(engine: Engine, levels: tuple[int, ...] = (1, 4, 16), requests: int = 16,
                    max_tokens: int = 32, out_path: str | None = None, progress=None) -> tuple[dict[str, Any], Path]:
    import uvicorn

    from ..server.app import ServerConfig, create_app

    say = progress or (lambda _m: None)
    tmp = tempfile.mkdtemp(prefix="muse-bench-serve-")
    app = create_app(ServerConfig(database_url=f"sqlite:///{tmp}/bench.db"), engine=engine)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    while not server.started:
        time.sleep(0.05)
    client = httpx.Client(timeout=600, limits=httpx.Limits(max_connections=64))
    assistant = Assistant(engine)

    def over_http(i: int) -> None:
        r = client.post(f"{url}/v1/chat/completions", json={
            "model": "muse-instant", "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}]})
        r.raise_for_status()

    def direct(i: int) -> None:
        assistant.answer([Message(role="user", content=PROMPTS[i % len(PROMPTS)])], "instant",
                         {"max_tokens": max_tokens})

    over_http(0)  # warm up both paths
    direct(0)
    levels_out, direct_out = [], []
    try:
        for c in levels:
            d = _level(direct, requests, c)
            h = _level(over_http, requests, c)
            levels_out.append({"concurrency": c, **{k: round(v, 4) for k, v in h.items()}})
            direct_out.append({"concurrency": c, **{k: round(v, 4) for k, v in d.items()}})
            say(f"concurrency {c}: server {h['rps']:.2f} req/s, direct {d['rps']:.2f} req/s")
    finally:
        client.close()
        server.should_exit = True
        thread.join(timeout=10)
    total_h = sum(x["wall_s"] for x in levels_out)
    total_d = sum(x["wall_s"] for x in direct_out)
    report = {
        "args": {"levels": list(levels), "requests": requests, "max_tokens": max_tokens, "model": engine.model,
                 "engine": engine.name, "mode": "instant"},
        "env": environment(),
        "levels": levels_out,
        "direct": direct_out,
        "overhead": round(total_h / total_d - 1, 4),
        "scaling": {str(x["concurrency"]): round(x["rps"] / levels_out[0]["rps"], 3) for x in levels_out},
    }
    path = Path(out_path) if out_path else Path("results") / f"bench-serve-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    return report, path
