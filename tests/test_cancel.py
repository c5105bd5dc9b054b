"""Cancellation end to end: an HTTP engine's streams are closed when the request's control is
cancelled (against llama-cpp-python's real server), and a client that drops a long streamed
answer from `muse serve` frees the engine: its sequences leave the batch, the question keeps a
`request_cancelled` marker, and the next request is served.
Run: `.venv/bin/pytest tests/test_cancel.py`."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest

from openmuse.engines import EngineSettings, create_engine
from openmuse.engines.control import RequestControl
from openmuse.errors import Cancelled
from openmuse.types import ChatRequest, Delta

STORY = [{"role": "user", "content": "Write a very long story about a lighthouse keeper and the sea."}]


def test_an_http_engine_stream_stops_when_cancelled(llama_server):
    remote = create_engine(EngineSettings(engine="openai", base_url=llama_server, prefill="no"))
    control = RequestControl()
    pieces = 0

    def on_delta(d: Delta) -> None:
        nonlocal pieces
        pieces += 1
        if pieces == 3:
            control.cancel()

    with pytest.raises(Cancelled):
        remote.generate_many([ChatRequest(messages=STORY, max_tokens=400)] * 2, on_delta=on_delta, control=control)
    assert 3 <= pieces < 100  # stopped long before 2 × 400 tokens
    with pytest.raises(Cancelled):  # a cancelled request sends nothing more
        remote.generate_many([ChatRequest(messages=STORY, max_tokens=4)], control=control)


@pytest.fixture
def served(engine, tmp_path):
    """`create_app` on a real loopback socket (uvicorn in a thread) over the shared engine."""
    import uvicorn

    from openmuse.server.app import ServerConfig, create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(ServerConfig(database_url=f"sqlite:///{tmp_path}/c.db"), engine=engine)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_a_dropped_contemplating_stream_frees_the_engine(engine, served):
    decoded_before = engine.stats["tokens_decoded"]
    body = {"model": "muse-contemplating", "stream": True, "messages": STORY,
            "muse": {"agents": 16, "agent_tokens": 600, "early_stop": False, "events": True}}
    cid = None
    with httpx.Client(timeout=120) as client, client.stream("POST", f"{served}/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        texts = 0
        for line in r.iter_lines():
            if line.startswith("data: ") and '"text"' in line and '"agent"' in line:
                texts += 1
                if texts >= 20:  # the agents are decoding: drop the connection
                    break
    dropped_at = engine.stats["tokens_decoded"]
    t0 = time.perf_counter()
    small = httpx.post(f"{served}/v1/chat/completions", timeout=120, json={
        "model": "muse-instant", "max_tokens": 8, "messages": [{"role": "user", "content": "Say hi."}],
        "muse": {"store": False}})
    small_s = time.perf_counter() - t0
    assert small.status_code == 200, small.text
    # The 16 agents would have decoded up to 16 × 600 tokens; they stopped soon after the drop.
    spent = engine.stats["tokens_decoded"] - decoded_before
    assert spent < 16 * 600 / 2, (spent, dropped_at - decoded_before)
    convs = httpx.get(f"{served}/v1/conversations").json()["data"]
    cid = convs[0]["id"]
    deadline = time.time() + 30
    while time.time() < deadline:  # the marker is written when the worker sees the cancel
        msgs = httpx.get(f"{served}/v1/conversations/{cid}").json()["messages"]
        if len(msgs) == 2:
            break
        time.sleep(0.2)
    assert msgs[0]["role"] == "user" and msgs[1]["extra"]["error"]["code"] == "request_cancelled"
    print(json.dumps({"small_request_s": round(small_s, 3), "tokens_after_drop": spent}))


def test_a_request_queued_past_its_deadline_gets_a_503(tmp_path):
    """One sequence slot, held by a long generation: a request that cannot start within the
    server's --queue-timeout gets OpenAI's error object (503, engine_overloaded), and nothing is
    decoded for it."""
    from fastapi.testclient import TestClient

    from openmuse.engines.local import LocalEngine
    from openmuse.server.app import ServerConfig, create_app

    settings = EngineSettings(n_seq_max=1, n_ctx=2048)
    one = LocalEngine.shared(settings)
    holder = one.stream(ChatRequest(messages=STORY, max_tokens=900, ignore_eos=True))
    next(holder)  # the one slot is taken
    try:
        config = ServerConfig(engine=settings, database_url=f"sqlite:///{tmp_path}/q.db", queue_timeout_s=0.5)
        with TestClient(create_app(config, engine=one), base_url="http://127.0.0.1") as client:
            r = client.post("/v1/chat/completions", json={
                "model": "muse-instant", "max_tokens": 8, "messages": [{"role": "user", "content": "Say hi."}]})
            assert r.status_code == 503, r.text
            err = r.json()["error"]
            assert err["code"] == "engine_overloaded" and "queue timeout of 0.5 s" in err["message"]
            conv = client.get("/v1/conversations").json()["data"][0]
            msgs = client.get(f"/v1/conversations/{conv['id']}").json()["messages"]
            assert msgs[0]["content"] == "Say hi." and msgs[1]["extra"]["error"]["code"] == "engine_overloaded"
    finally:
        holder.close()
