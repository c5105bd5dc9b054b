"""The plot of a thought-compression run (``train.json``): accuracy against tokens over training.

Left: the held-out greedy evaluations (before, every ``eval_steps``, after) as accuracy against
mean completion tokens, joined in step order and labelled with the step, so the path shows
whether the run bought shorter reasoning with accuracy. Right: the sampled training completions
per step (accuracy and mean length, each with a 10-step running mean).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError


def load_record(run: str | Path) -> dict[str, Any]:
    """A run's ``train.json`` (a run folder or the file); ConfigError when it is not one."""
    p = Path(run)
    path = p / "train.json" if p.is_dir() else p
    try:
        record = json.loads(path.read_text("utf-8"))
        record["steps"], record["eval"]  # noqa: B018 - shape check
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        raise ConfigError(f"{path} is not a muse train record (train.json)") from None
    return record


def evaluations(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The held-out evaluations in step order: before (step 0), during, after (the last step)."""
    ev = record.get("eval") or {}
    rows = []
    if "before" in ev:
        rows.append({"step": 0, **ev["before"]})
    rows += ev.get("during", [])
    if "after" in ev:
        last = record["steps"][-1]["step"] if record["steps"] else record["args"]["steps"]
        rows.append({"step": last, **ev["after"]})
    return [r for r in rows if "accuracy" in r]


def _running(xs: list[float], k: int = 10) -> list[float]:
    return [sum(xs[max(0, i - k + 1):i + 1]) / len(xs[max(0, i - k + 1):i + 1]) for i in range(len(xs))]


def plot(record: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    ev = evaluations(record)
    if ev:
        xs, ys = [e["mean_tokens"] for e in ev], [e["accuracy"] for e in ev]
        left.plot(xs, ys, "-o", color="tab:green")
        for i, (e, x, y) in enumerate(zip(ev, xs, ys)):  # labels alternate sides: late points crowd
            left.annotate(str(e["step"]), (x, y), textcoords="offset points", fontsize=8,
                          xytext=(5, 3) if i % 2 else (-14, -10))
        args = record.get("args", {})
        left.set_title(f"held-out (seed {args.get('eval_seed')}, {ev[0]['items']} items, greedy); label: step")
    left.set_xlabel("mean completion tokens (reasoning + answer)")
    left.set_ylabel("accuracy")
    left.set_ylim(-0.05, 1.05)
    left.set_xlim(left=0)
    steps = record.get("steps", [])
    if steps:
        n = [s["step"] for s in steps]
        acc = [s.get("accuracy", 0.0) for s in steps]
        length = [s.get("completions/mean_length", 0.0) for s in steps]
        right.plot(n, acc, ".", color="tab:green", alpha=0.3)
        right.plot(n, _running(acc), "-", color="tab:green", label="accuracy (10-step mean)")
        right.set_ylim(-0.05, 1.05)
        right.set_ylabel("training accuracy (sampled)")
        twin = right.twinx()
        twin.plot(n, length, ".", color="tab:purple", alpha=0.3)
        twin.plot(n, _running(length), "-", color="tab:purple", label="length (10-step mean)")
        twin.set_ylabel("mean completion tokens")
        twin.set_ylim(bottom=0)
        lines = right.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
        right.legend(lines, [ln.get_label() for ln in lines], fontsize=8, loc="upper right")
    right.set_xlabel("step")
    right.set_title("training completions")
    a = record.get("args", {})
    fig.suptitle(f"muse train compress · penalty {a.get('penalty')} (α {a.get('alpha')}) · lr {a.get('learning_rate')}"
                 f" · {a.get('batch')} completions/step · cap {a.get('max_completion_length')} tokens")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
