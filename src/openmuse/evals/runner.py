"""Run a task through a mode and an engine; write, flush and resume per item.

A run lives in one folder:

- ``run.json``: what the run is (task, task options, mode and its settings, engine, grader) and
  the list of invocations that worked on it (started, limit, items run). A folder holding a run
  of another task, mode, model or option set is refused, so results never mix.
- ``items.jsonl``: one line per finished item (id, prediction, extracted answer, target, score,
  prompt / completion / reasoning tokens, wall time, the invocation that ran it), appended and
  flushed to disk as each item finishes. Resuming reads it and runs only the items missing; a
  last line cut off by an interruption is dropped (that item runs again).
- ``summary.json``: the task's figures, tokens, time, the arguments and the environment.
- ``summary.md``: the same as a markdown table; ``plot.png``: accuracy against tokens.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from ..assistant import Assistant, Result
from ..engines.base import Engine
from ..errors import ContextOverflow
from ..modes import ModeOptions
from ..records import environment, write_json
from ..types import Usage
from .task import DataError, EvalContext, Task

RUN, ITEMS, SUMMARY, TABLE, PLOT = "run.json", "items.jsonl", "summary.json", "summary.md", "plot.png"
# Fields of run.json that must match for a folder to be resumed (the limit may change).
IDENTITY = ("task", "task_options", "mode", "mode_options", "engine", "model", "grader", "safety")


def default_out(task: str, mode: str) -> Path:
    return Path("results") / f"eval-{task}-{mode}-{time.strftime('%Y%m%d-%H%M%S')}"


def _read_done(path: Path) -> list[dict[str, Any]]:
    """Finished items of a run folder; a torn last line (interrupted write) is cut off."""
    if not path.exists():
        return []
    raw = path.read_bytes()
    keep = raw if raw.endswith(b"\n") or not raw else raw[: raw.rfind(b"\n") + 1]
    if keep != raw:
        with path.open("r+b") as fh:
            fh.truncate(len(keep))
    out = []
    for n, line in enumerate(keep.decode("utf-8").splitlines(), 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                raise DataError(f"{path} line {n} is not valid JSON; this is not a run folder to resume") from None
    return out


def _open_run(out: Path, ident: dict[str, Any], limit: int | None) -> tuple[dict[str, Any], int]:
    out.mkdir(parents=True, exist_ok=True)
    run_file = out / RUN
    if run_file.exists():
        try:
            manifest = json.loads(run_file.read_text("utf-8"))
        except (OSError, json.JSONDecodeError):
            raise DataError(f"{run_file} is unreadable; not a run folder to resume") from None
        for key in IDENTITY:
            was, now = manifest.get(key), ident.get(key)
            if was != now:
                if isinstance(was, dict) and isinstance(now, dict):
                    k = next(k for k in sorted(set(was) | set(now)) if was.get(k) != now.get(k))
                    key, was, now = f"{key} {k}", was.get(k), now.get(k)
                raise DataError(f"{out} holds a run of another {key.replace('_', ' ')} "
                                f"({_short(was)}, not {_short(now)}); use another --out")
    elif (out / ITEMS).exists():
        raise DataError(f"{out} has {ITEMS} but no {RUN}; not a run folder to resume")
    else:
        manifest = {**ident, "runs": []}
    manifest["runs"].append({"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "limit": limit, "items_run": 0})
    return manifest, len(manifest["runs"])


def _identity_engine(info: dict[str, Any]) -> dict[str, Any]:
    """Engine settings that name what answers; CPU threads and buffer types only change the speed."""
    return {k: v for k, v in info.items() if k not in ("n_threads", "timeout_s", "extra_buffers")}


def _short(v: Any) -> str:
    s = json.dumps(v) if isinstance(v, (dict, list)) else str(v)
    return s if len(s) <= 60 else s[:57] + "…"


def run_eval(task: Task, mode_name: str, mode_options: ModeOptions, assistant: Assistant,
             engine_info: dict[str, Any], limit: int | None = None, out_dir: str | Path | None = None,
             grader: Engine | None = None, grader_info: dict[str, Any] | None = None,
             console: Any = None) -> tuple[dict[str, Any], Path]:
    """Run (or resume) ``task`` and write the run folder; returns the summary and the folder.
    Every prompt goes through ``assistant`` (the same validation, media checks and mode as the
    CLI and the server)."""
    if limit is not None and limit < 1:
        raise DataError("--limit must be at least 1")
    engine = assistant.engine
    task.check_engine(engine)
    mode = assistant.mode(mode_name, mode_options)
    items = task.items()
    if limit is not None:
        items = items[:limit]
    out = Path(out_dir) if out_dir else default_out(task.name, mode_name)
    ident = {"task": task.name, "task_options": task.options.model_dump(), "mode": mode_name,
             "mode_options": mode.options.model_dump(), "engine": _identity_engine(engine_info), "model": engine.model,
             "grader": grader_info,
             "safety": {**assistant.safety.model_dump(exclude={"guard_api_key"}),
                        "checks": [getattr(c, "name", type(c).__name__) for c in assistant.checks or ()]}}
    ident = json.loads(json.dumps(ident))  # as it is stored (tuples become lists), so resumes compare equal
    manifest, run_index = _open_run(out, ident, limit)
    done = {r["id"]: r for r in _read_done(out / ITEMS)}
    write_json(out / RUN, manifest)
    ctx = EvalContext(engine=engine, grader=grader)
    pending = [it for it in items if it.id not in done]
    calls = 0
    progress = _progress(console, len(items), len(items) - len(pending))
    hits = sum(done[it.id]["score"] for it in items if it.id in done)
    finished = len(items) - len(pending)
    try:
        with (out / ITEMS).open("a", encoding="utf-8") as fh:
            for it in pending:
                rec, n_calls = _run_item(task, it, assistant, mode, ctx, run_index)
                calls += n_calls
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
                done[it.id] = rec
                manifest["runs"][-1]["items_run"] += 1
                write_json(out / RUN, manifest)  # the count survives a kill
                finished += 1
                hits += rec["score"]
                if progress:
                    progress.update(progress.task_ids[0], advance=1, acc=f"{hits / finished:.3f}")
    finally:
        if progress:
            progress.stop()
        write_json(out / RUN, manifest)
    records = [done[it.id] for it in items]
    summary = summarize(task, records, manifest, run_index, calls, len(pending))
    write_json(out / SUMMARY, summary)
    (out / TABLE).write_text(markdown(summary), "utf-8")
    plot_run(records, summary, out / PLOT)
    return summary, out


def _run_item(task: Task, it: Any, assistant: Assistant, mode: Any, ctx: EvalContext,
              run_index: int) -> tuple[dict[str, Any], int]:
    """One item through the Assistant (every attempt), scored: its record and its model calls."""
    t0 = time.perf_counter()
    ctx.grader_calls.clear()
    outputs: list[list[Result]] = []
    error = None
    calls = 0
    try:
        for attempts in task.prompts(it):
            outputs.append([assistant.answer(msgs, mode) for msgs in attempts])
            calls += len(attempts)
    except ContextOverflow as e:  # too long for this model: a failed item, reported
        error = str(e)
        outputs = [[]]
    scored = task.score(it, outputs, ctx)
    usage = sum((c.usage for att in outputs for c in att), Usage())
    graded = sum((c.usage for c in ctx.grader_calls), Usage())
    rec = {"id": it.id, "run": run_index, "prediction": scored.prediction,
           "extracted": scored.extracted, "target": it.target, "score": scored.score,
           "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
           "reasoning_tokens": usage.reasoning_tokens, "calls": sum(len(a) for a in outputs),
           "wall_s": round(time.perf_counter() - t0, 3), "meta": it.meta, **scored.extra}
    if ctx.grader_calls:
        rec["grader_calls"] = len(ctx.grader_calls)
        rec["grader_tokens"] = graded.total_tokens
    if error:
        rec["error"] = error
    return rec, calls


def _progress(console: Any, total: int, completed: int):
    if console is None:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    p = Progress(TextColumn("[bold]eval[/]"), BarColumn(), MofNCompleteColumn(),
                 TextColumn("accuracy {task.fields[acc]}"), TimeElapsedColumn(), console=console, transient=True)
    p.add_task("eval", total=total, completed=completed, acc="—")
    p.start()
    return p


def summarize(task: Task, records: list[dict[str, Any]], manifest: dict[str, Any], run_index: int,
              calls: int, ran: int) -> dict[str, Any]:
    n = len(records)
    tok = {k: sum(r[f"{k}_tokens"] for r in records) for k in ("prompt", "completion", "reasoning")}
    wall = sum(r["wall_s"] for r in records)
    metrics = task.summarize(records)
    return {
        "task": task.describe(),
        "mode": manifest["mode"],
        "model": manifest["model"],
        "items": n,
        "primary": task.primary,
        "secondary": list(task.secondary),
        "metrics": metrics,
        "tokens": {**tok, "per_item": {k: round(v / n, 1) if n else 0.0 for k, v in tok.items()}},
        "grader_tokens": sum(r.get("grader_tokens", 0) for r in records),
        "errors": sum(1 for r in records if r.get("error")),
        "wall_s": round(wall, 2),
        "wall_s_per_item": round(wall / n, 3) if n else 0.0,
        # This invocation: how many items it ran, how many it found finished, its model calls.
        "run": {"index": run_index, "items_run": ran, "items_resumed": n - ran, "model_calls": calls},
        "args": {k: manifest[k] for k in ("task_options", "mode_options", "engine", "grader")}
        | {"limit": manifest["runs"][-1]["limit"]},
        "runs": manifest["runs"],
        "env": environment(),
    }


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v):
        return f"{v[0]:.3f}–{v[1]:.3f}"
    return str(v)


def markdown(summary: dict[str, Any]) -> str:
    t = summary["task"]
    lines = [f"# {t['name']} · {summary['mode']} · {summary['model']}", "",
             f"{t['convention']}{' (synthetic)' if t['synthetic'] else ''}", "",
             "| figure | value |", "|---|---:|"]
    flat = {k: v for k, v in summary["metrics"].items() if not isinstance(v, dict)}
    lines += [f"| {k} | {_fmt(v)} |" for k, v in flat.items()]
    per = summary["tokens"]["per_item"]
    lines += [f"| items | {summary['items']} |",
              f"| prompt tokens / item | {per['prompt']:.0f} |",
              f"| completion tokens / item | {per['completion']:.0f} |",
              f"| reasoning tokens / item | {per['reasoning']:.0f} |",
              f"| wall s / item | {summary['wall_s_per_item']:.2f} |"]
    if summary["errors"]:
        lines.append(f"| items failed (over context) | {summary['errors']} |")
    return "\n".join(lines) + "\n"


def plot_run(records: list[dict[str, Any]], summary: dict[str, Any], path: Path) -> Path:
    """Left: running accuracy against cumulative completion tokens. Right: each item's score
    against its completion tokens."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    cum, acc, s = [], [], 0.0
    total = 0
    for i, r in enumerate(records, 1):
        total += r["completion_tokens"]
        s += r["score"]
        cum.append(total)
        acc.append(s / i)
    a1.plot(cum, acc, "-", color="tab:blue")
    a1.set_xlabel("completion tokens spent (cumulative)")
    a1.set_ylabel("running mean score")
    a1.set_ylim(-0.02, 1.02)
    a2.scatter([r["completion_tokens"] for r in records], [r["score"] for r in records], alpha=0.5, s=14)
    a2.set_xlabel("completion tokens of the item")
    a2.set_ylabel("score")
    a2.set_ylim(-0.05, 1.05)
    fig.suptitle(f"{summary['task']['name']} · {summary['mode']} · {summary['model']} · {summary['items']} items")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
