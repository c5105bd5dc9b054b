"""The `muse` command as a user runs it (a real subprocess, the real embedded model): answers,
--json, environment variables, chat, models, bench, and every error case (one line, non-zero
exit, no traceback). Run: `.venv/bin/pytest tests/test_cli.py`."""

from __future__ import annotations

import json

import pytest

from .conftest import free_port, run_muse


def one_line_error(p, needle: str) -> None:
    assert p.returncode != 0
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("error:") and needle in lines[0], lines[0]
    assert "Traceback" not in p.stderr + p.stdout


def test_default_command_answers():
    p = run_muse("What is the capital of France?")
    assert p.returncode == 0, p.stderr
    assert "Paris" in p.stdout


def test_json_output():
    p = run_muse("What is the capital of France?", "--json")
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert "Paris" in data["answer"]
    assert data["mode"] == "instant" and data["model"].startswith("SmolLM2-135M")
    assert set(data["usage"]) == {"prompt_tokens", "completion_tokens", "reasoning_tokens", "prefilled_tokens",
                                  "cached_tokens", "estimated", "reasoning_estimated"}
    assert data["usage"]["prompt_tokens"] > 0 and data["usage"]["estimated"] is False
    assert data["timings"]["wall_s"] > 0


def test_thinking_json_and_env_vars():
    p = run_muse("Tom has 3 apples and buys 4 more. How many now?", "--json",
                 env={"MUSE_MODE": "thinking", "MUSE_BUDGET": "16", "MUSE_MAX_TOKENS": "40"})
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert data["mode"] == "thinking" and data["trace"]["budget"] == 16
    assert data["reasoning"] and data["answer"]
    assert 0 < data["usage"]["reasoning_tokens"] <= 16


def test_show_thinking_streams_reasoning():
    p = run_muse("What is 2 plus 2?", "--mode", "thinking", "--budget", "12", "--show-thinking",
                 "--max-tokens", "24")
    assert p.returncode == 0, p.stderr
    assert "Let me" not in p.stdout  # the opener is the prompt's, not the model's
    hidden = run_muse("What is 2 plus 2?", "--mode", "thinking", "--budget", "12", "--max-tokens", "24")
    assert len(p.stdout) > len(hidden.stdout)
    assert hidden.stdout.strip() and hidden.stdout.strip() in p.stdout


def test_chat_keeps_history_and_commands():
    script = "\n".join([
        "What is the capital of France?",
        "/budget 0",
        "/mode dreaming",
        "/mode thinking",
        "/budget 16",
        "And of Japan?",
        "/clear",
        "/exit",
    ]) + "\n"
    p = run_muse("chat", "--max-tokens", "48", stdin=script)
    assert p.returncode == 0, p.stderr
    assert "Paris" in p.stdout
    assert "unknown mode 'dreaming'" in p.stderr
    assert "/budget needs a whole number" in p.stderr
    assert "budget 16 tokens" in p.stderr and "history cleared" in p.stderr


def test_models_lists_engines_and_capabilities():
    p = run_muse("models")
    assert p.returncode == 0, p.stderr
    for word in ("local", "openai", "instant", "thinking", "SmolLM2-135M-Instruct", "parallel_sequences: 16"):
        assert word in p.stdout


def test_bench_engine_json(tmp_path):
    out = tmp_path / "bench.json"
    p = run_muse("bench", "engine", "--ns", "1,2", "--steps", "8", "--json", "--out", str(out))
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert data == json.loads(out.read_text())
    assert data["args"]["ns"] == [1, 2] and data["args"]["steps"] == 8
    assert [r["n"] for r in data["results"]] == [1, 2]
    for r in data["results"]:
        assert r["speedup"] == pytest.approx(r["batched_tok_s"] / r["sequential_tok_s"], rel=0.01)


@pytest.mark.parametrize("args, needle", [
    (("",), "the question is empty"),
    (("   ",), "the question is empty"),
    (("hello", "--mode", "dreaming"), "unknown mode 'dreaming'"),
    (("hello", "--mode", "thinking", "--budget", "0"), "invalid value for --budget"),
    (("hello", "--max-tokens", "0"), "invalid value for --max-tokens"),
    (("hello", "--budget", "16"), "--budget is not an option of mode instant"),
    (("hello", "--engine", "warp"), "unknown engine 'warp'"),
    (("hello", "--model", "/nonexistent/model.gguf"), "model file not found"),
    (("hello", "--engine", "openai"), "needs --base-url"),
    (("hello", "--temperature", "hot"), "--temperature"),
    (("bench", "engine", "--ns", "1,99"), "--ns must lie between 1 and 16"),
])
def test_errors_are_one_line(args, needle):
    one_line_error(run_muse(*args), needle)


def test_unreachable_endpoint_is_one_line():
    p = run_muse("hello", "--engine", "openai", "--base-url", f"http://127.0.0.1:{free_port()}/v1",
                 "--model", "m")
    one_line_error(p, "cannot reach the engine")


def test_unknown_mode_from_environment():
    one_line_error(run_muse("hello", env={"MUSE_MODE": "dreaming"}), "unknown mode")


def test_bench_serve_json(tmp_path):
    out = tmp_path / "serve.json"
    p = run_muse("bench", "serve", "--levels", "1,2", "--requests", "2", "--max-tokens", "8", "--json",
                 "--out", str(out))
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert data == json.loads(out.read_text())
    assert [lv["concurrency"] for lv in data["levels"]] == [1, 2]
    assert all(lv["rps"] > 0 and lv["p95_s"] >= lv["p50_s"] > 0 for lv in data["levels"])
    assert isinstance(data["overhead"], float)
