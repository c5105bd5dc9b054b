"""``muse train …``: training. ``muse train compress`` runs thought compression — GRPO with a
length-penalised, verifiable-answer reward (``openmuse.train.compress``) — on the packaged model
or any Hugging Face model folder; the same command on a CUDA machine uses the GPU (bf16)."""

from __future__ import annotations

from pathlib import Path

import click
from pydantic import ValidationError

from ..errors import ConfigError
from .common import cli, err, handle_errors, out


@cli.group("train")
def train_group() -> None:
    """Training: muse train compress [--steps N --penalty arora|overlong|none --out DIR];
    muse train export RUN (a GGUF); muse train plot RUN"""


def _d(field: str):
    """The default of a CompressConfig field: the flags show and use the config's own defaults."""
    from ..train.compress import CompressConfig

    return CompressConfig.model_fields[field].default


def _families(text: str) -> tuple[str, ...]:
    return tuple(f.strip() for f in text.split(",") if f.strip())


def _config(kw: dict):
    from ..train.compress import CompressConfig

    kw["families"] = _families(kw["families"])
    kw["out_dir"] = Path(kw["out_dir"])
    try:
        return CompressConfig(**kw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        msg = first["msg"].removeprefix("Value error, ")
        flag = f"--{where.replace('_', '-')}: " if where else ""
        raise ConfigError(f"{flag}{msg}") from None


@train_group.command("compress")
@click.option("--model", envvar="MUSE_TRAIN_MODEL", default=None, metavar="DIR",
              help="A Hugging Face model folder to train (default: the packaged GGUF, dequantised).")
@click.option("--gguf", envvar="MUSE_TRAIN_GGUF", default=None, metavar="FILE",
              help="A GGUF to dequantise and train instead of the packaged one.")
@click.option("--out", "out_dir", envvar="MUSE_TRAIN_OUT", default="runs/compress", show_default=True,
              help="Folder for checkpoints, the trained model (model/) and train.json.")
@click.option("--steps", envvar="MUSE_TRAIN_STEPS", type=int, default=_d("steps"), show_default=True,
              help="Optimizer steps in all (a resumed run counts those already taken).")
@click.option("--batch", envvar="MUSE_TRAIN_BATCH", type=int, default=_d("batch"), show_default=True,
              help="Completions per step: prompts × --generations.")
@click.option("--generations", "num_generations", envvar="MUSE_TRAIN_GENERATIONS", type=int, default=_d("num_generations"),
              show_default=True, help="Completions sampled per prompt (the GRPO group).")
@click.option("--max-completion-length", envvar="MUSE_TRAIN_MAX_COMPLETION", type=int, default=_d("max_completion_length"),
              show_default=True, help="Most tokens per completion; longer ones are truncated.")
@click.option("--lr", "learning_rate", envvar="MUSE_TRAIN_LR", type=float, default=_d("learning_rate"), show_default=True)
@click.option("--penalty", envvar="MUSE_TRAIN_PENALTY", type=click.Choice(["arora", "overlong", "none"]),
              default="arora", show_default=True,
              help="arora: r × (1 − α·σ(z)) on right answers; overlong: soft penalty near the cap.")
@click.option("--alpha", envvar="MUSE_TRAIN_ALPHA", type=float, default=_d("alpha"), show_default=True,
              help="Arora & Zanette's α.")
@click.option("--format-bonus", envvar="MUSE_TRAIN_FORMAT_BONUS", type=float, default=_d("format_bonus"), show_default=True,
              help="Reward for a finished completion that states an answer (right or wrong); 0: none.")
@click.option("--overlong-cache", envvar="MUSE_TRAIN_OVERLONG_CACHE", type=int, default=_d("overlong_cache"), show_default=True,
              help="Tokens before the cap over which the overlong penalty falls to −1.")
@click.option("--temperature", envvar="MUSE_TRAIN_TEMPERATURE", type=float, default=_d("temperature"), show_default=True)
@click.option("--families", envvar="MUSE_TRAIN_FAMILIES", default="sum,compare,capital,word,sum3",
              show_default=True, help="Problem families, comma-separated.")
@click.option("--train-items", envvar="MUSE_TRAIN_ITEMS", type=int, default=_d("train_items"), show_default=True)
@click.option("--train-seed", envvar="MUSE_TRAIN_SEED", type=int, default=_d("train_seed"), show_default=True)
@click.option("--eval-seed", envvar="MUSE_TRAIN_EVAL_SEED", type=int, default=_d("eval_seed"), show_default=True)
@click.option("--eval-items", envvar="MUSE_TRAIN_EVAL_ITEMS", type=int, default=_d("eval_items"), show_default=True,
              help="Held-out problems answered greedily before and after training (0: none).")
@click.option("--eval-steps", envvar="MUSE_TRAIN_EVAL_STEPS", type=int, default=_d("eval_steps"), show_default=True,
              help="Evaluate the held-out problems every this many steps (0: only before and after).")
@click.option("--seed", envvar="MUSE_TRAIN_TORCH_SEED", type=int, default=_d("seed"), show_default=True,
              help="Seed of torch and sampling.")
@click.option("--save-steps", envvar="MUSE_TRAIN_SAVE_STEPS", type=int, default=_d("save_steps"), show_default=True,
              help="A checkpoint every this many steps.")
@click.option("--resume", envvar="MUSE_TRAIN_RESUME", is_flag=True,
              help="Continue from the last checkpoint in --out.")
@click.option("--device", envvar="MUSE_TRAIN_DEVICE", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="auto: CUDA (bf16) when torch sees a GPU, else the CPU.")
@click.option("--lora", envvar="MUSE_TRAIN_LORA", is_flag=True, help="Train LoRA adapters (needs peft).")
@click.option("--lora-rank", envvar="MUSE_TRAIN_LORA_RANK", type=int, default=_d("lora_rank"), show_default=True)
@click.option("--gradient-checkpointing", envvar="MUSE_TRAIN_GRADIENT_CHECKPOINTING", is_flag=True,
              help="Recompute activations: less memory, slower.")
@click.option("--export", envvar="MUSE_TRAIN_EXPORT", type=click.Choice(["q8_0", "f16", "f32", "none"]),
              default="q8_0", show_default=True,
              help="Write the trained model as a GGUF (OUT/model.TYPE.gguf) for muse --model; a GGUF-sourced model only.")
@handle_errors
def compress(**kw) -> None:
    """Thought compression: GRPO with a length penalty on problems with known answers."""
    config = _config(kw)
    from ..train.compress import train

    path = train(config, progress=lambda m: err.print(f"[dim]{m}[/]", highlight=False, soft_wrap=True))
    out.print(f"trained model: {path}")
    gguf = config.out_dir / f"model.{config.export}.gguf"  # as train() names it
    if config.export != "none" and not config.model:
        out.print(f"GGUF: {gguf}  (muse --model {gguf} …)")
    out.print(f"[dim]record: {config.out_dir / 'train.json'} · plot: {config.out_dir / 'train.png'}[/]")


def _model_dir(run: str) -> Path:
    """A run folder's trained model (RUN/model), a checkpoint, or a model folder itself."""
    p = Path(run)
    for d in (p / "model", p):
        if (d / "config.json").is_file():
            return d
    raise ConfigError(f"no trained model in {run} (neither {p / 'model'} nor {p} holds a config.json)")


@train_group.command("export")
@click.argument("run")
@click.option("--out", "out_path", default=None, metavar="FILE",
              help="GGUF to write (default: RUN/model.FTYPE.gguf).")
@click.option("--ftype", type=click.Choice(["q8_0", "f16", "f32"]), default="q8_0", show_default=True)
@click.option("--like", default=None, metavar="FILE",
              help="The GGUF the model came from, for its tokenizer and chat template (default: the packaged one).")
@handle_errors
def export(run: str, out_path: str | None, ftype: str, like: str | None) -> None:
    """Write a trained model (a run folder, a checkpoint-N folder or a model folder) as a GGUF.
    A model from a compress run (train.json beside it) is marked as answering inside its
    reasoning, which Thinking mode reads."""
    src = _model_dir(run)
    target = Path(out_path) if out_path else Path(run) / f"model.{ftype}.gguf"
    if target.suffix != ".gguf":
        raise ConfigError(f"--out must name a .gguf file, not {target.name}")
    from ..train.compress import MARKS
    from ..train.gguf_io import export_gguf

    trained = any((d / "train.json").is_file() for d in (src, src.parent))  # a compress run's model or checkpoint
    path = export_gguf(src, target, like=Path(like) if like else None, ftype=ftype, marks=MARKS if trained else None)
    out.print(f"GGUF: {path}  (muse --model {path} …)")


@train_group.command("plot")
@click.argument("run")
@click.option("--out", "out_path", default=None, metavar="FILE", help="PNG to write (default: RUN/train.png).")
@handle_errors
def plot_run(run: str, out_path: str | None) -> None:
    """Plot a run's train.json: held-out accuracy against tokens over training, and each step."""
    from ..train.plot import load_record, plot

    record = load_record(run)
    target = Path(out_path) if out_path else (Path(run) if Path(run).is_dir() else Path(run).parent) / "train.png"
    if target.suffix.lower() != ".png":
        raise ConfigError(f"--out must name a .png file, not {target.name}")
    out.print(f"plot: {plot(record, target)}")
