"""Thought compression (``openmuse.train``): the rewards and length penalties on hand-written
completions, the config's and the CLI's errors, and GRPO on the real embedded model — two steps
that change the weights and write a checkpoint transformers loads, then a resume that continues
past it. The training tests take about two minutes on two cores.

Run: ``.venv/bin/pytest -q tests/test_train.py`` (``-k "not real"`` for the fast part only).
"""

from __future__ import annotations

import json

import pytest

from openmuse.train import rewards as rw

Q = "What is 7 + 8?"


def _call(fn, completions, ids=None, answer="15", question=Q, kind="number", prompts=None):
    n = len(completions)
    kw = {"answer": [answer] * n, "kind": [kind] * n, "question": [question] * n}
    if ids is not None:
        kw["completion_ids"] = ids
    return fn(prompts or [question] * n, completions, **kw)


def _ids(n: int, eos: bool = True) -> list[int]:
    return [5] * (n - 1) + [2 if eos else 5]


# --- rewards ---------------------------------------------------------------------------------


def test_final_answer_reads_after_the_marker():
    assert rw.final_answer("7 + 8 is 15, or 14?\nAnswer: 15", Q, "number") == "15"
    assert rw.final_answer("so the answer is 15.", Q, "number") == "15"
    # no marker: what the last line states, as Thinking mode takes an answer from its reasoning
    assert rw.final_answer("7 + 8 = 15", Q, "number") == "15"
    assert rw.final_answer("15?\n14", Q, "number") == "14"  # only the last line counts
    assert rw.final_answer("Let me see.", Q, "number") is None and rw.final_answer("", Q, "number") is None
    assert rw.final_answer("Answer: (B) Paris", "Capital? (A) Rome (B) Paris", "choice") == "B"


def test_right_and_short_beats_right_and_long_beats_wrong():
    fn = rw.make_rewards("arora", alpha=0.2, max_len=64, eos_ids=[2])[0]
    comps = [[{"role": "assistant", "content": "Answer: 15"}],
             [{"role": "assistant", "content": "7 plus 8: 7+3 is 10, 10+5 is 15. Answer: 15"}],
             [{"role": "assistant", "content": "Answer: 14"}]]
    short, long_, wrong = _call(fn, comps, ids=[_ids(4), _ids(30), _ids(4)])
    assert short > long_ > wrong == 0.0
    assert short == pytest.approx(1 - 0.2 * rw._sigmoid(-1.0))  # z = ±1 with two right ones
    assert long_ == pytest.approx(1 - 0.2 * rw._sigmoid(1.0))


def test_group_normalisation_is_per_prompt_among_right_answers():
    # two prompts; lengths are compared only within each prompt's group, and only among right ones
    right = [1.0, 1.0, 0.0, 1.0, 1.0, 1.0]
    lens = [10, 20, 2, 100, 100, 100]
    out = rw.arora(right, lens, ["a", "a", "a", "b", "b", "b"], alpha=0.5)
    assert out[0] > out[1] and out[2] == 0.0
    assert out[3] == out[4] == out[5] == pytest.approx(1 - 0.5 * 0.5)  # equal lengths: z = 0
    # the same lengths in another group's units give the same rewards: only z-scores count
    scaled = rw.arora([1.0, 1.0], [100, 200], ["x", "x"], alpha=0.5)
    assert scaled == pytest.approx(out[:2])
    lone = rw.arora([1.0, 0.0], [50, 3], ["g", "g"], alpha=0.4)
    assert lone == pytest.approx([1 - 0.4 * 0.5, 0.0])


def test_truncated_completion_scores_zero_and_takes_the_penalty():
    ans_arora, trunc = rw.make_rewards("arora", max_len=16, eos_ids=[2])
    comps = ["Answer: 15 and then on and on", "Answer: 15"]
    ids = [_ids(16, eos=False), _ids(5)]
    assert _call(ans_arora, comps, ids) == [0.0, pytest.approx(0.9)]  # right but cut: 0
    assert _call(trunc, comps, ids) == [-1.0, 0.0]
    ans, over = rw.make_rewards("overlong", max_len=16, cache=8, eos_ids=[2])
    assert _call(ans, comps, ids) == [0.0, 1.0]
    assert _call(over, comps, ids) == [-1.0, 0.0]
    # ending exactly at the cap with the end-of-sequence token is not truncated
    assert rw.truncated([_ids(16, eos=True)], 16, [2]) == [False]


def test_soft_overlong_penalty():
    assert rw.soft_overlong([8, 12, 14, 16, 20], max_len=16, cache=8) == [0.0, -0.5, -0.75, -1.0, -1.0]
    assert rw.soft_overlong([15], max_len=16, cache=0) == [0.0]


def test_no_penalty_is_plain_accuracy_and_logs_metrics():
    logged = {}
    (fn,) = rw.make_rewards("none", max_len=16, eos_ids=[2])
    out = fn([Q, Q], ["Answer: 15", "Answer: 16"], answer=["15", "15"], kind=["number"] * 2, question=[Q, Q],
             completion_ids=[_ids(3), _ids(3)], log_metric=lambda k, v: logged.setdefault(k, v))
    assert out == [1.0, 0.0] and logged == {"accuracy": 0.5, "truncated": 0.0}
    with pytest.raises(ValueError, match="penalty"):
        rw.make_rewards("shorter")


def test_format_bonus_rewards_a_stated_answer_right_or_wrong():
    """Off by default (it taught the 135M model to state an answer at once); when on, a finished
    completion with a readable answer earns it, right or wrong."""
    funcs = rw.make_rewards("arora", alpha=0.2, max_len=32, eos_ids=[2], format_bonus=0.2)
    assert [f.__name__ for f in funcs] == ["answer_arora", "truncation", "answer_format"]
    comps = ["7 + 8 = 15. Final answer: 15", "7 + 8 = 14. Final answer: 14", "Let me add them.", "Final answer: 15"]
    ids = [_ids(12), _ids(12), _ids(6), _ids(32, eos=False)]
    total = [sum(x) for x in zip(*(_call(f, comps, ids) for f in funcs))]
    right, wrong_stated, unstated, cut = total
    assert right > wrong_stated > unstated == 0.0 > cut
    assert wrong_stated == pytest.approx(0.2) and cut == pytest.approx(-1.0)  # no bonus once cut
    assert rw.make_rewards("none", format_bonus=0.0)[-1].__name__ == "answer"


# --- config and CLI --------------------------------------------------------------------------


def test_config_rejects_bad_values():
    from pydantic import ValidationError

    from openmuse.train.compress import CompressConfig, problems

    with pytest.raises(ValidationError, match="multiple of num_generations"):
        CompressConfig(batch=6, num_generations=4)
    with pytest.raises(ValidationError, match="families"):
        CompressConfig(families=("sum", "poetry"))
    items = problems(10, seed=3)
    assert [p.family for p in items[:5]] == ["sum", "compare", "capital", "word", "sum3"]
    assert problems(10, seed=3) == items and problems(10, seed=4) != items


def test_cli_bad_value_is_one_line_error():
    from click.testing import CliRunner

    from openmuse.cli import train as _  # noqa: F401 - registers `muse train`
    from openmuse.cli.common import cli
    from openmuse.errors import ConfigError

    r = CliRunner().invoke(cli, ["train", "compress", "--batch", "6", "--generations", "4"])
    assert isinstance(r.exception, ConfigError)
    assert "multiple of num_generations" in str(r.exception) and "\n" not in str(r.exception)
    r = CliRunner().invoke(cli, ["train", "compress", "--steps", "0"])
    assert isinstance(r.exception, ConfigError) and str(r.exception).startswith("--steps:")


# --- training on the real embedded model -----------------------------------------------------


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    import torch

    from openmuse.train.compress import CompressConfig, train
    from openmuse.train.gguf_io import load_hf

    model, tok = load_hf()
    before = model.model.layers[0].self_attn.q_proj.weight.detach().clone()
    out = tmp_path_factory.mktemp("compress")
    cfg = dict(out_dir=out, steps=2, batch=4, num_generations=4, max_completion_length=24, learning_rate=1e-5,
               penalty="overlong", overlong_cache=24, eval_items=2, eval_steps=1, save_steps=1, train_items=16,
               seed=0)
    torch.manual_seed(0)
    final = train(CompressConfig(**cfg), loaded=(model, tok))
    return {"cfg": cfg, "out": out, "final": final, "before": before, "loaded": (model, tok)}


def test_real_two_steps_change_weights_and_checkpoint_loads(real_run):
    from transformers import AutoModelForCausalLM

    out = real_run["out"]
    record = json.loads((out / "train.json").read_text())
    assert [s["step"] for s in record["steps"]] == [1, 2]
    assert {"reward", "completions/mean_length", "accuracy", "truncated"} <= set(record["steps"][0])
    assert record["environment"]["trl"] and record["args"]["steps"] == 2
    ckpt = out / "checkpoint-2"
    loaded = AutoModelForCausalLM.from_pretrained(ckpt)
    after = loaded.model.layers[0].self_attn.q_proj.weight.detach()
    assert after.shape == real_run["before"].shape
    assert not after.equal(real_run["before"])  # GRPO moved the weights
    assert (real_run["final"] / "config.json").is_file()
    # held-out evaluations before, at step 1 (eval_steps) and after; the plot drawn from them
    ev = record["eval"]
    assert ev["before"]["items"] == 2 and [e["step"] for e in ev["during"]] == [1] and ev["after"]["items"] == 2
    assert (out / "train.png").stat().st_size > 10_000


def test_training_prompt_is_what_thinking_mode_sends(real_run):
    """The model is trained on the exact text Thinking mode sends the local engine: its system
    prompt, the question, the assistant turn opened with the reasoning prefix."""
    from openmuse import prompts
    from openmuse.engines import EngineSettings, create_engine
    from openmuse.modes.base import with_system
    from openmuse.train.compress import thinking_prompt
    from openmuse.types import ChatRequest, Message

    p = prompts.load("thinking")["prompted"]
    engine = create_engine(EngineSettings())  # the shared one: other tests use it, so it stays open
    msgs = [*with_system([Message(role="user", content=Q)], p["system"]),
            Message(role="assistant", content=p["reasoning_prefix"])]
    sent = engine.render(ChatRequest(messages=msgs))
    _, tok = real_run["loaded"]
    assert thinking_prompt(tok, Q) == sent
    assert sent.endswith("<|im_start|>assistant\nThe question asks")


def test_exported_gguf_answers_through_muse_and_eval_versus(real_run, tmp_path):
    """The run wrote model.q8_0.gguf: ``muse --model`` answers with it, and ``muse eval
    --versus`` runs the default and the trained model side by side."""
    from click.testing import CliRunner

    from openmuse.cli import evals as _e  # noqa: F401 - registers `muse eval`
    from openmuse.cli.common import cli

    gguf = real_run["out"] / "model.q8_0.gguf"
    assert json.loads((real_run["out"] / "train.json").read_text())["gguf"] == str(gguf)
    r = CliRunner().invoke(cli, ["ask", "What is 2 + 3?", "--model", str(gguf), "--max-tokens", "16", "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.output.strip().splitlines()[-1])
    assert got["answer"].strip() and got["model"] == "model.q8_0"
    out = tmp_path / "versus"
    r = CliRunner().invoke(cli, ["eval", "arithmetic", "--limit", "2", "--mode", "thinking", "--budget", "16",
                                 "--versus", str(gguf), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert sorted(d.name for d in out.iterdir() if d.is_dir()) == ["1-default", "2-model.q8_0"]
    table = (out / "compare.md").read_text()
    assert "| model |" in table and "model.q8_0" in table and "SmolLM2" in table
    assert (out / "compare.png").is_file()
    # the GGUF is marked: Thinking reads the answer from the reasoning when the model ends its turn
    from openmuse.assistant import Assistant
    from openmuse.engines import EngineSettings, create_engine
    from openmuse.types import Message

    trained = create_engine(EngineSettings(model=str(gguf)), shared=False)
    try:
        assert trained.capabilities.answers_in_reasoning
        assert not create_engine(EngineSettings()).capabilities.answers_in_reasoning
        ask = Assistant(trained)
        results = [ask.answer([Message(role="user", content=q)], "thinking", {"budget": 200})
                   for q in ("What is 2 + 3?", "What is the capital of France?", "Which is larger, 12 or 21?")]
        # and `muse serve --model` answers with it (the app the command starts, over this engine)
        from fastapi.testclient import TestClient

        from openmuse.server.app import ServerConfig, create_app

        config = ServerConfig(engine=EngineSettings(model=str(gguf)), database_url=f"sqlite:///{tmp_path}/s.db")
        with TestClient(create_app(config, engine=trained), base_url="http://127.0.0.1") as client:
            resp = client.post("/v1/chat/completions", json={
                "model": "muse-thinking", "messages": [{"role": "user", "content": "What is 4 + 4?"}]})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["choices"][0]["message"]["content"].strip()
        assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] > 0
    finally:
        trained.close()
    own = [x for x in results if not x.trace.budget_exhausted]
    assert own, "every reasoning ran to the budget"
    for x in own:  # no answer phase: the answer comes from the reasoning, every token counted as reasoning
        assert x.trace.answer_from_reasoning and x.answer.strip()
        assert x.usage.reasoning_tokens == x.usage.completion_tokens == x.trace.reasoning_tokens
    r = CliRunner().invoke(cli, ["train", "plot", str(real_run["out"]), "--out", str(tmp_path / "p.png")])
    assert r.exit_code == 0 and (tmp_path / "p.png").stat().st_size > 10_000
    r = CliRunner().invoke(cli, ["train", "plot", str(tmp_path)])
    assert "not a muse train record" in str(r.exception)


def test_train_export_cli(real_run, tmp_path):
    from click.testing import CliRunner

    from openmuse.cli import train as _t  # noqa: F401 - registers `muse train`
    from openmuse.cli.common import cli
    from openmuse.engines import EngineSettings, create_engine

    target = tmp_path / "ckpt1.f16.gguf"
    r = CliRunner().invoke(cli, ["train", "export", str(real_run["out"] / "checkpoint-1"), "--ftype", "f16",
                                 "--out", str(target)])
    assert r.exit_code == 0, r.output
    engine = create_engine(EngineSettings(model=str(target)), shared=False)
    try:
        assert engine.model == "ckpt1.f16"
    finally:
        engine.close()
    r = CliRunner().invoke(cli, ["train", "export", str(tmp_path / "nothing")])
    assert "no trained model" in str(r.exception) and "\n" not in str(r.exception)


def test_real_resume_continues_past_the_checkpoint(real_run):
    from openmuse.train.compress import CompressConfig, evaluate, problems, train

    cfg = {**real_run["cfg"], "steps": 3, "resume": True}
    train(CompressConfig(**cfg), loaded=real_run["loaded"])
    record = json.loads((real_run["out"] / "train.json").read_text())
    assert record["resumed_from"].endswith("checkpoint-2")
    assert [s["step"] for s in record["steps"]] == [1, 2, 3]
    assert (real_run["out"] / "checkpoint-3").is_dir()
    model, tok = real_run["loaded"]
    ev = evaluate(model, tok, problems(2, seed=1), max_new_tokens=8)
    assert ev["items"] == 2 and 0 <= ev["accuracy"] <= 1 and 1 <= ev["mean_tokens"] <= 8
