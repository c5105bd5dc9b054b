"""Move a LLaMA-architecture GGUF (the packaged SmolLM2 by default) to and from Hugging Face form.

Covers: ``load_hf`` (a GGUF dequantised into a plain, trainable and saveable fp32
``LlamaForCausalLM`` plus its tokenizer, chat template kept), ``save_hf`` and ``export_gguf``
(an HF model written back as a GGUF llama.cpp loads, carrying every metadata field of a source
GGUF - tokenizer, chat template, names - so only the weights change). Also a small command line:
``python -m openmuse.train.gguf_io export --hf DIR --out model.gguf [--ftype q8_0]`` and
``python -m openmuse.train.gguf_io dequantise --out DIR [--gguf FILE]``.

Not covered: other architectures (only llama's tensor names and q/k permutation), changing the
vocabulary or shapes (the export refuses a model that does not match the source's metadata),
k-quants or Q4 output (only f32, f16 and q8_0), LoRA adapters, anything downloaded.

llama.cpp's converter stores LLaMA's q and k projections with their rows permuted (the two halves
of each head's rotary dimensions interleaved); transformers' GGUF loader undoes that when reading,
so ``load_hf`` gives the HF layout and ``export_gguf`` permutes again. The permutation round trip
is exact; precision is lost only by the chosen ``ftype`` (f32: none).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from openmuse.errors import ConfigError

FTYPES = ("q8_0", "f16", "f32")
# Fields the writer sets itself or that describe the tensors rather than the model.
_SKIP_KEYS = ("general.architecture", "general.file_type", "general.quantization_version", "general.alignment")
_LAYER_NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}


def _default_gguf() -> Path:
    from openmuse.engines.local import default_model_path

    return default_model_path()


def _check_gguf(path: Path | None) -> Path:
    """The path, resolved to the packaged model when None; ConfigError unless it looks like GGUF."""
    path = Path(path) if path is not None else _default_gguf()
    if not path.is_file():
        raise ConfigError(f"GGUF file not found: {path}")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise ConfigError(f"not a GGUF file (bad magic): {path}")
    return path


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:200] + "...") if len(text) > 200 else text or type(exc).__name__


def load_hf(gguf_path: Path | None = None, dtype: Any = None) -> tuple[Any, Any]:
    """The GGUF (default: the packaged one) as a plain HF ``LlamaForCausalLM`` and its tokenizer.

    Weights are dequantised (and q/k un-permuted by transformers); the model is rebuilt with
    ``from_config`` so it is not flagged quantized: Trainer accepts it and ``save_pretrained``
    works. ``dtype`` defaults to ``torch.float32``. Nothing is downloaded.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    dtype = torch.float32 if dtype is None else dtype
    path = _check_gguf(gguf_path)
    folder, name = str(path.parent), path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        config = AutoConfig.from_pretrained(folder, gguf_file=name)
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    except Exception as exc:  # corrupt or unsupported file: one line for the user
        raise ConfigError(f"cannot load GGUF {path.name}: {_one_line(exc)}") from exc
    if getattr(config, "quantization_config", None) is not None:
        del config.quantization_config
    state = loaded.state_dict()
    del loaded
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(state, strict=False)
    if model.config.tie_word_embeddings:
        model.tie_weights()
    missing = set(model.state_dict()) - set(state)
    if missing - {"lm_head.weight"}:
        raise ConfigError(f"GGUF {path.name} lacks weights: {sorted(missing)[:3]}")
    model = model.to(dtype)
    model.eval()
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def save_hf(model: Any, tokenizer: Any, out_dir: Path | str) -> Path:
    """``save_pretrained`` of both into ``out_dir`` (created)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    return out


def permute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF rows -> llama.cpp rows: per head, interleave the two rotary halves."""
    rows = w.shape[0]
    half = rows // n_head // 2
    return w.reshape(n_head, 2, half, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def unpermute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """Inverse of ``permute_qk`` (llama.cpp rows -> HF rows)."""
    rows = w.shape[0]
    half = rows // n_head // 2
    return w.reshape(n_head, half, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_tensor_name(hf_name: str) -> str | None:
    """llama.cpp's name for an HF LLaMA parameter; None for ones it does not store."""
    if hf_name == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf_name == "model.norm.weight":
        return "output_norm.weight"
    if hf_name == "lm_head.weight":
        return "output.weight"
    parts = hf_name.split(".")
    if len(parts) >= 5 and parts[:2] == ["model", "layers"] and parts[-1] == "weight":
        short = _LAYER_NAMES.get(".".join(parts[3:-1]))
        if short:
            return f"blk.{int(parts[2])}.{short}.weight"
    return None


def _field_value(field: Any) -> tuple[Any, Any, Any]:
    import gguf

    types = [gguf.GGUFValueType(t) for t in field.types]
    if types[0] == gguf.GGUFValueType.ARRAY:
        return list(field.contents()), types[0], types[-1]
    return field.contents(), types[0], None


def _as_model(model_or_dir: Any) -> Any:
    if isinstance(model_or_dir, (str, Path)):
        if not (Path(model_or_dir) / "config.json").is_file():
            raise ConfigError(f"not a saved HF model folder (no config.json): {model_or_dir}")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoModelForCausalLM

        try:
            return AutoModelForCausalLM.from_pretrained(str(model_or_dir), dtype=torch.float32)
        except Exception as exc:
            raise ConfigError(f"cannot load HF model {model_or_dir}: {_one_line(exc)}") from exc
    return model_or_dir


def _check_shapes(config: Any, meta: dict[str, Any], arch: str) -> None:
    want = {
        "block_count": config.num_hidden_layers,
        "embedding_length": config.hidden_size,
        "feed_forward_length": config.intermediate_size,
        "attention.head_count": config.num_attention_heads,
        "attention.head_count_kv": config.num_key_value_heads,
    }
    for key, value in want.items():
        have = meta.get(f"{arch}.{key}")
        if have is not None and int(have) != int(value):
            raise ConfigError(f"model does not match the source GGUF: {arch}.{key} {have} != {value}")
    n_tokens = len(meta.get("tokenizer.ggml.tokens") or [])
    if n_tokens and n_tokens != config.vocab_size:
        raise ConfigError(f"model vocabulary {config.vocab_size} != source GGUF's {n_tokens}")


def export_gguf(
    model_or_dir: Any,
    out_path: Path | str,
    *,
    like: Path | None = None,
    ftype: str = "q8_0",
    marks: dict[str, bool] | None = None,
) -> Path:
    """Write the model as a GGUF with the metadata (tokenizer, chat template...) of ``like``.

    ``model_or_dir``: an HF LLaMA model or a folder saved with ``save_pretrained``. Matrices are
    stored as ``ftype`` (q8_0 falls back to f16 for a row length not a multiple of 32); norms stay
    f32. ``marks``: boolean metadata to add (or replace), e.g. the key that tells Thinking mode
    the model answers inside its reasoning (``types.ANSWERS_IN_REASONING_KEY``). The file
    is written next to ``out_path`` and renamed into place.
    """
    import gguf

    if ftype not in FTYPES:
        raise ConfigError(f"ftype must be one of {', '.join(FTYPES)}, not {ftype!r}")
    source = _check_gguf(like)
    try:
        reader = gguf.GGUFReader(source)
        fields = {k: _field_value(f) for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    except Exception as exc:
        raise ConfigError(f"cannot read GGUF {source.name}: {_one_line(exc)}") from exc
    arch = fields.get("general.architecture", (None,))[0]
    if arch != "llama":
        raise ConfigError(f"only llama GGUFs can be exported, {source.name} is {arch!r}")
    model = _as_model(model_or_dir)
    config = model.config
    _check_shapes(config, {k: v[0] for k, v in fields.items()}, arch)

    q8, f16 = gguf.GGMLQuantizationType.Q8_0, gguf.GGMLQuantizationType.F16
    file_type = {
        "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
        "f16": gguf.LlamaFileType.MOSTLY_F16,
        "f32": gguf.LlamaFileType.ALL_F32,
    }[ftype]
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    writer = gguf.GGUFWriter(tmp, arch)
    try:
        for key, (value, vtype, sub) in fields.items():
            if key not in _SKIP_KEYS and key not in (marks or {}):
                writer.add_key_value(key, value, vtype, sub)
        for key, flag in (marks or {}).items():
            writer.add_bool(key, flag)
        writer.add_file_type(int(file_type))
        if ftype == "q8_0":
            writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        tied = bool(getattr(config, "tie_word_embeddings", False))
        n_head, n_kv = config.num_attention_heads, config.num_key_value_heads
        for hf_name, tensor in model.state_dict().items():
            name = gguf_tensor_name(hf_name)
            if name is None or (tied and name == "output.weight"):
                if name is None and not hf_name.endswith("rotary_emb.inv_freq"):
                    raise ConfigError(f"no llama.cpp name for parameter {hf_name}")
                continue
            data = tensor.detach().to("cpu").float().numpy()
            if name.endswith("attn_q.weight"):
                data = permute_qk(data, n_head)
            elif name.endswith("attn_k.weight"):
                data = permute_qk(data, n_kv)
            data = np.ascontiguousarray(data, dtype=np.float32)
            if data.ndim == 1 or ftype == "f32":
                writer.add_tensor(name, data)
            elif ftype == "q8_0" and data.shape[-1] % 32 == 0:
                writer.add_tensor(name, gguf.quants.quantize(data, q8), raw_dtype=q8)
            else:
                writer.add_tensor(name, data.astype(np.float16), raw_dtype=f16)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, out)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m openmuse.train.gguf_io", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    exp = sub.add_parser("export", help="HF folder -> GGUF with the source GGUF's metadata")
    exp.add_argument("--hf", required=True, help="folder written by save_pretrained")
    exp.add_argument("--out", required=True, help="GGUF file to write")
    exp.add_argument("--ftype", default="q8_0", choices=FTYPES)
    exp.add_argument("--like", default=None, help="source GGUF for metadata (default: packaged)")
    deq = sub.add_parser("dequantise", help="GGUF -> HF folder (fp32)")
    deq.add_argument("--gguf", default=None, help="GGUF to read (default: packaged)")
    deq.add_argument("--out", required=True, help="folder to write")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "export":
            like = Path(args.like) if args.like else None
            path = export_gguf(Path(args.hf), Path(args.out), like=like, ftype=args.ftype)
        else:
            model, tokenizer = load_hf(Path(args.gguf) if args.gguf else None)
            path = save_hf(model, tokenizer, args.out)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
