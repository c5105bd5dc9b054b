"""Triage of a message: ``emergency``, ``urgent``, ``routine`` (a health question without danger)
or ``not_medical`` — e5-small embeddings (``Embedder``, cached: with ``--safety-classifier e5``
the safety check's embedding serves both; with the default ``minilm`` the triage computes its
own, about 15 ms) and a small numpy network (``safety/mlp.py``: three members of
384 -> 256 -> 4) trained here (``muse safety train-health``).

Training data: ``health/data/triage_*.jsonl``, messages written for this project (each
emergency one tagged with its red flag where one fits). The red-flag patterns of
``redflags.yaml`` still decide on their own when they match; the triage model catches the
wordings they miss. Its emergency threshold is set on the dev cases,
``evals/data/health_dev.jsonl`` and ``health_dev2.jsonl`` (``health_cases.jsonl`` is never used
to tune): of the thresholds that keep false alarms on the dev routine cases within
``max_false_alarm``, the highest of those that catch the most dev emergencies.

When the model says emergency and no pattern matched, the advice is that of the nearest tagged
training message's flag (or a general one).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..safety.classifier import Embedder
from ..safety.mlp import MLP, MLPConfig, load_trained
from ..safety.train import standardize

LABELS = ["not_medical", "routine", "urgent", "emergency"]
TRIAGE_WORDS = 80  # a longer message is judged on its first and last 40 words
HEAD = MLPConfig(hidden=256, members=3)
DEV_FILES = ("health_dev.jsonl", "health_dev2.jsonl")


def _data() -> Path:
    return Path(str(files("openmuse.health").joinpath("data")))


@dataclass
class Triage:
    label: str
    p_emergency: float
    p_medical: float
    flag: str | None  # the nearest tagged emergency example's flag id


class TriageModel:
    def __init__(self, head: MLP, mean, scale, card: dict[str, Any], flag_vecs: np.ndarray, flag_ids: list[str],
                 embedder: Embedder | None = None):
        self.head, self.mean, self.scale, self.card = head, mean, scale, card
        self.flag_vecs, self.flag_ids = flag_vecs, flag_ids
        self.embedder = embedder or Embedder()

    @classmethod
    def load(cls) -> TriageModel:
        head, z, meta = load_trained(_data() / "triage", "health triage", "muse safety train-health")
        return cls(head, z["mean"], z["scale"], meta, np.asarray(z["flag_vecs"], np.float32), list(meta["flag_ids"]))

    def probs(self, E: np.ndarray) -> np.ndarray:
        z = self.head.logits((E - self.mean) / self.scale).astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def triage(self, text: str) -> Triage:
        words = text.split()
        if len(words) > TRIAGE_WORDS:  # the time of an embedding grows with its length
            text = " ".join(words[:TRIAGE_WORDS // 2] + words[-TRIAGE_WORDS // 2:])
        E = self.embedder.embed([text])
        P = self.probs(E)[0]
        pe = float(P[LABELS.index("emergency")])
        label = "emergency" if pe >= self.card["threshold"] else LABELS[int(np.argmax(P))]
        if label == "emergency" and len(self.flag_ids):
            flag = self.flag_ids[int(np.argmax(self.flag_vecs @ E[0]))]
        else:
            flag = None
        return Triage(label=label, p_emergency=pe, p_medical=float(1 - P[0]), flag=flag)


def available() -> bool:
    return (_data() / "triage.npz").is_file() and (_data() / "triage.json").is_file()


@cache
def default_triage() -> TriageModel:
    return TriageModel.load()


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def training_rows() -> list[dict[str, Any]]:
    """The triage's training messages: every ``health/data/triage_*.jsonl``, in name order."""
    return [r for p in sorted(_data().glob("triage_*.jsonl")) for r in _rows(p)]


def dev_cases() -> list[dict[str, Any]]:
    """The health dev cases (``DEV_FILES``), the set the triage threshold is tuned on."""
    return [r for name in DEV_FILES for r in _rows(Path(str(files("openmuse.evals").joinpath(f"data/{name}"))))]


def train_triage(max_false_alarm: float = 0.10, log: Callable[[str], None] = print) -> dict[str, Any]:
    from .check import red_flags

    rows = training_rows()
    bad = [r for r in rows if r["label"] not in LABELS]
    if bad:
        raise ConfigError(f"triage data: unknown label {bad[0]['label']!r}")
    emb = Embedder()
    log(f"embedding {len(rows)} triage messages…")
    X = emb.embed([r["text"] for r in rows])
    y = np.array([LABELS.index(r["label"]) for r in rows])
    mu, sd = standardize(X)
    head = MLP.fit((X - mu) / sd, y, len(LABELS), HEAD)
    tagged = [i for i, r in enumerate(rows) if r["label"] == "emergency" and r.get("flag")]
    model = TriageModel(head, mu, sd, {"threshold": 0.5}, X[tagged], [rows[i]["flag"] for i in tagged], emb)

    dev = dev_cases()
    text = lambda r: "\n".join(m["content"] for m in r["messages"] if m["role"] == "user")
    P = np.array([model.triage(text(r)).p_emergency for r in dev])
    em = np.array([r["kind"] == "emergency" and bool(r["expect"].get("emergency_referral")) for r in dev])
    routine = np.array([r["kind"] == "routine" for r in dev])
    by_rule = np.array([any(f.level == "emergency" for f in red_flags(text(r))) for r in dev])
    best = None
    for t in np.arange(0.05, 0.96, 0.05):
        hit = (P >= t) | by_rule
        caught, alarms = float(hit[em].mean()), float(hit[routine].mean())
        if alarms <= max_false_alarm and (best is None or caught >= best[1]):
            best = (float(t), caught, alarms)
    t, caught, alarms = best or (0.5, float(((P >= 0.5) | by_rule)[em].mean()), float(((P >= 0.5) | by_rule)[routine].mean()))
    log(f"dev: threshold {t:.2f} catches {caught:.0%} of emergencies with {alarms:.0%} false alarms on routine cases")
    card = {"labels": LABELS, "threshold": round(t, 2), "flag_ids": model.flag_ids,
            "dev": {"emergencies_caught": round(caught, 4), "routine_false_alarms": round(alarms, 4),
                    "cases": len(dev), "files": list(DEV_FILES), "max_false_alarm": max_false_alarm},
            "head": {"hidden": HEAD.hidden, "members": HEAD.members},
            "training": {lab: int((y == i).sum()) for i, lab in enumerate(LABELS)}}
    np.savez_compressed(_data() / "triage.npz", mean=mu, scale=sd, flag_vecs=X[tagged].astype(np.float16),
                        **head.arrays())
    (_data() / "triage.json").write_text(json.dumps(card, indent=1) + "\n", "utf-8")
    log(f"wrote {_data() / 'triage.npz'} and triage.json")
    return card
