"""A tool-using agent from the OpenAI Agents SDK, unchanged, against `muse serve`.

What it shows: the Agents SDK (`pip install openai-agents==0.24.0`, imported as `agents`) drives
OpenMuse exactly as it drives OpenAI. The agent has three ordinary `@function_tool`s — a unit
converter, a lookup in a small table this script holds, and a "now" clock — and talks to
`muse serve` through `OpenAIChatCompletionsModel` over an `AsyncOpenAI` client whose `base_url`
is the server's `/v1`. The tools run here, in this process: OpenMuse only decides which tool to
call and with what arguments (its function calling is grammar-constrained on the local engine),
then reads the results the SDK sends back and writes the answer. Tracing is disabled, so
nothing is uploaded anywhere.

Run it:

    muse serve                                   # terminal 1: http://127.0.0.1:8080
    python examples/agents_sdk_tools.py          # terminal 2
    python examples/agents_sdk_tools.py "How many miles is 42 km?"
    python examples/agents_sdk_tools.py --base-url http://host:8080/v1 --api-key KEY --model muse-thinking

`--api-key` is the key `muse serve --server-key KEY` expects (default: $OPENAI_API_KEY, else
"none", which a server without keys accepts). `--model` is any `muse-<mode>` name the server
lists (`muse-instant` by default). It prints every tool call the agent made, what the tool
returned, and the final output. It exits with status 2 and one line on stderr when the server
cannot be reached or refuses the request, and with status 1 (after the calls it did make) when
the SDK gives up on the run (more than `--max-turns` model turns).

The packaged model is a 135M-parameter SmolLM2: good enough to pick a tool and fill in its
arguments, not to reason well about the result. Two settings keep the run short with it, both
ordinary SDK options: `--tool-choice required` (the default) makes its first turn a tool call
(the SDK then resets the choice to `auto`, so the model may call again or answer), and
`finish_on_repeat` below ends the run when the model only repeats a call it already made (small
models do; the repeated result is then the final output). With a bigger model behind
`muse serve` (`--engine openai --base-url …`), `--tool-choice auto` lets it decide from the
start, and it writes the final answer itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import UTC, datetime

import openai
from agents import (
    Agent,
    FunctionToolResult,
    ModelSettings,
    OpenAIChatCompletionsModel,
    Runner,
    ToolCallItem,
    ToolCallOutputItem,
    ToolsToFinalOutputResult,
    function_tool,
    set_tracing_disabled,
)
from agents.exceptions import AgentsException

set_tracing_disabled(True)  # no trace is sent to OpenAI (the SDK's default would try)

# ---- the tools: plain Python functions, described to the model by their signature and docstring ----

# factor to the base unit of each dimension (metre, kilogram, litre)
UNITS: dict[str, tuple[str, float]] = {
    "km": ("length", 1000.0), "m": ("length", 1.0), "cm": ("length", 0.01), "mi": ("length", 1609.344),
    "mile": ("length", 1609.344), "miles": ("length", 1609.344), "ft": ("length", 0.3048),
    "foot": ("length", 0.3048), "feet": ("length", 0.3048), "in": ("length", 0.0254),
    "kg": ("mass", 1.0), "g": ("mass", 0.001), "lb": ("mass", 0.45359237), "lbs": ("mass", 0.45359237),
    "l": ("volume", 1.0), "ml": ("volume", 0.001), "gal": ("volume", 3.785411784),
}

PLANETS: dict[str, dict[str, str]] = {
    "mercury": {"moons": "0", "day_length": "59 Earth days", "distance_from_sun": "58 million km"},
    "venus": {"moons": "0", "day_length": "243 Earth days", "distance_from_sun": "108 million km"},
    "earth": {"moons": "1", "day_length": "24 hours", "distance_from_sun": "150 million km"},
    "mars": {"moons": "2", "day_length": "24.6 hours", "distance_from_sun": "228 million km"},
    "jupiter": {"moons": "95", "day_length": "9.9 hours", "distance_from_sun": "778 million km"},
    "saturn": {"moons": "146", "day_length": "10.7 hours", "distance_from_sun": "1.43 billion km"},
}


def _unit(name: str) -> tuple[str, float]:
    key = name.strip().lower().rstrip(".")
    if key not in UNITS:
        raise ValueError(f"unknown unit {name!r}; known: {', '.join(sorted(UNITS))}")
    return UNITS[key]


@function_tool
def convert_units(value: float, from_unit: str, to_unit: str) -> str:
    """Convert a quantity between units of length (km, m, cm, mi, ft, in), mass (kg, g, lb)
    or volume (l, ml, gal).

    Args:
        value: The number to convert.
        from_unit: The unit it is in, e.g. "km".
        to_unit: The unit wanted, e.g. "mi".
    """
    try:
        (dim_a, fa), (dim_b, fb) = _unit(from_unit), _unit(to_unit)
    except ValueError as e:
        return f"error: {e}"
    if dim_a != dim_b:
        return f"error: cannot convert {dim_a} ({from_unit}) to {dim_b} ({to_unit})"
    return f"{value:g} {from_unit} = {value * fa / fb:.4g} {to_unit}"


@function_tool
def planet_facts(planet: str) -> str:
    """Look up facts about a planet of the solar system: its moons, the length of its day and
    its distance from the Sun.

    Args:
        planet: The planet's name, e.g. "Mars".
    """
    facts = PLANETS.get(planet.strip().lower())
    if facts is None:
        return f"error: no entry for {planet!r}; known: {', '.join(p.title() for p in PLANETS)}"
    return json.dumps({"planet": planet.strip().title(), **facts})


@function_tool
def utc_now() -> str:
    """The current date and time in UTC (ISO 8601)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


# ---- the run ----

def finish_on_repeat():
    """A ``tool_use_behavior`` (the SDK's hook for "is this tool result the final output?"):
    the model reads each result and goes on, as by default, until it makes a call that returns
    what an earlier call already returned; then nothing new can come, and that result is the
    final output. A small model often repeats its call instead of answering; a bigger one
    answers and never meets this rule."""
    seen: set[tuple[str, str]] = set()

    def decide(_ctx, results: list[FunctionToolResult]) -> ToolsToFinalOutputResult:
        for r in results:
            key = (r.tool.name, str(r.output))
            if key in seen:
                return ToolsToFinalOutputResult(is_final_output=True, final_output=str(r.output))
            seen.add(key)
        return ToolsToFinalOutputResult(is_final_output=False)

    return decide


def build_agent(client: openai.AsyncOpenAI, model: str, tool_choice: str) -> Agent:
    return Agent(
        name="muse-helper",
        instructions=("You answer with the help of tools. Call the tool that fits the question, "
                      "then answer in one or two sentences using what it returned."),
        tools=[convert_units, planet_facts, utc_now],
        model=OpenAIChatCompletionsModel(model=model, openai_client=client),
        model_settings=ModelSettings(tool_choice=tool_choice, temperature=0.0, max_tokens=200),
        tool_use_behavior=finish_on_repeat(),
    )


def show_calls(items) -> int:
    """Print each tool call and what it returned; how many calls there were."""
    calls = 0
    for item in items:
        if isinstance(item, ToolCallItem):
            calls += 1
            raw = item.raw_item
            name = getattr(raw, "name", None) or "?"
            args = getattr(raw, "arguments", None) or ""
            print(f"tool call {calls}: {name}({args})")
        elif isinstance(item, ToolCallOutputItem):
            print(f"  -> {item.output}")
    if not calls:
        print("(the agent made no tool call)")
    return calls


async def main_async(a: argparse.Namespace) -> int:
    client = openai.AsyncOpenAI(base_url=a.base_url, api_key=a.api_key, max_retries=0, timeout=a.timeout)
    try:
        await client.models.list()  # fail fast, with one line, if nobody is listening
        agent = build_agent(client, a.model, a.tool_choice)
        print(f"question: {a.question}")
        result = await Runner.run(agent, a.question, max_turns=a.max_turns)
    except openai.APIConnectionError as e:
        cause = f" ({type(e.__cause__).__name__})" if e.__cause__ else ""
        print(f"error: cannot reach {a.base_url}{cause}; is `muse serve` running?", file=sys.stderr)
        return 2
    except openai.AuthenticationError:
        print(f"error: {a.base_url} refused the API key (muse serve --server-key; pass --api-key)",
              file=sys.stderr)
        return 2
    except openai.APIStatusError as e:
        body = e.body if isinstance(e.body, dict) else {}
        print(f"error: the server answered HTTP {e.status_code}: {body.get('message') or e.message}",
              file=sys.stderr)
        return 2
    except AgentsException as e:  # max turns, a malformed tool call the SDK could not use, ...
        if e.run_data is not None:
            show_calls(e.run_data.new_items)
        print(f"error: the agent stopped: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    finally:
        await client.close()
    show_calls(result.new_items)
    print(f"final output: {result.final_output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="An OpenAI Agents SDK agent with tools, against `muse serve`.")
    p.add_argument("question", nargs="*", help="what to ask (default: a unit conversion)")
    p.add_argument("--base-url", default="http://127.0.0.1:8080/v1",
                   help="the server's /v1 URL (default: %(default)s, where `muse serve` listens)")
    p.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY") or "none",
                   help="bearer key for `muse serve --server-key` (default: $OPENAI_API_KEY, else 'none')")
    p.add_argument("--model", default="muse-instant", help="a model the server lists (default: %(default)s)")
    p.add_argument("--tool-choice", choices=("required", "auto"), default="required",
                   help="the first turn's tool choice (default: %(default)s; see the header)")
    p.add_argument("--max-turns", type=int, default=4,
                   help="model turns before the SDK gives up (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per request (default: 300)")
    a = p.parse_args(argv)
    a.question = " ".join(a.question) or "Convert 42 km to miles."
    return asyncio.run(main_async(a))


if __name__ == "__main__":
    sys.exit(main())
