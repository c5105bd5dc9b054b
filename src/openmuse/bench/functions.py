"""``muse bench functions``: how often the model's function calls and structured answers are
valid, on varied requests generated from a seed, through the request pipeline.

Two sets, each of ``n`` requests:

- **tools**: 1-4 function tools drawn from a pool of 16 (strings, enums, integers, numbers,
  booleans, arrays, nested objects, optional fields, ``$defs`` references as pydantic writes
  them), a request written for one of them, and ``tool_choice`` ``required`` or that function
  by name. A request passes when the answer holds at least one call, every call names a given
  tool (the named one when it was named) and its arguments parse and validate against that
  tool's schema (``jsonschema``, Draft 2020-12). Also counted: the call named the tool the
  request was written for.
- **json**: a ``response_format`` ``json_schema`` drawn from 10 shapes and a request for it; it
  passes when the answer parses and validates.

Requests are sent a ``batch`` at a time from threads, so the local engine decodes them
together. The report (``results/bench-functions-TIME.json``) holds the arguments, every
request with its answer and verdict, and the rates.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jsonschema

from ..assistant import Assistant
from ..functions import Output
from ..types import Message
from ..records import environment, write_json

S = {"type": "string"}
I = {"type": "integer"}
N = {"type": "number"}
B = {"type": "boolean"}
CITIES = ["Paris", "Oslo", "Lagos", "Lima", "Kyoto", "Austin", "Porto", "Cairo", "Perth", "Quito"]
NAMES = ["Ann", "Bo", "Chen", "Dara", "Eli", "Femi", "Gus", "Hana", "Ivo", "Jun"]
ITEMS = ["milk", "rice", "eggs", "tea", "bread", "apples", "soap", "coffee"]


def _obj(props: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(props) if required is None else required,
            **extra}


def _tools(r: random.Random) -> list[tuple[dict[str, Any], Callable[[], str]]]:
    """The pool: (function, a request written for it)."""
    c, n, it = (lambda: r.choice(CITIES)), (lambda: r.choice(NAMES)), (lambda: r.choice(ITEMS))
    return [
        ({"name": "get_weather", "description": "Current weather for a city",
          "parameters": _obj({"city": S, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, ["city"])},
         lambda: f"What's the weather like in {c()} right now?"),
        ({"name": "add", "description": "Add two numbers", "parameters": _obj({"a": N, "b": N})},
         lambda: f"What is {r.randint(2, 999)} plus {r.randint(2, 999)}?"),
        ({"name": "send_email", "description": "Send an email",
          "parameters": _obj({"to": S, "subject": S, "body": S}, ["to", "subject"])},
         lambda: f"Email {n().lower()}@example.com that the meeting moved to {r.randint(1, 5)} pm."),
        ({"name": "search_web", "description": "Search the web",
          "parameters": _obj({"query": S, "max_results": I}, ["query"])},
         lambda: f"Find recent news about {r.choice(['solar panels', 'rail strikes', 'bird flu', 'chess'])}."),
        ({"name": "set_timer", "description": "Start a countdown timer",
          "parameters": _obj({"minutes": I, "label": S}, ["minutes"])},
         lambda: f"Set a timer for {r.randint(1, 90)} minutes for the {r.choice(['pasta', 'tea', 'laundry'])}."),
        ({"name": "convert_currency", "description": "Convert an amount between currencies",
          "parameters": _obj({"amount": N, "from_currency": {"type": "string", "enum": ["USD", "EUR", "GBP", "JPY"]},
                              "to_currency": {"type": "string", "enum": ["USD", "EUR", "GBP", "JPY"]}})},
         lambda: f"How much is {r.randint(5, 900)} {r.choice(['USD', 'EUR'])} in {r.choice(['GBP', 'JPY'])}?"),
        ({"name": "add_to_cart", "description": "Add products to the shopping cart",
          "parameters": _obj({"items": {"type": "array", "items": S}, "express": B}, ["items"])},
         lambda: f"Put {it()} and {it()} in my cart."),
        ({"name": "book_table", "description": "Book a restaurant table",
          "parameters": _obj({"restaurant": S, "people": I, "time": S, "outdoor": B}, ["restaurant", "people", "time"])},
         lambda: f"Book a table for {r.randint(2, 8)} at Luigi's at {r.randint(6, 9)} pm."),
        ({"name": "create_event", "description": "Create a calendar event",
          "parameters": {"type": "object", "properties": {
              "title": S, "when": {"$ref": "#/$defs/When"},
              "attendees": {"type": "array", "items": {"$ref": "#/$defs/Person"}}},
              "required": ["title", "when"],
              "$defs": {"When": _obj({"date": S, "hour": I}), "Person": _obj({"name": S, "email": S}, ["name"])}}},
         lambda: f"Put lunch with {n()} in my calendar on Friday at noon."),
        ({"name": "translate", "description": "Translate text",
          "parameters": _obj({"text": S, "target_language": {"type": "string", "enum": ["fr", "de", "es", "ja"]}})},
         lambda: f"Translate '{r.choice(['good morning', 'thank you', 'where is the station'])}' into French."),
        ({"name": "get_stock_price", "description": "Latest price of a stock",
          "parameters": _obj({"ticker": S})},
         lambda: f"What is {r.choice(['AAPL', 'MSFT', 'NVDA', 'TSLA'])} trading at?"),
        ({"name": "run_python", "description": "Run Python code and return its output",
          "parameters": _obj({"code": S, "timeout_s": N}, ["code"])},
         lambda: f"Compute {r.randint(2, 30)} factorial with Python."),
        ({"name": "lookup_drug", "description": "Look up a medicine's leaflet",
          "parameters": _obj({"name": S, "section": {"type": "string", "enum": ["dose", "side_effects", "interactions"]}},
                             ["name"])},
         lambda: f"What are the side effects of {r.choice(['ibuprofen', 'cetirizine', 'omeprazole'])}?"),
        ({"name": "navigate", "description": "Route between two places",
          "parameters": _obj({"origin": S, "destination": S, "mode": {"type": "string",
                                                                      "enum": ["walk", "bike", "car", "transit"]}},
                             ["origin", "destination"])},
         lambda: f"How do I get from {c()} station to the airport by bike?"),
        ({"name": "rate_item", "description": "Rate a product",
          "parameters": _obj({"product": S, "stars": {"type": "integer", "enum": [1, 2, 3, 4, 5]},
                              "comment": {"anyOf": [S, {"type": "null"}]}}, ["product", "stars"])},
         lambda: f"Give the {it()} I bought {r.randint(1, 5)} stars."),
        ({"name": "get_time", "description": "Current time in a time zone",
          "parameters": _obj({"timezone": S})},
         lambda: f"What time is it in {c()}?"),
    ]


def _schemas(r: random.Random) -> list[tuple[dict[str, Any], Callable[[], str]]]:
    n, c, it = (lambda: r.choice(NAMES)), (lambda: r.choice(CITIES)), (lambda: r.choice(ITEMS))
    return [
        (_obj({"name": S, "age": I}), lambda: f"{n()} is {r.randint(18, 90)} years old. Give the person as JSON."),
        (_obj({"city": S, "country": S, "population": I}), lambda: f"Describe {c()} as JSON."),
        (_obj({"product": S, "price": N, "in_stock": B}), lambda: f"A {it()} costs {r.randint(1, 9)}.99 and is in stock."),
        (_obj({"title": S, "ingredients": {"type": "array", "items": S}, "minutes": I}),
         lambda: f"A quick recipe using {it()} and {it()}."),
        (_obj({"sentiment": {"type": "string", "enum": ["positive", "negative", "neutral"]}, "confidence": N}),
         lambda: f"Classify the sentiment: '{r.choice(['I love it', 'Awful service', 'It arrived'])}'."),
        (_obj({"answer": I}), lambda: f"What is {r.randint(2, 50)} times {r.randint(2, 12)}?"),
        (_obj({"event": S, "date": S, "attendees": {"type": "array", "items": _obj({"name": S, "role": S})}}),
         lambda: f"Team lunch with {n()} and {n()} next Tuesday."),
        (_obj({"summary": S, "tags": {"type": "array", "items": S}}),
         lambda: f"Summarise: '{r.choice(['The train was late again.', 'Prices of tea rose 5%.'])}'"),
        (_obj({"address": _obj({"street": S, "city": S, "zip": S}), "name": S}),
         lambda: f"{n()} lives at 12 High Street, {c()}, 40210."),
        (_obj({"items": {"type": "array", "items": _obj({"item": S, "qty": I})}, "total": N}),
         lambda: f"I bought 2 {it()} and 3 {it()} for 14.50 in all."),
    ]


def tool_cases(seed: int, n: int) -> list[dict[str, Any]]:
    r = random.Random(seed)
    pool = _tools(r)
    cases = []
    for i in range(n):
        target = r.randrange(len(pool))
        others = r.sample([j for j in range(len(pool)) if j != target], r.randint(0, 3))
        picked = [target, *others]
        r.shuffle(picked)
        tools = [{"type": "function", "function": pool[j][0]} for j in picked]
        name = pool[target][0]["name"]
        choice: Any = "required" if r.random() < 0.67 else {"type": "function", "function": {"name": name}}
        cases.append({"id": f"tools-{i}", "question": pool[target][1](), "tools": tools, "tool_choice": choice,
                      "target": name})
    return cases


def json_cases(seed: int, n: int) -> list[dict[str, Any]]:
    r = random.Random(seed + 7919)
    pool = _schemas(r)
    cases = []
    for i in range(n):
        schema, ask = pool[r.randrange(len(pool))]
        cases.append({"id": f"json-{i}", "question": ask(), "response_format": {
            "type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}})
    return cases


def verdict_tools(case: dict[str, Any], calls: list[Any]) -> tuple[bool, str]:
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in case["tools"]}
    forced = case["tool_choice"]["function"]["name"] if isinstance(case["tool_choice"], dict) else None
    if not calls:
        return False, "no call"
    for call in calls:
        if call.name not in schemas or (forced and call.name != forced):
            return False, f"called {call.name!r}"
        try:
            jsonschema.validate(json.loads(call.arguments), schemas[call.name])
        except ValueError as e:
            return False, f"arguments are not JSON: {e}"
        except jsonschema.ValidationError as e:
            return False, f"arguments invalid: {e.message}"
    return True, ""


def verdict_json(case: dict[str, Any], answer: str) -> tuple[bool, str]:
    try:
        jsonschema.validate(json.loads(answer), case["response_format"]["json_schema"]["schema"])
    except ValueError as e:
        return False, f"not JSON: {e}"
    except jsonschema.ValidationError as e:
        return False, f"invalid: {e.message}"
    return True, ""


def run_functions_bench(assistant: Assistant, seed: int, n: int, mode: str, max_tokens: int, batch: int,
                        out_path: str | None, progress: Any = None) -> tuple[dict[str, Any], Path]:
    cases = [*tool_cases(seed, n), *json_cases(seed, n)]
    done = [0]

    def one(case: dict[str, Any]) -> dict[str, Any]:
        t0 = time.perf_counter()
        out = Output.parse(case.get("tools"), case.get("tool_choice"), None, case.get("response_format"))
        res = assistant.answer([Message(role="user", content=case["question"])], mode, {"max_tokens": max_tokens},
                               output=out)
        if "tools" in case:
            ok, why = verdict_tools(case, res.tool_calls)
        else:
            ok, why = verdict_json(case, res.answer)
        done[0] += 1
        if progress:
            progress.print(f"[dim]{done[0]}/{len(cases)} {case['id']}: {'ok' if ok else 'FAIL ' + why}[/]")
        return {**case, "answer": res.answer, "tool_calls": [c.model_dump() for c in res.tool_calls],
                "finish_reason": res.finish_reason, "checks": [c.decision for c in res.checks],
                "completion_tokens": res.usage.completion_tokens, "seconds": round(time.perf_counter() - t0, 3),
                "valid": ok, "why": why,
                "target_called": bool(res.tool_calls) and res.tool_calls[0].name == case.get("target")}

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=batch) as pool:
        records = list(pool.map(one, cases))
    wall = time.perf_counter() - t0
    tools = [x for x in records if x["id"].startswith("tools")]
    js = [x for x in records if x["id"].startswith("json")]
    report = {
        "bench": "functions", "args": {"seed": seed, "n": n, "mode": mode, "max_tokens": max_tokens, "batch": batch},
        "env": environment(), "engine": {"name": assistant.engine.name, "model": assistant.engine.model},
        "tools": {"valid": sum(x["valid"] for x in tools), "of": len(tools),
                  "target_called": sum(x["target_called"] for x in tools),
                  "refused_by_checks": sum(x["finish_reason"] == "content_filter" for x in tools)},
        "json_schema": {"valid": sum(x["valid"] for x in js), "of": len(js),
                        "refused_by_checks": sum(x["finish_reason"] == "content_filter" for x in js)},
        "wall_s": round(wall, 1), "records": records,
    }
    path = Path(out_path or f"results/bench-functions-{time.strftime('%Y%m%d-%H%M%S')}.json")
    return report, write_json(path, report)
