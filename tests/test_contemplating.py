"""Contemplating mode on the embedded model: one batch for N agents, early stop, synthesis
and its agreement line, the JSON result, the live lanes in the CLI, and errors.
Run: `.venv/bin/pytest tests/test_contemplating.py`."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from openmuse.assistant import Assistant, ContemplationTrace
from openmuse.errors import ConfigError
from openmuse.modes import create_mode
from openmuse.modes.contemplating import ContemplatingOptions
from openmuse.types import Message

from .conftest import run_muse

# Agents agree here, confidently, on every machine seen (the 135M model's most robust answer);
# "Which number is larger, 12 or 85?" split 4 to 2 on one CPU and 8 to 0 on another.
AGREE = [Message(role="user", content="What is the capital of France?")]
SPLIT = [Message(role="user", content="What is 7 + 8?")]


def contemplate(engine, question, **kw):
    kw.setdefault("agent_tokens", 64)
    r = Assistant(engine).answer(question, "contemplating", kw)
    assert isinstance(r.trace, ContemplationTrace)
    return r


def test_n_agents_in_one_batch(engine):
    before = dict(engine.stats)
    c = contemplate(engine, SPLIT, agents=6, early_stop=False, aggregator="majority")
    assert len(c.agents) == 6
    assert engine.stats["batches"] - before["batches"] == 1  # one llama.cpp batch, not six calls
    assert engine.stats["sequences"] - before["sequences"] == 6
    approaches = [a.approach for a in c.agents]
    assert len(set(approaches)) == 6  # each agent its own approach
    assert all(a.reasoning for a in c.agents)
    assert c.usage.completion_tokens == sum(a.usage.completion_tokens for a in c.agents)


def test_early_stop_off_gives_all_full_traces(engine):
    c = contemplate(engine, AGREE, agents=8, early_stop=False, aggregator="majority")
    assert len(c.agents) == 8
    assert c.trace.early_stop.skipped == 0 and c.trace.early_stop.tokens_saved == 0
    assert all(a.finish_reason in ("stop", "length") for a in c.agents)


def test_early_stop_fires_when_agents_agree_and_saves_tokens(engine):
    full = contemplate(engine, AGREE, agents=8, early_stop=False, aggregator="majority")
    early = contemplate(engine, AGREE, agents=8, early_stop=True, aggregator="majority")
    es = early.trace.early_stop
    assert es.skipped > 0 and len(early.agents) == 8 - es.skipped
    assert es.tokens_saved > 0
    assert early.usage.completion_tokens < full.usage.completion_tokens
    assert early.trace.final_answer == full.trace.final_answer
    assert "paris" in early.trace.final_answer


def test_synthesis_states_the_agreement(engine):
    c = contemplate(engine, SPLIT, agents=4, early_stop=False, aggregator="synthesis")
    k = c.trace.agreement.agents
    assert f"Agreement: {k} of 4 agents answered" in c.answer
    assert c.trace.synthesis.text
    assert c.trace.final_answer is not None
    data = c.to_json()
    assert {"usage", "timings", "trace"} <= set(data)
    assert {"agents", "agreement", "early_stop"} <= set(data["trace"])
    assert len(data["trace"]["agents"]) == 4 and data["trace"]["agents"][0]["reasoning"]


def test_default_aggregator_is_the_confidence_vote(engine):
    c = contemplate(engine, SPLIT, agents=4, early_stop=False)
    assert c.trace.aggregator == "confidence" and c.trace.synthesis is None
    assert c.trace.final_answer == c.trace.votes["confidence"]
    assert c.answer.startswith(f"Final answer: {c.trace.final_answer}")


def test_agents_prefill_a_long_question_once(engine):
    """The agents' prompts share the whole conversation, so a long question is prefilled once
    for all of them (then each agent's short framing and approach), not once per agent."""
    doc = " ".join(f"Item {i} costs {i % 7 + 1} dollars." for i in range(150))  # ~1350 tokens
    question = [Message(role="user", content=f"{doc}\nWhat does item 3 cost?")]
    engine.clear_cache()
    before = engine.stats["prompt_tokens_prefilled"]
    c = contemplate(engine, question, agents=4, early_stop=False, agent_tokens=8)
    prefilled = engine.stats["prompt_tokens_prefilled"] - before
    prompt = c.agents[0].usage.prompt_tokens
    assert prompt > 1000
    assert c.usage.prompt_tokens == sum(a.usage.prompt_tokens for a in c.agents) > 4 * 1000
    assert prefilled < prompt + 4 * 40  # one prefill of the question, a short tail per agent


def test_agents_outside_range_and_empty_question(engine):
    with pytest.raises(ValidationError):
        ContemplatingOptions(agents=17)
    with pytest.raises(ValidationError):
        ContemplatingOptions(agents=0)
    with pytest.raises(ConfigError, match="agents"):
        create_mode("contemplating", {"agents": 17})
    with pytest.raises(ConfigError, match="empty"):
        contemplate(engine, [Message(role="user", content=" ")], agents=2)


def test_cli_shows_lanes_and_json():
    p = run_muse("What is 2 + 3?", "--mode", "contemplating", "--agents", "8", "--agent-tokens", "48")
    assert p.returncode == 0, p.stderr
    assert "Contemplating" in p.stdout and "approach" in p.stdout
    assert "Agreement:" in p.stdout
    p = run_muse("What is 2 + 3?", "--mode", "contemplating", "--agents", "3", "--agent-tokens", "48", "--json")
    data = json.loads(p.stdout)
    launched = len(data["trace"]["agents"])
    assert data["mode"] == "contemplating" and launched + data["trace"]["early_stop"]["skipped"] == 3
    assert data["trace"]["agreement"]["of"] == launched


@pytest.mark.parametrize("args, needle", [
    (("hi", "--mode", "contemplating", "--agents", "17"), "--agents"),
    (("hi", "--mode", "contemplating", "--agents", "0"), "--agents"),
    (("", "--mode", "contemplating"), "the question is empty"),
    (("hi", "--mode", "contemplating", "--budget", "48"), "--budget"),
])
def test_cli_errors(args, needle):
    p = run_muse(*args)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert needle in p.stderr and len(p.stderr.strip().splitlines()) == 1
