"""Security of `muse serve` against a real server process on loopback (the embedded model where
an answer matters): conversations isolated per API key, the owner migration of an old database,
the Host allow-list (DNS rebinding), security headers and no remote image loads in the web app
(Debian's Chromium through Playwright), typed content parts, 413 for chunked bodies, `n`, `/docs`
off, redacted 502s, a private store file, the question kept when generation crashes (a loopback
endpoint that drops its stream: a test double at the HTTP seam) and a conversation deleted while
its answer is generating. The attack requests are data: `tests/attacks/server.json`.
Run: `.venv/bin/pytest tests/test_security_server.py` (Chromium for the web-app test)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path

import httpx
import pytest

from .conftest import free_port
from .test_server import Server

ATTACKS = json.loads((Path(__file__).parent / "attacks" / "server.json").read_text())["requests"]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
Q = [{"role": "user", "content": "What is the capital of France?"}]


def auth(key: str | None) -> dict:
    return {"authorization": ("Bearer " + key).encode()} if key else {}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Two keys and a small body limit; the store is MUSE_HOME's openmuse.db."""
    s = Server(tmp_path_factory.mktemp("sechome"), "--server-key", "K1", "--server-key", "K2", "--max-body-mb", "0.05")
    yield s
    s.stop()


def ask(server, key: str, **extra) -> dict:
    body = {"model": "muse-instant", "messages": Q, "max_tokens": 8, **extra}
    r = httpx.post(f"{server.url}/v1/chat/completions", json=body, headers=auth(key), timeout=300)
    assert r.status_code == 200, r.text
    return r.json()


def test_keys_see_only_their_own_conversations(server):
    cid = ask(server, "K1")["muse"]["conversation_id"]
    url = f"{server.url}/v1/conversations/{cid}"
    k2 = auth("K2")
    assert cid not in [c["id"] for c in httpx.get(f"{server.url}/v1/conversations", headers=k2).json()["data"]]
    attempts = [httpx.get(url, headers=k2), httpx.patch(url, json={"title": "mine now"}, headers=k2),
                httpx.delete(url, headers=k2),
                httpx.post(f"{server.url}/v1/chat/completions", headers=k2, timeout=300, json={
                    "model": "muse-instant", "messages": Q, "max_tokens": 8, "muse": {"conversation_id": cid}})]
    for r in attempts:  # 404, as for a conversation that does not exist
        assert r.status_code == 404 and r.json()["error"]["code"] == "conversation_not_found", r.text
    conv = httpx.get(url, headers=auth("K1")).json()
    assert [m["role"] for m in conv["messages"]] == ["user", "assistant"] and conv["title"] != "mine now"
    assert cid in [c["id"] for c in httpx.get(f"{server.url}/v1/conversations", headers=auth("K1")).json()["data"]]


@pytest.mark.parametrize("attack", ATTACKS, ids=[a["what"][:40] for a in ATTACKS])
def test_attack_corpus(server, attack):
    headers = {k: v.replace("{port}", str(server.port)) for k, v in attack.get("headers", {}).items()}
    r = httpx.request(attack["method"], f"{server.url}{attack['path']}", json=attack.get("json"),
                      headers={**auth(attack["key"]), **headers}, timeout=120)
    assert r.status_code == attack["status"], r.text
    assert "Traceback" not in r.text
    if attack["code"]:
        err = r.json()["error"]
        assert err["code"] == attack["code"] and err["message"] and err["type"] == "invalid_request_error"


def test_loopback_hosts_are_served(server):
    for host in (f"localhost:{server.port}", f"127.0.0.1:{server.port}", "[::1]", "LOCALHOST."):
        r = httpx.get(f"{server.url}/v1/models", headers={**auth("K1"), "host": host})
        assert r.status_code == 200, (host, r.text)


def test_security_headers_on_the_app_and_the_api(server):
    for path in ("/", "/static/app.js", "/static/style.css", "/v1/models", "/v1/nope"):
        r = httpx.get(f"{server.url}{path}", headers=auth("K1"))
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "img-src 'self' data: blob:;" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp and "http" not in csp
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["x-frame-options"] == "DENY"


def test_chunked_body_over_the_limit_is_413(server):
    def body():  # no Content-Length: the server must count (the limit is 0.05 MB)
        yield b'{"model": "muse-instant", "messages": [{"role": "user", "content": "'
        for _ in range(8):
            yield b"x" * 16384
        yield b'"}]}'

    r = httpx.post(f"{server.url}/v1/chat/completions", content=body(),
                   headers={**auth("K1"), "content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large", r.text


def test_default_store_file_is_private(server):
    assert stat.S_IMODE((server.home / "openmuse.db").stat().st_mode) == 0o600


def test_store_file_and_folder_are_private(tmp_path):
    folder = tmp_path / "new" / "store"
    s = Server(tmp_path, "--database-url", f"sqlite:///{folder / 'muse.db'}",
               "--engine", "openai", "--base-url", f"http://127.0.0.1:{free_port()}/v1", "--model", "m")
    try:
        assert stat.S_IMODE((folder / "muse.db").stat().st_mode) == 0o600
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    finally:
        s.stop()


def test_delete_while_generating_discards_the_answer(server):
    cid = ask(server, "K1")["muse"]["conversation_id"]
    url = f"{server.url}/v1/conversations/{cid}"
    body = {"model": "muse-instant", "stream": True, "max_tokens": 200, "muse": {"conversation_id": cid},
            "messages": [*Q, {"role": "assistant", "content": "Paris."},
                         {"role": "user", "content": "Write the numbers from 1 to 100 in words, one a line."}]}
    errors, deleted = [], None
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, headers=auth("K1"), timeout=300) as r:
        for line in r.iter_lines():
            if not line.startswith("data:") or line == "data: [DONE]":
                continue
            data = json.loads(line[5:])
            if "error" in data:
                errors.append(data["error"])
            elif deleted is None:  # the first chunk: the question is stored and the answer is generating
                deleted = httpx.delete(url, headers=auth("K1"))
    assert deleted is not None and deleted.status_code == 200, deleted and deleted.text
    assert [e["code"] for e in errors] == ["conversation_deleted"]
    ask(server, "K1")  # queued behind the deleted answer's generation on the engine's lock: it is done
    assert httpx.get(url, headers=auth("K1")).status_code == 404


class LeakListener:
    """A loopback listener that counts the requests a page makes to it."""

    def __init__(self):
        self.hits: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                outer.hits.append(self.path)
                self.send_response(200)
                self.send_header("content-type", "image/png")
                self.send_header("content-length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self):
        self._server.shutdown()
        self._server.server_close()


@pytest.mark.skipif(not os.path.exists(CHROMIUM) and not os.environ.get("CI"), reason="Chromium is not installed")
def test_web_app_never_loads_a_stored_answers_image(server):
    from playwright.sync_api import sync_playwright

    from openmuse.server.store import Store, owner_of

    from .test_webapp import FLAGS

    leak = LeakListener()
    try:
        url = f"http://127.0.0.1:{leak.port}/leak"
        store = Store(f"sqlite:///{server.home / 'openmuse.db'}")
        conv = store.create("injected", owner=owner_of("K1"))
        store.add_messages(conv["id"], [
            {"role": "user", "content": "summarise my notes"},
            {"role": "assistant", "content": f"Done. ![x]({url}?q=secret+notes) <img src=\"{url}\">",
             "mode": "instant", "usage": {"prompt_tokens": 1, "completion_tokens": 1}}], owner=owner_of("K1"))
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page()
            page.add_init_script("localStorage.setItem('muse-key', 'K1')")
            page.set_default_timeout(60_000)
            page.goto(server.url)
            page.locator("#conversations li .open", has_text="injected").click()
            page.locator(".answer a.image-link").wait_for()
            page.wait_for_load_state("networkidle")
            assert page.locator(".answer img").count() == 0
            browser.close()
        assert leak.hits == []
    finally:
        leak.close()


# -- the openai engine at the HTTP seam -----------------------------------------------------
class DroppingEndpoint:
    """A test double at the outer HTTP seam: an OpenAI-compatible endpoint that starts its answer
    (a few SSE chunks, or half a JSON body) and then drops the connection, as a crashing engine."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                self.send_response(200)
                self.send_header("content-type", "text/event-stream" if body.get("stream") else "application/json")
                self.send_header("content-length", "100000")  # promised, never sent in full
                self.end_headers()
                if body.get("stream"):
                    for word in ("The", " answer", " is"):
                        delta = {"choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]}
                        self.wfile.write(f"data: {json.dumps({'id': 'x', 'object': 'chat.completion.chunk', 'created': 0, 'model': 'm', **delta})}\n\n".encode())
                else:
                    self.wfile.write(b'{"id": "x", "choices": [{"index": 0, "message": {"role": "assis')
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self):
        self._server.shutdown()
        self._server.server_close()


@pytest.mark.parametrize("stream", [False, True])
def test_a_crash_mid_generation_keeps_the_question(tmp_path, stream):
    ep = DroppingEndpoint()
    s = Server(tmp_path, "--engine", "openai", "--base-url", ep.url, "--model", "m")
    try:
        question = f"Please keep this question ({'streamed' if stream else 'whole'})"
        r = httpx.post(f"{s.url}/v1/chat/completions", timeout=120, json={
            "model": "muse-instant", "stream": stream, "messages": [{"role": "user", "content": question}]})
        assert "Traceback" not in r.text
        if stream:
            assert '"error"' in r.text
        else:
            assert r.status_code >= 500 and "error" in r.json()
        (conv,) = httpx.get(f"{s.url}/v1/conversations").json()["data"]
        messages = httpx.get(f"{s.url}/v1/conversations/{conv['id']}").json()["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant"]
        assert messages[0]["content"] == question
        assert messages[1]["extra"]["error"]["message"] and messages[1]["content"] == ""
    finally:
        s.stop()
        ep.close()


def test_old_database_is_migrated_and_502_is_redacted(tmp_path):
    """A database of revision 0001 (before owners) with one conversation: after the upgrade it
    belongs to the first key. The engine is a closed loopback port: the 502 names no URL."""
    import sqlite3

    from alembic import command
    from alembic.config import Config

    db = tmp_path / "old.db"
    cfg = Config()
    cfg.set_main_option("script_location", str(files("openmuse.server").joinpath("migrations")))
    cfg.set_main_option("sqlalchemy.url", f"sqlite:///{db}")
    command.upgrade(cfg, "0001")
    with sqlite3.connect(db) as c:
        c.execute("INSERT INTO conversations VALUES ('old1', 'Before owners', '2025-01-01 00:00:00', '2025-01-01 00:00:00')")
        c.execute("INSERT INTO messages (conversation_id, role, content, reasoning, created_at) "
                  "VALUES ('old1', 'user', 'an old question', '', '2025-01-01 00:00:00')")
    closed = free_port()
    s = Server(tmp_path, "--server-key", "K1", "--server-key", "K2", "--database-url", f"sqlite:///{db}",
               "--engine", "openai", "--base-url", f"http://user:pw@127.0.0.1:{closed}/v1", "--model", "m")
    try:
        listed = httpx.get(f"{s.url}/v1/conversations", headers=auth("K1")).json()["data"]
        assert [c["id"] for c in listed] == ["old1"]
        old = httpx.get(f"{s.url}/v1/conversations/old1", headers=auth("K1")).json()
        assert old["messages"][0]["content"] == "an old question"
        assert httpx.get(f"{s.url}/v1/conversations", headers=auth("K2")).json()["data"] == []
        r = httpx.post(f"{s.url}/v1/chat/completions", headers=auth("K1"), timeout=120,
                       json={"model": "muse-instant", "messages": Q})
        assert r.status_code == 502, r.text
        assert str(closed) not in r.text and "127.0.0.1" not in r.text and "pw" not in r.text
        assert ":pw@" not in (tmp_path / f"server-{s.port}.log").read_text()
    finally:
        s.stop()


def test_grounding_stores_a_reference_not_the_png(tmp_path):
    """The annotated PNG comes back in the response; the store keeps its hash and size only."""
    import base64
    import hashlib

    from .recording_endpoint import RecordingEndpoint
    from .test_grounding import photo

    data = photo(tmp_path / "birds.png").read_bytes()
    part = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(data).decode()}}
    ep = RecordingEndpoint(reasoning="", answer='<point x="25" y="50" alt="pelican">pelican</point>',
                           style="reasoning_content")
    s = Server(tmp_path, "--engine", "openai", "--base-url", ep.url, "--model", "allenai/Molmo-7B-D",
               "--modalities", "image")
    try:
        r = httpx.post(f"{s.url}/v1/chat/completions", timeout=120, json={
            "model": "muse-instant", "muse": {"ground": True},
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Point to the pelican."}, part]}]})
        assert r.status_code == 200, r.text
        assert r.json()["muse"]["mode"] == "ground"
        png_url = r.json()["muse"]["trace"]["image"]
        assert png_url.startswith("data:image/png;base64,")
        conv = httpx.get(f"{s.url}/v1/conversations/{r.json()['muse']['conversation_id']}").json()
        stored = conv["messages"][1]["extra"]["trace"]["image"]
        assert stored["sha256"] == hashlib.sha256(png_url.split(",", 1)[1].encode()).hexdigest()
        assert stored["media_type"] == "image/png" and "base64" not in json.dumps(conv)
    finally:
        s.stop()
        ep.close()
