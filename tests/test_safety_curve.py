"""The classifier's trade-off (``safety/curve.py``): read from the bench files the project
committed, it agrees with the bench's own table at the shipped threshold; its thresholds refuse
what they say; a file that is not a bench file is a one-line error."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from openmuse.errors import ConfigError
from openmuse.safety.curve import TARGETS, for_share_caught, for_share_refused, from_file, item_logit

from .conftest import run_muse

BENCH = Path(__file__).resolve().parents[1] / "docs" / "safety" / "bench-layer-run6.json"


def test_the_shipped_point_matches_the_bench_table():
    d = json.loads(BENCH.read_text("utf-8"))
    c = from_file(BENCH)
    shipped = next(p for p in c["points"] if p["point"] == "as shipped")
    assert shipped["threshold"] == d["classifier"]["refuse"]
    for name in ("harmful", "harmless", "wrapped"):  # the bench refused these shares at its threshold
        assert shipped[name] == d["sets"][name]["refused"], name
    assert c["items"]["harmful"] == d["sets"]["harmful"]["items"] and c["items"]["chem_bio"] > 0


def test_each_point_keeps_its_promise():
    c = from_file(BENCH)
    for p in c["points"]:
        if p["point"].startswith("look-alikes <= "):
            assert p["harmless"] <= float(p["point"].split("<= ")[1].rstrip("%")) / 100 + 1e-9
        for name, (how, v) in TARGETS.items():
            if how == "min" and p["point"] == f"{name} >= {v:.0%}":
                assert p[name] >= v
    best = c["best_at_lookalike_target"]
    assert best["harmless"] <= TARGETS["harmless"][1]
    at5 = next(p for p in c["points"] if p["point"] == "look-alikes <= 5%")
    assert best["harmful"] >= at5["harmful"]  # the best over every threshold is no worse than this one
    if best["harmful"] < TARGETS["harmful"][1]:  # then no threshold can meet every target
        assert not c["meets_targets"] and c["thresholds_meeting"] == 0


def test_threshold_choice_on_ties_and_rules():
    z = np.array([math.inf, 5.0, 5.0, 2.0, -1.0])  # a rule's refusal counts at every threshold
    t = for_share_refused(z, 0.2)
    assert (z >= t).sum() == 1  # only the rule's: the two 5.0s would make it 3
    t = for_share_refused(z, 0.6)
    assert (z >= t).sum() == 3
    assert (z >= for_share_caught(z, 0.5)).sum() >= 3 and (z >= for_share_caught(z, 1.0)).all()
    assert item_logit({"source": "rules", "decision": "refuse"}) == math.inf
    assert item_logit({"source": "classifier", "score": 0.5}) == 0.0
    assert item_logit({"source": "guard:llama_guard", "score": 0.9}) is None


def test_not_a_bench_file_is_a_one_line_error(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{not json", "utf-8")
    with pytest.raises(ConfigError, match="not a bench file"):
        from_file(bad)
    bad.write_text(json.dumps({"items": [{"id": "a", "source": "classifier", "score": 0.5}]}), "utf-8")
    with pytest.raises(ConfigError, match="not a bench row"):
        from_file(bad)
    p = run_muse("safety", "curve", str(tmp_path / "missing.json"))
    assert p.returncode != 0 and "Traceback" not in p.stderr and "no such bench file" in p.stderr


def test_cli_prints_the_curve():
    p = run_muse("safety", "curve", str(BENCH))
    assert p.returncode == 0, p.stderr
    assert "as shipped" in p.stdout and "look-alikes <= 5%" in p.stdout and "every target" in p.stdout
    p = run_muse("safety", "curve", "--json", str(BENCH))
    assert json.loads(p.stdout)[str(BENCH)]["points"][0]["point"] == "as shipped"
