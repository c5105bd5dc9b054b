"""`muse eval` end to end through the real CLI (a subprocess, the real embedded model):
a run writes every output, a second invocation into the same folder resumes without redoing
finished items (counted from the JSONL and the summary's run counter), `muse eval compare`
prints the table and writes the plot, and every bad input ends in one `error:` line.
Run: `.venv/bin/pytest tests/test_eval_cli.py -q`."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import run_muse as _run_muse
from .test_cli import one_line_error

FIX = Path(__file__).parent / "fixtures" / "eval"


def run_muse(*args: str, env: dict | None = None):
    """`muse` with one CPU thread: llama.cpp's threads stall on a shared, busy 2-core machine,
    and speed is not under test here."""
    return _run_muse(*args, env={"MUSE_THREADS": "1", **(env or {})})


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_arithmetic_run_resume_and_compare(tmp_path):
    run = tmp_path / "arith"
    first = run_muse("eval", "arithmetic", "--limit", "10", "--max-tokens", "32", "--out", str(run))
    assert first.returncode == 0, first.stderr
    before = (run / "items.jsonl").read_text()
    assert len(before.splitlines()) == 10

    second = run_muse("eval", "arithmetic", "--limit", "20", "--out", str(run), env={"MUSE_MAX_TOKENS": "32"})
    assert second.returncode == 0, second.stderr
    assert "10 items run, 10 already done" in second.stdout
    text = (run / "items.jsonl").read_text()
    assert text.startswith(before)  # finished lines are kept as they were
    recs = _lines(run / "items.jsonl")
    assert len(recs) == 20 and len({r["id"] for r in recs}) == 20
    assert [r["run"] for r in recs] == [1] * 10 + [2] * 10  # the second invocation ran only the rest
    for r in recs:
        assert set(r) >= {"id", "prediction", "extracted", "target", "score", "prompt_tokens",
                          "completion_tokens", "reasoning_tokens", "wall_s"}
        assert r["score"] in (0.0, 1.0) and r["prompt_tokens"] > 0 and r["calls"] == 1

    s = json.loads((run / "summary.json").read_text())
    assert s["items"] == 20 and s["task"]["synthetic"] is True
    assert s["run"] == {"index": 2, "items_run": 10, "items_resumed": 10, "model_calls": 10}
    assert s["metrics"]["accuracy"] == sum(r["score"] for r in recs) / 20
    assert s["tokens"]["completion"] == sum(r["completion_tokens"] for r in recs)
    assert s["args"]["mode_options"]["max_tokens"] == 32 and s["args"]["limit"] == 20
    assert {"python", "openmuse", "cpus"} <= set(s["env"])
    assert [r["items_run"] for r in s["runs"]] == [10, 10]
    assert "| accuracy |" in (run / "summary.md").read_text()
    assert (run / "plot.png").read_bytes()[:4] == b"\x89PNG"

    # a third invocation finds everything done and calls the model for nothing
    third = run_muse("eval", "arithmetic", "--limit", "20", "--max-tokens", "32", "--out", str(run), "--json")
    assert third.returncode == 0, third.stderr
    assert json.loads(third.stdout)["run"]["model_calls"] == 0
    assert len(_lines(run / "items.jsonl")) == 20

    other = tmp_path / "think"
    p = run_muse("eval", "arithmetic", "--mode", "thinking", "--budget", "8", "--max-tokens", "16",
                 "--limit", "3", "--out", str(other))
    assert p.returncode == 0, p.stderr
    plot = tmp_path / "cmp" / "modes.png"
    c = run_muse("eval", "compare", str(run), str(other), "--out", str(plot))
    assert c.returncode == 0, c.stderr
    assert "| arithmetic | instant |" in c.stdout and "| arithmetic | thinking | budget 8 | 3 |" in c.stdout
    assert "completion tok/item" in c.stdout
    assert plot.read_bytes()[:4] == b"\x89PNG" and plot.with_suffix(".md").exists()

    # a run folder of another task is refused, and nothing in it is touched
    p = run_muse("eval", "refusal", "--limit", "2", "--out", str(run))
    one_line_error(p, "holds a run of another task")
    assert (run / "items.jsonl").read_text() == text


def test_eval_bad_input_is_one_line_error(tmp_path):
    one_line_error(run_muse("eval", "nosuch"), "unknown eval 'nosuch'")
    one_line_error(run_muse("eval", "arithmetic", "--limit", "0"), "--limit must be at least 1")
    one_line_error(run_muse("eval", "math", "--data", str(tmp_path / "missing.jsonl")), "data file not found")
    one_line_error(run_muse("eval", "mcq"), "--data PATH")
    one_line_error(run_muse("eval", "healthbench", "--data", str(FIX / "malformed.jsonl")), "not valid JSON")
    unreadable = tmp_path / "binary.csv"
    unreadable.write_bytes(b"\xff\xfe\x00bad")
    one_line_error(run_muse("eval", "mcq", "--data", str(unreadable)), "cannot read")
    one_line_error(run_muse("eval", "arithmetic", "--mode", "nosuch"), "unknown mode 'nosuch'")
    one_line_error(run_muse("eval", "charts", "--limit", "1"), "does not take images")
    one_line_error(run_muse("eval", "compare", str(tmp_path)), "not a finished eval run")
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "items.jsonl").write_text("{}\n")
    one_line_error(run_muse("eval", "arithmetic", "--limit", "1", "--out", str(junk)), "no run.json")
