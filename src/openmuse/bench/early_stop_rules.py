"""The early-stop study's offline half (``early_stop.py`` collects the traces): early stop
simulated on traces of every agent, the wave plans and candidate rules, the tuning on one seed
and the sweep of constants. Nothing here runs the model."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

from ..modes.contemplating import waves
from ..modes.contemplating.agents import launch_order
from ..modes.contemplating.vote import SETTLE_AGREE, SETTLE_CONFIDENCE, SETTLE_WEIGHT, settled, vote

Rule = Callable[[Sequence[dict[str, Any]], int], bool]  # (launched agents' records, remaining) -> stop


def _vote(agents: Sequence[dict[str, Any]]) -> str | None:
    ws = [a["confidence"] for a in agents]
    return vote([a["answer"] for a in agents], ws if any(w is not None for w in ws) else None).winner


def _cost(agents: Sequence[dict[str, Any]]) -> int:
    return sum(a["prompt_tokens"] + a["completion_tokens"] for a in agents)


def simulate(rows: Sequence[dict[str, Any]], rule: Rule, agents: int,
             plan: Sequence[int] | None = None, launch: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Each item as the mode would run it with early stop on: agents launched in ``launch``
    order (0-based; default agent order) in waves of ``plan`` (default the mode's ``waves``),
    stopping after a wave when ``rule`` says the launched agents' answers are settled. The
    final vote takes the launched agents in agent order (ties go to the earlier agent, as in the
    mode). One result an item; ``steps`` counts sequential decode steps (each wave as long as its
    longest agent), a proxy for the latency early stop adds."""
    order = list(launch) if launch is not None else list(range(agents))
    out = []
    for r in rows:
        ag = r["agents"][:agents]
        go = [ag[i] for i in order]
        launched = steps = 0
        for size in plan or waves(agents, True):
            steps += max(a["completion_tokens"] for a in go[launched:launched + size])
            launched += size
            if launched < agents and rule(go[:launched], agents - launched):
                break
        es, full = _vote([ag[i] for i in sorted(order[:launched])]), _vote(ag)
        out.append({"family": r["family"], "launched": launched, "answer": es, "es_hit": es == r["target"],
                    "full_hit": full == r["target"], "same": es == full,
                    "tokens": _cost(go[:launched]), "tokens_all": _cost(ag),
                    "steps": steps, "steps_all": max(a["completion_tokens"] for a in ag)})
    return out


def summarize(sim: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy with early stop and with all agents, their delta, the token saving, how many
    items stopped early and how often the early answer differs from all agents' answer."""
    n = len(sim)
    es, full = sum(s["es_hit"] for s in sim), sum(s["full_hit"] for s in sim)
    tok, tok_all = sum(s["tokens"] for s in sim), sum(s["tokens_all"] for s in sim)
    return {"items": n, "accuracy_all": round(full / n, 4), "accuracy": round(es / n, 4),
            "delta": round((es - full) / n, 4), "token_saving": round(1 - tok / tok_all, 4),
            "stopped_early": sum(s["tokens"] < s["tokens_all"] for s in sim),
            "changed": sum(not s["same"] for s in sim),
            "steps_per_item": round(sum(s["steps"] for s in sim) / n, 1),
            "steps_per_item_all": round(sum(s["steps_all"] for s in sim) / n, 1),
            "gained": sum(s["es_hit"] and not s["full_hit"] for s in sim),
            "lost": sum(s["full_hit"] and not s["es_hit"] for s in sim)}


# ---- wave plans and candidate rules -------------------------------------------------------

PLAN_HEAD = (3, 3, 1, 1)  # the previous rule's waves up to the eighth agent (tuned on seed 11)
OLD_HEAD = (2, 2, 2, 2)  # the plan it replaced, kept as the baseline of the comparison


def plan(n: int, head: Sequence[int] = PLAN_HEAD) -> list[int]:
    """Wave sizes for ``n`` agents: ``head`` (clipped to ``n``), then waves of four. The
    default is the plan proposed for the mode (8 agents: 3, 3, 1, 1; 16: 3, 3, 1, 1, 4, 4):
    its first boundary is where unanimity can first settle (three agents), and it has no more
    waves than the plan it replaces (2, 2, 2, 2)."""
    sizes, launched = [], 0
    for size in [*head, *[4] * n]:
        if launched >= n:
            break
        sizes.append(min(size, n - launched))
        launched += sizes[-1]
    return sizes


def _answers(ag: Sequence[dict[str, Any]]) -> tuple[list[str | None], list[float | None]]:
    return [a["answer"] for a in ag], [a["confidence"] for a in ag]


def rule_settled(min_confidence: float, max_weight: float, min_agree: int = SETTLE_AGREE) -> Rule:
    """``vote.settled`` with these constants."""
    def rule(ag: Sequence[dict[str, Any]], remaining: int) -> bool:
        answers, confs = _answers(ag)
        return settled(answers, confs, remaining, min_confidence, max_weight, min_agree=min_agree)
    return rule


def rule_old(min_confidence: float = 0.5, max_weight: float = 0.7) -> Rule:
    """The rule this study replaces: two or more agreeing agents each at least
    ``min_confidence`` confident, or a weighted lead over ``remaining * max_weight``."""
    return rule_settled(min_confidence, max_weight, min_agree=2)


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def fit_prior(rows: Sequence[dict[str, Any]], agents: int) -> dict[str, float]:
    """For the posterior rule: a Beta prior on the chance that an agent gives its item's
    winning answer (method of moments over items, all agents' weighted vote the winner), and
    a high tail confidence (the 90th percentile) for the weight of each remaining agent."""
    fr, confs = [], []
    for r in rows:
        ag = r["agents"][:agents]
        w = _vote(ag)
        fr.append(sum(a["answer"] == w for a in ag) / len(ag))
        confs += [a["confidence"] for a in ag if a["confidence"] is not None]
    m = sum(fr) / len(fr)
    v = sum((f - m) ** 2 for f in fr) / len(fr)
    rho = min(max((v / (m * (1 - m)) * agents - 1) / (agents - 1), 1e-3), 0.999)
    s = 1 / rho - 1
    return {"alpha": round(m * s, 4), "beta": round((1 - m) * s, 4),
            "weight": round(sorted(confs)[int(0.9 * (len(confs) - 1))], 4)}


def overturn_probability(answers: Sequence[str | None], confs: Sequence[float | None], remaining: int,
                         alpha: float, beta: float, weight: float) -> float:
    """The chance the remaining agents overturn the weighted leader, if each joins the leader
    with a chance drawn from Beta(alpha + agreeing, beta + others) and otherwise all of them
    back the runner-up, every one with weight ``weight`` (a Beta-binomial tail)."""
    r = vote(answers, [c or 0.0 for c in confs])
    if r.winner is None:
        return 1.0
    lead = r.votes[r.winner] - max((v for a, v in r.votes.items() if a != r.winner), default=0.0)
    a, b = beta + len(answers) - r.agreement, alpha + r.agreement  # Beta of the chance to dissent
    need = math.floor((lead / weight + remaining) / 2) + 1  # dissenters that overturn the lead
    p = 0.0
    for d in range(max(need, 0), remaining + 1):
        p += math.exp(math.lgamma(remaining + 1) - math.lgamma(d + 1) - math.lgamma(remaining - d + 1)
                      + _log_beta(d + a, remaining - d + b) - _log_beta(a, b))
    return p


def rule_posterior(prior: dict[str, float], risk: float) -> Rule:
    def rule(ag: Sequence[dict[str, Any]], remaining: int) -> bool:
        answers, confs = _answers(ag)
        return overturn_probability(answers, confs, remaining, prior["alpha"], prior["beta"],
                                    prior["weight"]) <= risk
    return rule


# ---- the study ----------------------------------------------------------------------------

def evaluate(rows: Sequence[dict[str, Any]], rule: Rule, agents: int, sizes: Sequence[int],
             launch: Sequence[int] | None = None, per_family: bool = True) -> dict[str, Any]:
    """``summarize`` overall and per family, and how many items stopped after each wave."""
    sim = simulate(rows, rule, agents, sizes, launch)
    out = summarize(sim)
    out["launched"] = {str(k): sum(s["launched"] == k for s in sim) for k in sorted({s["launched"] for s in sim})}
    if per_family:
        out["per_family"] = {f: summarize([s for s in sim if s["family"] == f])
                             for f in sorted({s["family"] for s in sim})}
    return out


def _safest(results: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
    """The fewest answers changed against all agents, then the most tokens saved. Returns the
    winning parameters with their result."""
    params, res = min(results, key=lambda pr: (pr[1]["changed"], -pr[1]["token_saving"]))
    return {**params, "result": {k: res[k] for k in ("token_saving", "delta", "changed", "stopped_early")}}


def _thriftiest(results: list[tuple[dict[str, Any], dict[str, Any]]], max_changed: int,
                max_steps: float) -> dict[str, Any]:
    """The tuning criterion of the proposed rule: the most tokens saved among the settings that
    lose no accuracy against all agents, change at most ``max_changed`` answers and add no
    sequential decode steps over ``max_steps`` (no more latency than the rule they replace);
    ``_safest`` when none qualifies."""
    ok = [(p, r) for p, r in results
          if r["delta"] >= 0 and r["changed"] <= max_changed and r["steps_per_item"] <= max_steps]
    if not ok:
        return _safest(results)
    params, res = max(ok, key=lambda pr: (pr[1]["token_saving"], -pr[1]["changed"]))
    return {**params, "result": {k: res[k] for k in ("token_saving", "delta", "changed", "stopped_early",
                                                     "steps_per_item")}}


GRID_CONFIDENCE = (0.0, 0.4, 0.5, 0.6, 0.7)
GRID_WEIGHT = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)  # lower weights assume hesitant remaining agents
GRID_RISK = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2)
PREVIOUS = {"min_confidence": 0.5, "max_weight": 0.8, "head": PLAN_HEAD}  # the rule this study replaces


def heads(agents: int, max_waves: int = 4) -> list[tuple[int, ...]]:
    """Wave plans up to the eighth agent that open with three agents (the first point where
    unanimity can settle) in at most ``max_waves`` waves."""
    n = min(agents, 8)
    out: list[tuple[int, ...]] = []

    def grow(h: tuple[int, ...]) -> None:
        if sum(h) == n:
            out.append(h)
        elif len(h) < max_waves:
            for size in range(1, n - sum(h) + 1):
                grow((*h, size))
    grow((min(3, n),))
    return out


def launch_orders(rows: Sequence[dict[str, Any]], agents: int) -> list[tuple[int, ...]]:
    """Launch orders tried (0-based): agent 1 first (the single-agent baseline), any two others
    beside it in the first wave, any three in the second, the rest after; within the second
    wave and the rest, the cheapest first (prompt + completion tokens on ``rows``). Agents past
    the eighth keep their places."""
    n = min(agents, 8)
    cost = [sum(r["agents"][i]["prompt_tokens"] + r["agents"][i]["completion_tokens"] for r in rows)
            for i in range(n)]

    def cheap(xs: Sequence[int]) -> list[int]:
        return sorted(xs, key=lambda i: (cost[i], i))
    out = [tuple(range(agents))]  # the agent order itself
    for pair in itertools.combinations(range(1, n), min(2, n - 1)):
        rest = [i for i in range(1, n) if i not in pair]
        for second in itertools.combinations(rest, min(3, len(rest))):
            tail = [i for i in rest if i not in second]
            order = (0, *pair, *cheap(second), *cheap(tail), *range(n, agents))
            if order != out[0]:
                out.append(order)
    return out


def tune_proposed(rows: Sequence[dict[str, Any]], agents: int) -> dict[str, Any]:
    """The proposed rule's launch order, wave plan and constants on the tuning rows
    (``_thriftiest``, at most 1% of answers changed, no more decode steps than the previous
    rule): two rounds of coordinate search, the order for the current plan and constants, then
    the plan (up to six waves) and constants for that order."""
    base = evaluate(rows, rule_settled(PREVIOUS["min_confidence"], PREVIOUS["max_weight"]), agents,
                    plan(agents, PREVIOUS["head"]), per_family=False)
    max_changed, max_steps = max(1, len(rows) // 100), base["steps_per_item"]
    best = {"launch": list(range(agents)), "waves": plan(agents, PREVIOUS["head"]),
            "min_confidence": PREVIOUS["min_confidence"], "max_weight": PREVIOUS["max_weight"]}

    def run(p: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        return p, evaluate(rows, rule_settled(p["min_confidence"], p["max_weight"]), agents, p["waves"],
                           p["launch"], per_family=False)
    for _ in range(2):
        best = _thriftiest([run({**best, "launch": list(o)}) for o in launch_orders(rows, agents)],
                           max_changed, max_steps)
        best = _thriftiest([run({**best, "waves": plan(agents, h), "min_confidence": c, "max_weight": w})
                            for h in heads(agents, 6) for c in GRID_CONFIDENCE for w in GRID_WEIGHT],
                           max_changed, max_steps)
    return {**best, "criterion": {"max_changed": max_changed, "max_steps_per_item": max_steps,
                                  "previous_rule": base["token_saving"]}}


def tune(rows: Sequence[dict[str, Any]], agents: int) -> dict[str, Any]:
    """Constants of each rule family chosen on the tuning rows only: the proposed rule by
    ``tune_proposed``, the others by ``_safest``."""
    old = _safest([({"min_confidence": c, "max_weight": w},
                    evaluate(rows, rule_old(c, w), agents, plan(agents, OLD_HEAD), per_family=False))
                   for c in GRID_CONFIDENCE for w in GRID_WEIGHT])
    prior = fit_prior(rows, agents)
    fine = plan(agents, (2, 1, 1, 1, 1, 1, 1))
    posterior = _safest([({"risk": e}, evaluate(rows, rule_posterior(prior, e), agents, fine, per_family=False))
                         for e in GRID_RISK])
    return {"proposed": tune_proposed(rows, agents), "old": old, "posterior": {**posterior, "prior": prior}}


def candidates(agents: int, tuned: dict[str, Any]) -> list[dict[str, Any]]:
    """The rules compared on every seed: the proposed one as the mode ships it (its launch
    order, waves and ``vote.py`` constants; the report says whether they are the ones tuned
    here), what each of its parts adds, and the others with constants tuned on the first seed."""
    o, q = tuned["old"], tuned["posterior"]
    c, w, launch = SETTLE_CONFIDENCE, SETTLE_WEIGHT, launch_order(agents)
    pc, pw = PREVIOUS["min_confidence"], PREVIOUS["max_weight"]
    return [
        {"name": "old rule, shipped constants (0.5, 0.7)", "rule": rule_old(0.5, 0.7),
         "waves": plan(agents, OLD_HEAD)},
        {"name": f"old rule, retuned ({o['min_confidence']}, {o['max_weight']})",
         "rule": rule_old(o["min_confidence"], o["max_weight"]), "waves": plan(agents, OLD_HEAD)},
        {"name": "certain lead only (weight 1, no unanimity)", "rule": rule_settled(1.0, 1.0, min_agree=agents + 1),
         "waves": plan(agents, OLD_HEAD)},
        {"name": f"posterior overturn risk <= {q['risk']}", "rule": rule_posterior(q["prior"], q["risk"]),
         "waves": plan(agents, (2, 1, 1, 1, 1, 1, 1))},
        {"name": f"previous: unanimity of 3 (conf >= {pc}) or lead > {pw} x remaining, agent order",
         "rule": rule_settled(pc, pw), "waves": plan(agents, PREVIOUS["head"])},
        {"name": f"PROPOSED: launch order {[i + 1 for i in launch[:8]]}, unanimity of {SETTLE_AGREE} "
                 f"(conf >= {c}) or lead > {w} x remaining", "rule": rule_settled(c, w), "waves": waves(agents, True),
         "launch": launch, "proposed": True},
        {"name": "proposed in agent order (what the launch order adds)", "rule": rule_settled(c, w),
         "waves": waves(agents, True)},
        {"name": f"proposed launch order and waves, previous constants ({pc}, {pw})", "rule": rule_settled(pc, pw),
         "waves": waves(agents, True), "launch": launch},
    ]


def sweep(rows_by_seed: dict[int, list[dict[str, Any]]], agents: int) -> list[dict[str, Any]]:
    """The Pareto front's raw points: constants and plans with the shipped launch order, every seed."""
    out, launch = [], launch_order(agents)
    for head in (PLAN_HEAD, (3, 3, 2), (3, 2, 3), (3, 1, 1, 1, 1, 1)):
        for c in (0.0, 0.5):
            for w in (1.0, 0.8, 0.6, 0.4):
                sizes = plan(agents, head)
                res = {str(s): evaluate(rows, rule_settled(c, w), agents, sizes, launch, per_family=False)
                       for s, rows in rows_by_seed.items()}
                out.append({"waves": sizes, "min_confidence": c, "max_weight": w,
                            "seeds": {s: {k: r[k] for k in ("token_saving", "delta", "changed")}
                                      for s, r in res.items()}})
    return out
