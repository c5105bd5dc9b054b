"""The Responses API (``POST /v1/responses``: the OpenAI Agents SDK's default path) over the
same pipeline as Chat Completions.

A Responses request is translated into a ``ChatCompletionBody`` (``to_chat``): ``input``
items become messages (``function_call`` items an assistant message's ``tool_calls``,
``function_call_output`` items ``tool`` messages, ``reasoning`` items are left out), flat
function tools become chat tools, ``text.format`` becomes ``response_format`` and
``reasoning.effort`` picks the mode for the model ``muse``. It is then checked, prepared,
stored and answered by exactly the code that answers a chat completion; only the output is
shaped differently: a ``response`` object with ``reasoning``, ``message`` and
``function_call`` output items, or, streamed, the typed events (``response.created`` …
``response.output_text.delta`` … ``response.function_call_arguments.done`` …
``response.completed``), each named in its SSE ``event:`` line.

``previous_response_id`` continues a response this server gave (kept in memory, per key, for
the ``KEEP`` most recent responses); ``store: false`` keeps neither the response nor the
conversation.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import OrderedDict
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..assistant import Result
from ..types import Delta
from .chat import muse_field
from .chat_sse import Trim, sse
from .errors import APIError
from .schemas import ChatCompletionBody, MuseOptions

KEEP = 256  # responses remembered for previous_response_id


class ResponsesBody(BaseModel):
    """Fields the Responses API takes that OpenMuse does not use (``include``, ``metadata``,
    ``truncation``, ``user``, …) are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    stream: bool = False
    store: bool = True
    previous_response_id: str | None = None
    metadata: dict[str, Any] | None = None
    muse: MuseOptions = Field(default_factory=MuseOptions)


class Memory:
    """The conversation each recent response ended (for ``previous_response_id``), per owner."""

    def __init__(self, keep: int = KEEP):
        self._keep, self._lock = keep, threading.Lock()
        self._items: OrderedDict[tuple[str, str], list[dict[str, Any]]] = OrderedDict()

    def get(self, owner: str, rid: str) -> list[dict[str, Any]]:
        with self._lock:
            found = self._items.get((owner, rid))
        if found is None:
            raise APIError(404, f"no response '{rid}' (responses are kept in memory while the server runs)",
                           code="previous_response_not_found", param="previous_response_id")
        return list(found)

    def put(self, owner: str, rid: str, messages: list[dict[str, Any]]) -> None:
        with self._lock:
            self._items[(owner, rid)] = messages
            while len(self._items) > self._keep:
                self._items.popitem(last=False)


# -- the request --------------------------------------------------------------------------------
def _parts(content: Any, where: str) -> str | list[dict[str, Any]]:
    """A Responses message's content as chat content."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise APIError(400, f"{where}: content must be a string or a list of parts", param=where)
    out: list[dict[str, Any]] = []
    for j, p in enumerate(content):
        kind = p.get("type") if isinstance(p, dict) else None
        if kind in ("input_text", "output_text", "text"):
            out.append({"type": "text", "text": str(p.get("text", ""))})
        elif kind == "refusal":
            out.append({"type": "text", "text": str(p.get("refusal", ""))})
        elif kind == "input_image" and isinstance(p.get("image_url"), str):
            out.append({"type": "image_url", "image_url": {"url": p["image_url"]}})
        elif kind == "input_audio" and isinstance(p.get("input_audio"), dict):
            out.append({"type": "input_audio", "input_audio": p["input_audio"]})
        else:
            raise APIError(400, f"{where}.{j}: content parts of type {kind!r} are not served (input_text, "
                                "input_image with an image_url, input_audio)", code="unsupported_content_part",
                           param=f"{where}.{j}")
    if all(p["type"] == "text" for p in out):
        return "".join(p["text"] for p in out)
    return out


def input_messages(items: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``input`` as chat messages (OpenAI's wire shape)."""
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    msgs: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        where = f"input.{i}"
        if not isinstance(item, dict):
            raise APIError(400, f"{where} must be an object", param=where)
        kind = item.get("type", "message")
        if kind == "message" or (kind is None and "role" in item):
            role = item.get("role")
            if role not in ("user", "system", "developer", "assistant"):
                raise APIError(400, f"{where}.role must be user, system, developer or assistant", param=f"{where}.role")
            msgs.append({"role": role, "content": _parts(item.get("content", ""), f"{where}.content")})
        elif kind == "function_call":
            call = {"id": str(item.get("call_id") or item.get("id") or ""), "type": "function",
                    "function": {"name": str(item.get("name", "")), "arguments": str(item.get("arguments", "{}"))}}
            last = msgs[-1] if msgs else None
            if last and last["role"] == "assistant" and last.get("tool_calls") is not None:
                last["tool_calls"].append(call)
            else:
                msgs.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            out = item.get("output", "")
            msgs.append({"role": "tool", "tool_call_id": str(item.get("call_id", "")),
                         "content": out if isinstance(out, str) else json.dumps(out, ensure_ascii=False)})
        elif kind == "reasoning":
            continue  # the model's earlier reasoning is not fed back
        else:
            raise APIError(400, f"{where}: input items of type {kind!r} are not served (message, function_call, "
                                "function_call_output, reasoning)", code="unsupported_value", param=f"{where}.type")
    return msgs


def to_chat(body: ResponsesBody, earlier: list[dict[str, Any]]) -> ChatCompletionBody:
    """The chat completion this Responses request asks for."""
    messages = [*earlier, *input_messages(body.input)]
    if body.instructions:
        messages = [{"role": "system", "content": body.instructions},
                    *[m for m in messages if m["role"] not in ("system", "developer")]]
    tools = None
    if body.tools is not None:
        tools = []
        for i, t in enumerate(body.tools):
            if t.get("type") != "function":
                raise APIError(400, f"tools.{i}: tools of type {t.get('type')!r} are not served (only 'function')",
                               code="unsupported_value", param=f"tools.{i}.type")
            fn = {k: t[k] for k in ("name", "description", "parameters", "strict") if k in t}
            tools.append({"type": "function", "function": fn})
    fmt = (body.text or {}).get("format")
    effort = (body.reasoning or {}).get("effort")
    choice = body.tool_choice
    if isinstance(choice, dict) and choice.get("type") == "function" and "function" not in choice:
        choice = {"type": "function", "function": {"name": choice.get("name")}}
    try:
        return ChatCompletionBody(
            model=body.model, messages=messages, tools=tools, tool_choice=choice,
            parallel_tool_calls=body.parallel_tool_calls, response_format=fmt,
            max_tokens=body.max_output_tokens, temperature=body.temperature, top_p=body.top_p,
            reasoning_effort=effort, stream=body.stream,
            muse=body.muse.model_copy(update={"store": body.muse.store and body.store}))
    except ValueError as e:  # pydantic's error for a message the chat schema refuses
        raise APIError(400, f"input: {str(e).splitlines()[0]} ({str(e).splitlines()[-2].strip()})"[:300],
                       param="input") from None


# -- the response -------------------------------------------------------------------------------
def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


class Shaper:
    """One response's ids and its output items, built from a ``Result`` or its deltas."""

    def __init__(self, body: ResponsesBody, conv_id: str | None):
        self.body, self.conv_id = body, conv_id
        self.id, self.created = _id("resp"), int(time.time())
        self.msg_id, self.rs_id = _id("msg"), _id("rs")

    def envelope(self, status: str, output: list[dict[str, Any]], result: Result | None = None) -> dict[str, Any]:
        b = self.body
        incomplete = None
        if result is not None and result.finish_reason in ("length", "budget") and not result.tool_calls:
            status, incomplete = "incomplete", {"reason": "max_output_tokens"}
        elif result is not None and result.finish_reason == "content_filter":
            status, incomplete = "incomplete", {"reason": "content_filter"}
        out = {
            "id": self.id, "object": "response", "created_at": self.created, "status": status,
            "model": b.model, "output": output, "error": None, "incomplete_details": incomplete,
            "instructions": b.instructions, "metadata": b.metadata or {}, "parallel_tool_calls":
                b.parallel_tool_calls is not False, "temperature": b.temperature, "top_p": b.top_p,
            "tool_choice": b.tool_choice or "auto", "tools": b.tools or [], "max_output_tokens": b.max_output_tokens,
            "previous_response_id": b.previous_response_id, "reasoning": b.reasoning or {"effort": None,
                                                                                          "summary": None},
            "text": b.text or {"format": {"type": "text"}}, "truncation": "disabled", "store": b.store,
            "usage": None,
        }
        if result is not None:
            u = result.usage
            out["usage"] = {"input_tokens": u.prompt_tokens, "input_tokens_details": {"cached_tokens": u.cached_tokens},
                            "output_tokens": u.completion_tokens,
                            "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
                            "total_tokens": u.total_tokens}
            out["muse"] = muse_field(result, self.conv_id)
        return out

    def reasoning_item(self, text: str, status: str = "completed") -> dict[str, Any]:
        return {"type": "reasoning", "id": self.rs_id, "status": status,
                "summary": [{"type": "summary_text", "text": text}] if text else []}

    def message_item(self, text: str, status: str = "completed") -> dict[str, Any]:
        content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}] if status == "completed" else []
        return {"type": "message", "id": self.msg_id, "role": "assistant", "status": status, "content": content}

    @staticmethod
    def call_item(call: Any, status: str = "completed") -> dict[str, Any]:
        return {"type": "function_call", "id": "fc_" + call.id.removeprefix("call_"), "call_id": call.id,
                "name": call.name, "arguments": call.arguments if status == "completed" else "", "status": status}

    def output(self, result: Result) -> list[dict[str, Any]]:
        items = [self.reasoning_item(result.reasoning)] if result.reasoning else []
        if result.answer or not result.tool_calls:
            items.append(self.message_item(result.answer))
        items.extend(self.call_item(c) for c in result.tool_calls)
        return items

    def response(self, result: Result) -> dict[str, Any]:
        return self.envelope("completed", self.output(result), result)


def history(messages: list[dict[str, Any]], result: Result) -> list[dict[str, Any]]:
    """The conversation after ``result``, for a later ``previous_response_id``."""
    reply: dict[str, Any] = {"role": "assistant", "content": result.answer or None}
    if result.tool_calls:
        reply["tool_calls"] = [c.to_openai() for c in result.tool_calls]
    return [*messages, reply]


class ResponsesFormat:
    """The Responses API's streamed events, in the order OpenAI sends them, each with its
    ``sequence_number`` and named in its ``event:`` line."""

    def __init__(self, shaper: Shaper, on_done: Any = None):
        self.s, self.seq, self.on_done = shaper, 0, on_done
        self.text, self.reasoning = "", ""
        self.open: str | None = None  # the item now streaming: "reasoning" or "message"
        self.agents = False  # Contemplating's agents spoke: answer text is then the synthesis
        self.trim = Trim()
        self.items: list[dict[str, Any]] = []  # output items done

    def ev(self, kind: str, **data: Any) -> str:
        self.seq += 1
        return sse({"type": kind, "sequence_number": self.seq, **data}, kind)

    def start(self) -> list[str]:
        env = self.s.envelope("in_progress", [])
        return [self.ev("response.created", response=env), self.ev("response.in_progress", response=env)]

    def _close(self) -> list[str]:
        out: list[str] = []
        idx = len(self.items)
        if self.open == "reasoning":
            item = self.s.reasoning_item(self.reasoning)
            out += [self.ev("response.reasoning_summary_text.done", item_id=self.s.rs_id, output_index=idx,
                            summary_index=0, text=self.reasoning),
                    self.ev("response.reasoning_summary_part.done", item_id=self.s.rs_id, output_index=idx,
                            summary_index=0, part={"type": "summary_text", "text": self.reasoning}),
                    self.ev("response.output_item.done", output_index=idx, item=item)]
            self.items.append(item)
        elif self.open == "message":
            part = {"type": "output_text", "text": self.text, "annotations": [], "logprobs": []}
            item = self.s.message_item(self.text)
            out += [self.ev("response.output_text.done", item_id=self.s.msg_id, output_index=idx, content_index=0,
                            text=self.text, logprobs=[]),
                    self.ev("response.content_part.done", item_id=self.s.msg_id, output_index=idx,
                            content_index=0, part=part),
                    self.ev("response.output_item.done", output_index=idx, item=item)]
            self.items.append(item)
        self.open = None
        return out

    def _reasoning(self, text: str) -> list[str]:
        out: list[str] = []
        idx = len(self.items)
        if self.open != "reasoning":
            out += self._close()
            idx = len(self.items)
            out += [self.ev("response.output_item.added", output_index=idx,
                            item=self.s.reasoning_item("", "in_progress")),
                    self.ev("response.reasoning_summary_part.added", item_id=self.s.rs_id, output_index=idx,
                            summary_index=0, part={"type": "summary_text", "text": ""})]
            self.open = "reasoning"
        self.reasoning += text
        return [*out, self.ev("response.reasoning_summary_text.delta", item_id=self.s.rs_id, output_index=idx,
                              summary_index=0, delta=text)]

    def _text(self, text: str) -> list[str]:
        out: list[str] = []
        if self.open != "message":
            out += self._close()
            idx = len(self.items)
            out += [self.ev("response.output_item.added", output_index=idx,
                            item=self.s.message_item("", "in_progress")),
                    self.ev("response.content_part.added", item_id=self.s.msg_id, output_index=idx, content_index=0,
                            part={"type": "output_text", "text": "", "annotations": [], "logprobs": []})]
            self.open = "message"
        self.text += text
        return [*out, self.ev("response.output_text.delta", item_id=self.s.msg_id, output_index=len(self.items),
                              content_index=0, delta=text, logprobs=[])]

    def delta(self, _i: int, d: Delta) -> list[str]:
        if d.kind in ("agent", "status"):
            self.agents = True
            return self._reasoning(f"Agent {d.index + 1} {d.text}.\n") if d.kind == "status" else []
        if d.kind == "reasoning" or self.agents:  # the synthesizer's text is reasoning too
            return self._reasoning(d.text) if d.text else []
        text = self.trim.feed(d.text)
        return self._text(text) if text else []

    def final(self, _i: int, result: Result) -> list[str]:
        out: list[str] = []
        if result.reasoning and not self.reasoning:
            out += self._reasoning(result.reasoning)
        if result.answer.startswith(self.text) and (result.answer or not result.tool_calls):
            rest = result.answer[len(self.text):]
            out += self._text(rest) if rest or self.open != "message" else []
        self.text = result.answer  # a check that rewrote the answer: output_text.done has the final text
        out += self._close()
        for call in result.tool_calls:
            idx = len(self.items)
            item = self.s.call_item(call)
            out += [self.ev("response.output_item.added", output_index=idx, item=self.s.call_item(call, "in_progress")),
                    self.ev("response.function_call_arguments.delta", item_id=item["id"], output_index=idx,
                            delta=call.arguments),
                    self.ev("response.function_call_arguments.done", item_id=item["id"], output_index=idx,
                            arguments=call.arguments, name=call.name),
                    self.ev("response.output_item.done", output_index=idx, item=item)]
            self.items.append(item)
        env = self.s.envelope("completed", self.items, result)
        if self.on_done is not None:
            self.on_done(result)
        kind: Literal["response.completed", "response.incomplete"] = (
            "response.completed" if env["status"] == "completed" else "response.incomplete")
        return [*out, self.ev(kind, response=env)]

    def end(self, _results: list[Result]) -> list[str]:
        return []

    def error(self, err: dict[str, Any]) -> list[str]:
        e = err.get("error", {})
        env = self.s.envelope("failed", self.items)
        env["error"] = {"code": e.get("code") or "server_error", "message": e.get("message", "")}
        return [self.ev("error", code=e.get("code"), message=e.get("message", ""), param=e.get("param")),
                self.ev("response.failed", response=env)]

