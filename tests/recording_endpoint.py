"""A test double at the outer HTTP seam: a tiny OpenAI-compatible endpoint that replies with a
scripted reasoning model's output and records every request it gets.

It stands in only for what no packaged model can do here: a model that reasons natively and
returns `<think>…</think>` in its content or `reasoning_content` beside it (as vLLM does with a
reasoning parser). Everything else about the openai engine is tested against a real server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class RecordingEndpoint:
    def __init__(self, reasoning: str, answer: str, style: str = "think-tags"):
        self.reasoning, self.answer, self.style = reasoning, answer, style
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, code: int, body: bytes, ctype: str = "application/json"):
                self.send_response(code)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path.endswith("/models"):
                    self._send(200, json.dumps({"object": "list", "data": [{"id": "scripted-reasoner", "object": "model"}]}).encode())
                else:
                    self._send(404, b'{"error": {"message": "not found"}}')

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                outer.requests.append(body)
                pieces = outer._pieces()
                usage = {"prompt_tokens": 11, "completion_tokens": len(pieces), "total_tokens": 11 + len(pieces)}
                if outer.style == "reasoning_content":  # a reasoning parser counts them; plain text does not
                    usage["completion_tokens_details"] = {"reasoning_tokens": outer._n_reasoning_pieces()}
                if not body.get("stream"):
                    msg = {"role": "assistant", "content": "".join(p["content"] for p in pieces if "content" in p)}
                    r = "".join(p["reasoning_content"] for p in pieces if "reasoning_content" in p)
                    if r:
                        msg["reasoning_content"] = r
                    resp = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                            "choices": [{"index": 0, "message": msg, "finish_reason": "stop"}], "usage": usage}
                    self._send(200, json.dumps(resp).encode())
                    return
                chunks = []
                for p in pieces:
                    chunks.append({"id": "x", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                                   "choices": [{"index": 0, "delta": p, "finish_reason": None}]})
                chunks.append({"id": "x", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                               "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                chunks.append({"id": "x", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                               "choices": [], "usage": usage})
                data = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
                self._send(200, data.encode(), "text/event-stream")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _pieces(self) -> list[dict]:
        """The output in small chunks, tags split across chunk boundaries on purpose."""
        if self.style == "think-tags":
            text = f"<think>\n{self.reasoning}\n</think>\n\n{self.answer}"
            return [{"content": text[i:i + 3]} for i in range(0, len(text), 3)]
        r = [{"reasoning_content": self.reasoning[i:i + 4]} for i in range(0, len(self.reasoning), 4)]
        return r + [{"content": self.answer[i:i + 4]} for i in range(0, len(self.answer), 4)]

    def _n_reasoning_pieces(self) -> int:
        return sum(1 for p in self._pieces() if "reasoning_content" in p)

    def close(self):
        self._server.shutdown()
        self._server.server_close()
