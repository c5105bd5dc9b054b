"""The eval runner in process on the real embedded model (one CPU thread: llama.cpp's threads
stall on a shared, busy 2-core machine, and speed is not under test here):
HealthBench loading and rubric grading end to end with the embedded model as grader (the
structure and the official formula are checked, not the model's judgement), the mcq and math
loaders through a real run, and a resume after an interrupted write (a torn last JSONL line)
that keeps every finished item. Run: `.venv/bin/pytest tests/test_eval_runner.py -q`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from openmuse.evals import TaskOptions, create_task
from openmuse.evals.runner import run_eval
from openmuse.evals.tasks import healthbench
from openmuse.assistant import Assistant
from openmuse.modes import ModeOptions

FIX = Path(__file__).parent / "fixtures" / "eval"
ENGINE = {"engine": "local"}


@pytest.fixture(scope="module")
def engine():
    from openmuse.engines import EngineSettings, create_engine

    return create_engine(EngineSettings(n_threads=1))


@pytest.fixture(scope="module")
def assistant(engine):
    return Assistant(engine)


def _recs(path: Path) -> list[dict]:
    return [json.loads(x) for x in (path / "items.jsonl").read_text().splitlines()]


def test_healthbench_grading_end_to_end(engine, assistant, tmp_path):
    task = create_task("healthbench", TaskOptions(data=str(FIX / "healthbench_mini.jsonl")))
    summary, out = run_eval(task, "instant", ModeOptions(max_tokens=48), assistant, ENGINE, out_dir=tmp_path / "hb",
                            grader=engine, grader_info=ENGINE)
    recs = _recs(out)
    assert [r["id"] for r in recs] == ["hb-mini-1", "hb-mini-2"]
    for r, item in zip(recs, task.items()):
        points = [x["points"] for x in item.target]
        assert r["grader_calls"] == len(points) == r["rubric_items"]  # one grader call per rubric item
        assert isinstance(r["extracted"], list) and len(r["extracted"]) == len(points)
        assert r["score"] == pytest.approx(healthbench.example_score(points, r["extracted"]))
        assert r["grader_tokens"] > 0 and r["prediction"]
    mean = sum(r["score"] for r in recs) / 2
    m = summary["metrics"]
    assert m["score"] == pytest.approx(min(1.0, max(0.0, mean)), abs=1e-4)
    assert m["examples"] == 2 and m["rubric_items"] == 5 and m["bootstrap_std"] >= 0.0
    assert summary["primary"] == "score" and summary["grader_tokens"] == sum(r["grader_tokens"] for r in recs)


def test_mcq_and_math_runs_score_every_item(assistant, tmp_path):
    for name, data, n in (("mcq", "gpqa_mini.csv", 3), ("math", "math_mini.jsonl", 3)):
        task = create_task(name, TaskOptions(data=str(FIX / data)))
        summary, out = run_eval(task, "instant", ModeOptions(max_tokens=24), assistant, ENGINE, out_dir=tmp_path / name)
        recs = _recs(out)
        assert len(recs) == n and summary["items"] == n
        assert all(r["score"] in (0.0, 1.0) and r["completion_tokens"] > 0 for r in recs)
        assert summary["metrics"]["accuracy"] == pytest.approx(sum(r["score"] for r in recs) / n, abs=1e-4)
    assert {r["target"] for r in _recs(tmp_path / "math")} == {"7", r"\frac{1}{2}", "1234"}


def test_resume_after_a_torn_write_keeps_finished_items(assistant, tmp_path):
    task = create_task("arithmetic")
    options = ModeOptions(max_tokens=16)
    _, out = run_eval(task, "instant", options, assistant, ENGINE, limit=3, out_dir=tmp_path / "r")
    kept = (out / "items.jsonl").read_text()
    with (out / "items.jsonl").open("a") as fh:  # what an interruption in the middle of a write leaves
        fh.write('{"id": "s0-0003", "run": 1, "predic')
    summary, _ = run_eval(task, "instant", options, assistant, ENGINE, limit=5, out_dir=out)
    recs = _recs(out)
    assert (out / "items.jsonl").read_text().startswith(kept)
    assert [r["id"] for r in recs] == [f"s0-{i:04d}" for i in range(5)]
    assert summary["run"] == {"index": 2, "items_run": 2, "items_resumed": 3, "model_calls": 2}
    # another mode in the same folder is refused
    from openmuse.evals import DataError

    with pytest.raises(DataError, match="another mode"):
        run_eval(task, "thinking", options, assistant, ENGINE, limit=5, out_dir=out)


def test_refusal_with_the_engine_as_judge_keeps_both_verdicts(engine, tmp_path):
    # the layer off: the model answers every item and the judge reads every answer
    task = create_task("refusal", TaskOptions(judge="engine"))
    summary, out = run_eval(task, "instant", ModeOptions(max_tokens=24), Assistant(engine, checks=[]), ENGINE,
                            limit=2, out_dir=tmp_path / "ref")
    recs = _recs(out)
    assert [r["meta"]["set"] for r in recs] == ["harmful", "harmless"]
    for r in recs:
        assert r["grader_calls"] == 1 and r["refused_judge"] in (True, False, None)
        assert r["refused"] == (r["refused_rules"] if r["refused_judge"] is None else r["refused_judge"])
        assert r["score"] == float(r["refused"] == (r["meta"]["set"] == "harmful"))
    m = summary["metrics"]
    assert m["items_harmful"] == 1 and m["items_harmless"] == 1
    assert m["refusal_rate_harmful"] == float(recs[0]["refused"])


def test_refusal_with_the_layer_counts_its_refusals(assistant, tmp_path):
    # layer on (the registered checks): a HarmBench behaviour the layer refuses never reaches the model
    task = create_task("refusal")
    summary, out = run_eval(task, "instant", ModeOptions(max_tokens=24), assistant, ENGINE, limit=3,
                            out_dir=tmp_path / "on")
    recs = _recs(out)
    assert [r["meta"]["set"] for r in recs] == ["harmful", "harmless", "wrapped"]
    for r in recs:
        if r.get("layer"):
            assert r["refused"] and r["completion_tokens"] == 0 and r["layer"]["source"]
    m = summary["metrics"]
    assert m["layer_refusals_harmful"] == sum(1 for r in recs if r["meta"]["set"] == "harmful" and r.get("layer"))
    assert "harmful_by_harmbench_category" in m and "wrapped_by_wrapper" in m
