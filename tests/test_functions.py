"""Function calling and structured output below the server: the request shapes checked
(``functions.spec``), the prompt format and its parser (``functions.prompt``), the grammar
(``functions.grammar``) and the local engine sampling under it, and every mode through the
pipeline. Run: `.venv/bin/pytest tests/test_functions.py`."""

from __future__ import annotations

import json

import jsonschema
import pytest

from openmuse.assistant import Assistant
from openmuse.functions import Output, SpecError
from openmuse.functions import grammar as fg
from openmuse.functions import prompt as fp
from openmuse.types import ChatRequest, Message, ToolCall

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                           "required": ["city"]}}}
EVENT = {"type": "object", "properties": {"title": {"type": "string"}, "when": {"$ref": "#/$defs/When"},
                                          "people": {"type": "array", "items": {"$ref": "#/$defs/Person"}}},
         "required": ["title", "when", "people"],
         "$defs": {"When": {"type": "object", "properties": {"day": {"type": "string"}, "hour": {"type": "integer"}},
                            "required": ["day", "hour"]},
                   "Person": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}}}


@pytest.mark.parametrize("kwargs,param", [
    ({"tools": [{"type": "code_interpreter"}]}, "tools.0.type"),
    ({"tools": [{"type": "function", "function": {"name": "has space"}}]}, "tools.0.name"),
    ({"tools": [WEATHER, WEATHER]}, "tools"),
    ({"tools": [WEATHER], "tool_choice": "sometimes"}, "tool_choice"),
    ({"tools": [], "tool_choice": "required"}, "tool_choice"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "other"}}}, "tool_choice"),
    ({"response_format": {"type": "xml"}}, "response_format.type"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "response_format.json_schema.schema"),
])
def test_bad_shapes_name_their_field(kwargs, param):
    with pytest.raises(SpecError) as e:
        Output.parse(kwargs.get("tools"), kwargs.get("tool_choice"), None, kwargs.get("response_format"))
    assert e.value.param == param and str(e.value)


def test_responses_shapes_are_read_too():
    out = Output.parse([{"type": "function", "name": "f", "parameters": {"type": "object"}}],
                       {"type": "function", "name": "f"}, False,
                       {"type": "json_schema", "name": "City", "schema": {"type": "object"}})
    assert out.choice == "function" and out.forced == "f" and not out.parallel and out.format == "json_schema"


def test_parse_reads_tagged_and_bare_calls_and_leaves_text_alone():
    out = Output.parse([WEATHER])
    text = 'Sure.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
    rest, calls = fp.parse(text, out)
    assert rest == "Sure." and [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"city": "Oslo"})]
    assert fp.parse('{"name": "get_weather", "parameters": {"city": "Lima"}}', out)[1][0].arguments == '{"city": "Lima"}'
    # repeated calls once; a call cut by max_tokens dropped; an unknown tool stays text
    twice = text + '\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>\n<tool_call>\n{"na'
    assert len(fp.parse(twice, out)[1]) == 1
    assert fp.parse('<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call>', out)[1] == []
    assert fp.parse("The weather is nice.", out) == ("The weather is nice.", [])
    assert fp.parse(text, Output.parse([WEATHER], "none"))[1] == []


def test_render_writes_calls_and_results_as_text():
    call = ToolCall(id="call_1", name="get_weather", arguments='{"city": "Oslo"}')
    msgs = [Message(role="user", content="Weather in Oslo?"), Message(role="assistant", content="", tool_calls=(call,)),
            Message(role="tool", content="Sunny", tool_call_id="call_1")]
    out = fp.render(msgs, Output.parse([WEATHER], "required"))
    assert [m.role for m in out] == ["system", "user", "assistant", "user"]
    assert "<tools>" in out[0].text() and "You must answer by calling a function." in out[0].text()
    assert json.loads(out[2].text().split("\n")[1]) == {"name": "get_weather", "arguments": {"city": "Oslo"}}
    assert out[3].text() == "<tool_response>\nSunny\n</tool_response>"


def test_grammar_bounds_strings_and_arrays_and_hoists_defs():
    b = fg.bounded(EVENT)
    assert b["properties"]["title"]["maxLength"] == fg.MAX_STRING
    assert b["properties"]["people"]["maxItems"] == fg.MAX_ITEMS
    assert "maxLength" not in fg.bounded({"type": "string", "enum": ["a"]})
    gbnf = fg.grammar(Output.parse([{"type": "function", "function": {"name": "plan", "parameters": EVENT}}], "required"))
    assert gbnf.startswith("root ::= calls") and "t0-When-day" in gbnf
    with pytest.raises(SpecError):
        fg.grammar(Output.parse(None, None, None, {"type": "json_schema", "json_schema": {
            "name": "x", "schema": {"$ref": "https://example.com/schema.json"}}}))


def test_grammar_strings_hold_no_raw_control_characters():
    # a raw newline inside a JSON string is invalid JSON: the call would not parse
    out = Output.parse([{"type": "function", "function": {"name": "run", "parameters": {
        "type": "object", "properties": {"code": {"type": "string"}}}}}], "required")
    char = next(line for line in fg.grammar(out).splitlines() if line.startswith("char ::="))
    assert char.startswith('char ::= [^"\\\\\\x7F\\x00-\\x1F] |')


def test_local_engine_samples_under_the_grammar(engine):
    req = ChatRequest(messages=[{"role": "user", "content": "Plan lunch with Ann on Friday at noon."}], max_tokens=400,
                      response_format={"type": "json_schema", "json_schema": {"name": "e", "schema": EVENT}})
    c = engine.generate(req)
    jsonschema.validate(json.loads(c.text), EVENT)
    called = engine.generate(ChatRequest(messages=[{"role": "user", "content": "Weather in Oslo?"}],
                                         tools=(WEATHER,), tool_choice="required", parallel_tool_calls=False))
    assert c.finish_reason == "stop" and called.finish_reason == "tool_calls" and called.text == ""
    jsonschema.validate(json.loads(called.tool_calls[0].arguments), WEATHER["function"]["parameters"])
    # streamed: the call's text is never handed out as answer text
    pieces = [d for d in engine.stream(ChatRequest(messages=[{"role": "user", "content": "Weather in Oslo?"}],
                                                   tools=(WEATHER,), tool_choice="required")) if hasattr(d, "kind")]
    assert not any(d.kind == "answer" and d.text.strip() for d in pieces)


@pytest.mark.parametrize("mode,options", [("instant", {}), ("thinking", {"budget": 24}),
                                          ("contemplating", {"agents": 2, "agent_tokens": 32})])
def test_every_mode_answers_in_the_requested_shape(engine, mode, options):
    a = Assistant(engine)
    q = [Message(role="user", content="What is the weather in Oslo?")]
    r = a.answer(q, mode, options, output=Output.parse([WEATHER], "required"))
    assert r.finish_reason == "tool_calls" and r.tool_calls[0].name == "get_weather"
    jsonschema.validate(json.loads(r.tool_calls[0].arguments), WEATHER["function"]["parameters"])
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    js = a.answer(q, mode, options, output=Output.parse(None, None, None, {
        "type": "json_schema", "json_schema": {"name": "a", "schema": schema}}))
    jsonschema.validate(json.loads(js.answer), schema)


def test_a_repeated_call_ends_the_answer():
    out = Output.parse([WEATHER])
    one = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
    other = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Lima"}}\n</tool_call>'
    assert not fp.repeats(one, out) and not fp.repeats(one + "\n" + other, out)
    assert fp.repeats(one + "\n" + other + "\n" + one, out)
