"""Function calling and structured output as OpenAI defines them, checked once.

``Output`` is what a request asks of the answer's shape: ``tools`` (function tools with a JSON
schema for their arguments), ``tool_choice`` (``auto``, ``none``, ``required`` or one named
function), ``parallel_tool_calls`` and ``response_format`` (``text``, ``json_object`` or
``json_schema``). ``Output.parse`` takes the request's raw values, in either the Chat
Completions or the Responses shape, and raises ``SpecError`` naming the bad field (HTTP: a 400
with ``param``). Engines receive the raw OpenAI shapes on ``ChatRequest``; the local engine
turns them into a prompt (``prompt.py``) and a grammar (``grammar.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
CHOICES = ("auto", "none", "required")
FORMATS = ("text", "json_object", "json_schema")


class SpecError(ConfigError):
    """A bad ``tools``/``tool_choice``/``response_format`` value; ``param`` names it."""

    code = "invalid_value"

    def __init__(self, message: str, param: str):
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class Tool:
    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool = False

    def to_openai(self) -> dict[str, Any]:
        fn: dict[str, Any] = {"name": self.name, "parameters": self.parameters}
        if self.description:
            fn["description"] = self.description
        if self.strict:
            fn["strict"] = True
        return {"type": "function", "function": fn}


@dataclass(frozen=True)
class Output:
    """The answer's shape: the tools it may call and how, or the JSON it must be."""

    tools: tuple[Tool, ...] = ()
    choice: str = "auto"  # auto | none | required | function (then ``forced`` names it)
    forced: str | None = None
    parallel: bool = True
    format: str = "text"  # text | json_object | json_schema
    schema: dict[str, Any] | None = None  # json_schema: the schema
    schema_name: str = "response"

    @property
    def calls(self) -> bool:
        """Whether the model may answer with function calls."""
        return bool(self.tools) and self.choice != "none"

    @property
    def must_call(self) -> bool:
        return bool(self.tools) and self.choice in ("required", "function")

    @property
    def active(self) -> bool:
        """Whether anything constrains the answer."""
        return self.calls or self.format != "text"

    def callable_tools(self) -> tuple[Tool, ...]:
        return tuple(t for t in self.tools if self.forced in (None, t.name))

    def request_fields(self) -> dict[str, Any]:
        """The ``ChatRequest`` fields (OpenAI's chat shapes) for the answer's request."""
        out: dict[str, Any] = {}
        if self.tools:
            out["tools"] = tuple(t.to_openai() for t in self.tools)
            out["tool_choice"] = ({"type": "function", "function": {"name": self.forced}}
                                  if self.choice == "function" else self.choice)
            out["parallel_tool_calls"] = self.parallel
        if self.format == "json_object":
            out["response_format"] = {"type": "json_object"}
        elif self.format == "json_schema":
            out["response_format"] = {"type": "json_schema", "json_schema": {
                "name": self.schema_name, "schema": self.schema, "strict": True}}
        return out

    @classmethod
    def of(cls, request: Any) -> Output:
        """The ``Output`` a ``ChatRequest`` carries (already checked where it was made)."""
        return cls.parse(list(request.tools), request.tool_choice, request.parallel_tool_calls,
                         request.response_format)

    @classmethod
    def parse(cls, tools: list[Any] | None, tool_choice: Any = None, parallel: bool | None = None,
              response_format: Any = None) -> Output:
        parsed = tuple(_tool(t, f"tools.{i}") for i, t in enumerate(tools or []))
        names = [t.name for t in parsed]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup:
            raise SpecError(f"two tools are named '{dup}'", "tools")
        choice, forced = _choice(tool_choice, names)
        fmt, schema, sname = _format(response_format)
        return cls(tools=parsed, choice=choice, forced=forced, parallel=True if parallel is None else bool(parallel),
                   format=fmt, schema=schema, schema_name=sname)


def _tool(t: Any, where: str) -> Tool:
    """A function tool in the Chat Completions shape (``{"type": "function", "function": {…}}``)
    or the Responses shape (``{"type": "function", "name": …, "parameters": …}``)."""
    if not isinstance(t, dict):
        raise SpecError(f"{where} must be an object", where)
    kind = t.get("type", "function")
    if kind != "function":
        raise SpecError(f"{where}: tools of type '{kind}' are not served (only 'function')", f"{where}.type")
    fn = t.get("function", t)
    if not isinstance(fn, dict):
        raise SpecError(f"{where}.function must be an object", f"{where}.function")
    name = fn.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise SpecError(f"{where}: the function name must be 1-64 letters, digits, '_', '.' or '-'", f"{where}.name")
    params = fn.get("parameters")
    if params is None:
        params = {"type": "object", "properties": {}}
    if not isinstance(params, dict):
        raise SpecError(f"{where}: parameters must be a JSON schema object", f"{where}.parameters")
    if params.get("type", "object") != "object" and "$ref" not in params and "anyOf" not in params:
        raise SpecError(f"{where}: parameters must describe an object", f"{where}.parameters")
    desc = fn.get("description") or ""
    if not isinstance(desc, str):
        raise SpecError(f"{where}: description must be a string", f"{where}.description")
    return Tool(name=name, description=desc, parameters=params, strict=bool(fn.get("strict")))


def _choice(c: Any, names: list[str]) -> tuple[str, str | None]:
    if c is None:
        return "auto", None
    if isinstance(c, str):
        if c not in CHOICES:
            raise SpecError(f"tool_choice must be one of {', '.join(CHOICES)} or a named function, not '{c}'",
                            "tool_choice")
        if c == "required" and not names:
            raise SpecError("tool_choice 'required' needs tools", "tool_choice")
        return c, None
    if isinstance(c, dict):
        kind = c.get("type")
        if kind == "allowed_tools":  # Responses/Chat's allowed-tools form: a mode over a subset
            mode = c.get("mode", "auto")
            return _choice(mode, names)
        fn = c.get("function") if isinstance(c.get("function"), dict) else c
        name = fn.get("name")
        if kind == "function" and isinstance(name, str):
            if name not in names:
                raise SpecError(f"tool_choice names the function '{name}', which is not in tools "
                                f"({', '.join(names) or 'none given'})", "tool_choice")
            return "function", name
    raise SpecError("tool_choice must be 'auto', 'none', 'required' or {\"type\": \"function\", "
                    "\"function\": {\"name\": …}}", "tool_choice")


def _format(rf: Any) -> tuple[str, dict[str, Any] | None, str]:
    if rf is None:
        return "text", None, "response"
    if not isinstance(rf, dict):
        raise SpecError("response_format must be an object with a 'type'", "response_format")
    kind = rf.get("type")
    if kind not in FORMATS:
        raise SpecError(f"response_format.type must be one of {', '.join(FORMATS)}, not {kind!r}",
                        "response_format.type")
    if kind != "json_schema":
        return kind, None, "response"
    # Chat Completions nests it under json_schema; Responses' text.format has it flat
    spec = rf.get("json_schema", rf)
    if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
        raise SpecError("response_format json_schema needs json_schema.schema (a JSON schema object)",
                        "response_format.json_schema.schema")
    name = spec.get("name") or "response"
    return kind, spec["schema"], str(name)
