"""``muse eval …``: the evaluation harness (``openmuse.evals``)."""

from __future__ import annotations

import json

import click

from ..assistant import Assistant, resolve_mode
from ..errors import ConfigError
from .common import (
    _engine_settings,
    _load_engine,
    _mode_options,
    _safety_settings,
    _tool_settings,
    cli,
    engine_options,
    err,
    handle_errors,
    mode_options,
    out,
    safety_options,
    tool_options,
)


class EvalGroup(click.Group):
    """``muse eval TASK …`` runs a task; ``muse eval compare RUN…`` sets runs side by side."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@cli.group("eval", cls=EvalGroup)
def eval_group() -> None:
    """Evaluations: muse eval TASK [--mode … --limit K --out DIR]; muse eval compare RUN…

    \b
    Tasks: arithmetic, arc-agi-2, refusal, health, deepsearch, toolchoice (offline); mcq, math,
    healthbench (--data PATH; deepsearch takes a DeepSearchQA file too); charts (engines that
    take images). deepsearch and toolchoice are for --mode agent. A run folder resumes where it stopped."""


@eval_group.command("run")
@click.argument("task_name", metavar="TASK")
@engine_options
@mode_options
@click.option("--limit", envvar="MUSE_EVAL_LIMIT", type=int, default=None, help="Run the first K items only.")
@click.option("--out", "out_dir", envvar="MUSE_EVAL_OUT", default=None,
              help="Run folder (default: results/eval-TASK-MODE-TIME); an existing one is resumed.")
@click.option("--data", envvar="MUSE_EVAL_DATA", default=None, help="Local data file (mcq, math, healthbench, deepsearch).")
@click.option("--task-seed", envvar="MUSE_EVAL_SEED", type=int, default=0, show_default=True,
              help="Seed of generated items (arithmetic, charts, deepsearch, toolchoice) and of option shuffling (mcq).")
@click.option("--repeats", envvar="MUSE_EVAL_REPEATS", type=click.IntRange(min=1), default=1, show_default=True,
              help="mcq: each question this many times, options shuffled anew.")
@click.option("--judge", envvar="MUSE_EVAL_JUDGE", type=click.Choice(["rules", "engine"]), default="rules",
              show_default=True, help="refusal: rule-based classifier, or the (grader) engine as judge.")
@click.option("--grader-engine", envvar="MUSE_GRADER_ENGINE", default=None,
              help="Grader/judge engine (default: the engine under test).")
@click.option("--grader-model", envvar="MUSE_GRADER_MODEL", default=None, help="Grader model.")
@click.option("--grader-base-url", envvar="MUSE_GRADER_BASE_URL", default=None, help="Grader endpoint /v1 URL.")
@click.option("--grader-api-key", envvar="MUSE_GRADER_API_KEY", default=None, help="Key for the grader endpoint.")
@click.option("--versus", multiple=True, metavar="MODEL",
              help="Also run TASK on this model (repeatable; e.g. a trained GGUF): each run goes to OUT/N-NAME and "
                   "a side-by-side table and plot to OUT/compare.md, OUT/compare.png.")
@safety_options
@tool_options
@click.option("--json", "as_json", envvar="MUSE_JSON", is_flag=True, help="Print the summary as JSON.")
@handle_errors
def eval_run(task_name: str, mode: str, show_thinking: bool, limit: int | None, out_dir: str | None,
             data: str | None, task_seed: int, repeats: int, judge: str, grader_engine: str | None,
             grader_model: str | None, grader_base_url: str | None, grader_api_key: str | None,
             versus: tuple[str, ...], as_json: bool, **kw) -> None:
    """Run TASK on a mode and an engine; write items.jsonl, summary.json, summary.md, plot.png.
    With --versus, the same on each further model, then the models side by side."""
    from click.core import ParameterSource

    from ..evals import TaskOptions, create_task
    from ..evals.runner import run_eval

    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1, not {limit}")
    safety = _safety_settings(kw)
    tools = _tool_settings(kw)
    task = create_task(task_name, TaskOptions(data=data, seed=task_seed, repeats=repeats, judge=judge))
    if click.get_current_context().get_parameter_source("max_tokens") in (None, ParameterSource.DEFAULT):
        kw["max_tokens"] = task.default_max_tokens
    options = resolve_mode(mode, _mode_options(kw, mode)).options
    task.items()  # a missing or malformed data file fails here, before the model loads
    settings = _engine_settings(kw)
    if versus:
        return _versus(task, mode, options, settings, versus, limit, out_dir, safety, tools, as_json)
    engine = _load_engine(settings)
    grader = grader_info = None
    if grader_engine or grader_model or grader_base_url:
        gs = settings.model_copy(update={"engine": grader_engine or settings.engine, "model": grader_model,
                                         "base_url": grader_base_url or settings.base_url,
                                         "api_key": grader_api_key or settings.api_key})
        grader, grader_info = _load_engine(gs), gs.model_dump(exclude={"api_key"})
    summary, path = run_eval(task, mode, options, Assistant(engine, safety=safety, tools=tools), settings.model_dump(exclude={"api_key"}),
                             limit=limit, out_dir=out_dir, grader=grader, grader_info=grader_info,
                             console=None if as_json else err)
    if as_json:
        click.echo(json.dumps(summary))
        return
    out.print((path / "summary.md").read_text(), markup=False)
    r = summary["run"]
    out.print(f"[dim]{r['items_run']} items run, {r['items_resumed']} already done · written to {path}[/]")


def _versus(task, mode: str, options, settings, versus: tuple[str, ...], limit: int | None, out_dir: str | None,
            safety, tools, as_json: bool) -> None:
    """The task on ``settings.model`` (the default model when unset) and on each of ``versus``,
    one after the other (one engine in memory at a time), then ``compare`` over the runs."""
    from pathlib import Path

    from ..evals.compare import compare
    from ..evals.runner import default_out, run_eval

    base = Path(out_dir) if out_dir else default_out(task.name, mode)
    runs = []
    for i, model in enumerate([settings.model, *versus], 1):
        s = settings.model_copy(update={"model": model})
        name = Path(model).name.removesuffix(".gguf") if model else "default"
        if not as_json:
            err.print(f"[bold]{i}. {model or 'the default model'}[/]", highlight=False)
        engine = _load_engine(s, shared=False)  # a private one: closed before the next loads
        try:
            _, path = run_eval(task, mode, options, Assistant(engine, safety=safety, tools=tools),
                               s.model_dump(exclude={"api_key"}), limit=limit, out_dir=base / f"{i}-{name}",
                               console=None if as_json else err)
        finally:
            engine.close()
        runs.append(str(path))
    rows, table, plot = compare(runs, str(base / "compare.png"))
    if as_json:
        click.echo(json.dumps({"rows": rows, "plot": str(plot)}))
        return
    out.print(table, markup=False)
    out.print(f"[dim]runs in {base} · table {plot.with_suffix('.md')} · plot {plot}[/]")


@eval_group.command("compare")
@click.argument("runs", nargs=-1, required=True)
@click.option("--out", "out_path", envvar="MUSE_EVAL_COMPARE_OUT", default=None,
              help="Plot file (default: compare.png beside the first run); a .md table goes beside it.")
@click.option("--json", "as_json", envvar="MUSE_JSON", is_flag=True, help="Print the rows as JSON.")
@handle_errors
def eval_compare(runs: tuple[str, ...], out_path: str | None, as_json: bool) -> None:
    """Several run folders side by side: figures, tokens and time, and one plot."""
    from ..evals.compare import compare

    rows, table, plot = compare(list(runs), out_path)
    if as_json:
        click.echo(json.dumps({"rows": rows, "plot": str(plot)}))
        return
    out.print(table, markup=False)
    out.print(f"[dim]plot: {plot}[/]")
