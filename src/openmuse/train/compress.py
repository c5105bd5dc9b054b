"""Thought compression: GRPO with a length-penalised, verifiable-answer reward (TRL).

``train(config)`` fine-tunes a causal LM — any Hugging Face model folder, or by default the
packaged SmolLM2-135M GGUF dequantised by ``gguf_io.load_hf`` — on problems with known answers
generated in the project (``openmuse.problems`` plus ``sum3``, two-step sums, below). Each prompt
is exactly what Thinking mode sends a plain instruct model (``prompts/thinking.yaml``, "prompted"):
its system prompt, the question, and the assistant turn opened with the reasoning prefix ("The
question asks"); the completion is the reasoning, ending in "Final answer: X". So what training
shortens is what Thinking counts as reasoning tokens. Rewards and the length penalty are in
``rewards.py``. Train and evaluation problems come from different seeds.

Covers: CPU (``use_cpu``, fp32) and CUDA (bf16 where supported) through the same call; LoRA when
``peft`` is installed (merged into ``model/`` at the end); a line per step (reward, completion length, accuracy, truncated share,
seconds); checkpoints every ``save_steps`` (TRL's) and ``resume`` from the last one in
``out_dir``; a greedy evaluation on the held-out seed before, every ``eval_steps`` and after;
``out_dir/train.json`` with the config, the environment, every step's metrics and every
evaluation, rewritten after each step; ``out_dir/train.png`` (``plot.py``).

Not covered: multi-GPU, vLLM generation, a KL reference (``beta`` is 0, as in DAPO/Dr. GRPO:
no reference model to hold in memory). A model trained from a GGUF is written back as one
(``export``, default q8_0: ``out_dir/model.q8_0.gguf``, with the source's tokenizer and chat
template; ``gguf_io.export_gguf``); a model from a Hugging Face folder is not.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .. import prompts
from ..errors import ConfigError
from ..problems import FAMILIES, Problem, generate
from ..records import environment, write_json
from ..types import ANSWERS_IN_REASONING_KEY
from .rewards import final_answer, make_rewards

EXTRA_FAMILIES = ("sum3",)
# The exported GGUF says the model ends its reasoning with its answer (the reward reads it there):
# Thinking mode then takes the answer from the reasoning instead of forcing an answer phase.
MARKS = {ANSWERS_IN_REASONING_KEY: True}
ALL_FAMILIES = (*FAMILIES, *EXTRA_FAMILIES)
Progress = Callable[[str], None]


class CompressConfig(BaseModel):
    """Everything one training run depends on (recorded in ``train.json``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str | None = Field(default=None, description="A Hugging Face model folder (default: the packaged GGUF).")
    gguf: str | None = Field(default=None, description="A GGUF to dequantise instead of the packaged one.")
    out_dir: Path = Field(default=Path("runs/compress"), description="Checkpoints, final model and train.json.")
    steps: int = Field(default=110, ge=1, description="Optimizer steps in all (a resumed run counts the old ones).")
    batch: int = Field(default=16, ge=1, description="Completions per step (prompts × generations).")
    num_generations: int = Field(default=4, ge=2, description="Completions sampled per prompt (the GRPO group).")
    max_completion_length: int = Field(default=64, ge=4, description="Most tokens per completion (L_max).")
    learning_rate: float = Field(default=1e-5, gt=0, le=1e-2)
    penalty: Literal["arora", "overlong", "none"] = "arora"
    alpha: float = Field(default=0.3, ge=0, le=1, description="Arora & Zanette's α.")
    format_bonus: float = Field(default=0.0, ge=0, le=1, description="Reward for a finished completion that states an answer, right or wrong.")
    overlong_cache: int = Field(default=16, ge=0, description="L_cache of the soft overlong penalty, in tokens.")
    temperature: float = Field(default=0.8, gt=0, le=2)
    families: tuple[str, ...] = ALL_FAMILIES
    train_items: int = Field(default=2000, ge=1)
    train_seed: int = 0
    eval_seed: int = 1
    eval_items: int = Field(default=48, ge=0, description="Held-out problems evaluated before and after (0: none).")
    eval_steps: int = Field(default=20, ge=0, description="Evaluate the held-out problems every this many steps (0: only before and after).")
    seed: int = Field(default=0, description="Seed of torch and sampling.")
    save_steps: int = Field(default=20, ge=1)
    save_total_limit: int = Field(default=2, ge=1)
    resume: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    lora: bool = False
    lora_rank: int = Field(default=16, ge=1)
    gradient_checkpointing: bool = Field(default=False, description="Recompute activations (less memory, slower).")
    export: Literal["q8_0", "f16", "f32", "none"] = Field(
        default="q8_0", description="Write the trained model as a GGUF of this type (a GGUF-sourced model only).")

    @model_validator(mode="after")
    def _check(self) -> CompressConfig:
        if self.batch % self.num_generations:
            raise ValueError(f"batch ({self.batch}) must be a multiple of num_generations ({self.num_generations})")
        bad = [f for f in self.families if f not in ALL_FAMILIES]
        if bad or not self.families:
            raise ValueError(f"families must be among {', '.join(ALL_FAMILIES)}, not {bad or 'none'}")
        if self.model and self.gguf:
            raise ValueError("give model or gguf, not both")
        if self.overlong_cache > self.max_completion_length:
            raise ValueError("overlong_cache cannot exceed max_completion_length")
        return self


# --- data ------------------------------------------------------------------------------------


def _sum3(rng: random.Random) -> Problem:
    a, b, c = rng.randint(2, 9), rng.randint(2, 9), rng.randint(2, 9)
    return Problem("sum3", f"What is {a} + {b} + {c}?", str(a + b + c), "number")


def problems(n: int, seed: int, families: tuple[str, ...] = ALL_FAMILIES) -> list[Problem]:
    """``n`` problems, the families taking turns; the project's families come from
    ``openmuse.problems.generate`` (the same items for the same seed), the extra ones from here."""
    base = tuple(f for f in families if f in FAMILIES)
    extra = [f for f in families if f in EXTRA_FAMILIES]
    made = iter(generate(n, seed=seed, families=base)) if base else iter(())
    rng = random.Random(f"extra-{seed}")
    out = []
    for i in range(n):
        fam = families[i % len(families)]
        out.append(_sum3(rng) if fam in extra else next(made))
    return out


def thinking_prompt(tok: Any, question: str) -> str:
    """The text Thinking mode sends a plain instruct model for ``question``: the chat template
    with its system prompt, and the assistant turn opened with the reasoning prefix."""
    p = prompts.load("thinking")["prompted"]
    msgs = [{"role": "system", "content": p["system"]}, {"role": "user", "content": question}]
    return tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False) + p["reasoning_prefix"]


def dataset(items: list[Problem], tok: Any):
    from datasets import Dataset

    return Dataset.from_list([{"prompt": thinking_prompt(tok, p.question), "question": p.question,
                               "answer": p.answer, "kind": p.kind, "family": p.family} for p in items])


# --- model -----------------------------------------------------------------------------------


def load_model(config: CompressConfig) -> tuple[Any, Any]:
    """The model and tokenizer to train: a HF folder, or a GGUF dequantised (``gguf_io``)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if config.model:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if not (Path(config.model) / "config.json").is_file():
            raise ConfigError(f"not a Hugging Face model folder (no config.json): {config.model}")
        tok = AutoTokenizer.from_pretrained(config.model)
        model = AutoModelForCausalLM.from_pretrained(config.model)
    else:
        from .gguf_io import load_hf

        model, tok = load_hf(Path(config.gguf) if config.gguf else None)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return model, tok


def _device(config: CompressConfig) -> tuple[bool, bool]:
    """(use_cpu, bf16)."""
    import torch

    cuda = torch.cuda.is_available()
    if config.device == "cuda" and not cuda:
        raise ConfigError("--device cuda: no CUDA device is visible to torch")
    on_gpu = cuda and config.device != "cpu"
    return (not on_gpu, bool(on_gpu and torch.cuda.is_bf16_supported()))


def evaluate(model: Any, tok: Any, items: list[Problem], max_new_tokens: int, batch: int = 16) -> dict[str, Any]:
    """Greedy answers to ``items`` in the training format: accuracy (the reward's answer rule:
    an unfinished completion is wrong), mean completion tokens, and the share cut at
    ``max_new_tokens``."""
    import torch

    if not items:
        return {"items": 0}
    model.eval()
    side, tok.padding_side = tok.padding_side, "left"
    right, cut, lens, t0 = 0, 0, [], time.perf_counter()
    eos = tok.eos_token_id
    try:
        for i in range(0, len(items), batch):
            chunk = items[i:i + batch]
            texts = [thinking_prompt(tok, p.question) for p in chunk]
            enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            with torch.no_grad():
                out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
            for p, ids in zip(chunk, out[:, enc["input_ids"].shape[1]:].tolist()):
                n = next((k + 1 for k, t in enumerate(ids) if t == eos), None)
                cut += n is None
                lens.append(n or len(ids))
                got = final_answer(tok.decode(ids[:n], skip_special_tokens=True), p.question, p.kind)
                right += n is not None and got == p.answer
    finally:
        tok.padding_side = side
    return {"items": len(items), "accuracy": right / len(items), "mean_tokens": round(statistics.fmean(lens), 2),
            "truncated": cut / len(items), "wall_s": round(time.perf_counter() - t0, 2)}


# --- the run ---------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    import torch
    import transformers
    import trl

    return {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "torch_threads": torch.get_num_threads()}


def _callback(record: dict[str, Any], path: Path, config: CompressConfig, progress: Progress | None,
              held_out: list[Problem], tok: Any):
    """A TrainerCallback that keeps each step's metrics in ``record`` (written to ``path``) and
    evaluates ``held_out`` every ``config.eval_steps`` steps."""
    from transformers import TrainerCallback

    total = config.steps

    class StepLog(TrainerCallback):
        def __init__(self) -> None:
            self.t = time.perf_counter()

        def on_step_begin(self, args, state, control, **kw):
            self.t = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kw):
            if not logs or "reward" not in logs:
                return
            row = {"step": state.global_step, "seconds": round(time.perf_counter() - self.t, 2),
                   **{k: round(v, 5) if isinstance(v, float) else v for k, v in logs.items()}}
            record["steps"].append(row)
            write_json(path, record)
            if progress:
                progress(f"step {state.global_step}/{total} · reward {logs['reward']:.3f} · "
                         f"length {logs.get('completions/mean_length', 0):.1f} · "
                         f"accuracy {logs.get('accuracy', float('nan')):.3f} · "
                         f"truncated {logs.get('truncated', float('nan')):.2f} · {row['seconds']:.1f} s")

        def on_step_end(self, args, state, control, model=None, **kw):
            n, every = state.global_step, config.eval_steps
            if not held_out or not every or n % every or n >= total or model is None:
                return
            row = {"step": n, **evaluate(model, tok, held_out, config.max_completion_length)}
            model.train()
            record["eval"].setdefault("during", []).append(row)
            write_json(path, record)
            if progress:
                progress(f"held-out at step {n}: accuracy {row['accuracy']:.3f} · "
                         f"length {row['mean_tokens']:.1f} · truncated {row['truncated']:.2f}")

    return StepLog()


def _grpo_args(config: CompressConfig, use_cpu: bool, bf16: bool):
    from trl import GRPOConfig

    return GRPOConfig(
        output_dir=str(config.out_dir), max_steps=config.steps, per_device_train_batch_size=config.batch,
        gradient_accumulation_steps=1, num_generations=config.num_generations,
        max_completion_length=config.max_completion_length, learning_rate=config.learning_rate,
        beta=0.0, temperature=config.temperature, logging_steps=1, save_steps=config.save_steps,
        save_total_limit=config.save_total_limit, use_cpu=use_cpu, bf16=bf16, report_to="none",
        seed=config.seed, disable_tqdm=True, gradient_checkpointing=config.gradient_checkpointing,
        dataloader_num_workers=0, log_completions=False,
    )


def _peft_config(config: CompressConfig):
    if not config.lora:
        return None
    try:
        from peft import LoraConfig
    except ImportError:
        raise ConfigError("--lora needs the peft package (pip install peft)") from None
    return LoraConfig(r=config.lora_rank, lora_alpha=2 * config.lora_rank, task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])


def _checkpoint(config: CompressConfig) -> str | None:
    if not config.resume or not config.out_dir.is_dir():
        return None
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(config.out_dir))


def _record(config: CompressConfig, use_cpu: bool, bf16: bool, ckpt: str | None) -> dict[str, Any]:
    """The run's record; on resume, with the steps (and evaluation) already recorded up to the checkpoint."""
    import json

    record: dict[str, Any] = {"args": config.model_dump(mode="json"),
                              "environment": {**environment(), **_versions(), "use_cpu": use_cpu, "bf16": bf16},
                              "resumed_from": ckpt, "steps": [], "eval": {}}
    path = config.out_dir / "train.json"
    if ckpt and path.is_file():
        old = json.loads(path.read_text("utf-8"))
        done = int(Path(ckpt).name.split("-")[-1])
        record["steps"] = [s for s in old.get("steps", []) if s["step"] <= done]
        record["eval"] = {k: v for k, v in old.get("eval", {}).items() if k == "before"}
        record["eval"]["during"] = [e for e in old.get("eval", {}).get("during", []) if e["step"] <= done]
    return record


def train(config: CompressConfig, progress: Progress | None = None, loaded: tuple[Any, Any] | None = None) -> Path:
    """Run GRPO as ``config`` says; the trained model's folder (``out_dir/model``). ``loaded``:
    a (model, tokenizer) already in memory, used instead of loading ``config``'s (it is trained
    in place; on resume the checkpoint's weights replace its own)."""
    from transformers import PrinterCallback
    from transformers.utils import logging as hf_logging
    from trl import GRPOTrainer

    hf_logging.disable_progress_bar()  # our line per step replaces tqdm bars and printed dicts
    say, started = progress or (lambda _m: None), time.perf_counter()
    use_cpu, bf16 = _device(config)
    ckpt = _checkpoint(config)
    if config.resume and not ckpt:
        say(f"no checkpoint in {config.out_dir}: starting from the beginning")
    path, record = config.out_dir / "train.json", _record(config, use_cpu, bf16, ckpt)
    if loaded is None:
        say("loading the model…")
    model, tok = loaded if loaded is not None else load_model(config)
    if not use_cpu:
        model.to("cuda")
    held_out = problems(config.eval_items, config.eval_seed, config.families)
    if held_out and "before" not in record["eval"]:
        say(f"evaluating the untrained model on {len(held_out)} held-out problems (seed {config.eval_seed})…")
        record["eval"]["before"] = evaluate(model, tok, held_out, config.max_completion_length)
        say(f"before: {record['eval']['before']}")
    eos = [tok.eos_token_id] if tok.eos_token_id is not None else []
    trainer = GRPOTrainer(
        model=model, args=_grpo_args(config, use_cpu, bf16), processing_class=tok,
        reward_funcs=make_rewards(config.penalty, config.alpha, config.max_completion_length,
                                  config.overlong_cache, eos, config.format_bonus),
        train_dataset=dataset(problems(config.train_items, config.train_seed, config.families), tok),
        peft_config=_peft_config(config), callbacks=[_callback(record, path, config, progress, held_out, tok)],
    )
    trainer.remove_callback(PrinterCallback)
    say(f"training {config.steps} steps on {'cpu' if use_cpu else 'cuda'}" + (f", resuming from {ckpt}" if ckpt else ""))
    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=ckpt)
    record["train_wall_s"] = round(time.perf_counter() - t0, 1)
    secs = [s["seconds"] for s in record["steps"]]
    record["seconds_per_step"] = round(statistics.median(secs), 2) if secs else None
    final, trained = config.out_dir / "model", trainer.model
    if config.lora:  # a plain model in model/, adapters merged (untested here: no peft installed)
        trained = trained.merge_and_unload()
    trained.save_pretrained(str(final))
    tok.save_pretrained(str(final))
    if held_out:
        say("evaluating the trained model…")
        record["eval"]["after"] = evaluate(trained, tok, held_out, config.max_completion_length)
        say(f"after: {record['eval']['after']}")
    record["model"] = str(final)
    if config.export != "none" and not config.model:
        from .gguf_io import export_gguf

        say(f"writing the {config.export} GGUF…")
        gguf_path = export_gguf(trained, config.out_dir / f"model.{config.export}.gguf",
                                like=Path(config.gguf) if config.gguf else None, ftype=config.export, marks=MARKS)
        record["gguf"] = str(gguf_path)
    record["wall_s"] = round(time.perf_counter() - started, 1)  # loading, evaluations and export included
    write_json(path, record)
    from .plot import plot

    plot(record, config.out_dir / "train.png")
    return final
