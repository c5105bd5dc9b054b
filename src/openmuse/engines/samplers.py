"""llama.cpp sampler chains for the local engine: a request's grammar (tools, response_format),
then greedy, or top-k, top-p, temperature and a seeded draw. Each sequence owns its chain."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ..functions import grammar as fn_grammar
from ..functions.spec import Output
from ..types import ChatRequest

RANDOM_SEED = 0xFFFFFFFF  # llama.cpp's LLAMA_DEFAULT_SEED: a random seed


def grammar(ll: Any, vocab: Any, out: Output) -> int | None:
    """llama.cpp's grammar sampler for ``out`` (None when nothing constrains the answer)."""
    gbnf = fn_grammar.grammar(out)
    if gbnf is None:
        return None
    g = ll.llama_sampler_init_grammar(vocab, gbnf.encode(), b"root")
    if not g:
        raise ConfigError("llama.cpp could not parse the grammar built for tools/response_format")
    return g


def check_grammar(ll: Any, vocab: Any, r: ChatRequest) -> None:
    """A request's grammar must parse in llama.cpp before it is queued (a ``ConfigError`` here,
    not a failed sequence in the scheduler's thread)."""
    g = grammar(ll, vocab, Output.of(r))
    if g is not None:
        ll.llama_sampler_free(g)


def chain(ll: Any, vocab: Any, r: ChatRequest, out: Output) -> int:
    """The sampler chain of one sequence (freed with ``llama_sampler_free``)."""
    g = grammar(ll, vocab, out)  # checked before queueing: only tokens inside the grammar can be drawn
    c = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
    if g is not None:
        ll.llama_sampler_chain_add(c, g)
    if r.greedy:
        ll.llama_sampler_chain_add(c, ll.llama_sampler_init_greedy())
        return c
    if r.top_k:
        ll.llama_sampler_chain_add(c, ll.llama_sampler_init_top_k(r.top_k))
    if r.top_p < 1.0:
        ll.llama_sampler_chain_add(c, ll.llama_sampler_init_top_p(r.top_p, 1))
    ll.llama_sampler_chain_add(c, ll.llama_sampler_init_temp(r.temperature))
    seed = RANDOM_SEED if r.seed is None else r.seed & 0xFFFFFFFF
    ll.llama_sampler_chain_add(c, ll.llama_sampler_init_dist(seed))
    return c
