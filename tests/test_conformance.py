"""OpenAI API conformance: real clients, unchanged, against `muse serve` (a real process on
loopback, the packaged SmolLM2, the safety layer on) — the official `openai` library (sync,
async, the standard streaming loop in every mode, tools, response_format, the Responses API,
legacy completions), litellm, langchain-openai, the OpenAI Agents SDK (chat completions and
Responses), pydantic-ai, instructor and simonw's `llm`. Each test asserts on what comes back.
The clients are pinned in the `test` extras (pyproject.toml). Run:
`.venv/bin/pytest tests/test_conformance.py`."""

from __future__ import annotations

import asyncio
import json
import os

import jsonschema
import openai
import pytest
from pydantic import BaseModel

from .test_server import Server

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # litellm: no price list fetched at import
os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")  # the Agents SDK: no trace upload

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                   "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                   "required": ["city"]}}}
ASK_WEATHER = [{"role": "user", "content": "What is the weather in Oslo?"}]


class City(BaseModel):
    name: str
    population: int


ASK_CITY = "Paris is the capital of France and has about 2100000 inhabitants. Give the city's name and population."


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("conformance"))
    yield s
    s.stop()


def valid_call(name: str, arguments: str, tool: dict = WEATHER) -> dict:
    assert name == tool["function"]["name"]
    args = json.loads(arguments)
    jsonschema.validate(args, tool["function"]["parameters"])
    return args


# -- the official openai library ----------------------------------------------------------------
@pytest.mark.parametrize("model,extra", [
    ("muse-instant", {}), ("muse-thinking", {"budget": 32}),
    ("muse-contemplating", {"agents": 2, "agent_tokens": 48}),
])
def test_openai_standard_streaming_loop_in_every_mode(server, model, extra):
    stream = server.client().chat.completions.create(
        model=model, messages=[{"role": "user", "content": "What is 2 + 3?"}], stream=True, max_tokens=48,
        stream_options={"include_usage": True}, extra_body={"muse": extra})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)  # the loop of the docs
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert text.strip() and not text[0].isspace()  # no leading newline or space
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"] or finishes == ["length"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0  # usage is the last chunk
    assert all(c.usage is None for c in chunks[:-1])


def test_openai_async_create_and_stream(server):
    async def go():
        c = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
        r = await c.chat.completions.create(model="muse-instant", messages=[{"role": "user", "content": "Say hi."}],
                                            max_tokens=16)
        s = await c.chat.completions.create(model="muse-instant", messages=[{"role": "user", "content": "Say hi."}],
                                            max_tokens=16, stream=True)
        return r, "".join([ch.choices[0].delta.content or "" async for ch in s])
    r, streamed = asyncio.run(go())
    assert r.choices[0].message.content and r.choices[0].message.content == streamed


def test_openai_tools_required_named_and_the_round_trip(server):
    c = server.client()
    r = c.chat.completions.create(model="muse-instant", messages=ASK_WEATHER, tools=[WEATHER], tool_choice="required")
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.id.startswith("call_")
    assert valid_call(call.function.name, call.function.arguments)["city"] == "Oslo"
    other = {"type": "function", "function": {"name": "get_time", "parameters": {
        "type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]}}}
    named = c.chat.completions.create(model="muse-instant", messages=ASK_WEATHER, tools=[other, WEATHER],
                                      tool_choice={"type": "function", "function": {"name": "get_time"}},
                                      parallel_tool_calls=False)
    calls = named.choices[0].message.tool_calls
    assert len(calls) == 1 and valid_call(calls[0].function.name, calls[0].function.arguments, other)
    # the conversation goes on with the call, its result (role tool), a developer message and a name
    follow = c.chat.completions.create(model="muse-instant", tools=[WEATHER], tool_choice="none", messages=[
        {"role": "developer", "content": "Answer in one sentence."},
        {"role": "user", "content": "What is the weather in Oslo?", "name": "kari"},
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 degrees"}])
    assert follow.choices[0].finish_reason in ("stop", "length") and follow.choices[0].message.content
    assert follow.choices[0].message.tool_calls is None
    none = c.chat.completions.create(model="muse-instant", messages=ASK_WEATHER, tools=[WEATHER], tool_choice="none",
                                     max_tokens=24)
    assert none.choices[0].message.tool_calls is None


def test_openai_streamed_tool_call(server):
    stream = server.client().chat.completions.create(model="muse-instant", messages=ASK_WEATHER, tools=[WEATHER],
                                                     tool_choice="required", stream=True)
    calls: dict[int, dict] = {}
    finish = None
    for ch in stream:
        d = ch.choices[0].delta
        assert not d.content  # the call's text is never streamed as content
        for tc in d.tool_calls or []:
            acc = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
            acc["id"] = tc.id or acc["id"]
            acc["name"] += tc.function.name or ""
            acc["arguments"] += tc.function.arguments or ""
        finish = ch.choices[0].finish_reason or finish
    assert finish == "tool_calls" and calls[0]["id"]
    valid_call(calls[0]["name"], calls[0]["arguments"])


def test_openai_response_format(server):
    c = server.client()
    schema = City.model_json_schema()
    r = c.chat.completions.create(model="muse-instant", messages=[{"role": "user", "content": ASK_CITY}],
                                  response_format={"type": "json_schema", "json_schema": {
                                      "name": "City", "schema": schema, "strict": True}})
    jsonschema.validate(json.loads(r.choices[0].message.content), schema)
    obj = c.chat.completions.create(model="muse-instant", messages=[{"role": "user", "content": ASK_CITY}],
                                    response_format={"type": "json_object"}, max_tokens=128)
    assert isinstance(json.loads(obj.choices[0].message.content), dict)
    parsed = c.chat.completions.parse(model="muse-instant", messages=[{"role": "user", "content": ASK_CITY}],
                                      response_format=City)
    assert isinstance(parsed.choices[0].message.parsed, City)
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="muse-instant", messages=ASK_WEATHER, response_format={"type": "yaml"})
    assert e.value.body["param"] == "response_format.type"
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="muse-instant", messages=ASK_WEATHER, tools=[WEATHER],
                                  tool_choice={"type": "function", "function": {"name": "nope"}})
    assert e.value.body["param"] == "tool_choice"


def test_openai_stop_n_logprobs_seed(server):
    c = server.client()
    r = c.chat.completions.create(model="muse-instant", max_tokens=40, messages=[
        {"role": "user", "content": "Count from 1 to 10, separated by commas."}], stop=[","])
    assert r.choices[0].finish_reason == "stop" and "," not in r.choices[0].message.content
    n = c.chat.completions.create(model="muse-instant", max_tokens=12, n=3, temperature=1.0, seed=7,
                                  messages=[{"role": "user", "content": "Name a colour."}])
    assert [ch.index for ch in n.choices] == [0, 1, 2] and all(ch.message.content for ch in n.choices)
    assert n.usage.completion_tokens > 0
    lp = c.chat.completions.create(model="muse-instant", max_tokens=8, logprobs=True, top_logprobs=3,
                                   messages=[{"role": "user", "content": "Say hi."}])
    toks = lp.choices[0].logprobs.content
    assert toks and all(t.logprob <= 0 and len(t.top_logprobs) == 3 for t in toks)
    assert "".join(t.token for t in toks).strip() == lp.choices[0].message.content
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="muse-instant", n=9, messages=ASK_WEATHER)
    assert e.value.body["param"] == "n"


def test_openai_models_by_id_and_legacy_completions(server):
    c = server.client()
    m = c.models.retrieve("muse-thinking")
    assert m.id == "muse-thinking"
    with pytest.raises(openai.NotFoundError):
        c.models.retrieve("gpt-nope")
    r = c.completions.create(model="muse-instant", prompt="Say hello.", max_tokens=12)
    assert r.object == "text_completion" and r.choices[0].text
    streamed = "".join(ch.choices[0].text for ch in c.completions.create(
        model="muse-instant", prompt="Say hello.", max_tokens=12, stream=True) if ch.choices)
    assert streamed == r.choices[0].text


def test_openai_responses_api(server):
    c = server.client()
    r = c.responses.create(model="muse-instant", input="What is the capital of France?", max_output_tokens=32)
    assert r.status == "completed" and "Paris" in r.output_text and r.usage.output_tokens > 0
    tool = {"type": "function", "name": "get_weather", "parameters": WEATHER["function"]["parameters"]}
    called = c.responses.create(model="muse-instant", input="What is the weather in Oslo?", tools=[tool],
                                tool_choice="required")
    call = next(o for o in called.output if o.type == "function_call")
    valid_call(call.name, call.arguments)
    follow = c.responses.create(model="muse-instant", tools=[tool], input=[
        {"role": "user", "content": "What is the weather in Oslo?"}, call.model_dump(exclude_none=True),
        {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 21 degrees"}],
        tool_choice="none", max_output_tokens=48)
    assert follow.output_text
    chained = c.responses.create(model="muse-instant", previous_response_id=r.id, input="And of Italy?",
                                 max_output_tokens=32)
    assert chained.output_text
    events = list(c.responses.create(model="muse-thinking", input="What is 2 + 2?", stream=True,
                                     reasoning={"effort": "medium"}, extra_body={"muse": {"budget": 32}}))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] in ("response.completed", "response.incomplete")
    assert "response.reasoning_summary_text.delta" in kinds and "response.output_text.delta" in kinds
    assert [e.sequence_number for e in events] == list(range(1, len(events) + 1))
    done = events[-1].response
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert done.output_text == text and done.output[0].type == "reasoning"
    js = c.responses.create(model="muse-instant", input=ASK_CITY, text={"format": {
        "type": "json_schema", "name": "City", "schema": City.model_json_schema(), "strict": True}})
    City.model_validate_json(js.output_text)


# -- other clients ---------------------------------------------------------------------------------
def test_litellm(server):
    import litellm

    kw = dict(model="openai/muse-instant", api_base=f"{server.url}/v1", api_key="x")
    r = litellm.completion(**kw, messages=ASK_WEATHER, tools=[WEATHER], tool_choice="required")
    tc = r.choices[0].message.tool_calls[0]
    valid_call(tc.function.name, tc.function.arguments)
    chunks = list(litellm.completion(**kw, messages=ASK_WEATHER, tools=[WEATHER], tool_choice="required",
                                     stream=True))
    msg = litellm.stream_chunk_builder(chunks).choices[0].message
    valid_call(msg.tool_calls[0].function.name, msg.tool_calls[0].function.arguments)
    text = "".join(c.choices[0].delta.content or "" for c in litellm.completion(
        **kw, messages=[{"role": "user", "content": "Say hi."}], stream=True, max_tokens=16))
    assert text.strip()
    thought = litellm.completion(model="openai/muse-thinking", api_base=f"{server.url}/v1", api_key="x",
                                 messages=[{"role": "user", "content": "Is 91 prime?"}], max_tokens=48,
                                 extra_body={"muse": {"budget": 32}})
    assert thought.choices[0].message.reasoning_content and thought.usage.completion_tokens_details.reasoning_tokens


def test_langchain_openai(server):
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    @tool
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        return "sunny"

    llm = ChatOpenAI(model="muse-instant", base_url=f"{server.url}/v1", api_key="x", max_retries=0)
    calls = llm.bind_tools([get_weather], tool_choice="required").invoke("What is the weather in Oslo?").tool_calls
    assert calls[0]["name"] == "get_weather" and isinstance(calls[0]["args"]["city"], str)
    city = llm.with_structured_output(City).invoke(ASK_CITY)  # json_schema, strict
    assert isinstance(city, City)
    city2 = llm.with_structured_output(City, method="function_calling").invoke(ASK_CITY)
    assert isinstance(city2, City)
    assert "".join(ch.content for ch in llm.stream("Say hi.")).strip()


def test_openai_agents_sdk_chat_completions_and_responses(server):
    from agents import Agent, ModelSettings, OpenAIChatCompletionsModel, OpenAIResponsesModel, Runner, function_tool

    seen: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        seen.append(city)
        return f"Sunny in {city}"

    async def go():  # one event loop for the client and both runs
        client = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
        for model in (OpenAIChatCompletionsModel(model="muse-instant", openai_client=client),
                      OpenAIResponsesModel(model="muse-instant", openai_client=client)):
            agent = Agent(name="weather", instructions="Use your tools.", tools=[get_weather], model=model,
                          model_settings=ModelSettings(tool_choice="required"), tool_use_behavior="stop_on_first_tool")
            result = await Runner.run(agent, "What is the weather in Oslo?")
            assert seen and result.final_output == f"Sunny in {seen[-1]}"
            run = Runner.run_streamed(agent, "What is the weather in Oslo?")
            events = [e async for e in run.stream_events()]
            assert events and run.final_output == f"Sunny in {seen[-1]}"
    asyncio.run(go())
    assert len(seen) == 4


def test_pydantic_ai(server):
    from pydantic_ai import Agent, NativeOutput
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    model = OpenAIChatModel("muse-instant", provider=OpenAIProvider(base_url=f"{server.url}/v1", api_key="x"))
    out = Agent(model, output_type=City).run_sync(ASK_CITY).output  # a final_result tool, tool_choice required
    assert isinstance(out, City)
    native = Agent(model, output_type=NativeOutput(City)).run_sync(ASK_CITY).output  # response_format json_schema
    assert isinstance(native, City)

    async def streamed():
        async with Agent(model, output_type=City).run_stream(ASK_CITY) as r:
            return await r.get_output()
    assert isinstance(asyncio.run(streamed()), City)
    thinking = OpenAIChatModel("muse-thinking", provider=OpenAIProvider(base_url=f"{server.url}/v1", api_key="x"))
    parts = [p for m in Agent(thinking).run_sync("Is 91 prime?").all_messages() for p in m.parts]
    assert any(type(p).__name__ == "ThinkingPart" and p.content for p in parts)  # reasoning_content read


def test_instructor(server):
    import instructor

    client = instructor.from_openai(openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0))
    city = client.chat.completions.create(model="muse-instant", response_model=City, max_retries=1,
                                          messages=[{"role": "user", "content": ASK_CITY}])
    assert isinstance(city, City)
    js = instructor.from_openai(openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0),
                                mode=instructor.Mode.JSON_SCHEMA)
    assert isinstance(js.chat.completions.create(model="muse-instant", response_model=City, max_retries=1,
                                                 messages=[{"role": "user", "content": ASK_CITY}]), City)


def test_llm_cli_library_streaming(server, tmp_path, monkeypatch):
    (tmp_path / "extra-openai-models.yaml").write_text(
        f"- model_id: muse-local\n  model_name: muse-instant\n  api_base: \"{server.url}/v1\"\n"
        "  api_key_name: muse\n  supports_tools: true\n  supports_schema: true\n")
    monkeypatch.setenv("LLM_USER_PATH", str(tmp_path))
    import llm

    model = llm.get_model("muse-local")
    response = model.prompt("Say hi.", key="x")
    pieces = list(response)  # the default: streamed
    assert len(pieces) > 1 and "".join(pieces) == response.text() and response.text().strip()
    assert response.usage().output and response.usage().output > 0
    city = json.loads(model.prompt(ASK_CITY, key="x", schema=City).text())
    City.model_validate(city)
