"""GBNF grammars that hold the local engine's output to a requested shape.

llama.cpp samples under a grammar (``llama_sampler_init_grammar``): only tokens that keep the
text inside the grammar can be drawn, so even the 135M model writes a call that names a given
tool with arguments valid against its schema, or JSON valid against a ``json_schema``. The
JSON-schema-to-grammar conversion is llama-cpp-python's (``llama_cpp.llama_grammar``); this
module composes its rules:

- ``required``/named tool: ``<tool_call>`` block(s) holding ``{"name": <one of the tools>,
  "arguments": <that tool's schema>}`` (up to ``MAX_PARALLEL`` blocks when parallel calls are
  allowed), then the end of the answer.
- ``auto``: either such blocks, or text that does not start with ``<`` (the model chooses).
- ``json_object``: one JSON object; ``json_schema``: JSON valid against the schema.

Objects take only the properties their schema names unless ``additionalProperties`` says
otherwise; whitespace between tokens is bounded, so a small model cannot run away in it.
"""

from __future__ import annotations

import copy
from typing import Any

from llama_cpp.llama_grammar import SchemaConverter

from .spec import Output, SpecError

MAX_PARALLEL = 4  # most <tool_call> blocks in one answer
# Bounds the grammar sets where the schema sets none (a small model otherwise repeats itself
# inside a string or an array until max_tokens cuts the JSON): still valid against the schema.
MAX_STRING = 100  # characters of a string without maxLength (enum, const, pattern, format: as given)
MAX_ITEMS = 8  # items of an array without maxItems
_REF_ROOTS = ("#/$defs/", "#/definitions/")


def grammar(out: Output) -> str | None:
    """The GBNF for ``out``'s answer, or None when nothing constrains it."""
    if out.calls:
        return _calls(out)
    if out.format == "json_object":
        return _convert({"type": "object"}, "json_object")
    if out.format == "json_schema":
        return _convert(out.schema or {}, "response_format.json_schema.schema")
    return None


def _calls(out: Output) -> str:
    defs: dict[str, Any] = {}
    branches = []
    for i, tool in enumerate(out.callable_tools()):
        params = _hoist(tool.parameters, f"t{i}", defs)
        branches.append({"type": "object", "properties": {"name": {"const": tool.name}, "arguments": params},
                         "required": ["name", "arguments"]})
    schema: dict[str, Any] = {"anyOf": branches} if len(branches) > 1 else branches[0]
    if defs:
        schema = {**schema, "$defs": defs}
    rules = _convert(schema, "tools", name="call", order=("name", "arguments"))
    block = r'"<tool_call>\n" call "\n</tool_call>"'
    more = rf' ("\n" {block}){{0,{MAX_PARALLEL - 1}}}' if out.parallel else ""
    calls = f"calls ::= {block}{more}"
    if out.must_call:
        root = "root ::= calls"
    else:  # the model may answer in text instead: text that does not open a tag
        root = "root ::= calls | text\ntext ::= [^<] [^\\x00]*"
    return "\n".join([root, calls, rules])


def _convert(schema: dict[str, Any], where: str, name: str = "", order: tuple[str, ...] = ()) -> str:
    """llama-cpp-python's conversion of ``schema`` (root rule ``name`` or ``root``); a schema it
    cannot convert is a ``SpecError`` naming ``where``."""
    try:
        conv = SchemaConverter(prop_order={k: i for i, k in enumerate(order)}, allow_fetch=False,
                               dotall=False, raw_pattern=False)
        resolved = conv.resolve_refs(bounded(schema), "input")
        conv.visit(resolved, name)
        # JSON strings hold no raw control characters (a newline must be written \n): the
        # converter's character class lets them through, and a parser then rejects the call
        return conv.format_grammar().replace('char ::= [^"\\\\] |', 'char ::= [^"\\\\\\x7F\\x00-\\x1F] |')
    except Exception as e:  # the converter raises asserts, KeyErrors, ValueErrors on what it lacks
        raise SpecError(f"{where}: this JSON schema cannot be turned into a grammar "
                        f"({type(e).__name__}: {e})"[:300], where) from None


def bounded(schema: Any) -> Any:
    """A copy of ``schema`` with ``MAX_STRING``/``MAX_ITEMS`` on strings and arrays that have no
    bound of their own."""
    if isinstance(schema, list):
        return [bounded(x) for x in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: (bounded(v) if k not in ("enum", "const", "default", "examples") else copy.deepcopy(v))
           for k, v in schema.items()}
    if out.get("type") == "string" and not {"maxLength", "enum", "const", "pattern", "format"} & out.keys():
        out["maxLength"] = MAX_STRING
    if out.get("type") == "array" and "maxItems" not in out and "prefixItems" not in out:
        out["maxItems"] = max(MAX_ITEMS, out.get("minItems", 0))
    return out


def _hoist(schema: dict[str, Any], prefix: str, defs: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``$defs``/``definitions`` moved into ``defs`` under ``prefix`` and
    its local references rewritten to match (each tool's schema becomes a branch of one)."""
    schema = copy.deepcopy(schema)
    root_name = f"{prefix}__root"
    own: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        own.update({f"{prefix}_{k}": v for k, v in (schema.pop(key, None) or {}).items()})

    def fix(node: Any) -> Any:
        if isinstance(node, list):
            return [fix(x) for x in node]
        if not isinstance(node, dict):
            return node
        out = {k: fix(v) for k, v in node.items()}
        ref = out.get("$ref")
        if isinstance(ref, str):
            if ref == "#":
                out["$ref"] = f"#/$defs/{root_name}"
                defs[root_name] = None  # filled below
            for r in _REF_ROOTS:
                if ref.startswith(r):
                    out["$ref"] = f"#/$defs/{prefix}_{ref[len(r):]}"
        return out

    fixed = fix(schema)
    defs.update({k: fix(v) for k, v in own.items()})
    if root_name in defs:
        defs[root_name] = fixed
    return fixed


def check(out: Output) -> None:
    """Build the grammar once to refuse a schema the converter cannot take (a 400, before any
    decoding); the local engine builds it again for its sampler."""
    grammar(out)

