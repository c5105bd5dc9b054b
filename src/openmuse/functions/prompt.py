"""The prompt format of function calling for engines that take plain text (the local engine),
and the parser of what the model writes back.

- The tools, as JSON lines inside ``<tools>``, go at the end of the system message (one is
  added when the conversation has none), with how to call them (``prompts/functions.yaml``).
- An assistant message's ``tool_calls`` become ``<tool_call>{"name", "arguments"}</tool_call>``
  blocks after its text; ``tool`` messages become one user turn of ``<tool_response>`` blocks.
- ``parse`` reads the calls back: every ``<tool_call>`` block (the last may be cut before its
  closing tag), or a bare ``{"name", "arguments"|"parameters"}`` object (Llama 3's style), naming
  a given tool with an arguments object. Anything else stays text.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

from .. import prompts
from ..types import Message, ToolCall
from .spec import Output

OPEN, CLOSE = "<tool_call>", "</tool_call>"
_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)


def call_id() -> str:
    return "call_" + secrets.token_hex(12)


def system_text(out: Output) -> str:
    """What the system message gains for ``out``: the tools and how to call them, the JSON
    the answer must be; "" when nothing constrains the answer."""
    p = prompts.load("functions")
    parts: list[str] = []
    if out.tools:
        lines = [json.dumps({"name": t.name, "description": t.description, "parameters": t.parameters},
                            ensure_ascii=False) for t in out.tools]
        parts.append(p["tools"].format(tools="\n".join(lines)))
        if out.choice == "required":
            parts.append(p["required"])
        elif out.choice == "function":
            parts.append(p["forced"].format(name=out.forced))
    if out.format == "json_object":
        parts.append(p["json_object"])
    elif out.format == "json_schema":
        parts.append(p["json_schema"].format(schema=json.dumps(out.schema, ensure_ascii=False)))
    return "\n\n".join(parts)


def render(messages: list[Message], out: Output) -> list[Message]:
    """``messages`` as plain-text turns: tool descriptions in the system message, calls and
    their results as text blocks (roles ``system``, ``user``, ``assistant`` only)."""
    extra = system_text(out)
    msgs: list[Message] = []
    pending: list[str] = []  # tool results waiting to become one user turn

    def flush() -> None:
        if pending:
            msgs.append(Message(role="user", content="\n".join(pending)))
            pending.clear()

    for m in messages:
        if m.role == "tool":
            pending.append(f"<tool_response>\n{m.text()}\n</tool_response>")
            continue
        flush()
        if m.role == "assistant" and m.tool_calls:
            blocks = [f"{OPEN}\n{json.dumps({'name': c.name, 'arguments': _args(c.arguments)}, ensure_ascii=False)}"
                      f"\n{CLOSE}" for c in m.tool_calls]
            text = "\n".join([m.text().strip(), *blocks]).strip()
            msgs.append(Message(role="assistant", content=text, name=m.name))
        else:
            msgs.append(m)
    flush()
    if extra:
        i = next((i for i, m in enumerate(msgs) if m.role == "system"), None)
        if i is None:
            msgs.insert(0, Message(role="system", content=extra))
        else:
            msgs[i] = msgs[i].model_copy(update={"content": f"{msgs[i].text().rstrip()}\n\n{extra}"})
    return msgs


def needs_render(messages: list[Message], out: Output) -> bool:
    return bool(out.tools) or out.format != "text" or any(m.role == "tool" or m.tool_calls for m in messages)


def _args(text: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


def parse(text: str, out: Output) -> tuple[str, list[ToolCall]]:
    """(the text left, the calls) of a model's answer when ``out`` lets it call tools."""
    if not out.calls:
        return text, []
    names = {t.name for t in out.callable_tools()}
    calls: list[ToolCall] = []
    if OPEN in text:
        for m in _BLOCK.finditer(text):
            call = _call(m.group(1), names)
            if call:
                calls.append(call)
        if calls:
            rest = _BLOCK.sub("", text).strip()
            return rest, _distinct(calls) if out.parallel else calls[:1]
    stripped = text.strip()
    if stripped.startswith("{"):
        call = _call(stripped, names)
        if call:
            return "", [call]
    return text, []


def repeats(text: str, out: Output) -> bool:
    """Whether the last complete ``<tool_call>`` block of ``text`` repeats an earlier one (the
    engine then ends the answer: the repeat would be dropped anyway, and the next ones too)."""
    names = {t.name for t in out.callable_tools()}
    calls = [c for c in (_call(m.group(1), names) for m in _BLOCK.finditer(text)) if c]
    return len(calls) > 1 and (calls[-1].name, calls[-1].arguments) in {(c.name, c.arguments) for c in calls[:-1]}


def _distinct(calls: list[ToolCall]) -> list[ToolCall]:
    """The calls less exact repeats (a small model tends to repeat a call it has just made)."""
    seen: set[tuple[str, str]] = set()
    out = []
    for c in calls:
        if (c.name, c.arguments) not in seen:
            seen.add((c.name, c.arguments))
            out.append(c)
    return out


def _call(body: str, names: set[str]) -> ToolCall | None:
    try:
        obj, _end = json.JSONDecoder().raw_decode(body.strip())
    except ValueError:
        return None
    if not isinstance(obj, dict) or obj.get("name") not in names:
        return None
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):  # some models write the arguments as a JSON string
        try:
            args = json.loads(args)
        except ValueError:
            return None
    if not isinstance(args, dict):
        return None
    return ToolCall(id=call_id(), name=obj["name"], arguments=json.dumps(args, ensure_ascii=False))


def hold(text: str, out: Output) -> bool:
    """Whether streamed answer text must be held back: it is (or may yet become) a call."""
    if out.must_call:
        return True
    if not out.calls:
        return False
    head = text.lstrip()
    return head.startswith(OPEN) or OPEN.startswith(head) or head.startswith("{")
