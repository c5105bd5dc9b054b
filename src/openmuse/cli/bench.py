"""``muse bench …``: benchmarks that print ratios measured side by side in one run."""

from __future__ import annotations

import json

import click
from click.core import ParameterSource

from ..engines import EngineSettings
from ..errors import ConfigError
from .common import (
    _engine_settings,
    _int_list,
    _load_engine,
    _safety_settings,
    _tool_settings,
    cli,
    engine_options,
    err,
    handle_errors,
    out,
    safety_options,
    tool_options,
)


@cli.group()
def bench() -> None:
    """Benchmarks that print ratios measured side by side in one run."""


@bench.command("engine")
@engine_options
@click.option("--ns", default="1,4,8,16", show_default=True, help="Sequence counts to measure.")
@click.option("--steps", type=click.IntRange(min=1), default=96, show_default=True, help="Tokens decoded per sequence.")
@click.option("--out", "out_path", default=None, help="Results file (default: results/bench-engine-TIME.json).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--contention", is_flag=True,
              help="Instead: one sequence's tok/s idle and with busy processes beside it, per thread policy.")
@click.option("--burners", type=click.IntRange(min=1), default=1, show_default=True,
              help="--contention: CPU-burning processes started beside the engine.")
@click.option("--seconds", type=click.FloatRange(min=1), default=20.0, show_default=True,
              help="--contention: longest time one measurement decodes.")
@click.option("--repeats", type=click.IntRange(min=1), default=2, show_default=True,
              help="--contention: measurements per policy (the median is reported).")
@handle_errors
def bench_engine(ns: str, steps: int, out_path: str | None, as_json: bool, contention: bool, burners: int,
                 seconds: float, repeats: int, **kw) -> None:
    """Prompt and decode tokens/s of the local engine, batched against one after another
    (or, with --contention, idle against beside busy processes)."""
    from ..bench import contention as cb
    from ..bench import engine as eb

    counts = _int_list(ns, "--ns")
    settings = _engine_settings(kw)
    if settings.engine != "local":
        raise ConfigError("bench engine measures the local engine; use --engine local")
    if not counts or min(counts) < 1 or max(counts) > settings.n_seq_max:
        raise ConfigError(f"--ns must lie between 1 and {settings.n_seq_max}")
    engine = _load_engine(settings)
    progress = None if as_json else err
    if contention:
        report, path = cb.run_contention_bench(engine, steps, burners, seconds, repeats, out_path, progress)
    else:
        report, path = eb.run_engine_bench(engine, counts, steps, out_path, progress)
    if as_json:
        click.echo(json.dumps(report))
        return
    (cb if contention else eb).print_table(report, out)
    out.print(f"[dim]written to {path}[/]")


def _comparing(kw: dict) -> EngineSettings:
    """Engine settings for a bench that compares runs of the same agents (early stop against all
    of them): ``--reproducible`` unless ``--no-reproducible`` was given, so the comparison measures
    the rule and not where the engine happened to place cells (engines/local.py)."""
    source = click.get_current_context().get_parameter_source("reproducible")
    if source in (None, ParameterSource.DEFAULT):
        kw["reproducible"] = True
    return _engine_settings(kw)


@bench.command("contemplate")
@engine_options
@click.option("--items", type=click.IntRange(min=4), default=200, show_default=True, help="Problems in the set.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the problem generator.")
@click.option("--ladder", default="1,2,4,8,16", show_default=True, help="Agent counts.")
@click.option("--budget", type=click.IntRange(min=8), default=64, show_default=True, help="Tokens per agent.")
@click.option("--timing-items", type=click.IntRange(min=1), default=12, show_default=True,
              help="Items on which batched and one-by-one agents are timed.")
@click.option("--timing-repeats", type=click.IntRange(min=1), default=3, show_default=True,
              help="Timings per item and way; the best is kept.")
@click.option("--out", "out_dir", default=None, help="Folder for the JSON and PNG (default: results/).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@handle_errors
def bench_contemplate(items: int, seed: int, ladder: str, budget: int, timing_items: int,
                      timing_repeats: int, out_dir: str | None, as_json: bool, **kw) -> None:
    """Contemplating's scaling ladder: accuracy, tokens and time at 1-16 agents."""
    from ..bench.contemplate import run_contemplate_bench

    counts = tuple(sorted(set(_int_list(ladder, "--ladder"))))
    if not counts or counts[0] < 1 or counts[-1] > 16:
        raise ConfigError("--ladder values must lie between 1 and 16")
    engine = _load_engine(_comparing(kw))
    report, path = run_contemplate_bench(
        engine, items=items, seed=seed, ladder=counts, budget=budget, timing_items=timing_items,
        timing_repeats=timing_repeats, early_stop_agents=8 if 8 in counts else counts[-1], out_dir=out_dir,
        progress=None if as_json else (lambda m: err.print(f"[dim]{m}[/]")),
    )
    if as_json:
        click.echo(json.dumps(report))
        return
    from rich.table import Table

    t = Table(title=f"Contemplating ladder · {report['args']['model']} · {items} items")
    for col in ("agents", "aggregator", "accuracy", "95% interval", "tokens/item", "wall s/item"):
        t.add_column(col, justify="right")
    for r in report["ladder"]:
        t.add_row(str(r["agents"]), r["aggregator"], f"{r['accuracy']:.3f}",
                  f"{r['ci95'][0]:.3f}–{r['ci95'][1]:.3f}", f"{r['tokens_per_item']:.0f}", f"{r['wall_s']:.2f}")
    out.print(t)
    sa = report["single_agent"]
    es = report["early_stop"]
    out.print(f"single agent: greedy {sa['greedy']['accuracy']:.3f}, sampled (T=0.3) {sa['sampled']['accuracy']:.3f}")
    n_ratio = 8 if 8 in counts else counts[-1]
    out.print(f"wall time of {n_ratio} agents batched / one after another: {report['batched_vs_sequential']:.2f}")
    ws = es["with_synthesis"]
    out.print(f"early stop at {es['agents']} agents: {es['token_saving']:.0%} of tokens saved, accuracy "
              f"{es['accuracy_delta']:+.3f} ({es['items_stopped_early']} of {items} items stopped early); "
              f"with the synthesizer {ws['token_saving']:.0%} saved, accuracy {ws['accuracy_delta']:+.3f}")
    out.print(f"[dim]written to {path} and {report['plot']}[/]")


@bench.command("serve")
@engine_options
@click.option("--levels", default="1,4,16", show_default=True, help="Concurrency levels.")
@click.option("--requests", type=click.IntRange(min=1), default=16, show_default=True, help="Requests per level.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--out", "out_path", default=None, help="Results file (default: results/bench-serve-TIME.json).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@handle_errors
def bench_serve(levels: str, requests: int, max_tokens: int, out_path: str | None, as_json: bool, **kw) -> None:
    """Server requests/s and p50/p95 latency, and its overhead against the engine called directly."""
    from ..bench.serve import run_serve_bench

    counts = tuple(_int_list(levels, "--levels"))
    if not counts or min(counts) < 1:
        raise ConfigError("--levels must be at least 1")
    engine = _load_engine(_engine_settings(kw))
    report, path = run_serve_bench(engine, counts, requests, max_tokens, out_path,
                                   progress=None if as_json else (lambda m: err.print(f"[dim]{m}[/]")))
    if as_json:
        click.echo(json.dumps(report))
        return
    from rich.table import Table

    t = Table(title=f"muse serve · {report['args']['model']} · {requests} requests a level")
    for col in ("concurrency", "server req/s", "× 1 client", "p50 s", "p95 s", "direct req/s", "direct p50 s"):
        t.add_column(col, justify="right")
    for h, d in zip(report["levels"], report["direct"]):
        t.add_row(str(h["concurrency"]), f"{h['rps']:.2f}", f"{report['scaling'][str(h['concurrency'])]:.2f}",
                  f"{h['p50_s']:.2f}", f"{h['p95_s']:.2f}", f"{d['rps']:.2f}", f"{d['p50_s']:.2f}")
    out.print(t)
    out.print(f"server overhead against the engine called directly: {report['overhead']:+.1%}")
    out.print(f"[dim]written to {path}[/]")


# --- muse eval: the evaluation harness (openmuse.evals) ---------------------------------------


@bench.command("early-stop")
@engine_options
@click.option("--seeds", default="11,0,7", show_default=True,
              help="Problem seeds: the first --tune-seeds tune (pooled), the rest are held out.")
@click.option("--tune-seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="How many of the first seeds tune the rule.")
@click.option("--items", type=click.IntRange(min=4), default=200, show_default=True, help="Problems per seed.")
@click.option("--agents", type=click.IntRange(2, 16), default=8, show_default=True, help="Agents run on every item.")
@click.option("--budget", type=click.IntRange(min=8), default=64, show_default=True, help="Tokens per agent.")
@click.option("--traces", default=None, metavar="FILE", help="Study these collected traces instead of running the model.")
@click.option("--out", "out_dir", default=None, help="Folder for the results (default: results/).")
@handle_errors
def bench_early_stop(seeds: str, tune_seeds: int, items: int, agents: int, budget: int, traces: str | None,
                     out_dir: str | None, **kw) -> None:
    """Contemplating's early stop studied on traces of every agent: tuned on the first --tune-seeds seeds, reported on the rest."""
    from ..bench.early_stop import run_study, table

    seed_list = _int_list(seeds, "--seeds")
    if len(seed_list) < tune_seeds:
        raise ConfigError(f"--seeds lists {len(seed_list)} seed(s), fewer than --tune-seeds {tune_seeds}")
    engine = None if traces else _load_engine(_comparing(kw))
    report, path = run_study(engine, seed_list, items, agents, budget, out_dir,
                             progress=lambda m: err.print(f"[dim]{m}[/]"), traces=traces, tune_seeds=tune_seeds)
    out.print(table(report), markup=False)
    out.print(f"[dim]written to {path}[/]")


@bench.command("functions")
@engine_options
@safety_options
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the generated requests.")
@click.option("--n", "n", type=click.IntRange(min=1), default=100, show_default=True,
              help="Requests in each set (tool calls, json_schema answers).")
@click.option("--mode", default="instant", show_default=True, help="Mode that answers.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=512, show_default=True,
              help="Most tokens in each answer (the modes' default).")
@click.option("--batch", type=click.IntRange(min=1, max=64), default=8, show_default=True,
              help="Requests in flight at once (decoded together).")
@click.option("--out", "out_path", default=None, help="Results file (default: results/bench-functions-TIME.json).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@handle_errors
def bench_functions(seed: int, n: int, mode: str, max_tokens: int, batch: int, out_path: str | None,
                    as_json: bool, **kw) -> None:
    """Valid function calls (tool_choice required or named) and valid json_schema answers, on
    varied requests generated from --seed, through the request pipeline."""
    from ..assistant import Assistant, resolve_mode
    from ..bench.functions import run_functions_bench

    resolve_mode(mode)
    engine = _load_engine(_engine_settings(kw))
    assistant = Assistant(engine, safety=_safety_settings(kw))
    report, path = run_functions_bench(assistant, seed, n, mode, max_tokens, batch, out_path,
                                       None if as_json else err)
    if as_json:
        click.echo(json.dumps({k: v for k, v in report.items() if k != "records"}))
        return
    t, j = report["tools"], report["json_schema"]
    out.print(f"tool calls (tool_choice required/named): {t['valid']}/{t['of']} valid, "
              f"{t['target_called']}/{t['of']} called the tool the request was written for, "
              f"{t['refused_by_checks']} refused by a check")
    out.print(f"json_schema answers: {j['valid']}/{j['of']} parse and validate, {j['refused_by_checks']} refused by a check")
    out.print(f"[dim]{report['wall_s']} s · written to {path}[/]")


@bench.command("agents")
@engine_options
@safety_options
@tool_options
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the generated questions and tasks.")
@click.option("--n-search", type=click.IntRange(min=0), default=20, show_default=True,
              help="deepsearch list questions (each answered by 1 and by --subagents sub-agents).")
@click.option("--n-choice", type=click.IntRange(min=0), default=60, show_default=True,
              help="toolchoice tasks (each with and without the planner).")
@click.option("--subagents", type=click.IntRange(min=2, max=8), default=4, show_default=True,
              help="Sub-agents compared against one.")
@click.option("--steps", type=click.IntRange(min=1, max=10), default=3, show_default=True,
              help="Most tool-call rounds per sub-agent (deepsearch).")
@click.option("--out", "out_path", default=None, help="Results file (default: results/bench-agents-TIME.json).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@handle_errors
def bench_agents(seed: int, n_search: int, n_choice: int, subagents: int, steps: int, out_path: str | None,
                 as_json: bool, **kw) -> None:
    """The agent mode side by side in one run: deepsearch with 1 vs N sub-agents (F1, wall-time
    ratio), and tool choice with and without the planner."""
    from ..assistant import Assistant
    from ..bench.agents import run_agents_bench

    safety, tools = _safety_settings(kw), _tool_settings(kw)
    engine = _load_engine(_engine_settings(kw))
    report, path = run_agents_bench(Assistant(engine, safety=safety, tools=tools), seed, n_search, n_choice,
                                    subagents, steps, out_path, None if as_json else err)
    figs = {k: report[k]["figures"] for k in ("deepsearch", "toolchoice") if k in report}
    if as_json:
        click.echo(json.dumps(figs))
        return
    if "deepsearch" in figs:
        d = figs["deepsearch"]
        for k in ("n1", f"n{subagents}"):
            f = d[k]
            out.print(f"deepsearch {k[1:]} sub-agent(s): F1 {f['f1']:.3f} · P {f['precision']:.3f} · "
                      f"R {f['recall']:.3f} · fully correct {f['fully_correct']:.2f} · "
                      f"{f['tool_calls']:.1f} calls · {f['wall_s']:.1f} s per question")
        out.print(f"F1 ratio {subagents}/1: {d['f1_ratio']} · wall time 1/{subagents}: {d['wall_ratio_1_over_n']}")
    if "toolchoice" in figs:
        t = figs["toolchoice"]
        for key in ("planner", "no_planner"):
            f = t[key]
            out.print(f"tool choice, {key.replace('_', ' ')}: right tool picked {f['picked_rate']:.3f}, "
                      f"first call right {f['rate']:.3f} {f['by_tool']}, {f['refused_by_checks']} refused by a check")
    out.print(f"[dim]{report['wall_s']} s · written to {path}[/]")


@bench.command("build")
@engine_options
@safety_options
@click.option("--split", type=click.Choice(["test", "tune"]), default="test", show_default=True,
              help="Prompts: test (held out) or tune.")
@click.option("--n", "n_prompts", type=click.IntRange(min=0), default=None, help="Only the first N prompts [default: all].")
@click.option("--sketch-seeds", default="101-120", show_default=True,
              help="Seeds of the generated sketches (e.g. 101-120 or 1,2,3; '' for none).")
@click.option("--repairs", type=click.IntRange(0, 5), default=2, show_default=True, help="Most repairs per artifact.")
@click.option("--out", "out_path", default=None, help="Results file (default: results/bench-build-TIME.json).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@handle_errors
def bench_build(split: str, n_prompts: int | None, sketch_seeds: str, repairs: int, out_path: str | None,
                as_json: bool, **kw) -> None:
    """Build mode on written prompts (pass rate, template chosen, repairs, p95 time) and on
    generated sketches (layout IoU against the boxes drawn)."""
    from ..assistant import Assistant
    from ..bench.build import run_build_bench

    seeds: list[int] = []
    for piece in filter(None, (p.strip() for p in sketch_seeds.split(","))):
        a, _, b = piece.partition("-")
        if not a.isdigit() or (b and not b.isdigit()):
            raise ConfigError(f"--sketch-seeds: {piece!r} is not a seed or a range like 101-120")
        seeds.extend(range(int(a), int(b or a) + 1))
    safety = _safety_settings(kw)
    engine = _load_engine(_engine_settings(kw))
    report, path = run_build_bench(Assistant(engine, safety=safety), split, n_prompts, seeds, {"repairs": repairs},
                                   out_path, None if as_json else err)
    figs = {k: report[k]["figures"] for k in ("prompts", "sketches") if k in report}
    if as_json:
        click.echo(json.dumps(figs))
        return
    if "prompts" in figs:
        f = figs["prompts"]
        out.print(f"prompts ({split}, {f['n']}): every check passed {f['pass_rate']:.1%} · template as expected "
                  f"{f['template_right']:.1%} · repairs {f['repairs_total']} ({f['repaired_items']} artifacts) · "
                  f"p50 {f['wall_p50_s']} s, p95 {f['wall_p95_s']} s per artifact · failed checks {f['failed_checks']}")
    if "sketches" in figs:
        f = figs["sketches"]
        out.print(f"sketches ({f['n']}): mean layout IoU {f['mean_iou']:.3f} (clean {f['mean_iou_clean']:.3f}, "
                  f"photo {f['mean_iou_photo']:.3f}) · boxes found exactly {f['boxes_found_exactly']:.0%} · "
                  f"kinds right {f['kinds_right']:.0%} · every check passed {f['pass_rate']:.0%}")
    out.print(f"[dim]{report['wall_s']} s · written to {path}[/]")
