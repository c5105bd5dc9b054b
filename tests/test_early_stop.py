"""Early stop in Contemplating: the ``vote.settled`` rule on constructed answers and
confidences (pure, no model), the study's wave plans, simulation and posterior test on
constructed traces, and one small run of the study on the embedded model (a few items, well
under a minute).
Run: `.venv/bin/pytest tests/test_early_stop.py` (`-k "not real_model"` for the pure ones)."""

from __future__ import annotations

import json
import random

import pytest

from openmuse.bench.early_stop import (
    evaluate,
    heads,
    overturn_probability,
    plan,
    rule_old,
    rule_settled,
    run_study,
    simulate,
    summarize,
)
from openmuse.bench.early_stop_rules import launch_orders, tune_proposed
from openmuse.modes.contemplating import waves
from openmuse.modes.contemplating.agents import launch_order
from openmuse.modes.contemplating.vote import SETTLE_AGREE, SETTLE_CONFIDENCE, SETTLE_WEIGHT, settled, vote


def test_two_agreeing_agents_never_settle():
    # the old rule stopped here; two agreeing agents were overturned on 11% of tuning items
    assert not settled(["4", "4"], [0.95, 0.95], remaining=6)
    assert settled(["4", "4"], [0.95, 0.95], remaining=6, min_agree=2)  # the old unanimity, on request


def test_three_agreeing_agents_settle_above_the_confidence_floor():
    assert settled(["B", "B", "B"], [0.6, 0.7, 0.55], remaining=5)
    assert not settled(["D", "D", "D"], [0.30, 0.36, 0.32], remaining=5, min_confidence=0.5)  # a floor, on request
    assert settled(["D", "D", "D"], [0.30, 0.36, 0.32], remaining=5)  # the shipped rule has none
    assert not settled(["B", "B", "C"], [0.9, 0.9, 0.1], remaining=5)
    assert not settled(["B", "B", None], [0.9, 0.9, 0.9], remaining=5)  # a missing answer is no agreement
    assert not settled([None, None, None], [0.9, 0.9, 0.9], remaining=5)


def test_a_lead_settles_when_the_rest_could_not_plausibly_overturn_it():
    answers = ["4", "4", "4", "4", "5", "6"]
    conf = [0.7, 0.6, 0.6, 0.5, 0.4, 0.3]  # lead 2.4 - 0.4 = 2.0
    assert settled(answers, conf, remaining=2, max_weight=0.8)  # 2.0 > 2 * 0.8
    assert not settled(answers, conf, remaining=3, max_weight=0.8)  # 2.0 < 3 * 0.8
    assert settled(answers, conf, remaining=3)  # the shipped weight: 2.0 > 3 * 0.5
    assert not settled(answers, conf, remaining=2, max_weight=1.0)  # 2.0 is not more than 2 * 1
    # a split that the lead alone decides: 1.7 - 1.6 is no lead
    assert not settled(["4", "4", "5", "5", "4", "5"], [0.6, 0.6, 0.5, 0.5, 0.5, 0.6], remaining=1)


def test_without_confidences_votes_weigh_one_and_the_lead_must_be_certain():
    assert not settled(["4", "4"], None, remaining=6)
    assert settled(["4", "4", "4"], None, remaining=5)
    assert settled(["4", "4", "4"], [None, None, None], remaining=5)
    assert settled(["4", "4", "4", "4", "5", "6"], None, remaining=2)  # 4 - 1 > 2
    assert not settled(["4", "4", "4", "5"], None, remaining=2)  # 3 - 1 = 2, not more


def test_shipped_constants():
    assert (SETTLE_AGREE, SETTLE_CONFIDENCE, SETTLE_WEIGHT) == (3, 0.0, 0.5)


def test_a_certain_lead_is_never_overturned():
    """At max_weight 1 (a tail confidence is at most 1), no continuation changes the winner."""
    rng = random.Random(5)
    checked = 0
    for _ in range(3000):
        k = rng.randint(2, 7)
        answers = [rng.choice("ABC") for _ in range(k)]
        conf = [rng.random() for _ in range(k)]
        remaining = 8 - k
        if not settled(answers, conf, remaining, max_weight=1.0, min_agree=99):
            continue
        before = vote(answers, conf).winner
        for _ in range(20):
            more = [rng.choice("ABCD") for _ in range(remaining)]
            assert vote(answers + more, conf + [rng.random() for _ in more]).winner == before
        checked += 1
    assert checked > 50


def test_proposed_wave_plan():
    assert plan(8) == [3, 3, 1, 1]
    assert plan(16) == [3, 3, 1, 1, 4, 4]
    assert plan(4) == [3, 1] and plan(6) == [3, 3] and plan(7) == [3, 3, 1] and plan(3) == [3] and plan(1) == [1]
    assert plan(8, (2, 1, 3, 2)) == [2, 1, 3, 2]
    assert all(sum(plan(n)) == n for n in range(1, 17))
    hs = heads(8)  # the plans tuned over: three agents first, at most four waves
    assert (3, 3, 1, 1) in hs and (3, 5) in hs and (3, 3, 2) in hs
    assert all(h[0] == 3 and sum(h) == 8 and len(h) <= 4 for h in hs)


def _row(answers, confs, target, family="sum", tokens=10):
    return {"family": family, "target": target, "agents": [
        {"answer": a, "confidence": c, "prompt_tokens": tokens, "completion_tokens": tokens}
        for a, c in zip(answers, confs)]}


def test_simulation_takes_the_first_waves_and_counts_what_changed():
    agree = _row(["7"] * 8, [0.7] * 8, "7")
    # the first two agree confidently and are wrong; the other six carry the right answer
    pair = _row(["8", "8", "7", "7", "7", "7", "7", "7"], [0.8, 0.8, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6], "7")
    old = simulate([agree, pair], rule_old(0.5, 0.7), 8, [2, 2, 2, 2])
    assert [s["launched"] for s in old] == [2, 2]
    m = summarize(old)
    assert m["changed"] == 1 and m["lost"] == 1 and m["delta"] == -0.5
    assert m["token_saving"] == pytest.approx(0.75)
    new = simulate([agree, pair], rule_settled(0.5, 0.8), 8, plan(8))
    # the pair row: no unanimity; after 7 agents "7" leads by 3.0 - 1.6 > 1 * 0.8
    assert [s["launched"] for s in new] == [3, 7]
    m = summarize(new)
    assert m["changed"] == 0 and m["delta"] == 0 and m["stopped_early"] == 2
    assert m["token_saving"] == pytest.approx(1 - (3 + 7) / 16)


def test_launch_order_decides_which_agents_a_settled_item_pays_for():
    # agents 1, 5 and 6 agree (cheap); 2, 3 and 4 hesitate between answers (dear)
    answers = ["7", "9", "8", "6", "7", "7", "7", "7"]
    row = {"family": "sum", "target": "7", "agents": [
        {"answer": a, "confidence": 0.7, "prompt_tokens": 10, "completion_tokens": 10 if a == "7" else 50}
        for a in answers]}
    plain = simulate([row], rule_settled(0.5, 0.8), 8, [3, 3, 1, 1])[0]
    first = simulate([row], rule_settled(0.5, 0.8), 8, [3, 3, 1, 1], launch=[0, 4, 5, 1, 2, 3, 6, 7])[0]
    assert first["launched"] == 3 and first["tokens"] == 60 and first["same"]
    assert plain["launched"] > 3 and plain["tokens"] > first["tokens"]
    assert first["steps"] == 10 and plain["steps"] > 50  # a wave lasts as long as its longest agent


def test_tuning_picks_the_thriftiest_order_within_its_limits():
    rng = random.Random(3)
    rows = []
    for k in range(60):  # agents 1, 4 and 7 agree with the majority; the others often stray
        target = str(k % 9)
        answers = [target if i in (0, 3, 6) or rng.random() < 0.5 else str(rng.randint(10, 12)) for i in range(8)]
        rows.append({"family": "sum", "target": target, "agents": [
            {"answer": a, "confidence": 0.8, "prompt_tokens": 20, "completion_tokens": 20 + 5 * i}
            for i, a in enumerate(answers)]})
    orders = launch_orders(rows, 8)
    assert len(orders) == 21 * 10 and all(o[0] == 0 and sorted(o) == list(range(8)) for o in orders)
    t = tune_proposed(rows, 8)
    assert set(t["launch"][:3]) == {0, 3, 6}
    best = evaluate(rows, rule_settled(t["min_confidence"], t["max_weight"]), 8, t["waves"], t["launch"])
    assert best["delta"] >= 0 and best["changed"] <= t["criterion"]["max_changed"]
    assert best["steps_per_item"] <= t["criterion"]["max_steps_per_item"]
    assert best["token_saving"] > t["criterion"]["previous_rule"]


def test_overturn_probability_falls_with_agreement_and_lead():
    prior = {"alpha": 8.7, "beta": 6.3, "weight": 0.78}
    p2 = overturn_probability(["4", "4"], [0.7, 0.7], 6, **prior)
    p4 = overturn_probability(["4"] * 4, [0.7] * 4, 4, **prior)
    p6 = overturn_probability(["4"] * 6, [0.7] * 6, 2, **prior)
    assert 1 >= p2 > p4 > p6 >= 0
    assert p6 == 0  # 4.2 ahead: two agents at 0.78 cannot catch up
    assert overturn_probability([None, None], [0.9, 0.9], 6, **prior) == 1.0


@pytest.mark.timeout(120)
def test_study_real_model_few_items(engine, tmp_path):
    _, path = run_study(engine, [11, 0], items=4, agents=8, budget=32, out_dir=str(tmp_path))
    saved = json.loads(path.read_text())
    assert saved["args"]["seeds"] == [11, 0] and saved["args"]["tuning_seeds"] == [11]
    assert saved["env"]["cpus"] and saved["args"]["model"]
    rules = {r["name"]: r for r in saved["rules"]}
    proposed = next(r for r in saved["rules"] if r["proposed"])
    assert proposed["waves"] == waves(8, True) and proposed["launch"] == [i + 1 for i in launch_order(8)]
    for r in rules.values():
        for m in r["seeds"].values():
            assert m["items"] == 4 and 0 <= m["token_saving"] < 1
    # the traces re-run the study offline, to the same numbers
    again, _ = run_study(None, [11, 0], 4, 8, 32, str(tmp_path / "again"),
                         traces=str(tmp_path / saved["args"]["traces"]))
    assert [r["seeds"] for r in again["rules"]] == [r["seeds"] for r in saved["rules"]]
