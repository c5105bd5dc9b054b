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
    """Training: muse train compress [--steps N --penalty arora|overlong|none --out DIR]"""


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
@click.option("--steps", envvar="MUSE_TRAIN_STEPS", type=int, default=200, show_default=True,
              help="Optimizer steps in all (a resumed run counts those already taken).")
@click.option("--batch", envvar="MUSE_TRAIN_BATCH", type=int, default=8, show_default=True,
              help="Completions per step: prompts × --generations.")
@click.option("--generations", "num_generations", envvar="MUSE_TRAIN_GENERATIONS", type=int, default=8,
              show_default=True, help="Completions sampled per prompt (the GRPO group).")
@click.option("--max-completion-length", envvar="MUSE_TRAIN_MAX_COMPLETION", type=int, default=64,
              show_default=True, help="Most tokens per completion; longer ones are truncated.")
@click.option("--lr", "learning_rate", envvar="MUSE_TRAIN_LR", type=float, default=2e-6, show_default=True)
@click.option("--penalty", envvar="MUSE_TRAIN_PENALTY", type=click.Choice(["arora", "overlong", "none"]),
              default="arora", show_default=True,
              help="arora: r × (1 − α·σ(z)) on right answers; overlong: soft penalty near the cap.")
@click.option("--alpha", envvar="MUSE_TRAIN_ALPHA", type=float, default=0.2, show_default=True,
              help="Arora & Zanette's α.")
@click.option("--overlong-cache", envvar="MUSE_TRAIN_OVERLONG_CACHE", type=int, default=16, show_default=True,
              help="Tokens before the cap over which the overlong penalty falls to −1.")
@click.option("--temperature", envvar="MUSE_TRAIN_TEMPERATURE", type=float, default=1.0, show_default=True)
@click.option("--families", envvar="MUSE_TRAIN_FAMILIES", default="sum,compare,capital,word,sum3",
              show_default=True, help="Problem families, comma-separated.")
@click.option("--train-items", envvar="MUSE_TRAIN_ITEMS", type=int, default=2000, show_default=True)
@click.option("--train-seed", envvar="MUSE_TRAIN_SEED", type=int, default=0, show_default=True)
@click.option("--eval-seed", envvar="MUSE_TRAIN_EVAL_SEED", type=int, default=1, show_default=True)
@click.option("--eval-items", envvar="MUSE_TRAIN_EVAL_ITEMS", type=int, default=64, show_default=True,
              help="Held-out problems answered greedily before and after training (0: none).")
@click.option("--seed", envvar="MUSE_TRAIN_TORCH_SEED", type=int, default=0, show_default=True,
              help="Seed of torch and sampling.")
@click.option("--save-steps", envvar="MUSE_TRAIN_SAVE_STEPS", type=int, default=25, show_default=True,
              help="A checkpoint every this many steps.")
@click.option("--resume", envvar="MUSE_TRAIN_RESUME", is_flag=True,
              help="Continue from the last checkpoint in --out.")
@click.option("--device", envvar="MUSE_TRAIN_DEVICE", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="auto: CUDA (bf16) when torch sees a GPU, else the CPU.")
@click.option("--lora", envvar="MUSE_TRAIN_LORA", is_flag=True, help="Train LoRA adapters (needs peft).")
@click.option("--lora-rank", envvar="MUSE_TRAIN_LORA_RANK", type=int, default=16, show_default=True)
@click.option("--gradient-checkpointing", envvar="MUSE_TRAIN_GRADIENT_CHECKPOINTING", is_flag=True,
              help="Recompute activations: less memory, slower.")
@handle_errors
def compress(**kw) -> None:
    """Thought compression: GRPO with a length penalty on problems with known answers."""
    config = _config(kw)
    from ..train.compress import train

    path = train(config, progress=lambda m: err.print(f"[dim]{m}[/]", highlight=False, soft_wrap=True))
    out.print(f"trained model: {path}")
    out.print(f"[dim]record: {config.out_dir / 'train.json'}[/]")
