"""``muse eval compare RUN…``: several run folders side by side.

Each run's ``summary.json`` gives one row: task, mode, agents / budget, items, the task's
figures, tokens per item (prompt, completion, reasoning) and wall time per item. The table is
printed and written as markdown; the plot puts each run's primary figure against its
completion tokens per item (one point per run, labelled by mode), one panel per task.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .runner import SUMMARY
from .task import DataError


def load_summary(run: str | Path) -> dict[str, Any]:
    p = Path(run)
    path = p / SUMMARY if p.is_dir() else p
    if not path.is_file():
        raise DataError(f"no {SUMMARY} in {run}: not a finished eval run")
    try:
        s = json.loads(path.read_text("utf-8"))
        s["task"]["name"], s["metrics"], s["tokens"]["per_item"]  # noqa: B018 - shape check
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        raise DataError(f"{path} is not an eval summary") from None
    s["_path"] = str(path.parent)
    return s


def _settings(s: dict[str, Any]) -> str:
    ms = s["args"].get("mode_options") or s["args"].get("mode_settings") or {}
    if s["mode"] == "contemplating":
        return f"{ms['agents']} agents, {ms.get('agent_tokens', ms.get('budget'))} tokens each"
    if s["mode"] == "thinking":
        return f"budget {ms['budget']}"
    return "—"


def rows_of(summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for s in summaries:
        per = s["tokens"]["per_item"]
        figures = {k: v for k, v in s["metrics"].items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        rows.append({"run": s["_path"], "task": s["task"]["name"], "mode": s["mode"], "settings": _settings(s),
                     "model": s["model"], "items": s["items"], "primary": s["primary"], "figures": figures,
                     "secondary": s.get("secondary", []),
                     "prompt_tokens": per["prompt"], "completion_tokens": per["completion"],
                     "reasoning_tokens": per["reasoning"], "wall_s": s["wall_s_per_item"]})
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r["figures"] if k not in keys and not k.startswith("items_")]
    models = len({r["model"] for r in rows}) > 1  # a model column only where the models differ
    head = ["task", "mode", *(["model"] if models else []), "settings", "items", *keys, "prompt tok/item",
            "completion tok/item", "reasoning tok/item", "wall s/item"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * (4 + models) + "---:|" * (len(head) - 4 - models)]
    for r in rows:
        figs = [f"{r['figures'][k]:.3f}" if isinstance(r["figures"].get(k), float) else str(r["figures"].get(k, "—"))
                for k in keys]
        lines.append("| " + " | ".join([r["task"], r["mode"], *([r["model"]] if models else []), r["settings"],
                                          str(r["items"]), *figs,
                                          f"{r['prompt_tokens']:.0f}", f"{r['completion_tokens']:.0f}",
                                          f"{r['reasoning_tokens']:.0f}", f"{r['wall_s']:.2f}"]) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4), squeeze=False)
    colours = {"instant": "tab:orange", "thinking": "tab:green", "contemplating": "tab:blue"}
    markers = ["o", "x", "^", "s"]
    for ax, t in zip(axes[0], tasks):
        rs = [r for r in rows if r["task"] == t]
        figs = [rs[0]["primary"], *rs[0]["secondary"]]
        models = list(dict.fromkeys(x["model"] for x in rs))
        for r in rs:
            label = r["mode"] if r["settings"] == "—" else f"{r['mode']} ({r['settings']})"
            if len(models) > 1:  # several models: a colour per model
                label = f"{r['model']} · {label}"
            c = f"C{models.index(r['model'])}" if len(models) > 1 else colours.get(r["mode"])
            for k, m in zip(figs, markers):
                y = r["figures"].get(k)
                if y is not None:
                    ax.scatter(r["completion_tokens"], y, s=60, marker=m, color=c,
                               label=label if k == figs[0] else None)
        for k, m in zip(figs[1:], markers[1:]):
            ax.scatter([], [], marker=m, color="grey", label=k)
        lo, hi = min(r["items"] for r in rs), max(r["items"] for r in rs)
        ax.set_title(f"{t} · {lo if lo == hi else f'{lo}–{hi}'} items")
        ax.set_xlabel("completion tokens per item (reasoning included)")
        ax.set_ylabel(figs[0] if len(figs) == 1 else f"{figs[0]} (o)")
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlim(left=0, right=max(r["completion_tokens"] for r in rs) * 1.2 + 1)
        ax.legend(fontsize=7, loc="best")
    names = list(dict.fromkeys(r["model"] for r in rows))
    fig.suptitle(f"muse eval compare · {names[0] if len(names) == 1 else f'{len(names)} models'}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def compare(runs: list[str], out: str | None = None) -> tuple[list[dict[str, Any]], str, Path]:
    """Rows, the markdown table, and the plot's path (a ``.md`` of the table is written beside it)."""
    if not runs:
        raise DataError("compare needs at least one run folder")
    rows = rows_of([load_summary(r) for r in runs])
    md = table(rows)
    path = Path(out) if out else Path(runs[0]).parent / "compare.png"
    if path.suffix.lower() != ".png":
        raise DataError(f"--out must name a .png file, not {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    plot(rows, path)
    path.with_suffix(".md").write_text(md, "utf-8")
    return rows, md, path
