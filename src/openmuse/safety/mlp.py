"""Heads over embeddings, run with numpy alone: ``MLP``, a small ensemble of one-hidden-layer
networks over e5-small embeddings, trained with numpy (the health triage's head, and the ``e5``
safety classifier's); and ``Linear``, the ``minilm`` safety classifier's head, trained in torch
together with its encoder (``finetune.py``) and run here.

Each member is ``x -> relu(x W1 + b1) W2 + b2`` over standardised embeddings, trained with Adam on
class-balanced softmax cross-entropy, input dropout and L2; members differ by their seed and the
ensemble's logits are the members' mean. On the project's dev set (``safety/data/dev*.jsonl``)
this caught about 9 harmful requests in 10 where the linear head it replaced caught 8, at the
same false refusals of look-alikes (the figures: the README's "Safety layer" section and the
card, ``safety/data/classifier.json``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError


@dataclass(frozen=True)
class MLPConfig:
    hidden: int = 512
    members: int = 5
    epochs: int = 60
    batch: int = 256
    lr: float = 2e-3
    l2: float = 1e-3
    dropout: float = 0.4
    seed: int = 0


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _fit_one(X: np.ndarray, y: np.ndarray, k: int, cfg: MLPConfig, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    n, d = X.shape
    class_w = n / (k * np.maximum(np.bincount(y, minlength=k), 1).astype(np.float64))
    params = [rng.normal(0, np.sqrt(2 / d), (d, cfg.hidden)), np.zeros(cfg.hidden),
              rng.normal(0, np.sqrt(1 / cfg.hidden), (cfg.hidden, k)), np.zeros(k)]
    m1 = [np.zeros_like(p) for p in params]
    m2 = [np.zeros_like(p) for p in params]
    Y = np.eye(k)[y]
    t = 0
    for _ in range(cfg.epochs):
        order = rng.permutation(n)
        for s in range(0, n, cfg.batch):
            idx = order[s:s + cfg.batch]
            xb = X[idx]
            if cfg.dropout:
                xb = xb * (rng.random(xb.shape) > cfg.dropout) / (1 - cfg.dropout)
            W1, b1, W2, b2 = params
            h = xb @ W1 + b1
            a = np.maximum(h, 0)
            G = (_softmax(a @ W2 + b2) - Y[idx]) * class_w[y[idx]][:, None] / len(idx)
            ga = G @ W2.T
            ga[h <= 0] = 0
            grads = [xb.T @ ga + cfg.l2 * W1, ga.sum(0), a.T @ G + cfg.l2 * W2, G.sum(0)]
            t += 1
            for i, g in enumerate(grads):  # Adam
                m1[i] = 0.9 * m1[i] + 0.1 * g
                m2[i] = 0.999 * m2[i] + 0.001 * g * g
                params[i] -= cfg.lr * (m1[i] / (1 - 0.9 ** t)) / (np.sqrt(m2[i] / (1 - 0.999 ** t)) + 1e-8)
    return params


@dataclass
class MLP:
    """The ensemble: arrays stacked over members (``W1``: members x d x hidden …)."""
    W1: np.ndarray
    b1: np.ndarray
    W2: np.ndarray
    b2: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray, y: np.ndarray, k: int, cfg: MLPConfig = MLPConfig()) -> MLP:
        members = [_fit_one(X, y, k, cfg, cfg.seed + i) for i in range(cfg.members)]
        return cls(*(np.stack([m[j] for m in members]).astype(np.float32) for j in range(4)))

    @property
    def dim(self) -> int:
        return int(self.W1.shape[1])

    def logits(self, X: np.ndarray) -> np.ndarray:
        X = X.astype(np.float32)
        out = np.zeros((X.shape[0], self.b2.shape[1]), np.float32)
        for W1, b1, W2, b2 in zip(self.W1, self.b1, self.W2, self.b2):
            out += np.maximum(X @ W1 + b1, 0) @ W2 + b2
        return out / len(self.W1)

    def arrays(self) -> dict[str, np.ndarray]:
        """What goes into the ``.npz`` (half precision: about 0.4 MB a member)."""
        return {"W1": self.W1.astype(np.float16), "b1": self.b1.astype(np.float16),
                "W2": self.W2.astype(np.float16), "b2": self.b2.astype(np.float16)}

    @classmethod
    def from_arrays(cls, z: dict[str, np.ndarray]) -> MLP:
        return cls(*(np.asarray(z[k], np.float32) for k in ("W1", "b1", "W2", "b2")))


@dataclass
class Linear:
    """``x -> x W + b``: the head trained with the fine-tuned encoder."""
    W: np.ndarray
    b: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.W.shape[0])

    def logits(self, X: np.ndarray) -> np.ndarray:
        return X.astype(np.float32) @ self.W + self.b

    def arrays(self) -> dict[str, np.ndarray]:
        """What goes into the ``.npz`` (half precision)."""
        return {"W": self.W.astype(np.float16), "b": self.b.astype(np.float16)}

    @classmethod
    def from_arrays(cls, z: dict[str, np.ndarray]) -> Linear:
        return cls(np.asarray(z["W"], np.float32), np.asarray(z["b"], np.float32))


def load_trained(base: Path, what: str, command: str) -> tuple[MLP | Linear, dict[str, np.ndarray], dict[str, Any]]:
    """``base``.npz (the head and its other arrays) and ``base``.json (its card), or a one-line
    ``ConfigError`` naming ``what`` and the ``command`` that rebuilds them."""
    npz, card = base.with_suffix(".npz"), base.with_suffix(".json")
    if not npz.is_file() or not card.is_file():
        raise ConfigError(f"no trained {what} at {npz}: run `{command}`")
    try:
        z = dict(np.load(npz))
        return (Linear.from_arrays(z) if "W" in z else MLP.from_arrays(z)), z, json.loads(card.read_text("utf-8"))
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(f"the {what} at {npz} cannot be read ({e}): run `{command}`") from e
