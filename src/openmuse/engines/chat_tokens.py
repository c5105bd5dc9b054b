"""Prompt tokens in which special tokens come only from the chat template, never from text.

What it covers: the local engine's prompt. The chat template is rendered once with a random
placeholder in place of every message's content; the rendered text is split on the
placeholders into template pieces (trusted) and content pieces (system, user, assistant and
tool text: untrusted). Special-token texts (``<|im_start|>``, ``<|im_end|>``, … every token
llama.cpp treats as control, user-defined or unknown) are looked for in the template pieces
only and become their token ids; everything between two of them — template text and message
text alike — is one run tokenized with ``special=False``. That is the partition llama.cpp
makes itself when it tokenizes the whole prompt with ``special=True``, so a prompt whose
messages hold no special-token text gets exactly the token ids it got before (no new
boundaries inside a run, so no BPE merge changes), while ``<|im_start|>system`` typed by a user
is ordinary text tokens and cannot open a turn. An assistant prefill (the text a mode asks the
model to continue) is message text too, except the reasoning markers ``<think>``/``</think>``,
which modes write there themselves and which stay special on models that have them as tokens.

What it does not cover: a template that changes message text (trims it, splits it, tests
its start) does not keep the placeholders intact (each placeholder carries whitespace on both
sides, so trimming is seen); for such a template the prompt is rendered with the real text and
refused (``ConfigError``) when any message or the prefill holds special-token text, else
tokenized as before. A transformation that depends on the text itself and leaves the
placeholder alone (Qwen3's template splitting an assistant message on ``</think>``) is not
seen: such a message goes in whole. Tokens llama.cpp marks USER_DEFINED are matched by llama.cpp even
with ``special=False`` (none in the packaged SmolLM2, whose specials are all CONTROL). Roles
are written into the template by it; they are a closed set checked by ``types.Message``.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Sequence

from ..errors import ConfigError
from .reasoning import CLOSE, OPEN

Segment = tuple[str, bool]  # (text, from the template: may hold special tokens)


class Specials:
    """The texts llama.cpp splits out as special tokens (as ``tokenizer_st_partition`` does:
    control, user-defined and unknown tokens), with their ids and one pattern matching them."""

    def __init__(self, ll, vocab, n_vocab: int, text_of: Callable[[int], str]):
        mask = ll.LLAMA_TOKEN_ATTR_CONTROL | ll.LLAMA_TOKEN_ATTR_USER_DEFINED | ll.LLAMA_TOKEN_ATTR_UNKNOWN
        self.ids: dict[str, int] = {}
        for tok in range(n_vocab):
            if ll.llama_vocab_get_attr(vocab, tok) & mask:
                text = text_of(tok)
                if text:
                    self.ids.setdefault(text, tok)
        alts = sorted(self.ids, key=len, reverse=True)  # longest first, as llama.cpp matches
        self.pattern = re.compile("(" + "|".join(map(re.escape, alts)) + ")") if alts else None


def prompt_ids(render: Callable[[list[dict]], str], messages: Sequence[tuple[str, str]], prefill: str | None,
               specials: Specials, tokenize: Callable[[str], list[int]],
               bos: tuple[int, str] | None = None) -> list[int]:
    """The prompt's ids: ``render`` applies the chat template to ``[{"role", "content"}]``;
    ``tokenize`` reads text without special tokens; ``bos`` (id, text) is put first unless the
    template wrote it."""
    segs = segments(render, messages, prefill)
    if segs is None:  # a template that transforms message text
        check_plain([*messages, *([("assistant prefill", strip_markers(prefill))] if prefill else [])], specials)
        segs = [(render([{"role": r, "content": c} for r, c in messages]) + (prefill or ""), True)]
    ids = tokens(segs, specials, tokenize)
    if bos and not (bos[1] and "".join(t for t, _ in segs).startswith(bos[1])):
        ids = [bos[0], *ids]
    return ids


def segments(render: Callable[[list[dict]], str], messages: Sequence[tuple[str, str]],
             prefill: str | None) -> list[Segment] | None:
    """The prompt as template and content pieces, or None when the template does not keep each
    placeholder exactly once and in order (it transforms message text)."""
    nonce = secrets.token_hex(8)
    # Whitespace around each placeholder: a template that trims message text (Llama 3, Gemma)
    # drops it, the placeholder is then not found whole, and the fallback path is taken.
    marks = [f" \n\ue000{nonce}:{i}\ue001\n " for i in range(len(messages))]
    text = render([{"role": role, "content": mark} for (role, _), mark in zip(messages, marks)])
    out: list[Segment] = []
    pos = 0
    for (_, content), mark in zip(messages, marks):
        at = text.find(mark, pos)
        if at < 0 or text.count(mark) != 1:
            return None
        out += [(text[pos:at], True), (content, False)]
        pos = at + len(mark)
    out.append((text[pos:], True))
    if prefill:
        for i, piece in enumerate(re.split(f"({re.escape(OPEN)}|{re.escape(CLOSE)})", prefill)):
            out.append((piece, i % 2 == 1))
    return [s for s in out if s[0]]


def tokens(segs: Sequence[Segment], specials: Specials, tokenize: Callable[[str], list[int]]) -> list[int]:
    """Token ids of the pieces: special-token texts of trusted pieces as their ids, every run
    of text between them tokenized in one piece without special tokens."""
    pattern = specials.pattern
    out: list[int] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            out.extend(tokenize("".join(run)))
            run.clear()

    for text, trusted in segs:
        if not trusted or pattern is None:
            run.append(text)
            continue
        for i, part in enumerate(pattern.split(text)):
            if i % 2 == 1:
                flush()
                out.append(specials.ids[part])
            elif part:
                run.append(part)
    flush()
    return out


def strip_markers(text: str) -> str:
    """``text`` without the reasoning markers a mode writes into a prefill itself."""
    return text.replace(OPEN, "").replace(CLOSE, "")


def check_plain(messages: Sequence[tuple[str, str]], specials: Specials) -> None:
    """For templates that transform message text: refuse text holding a special token's text."""
    pattern = specials.pattern
    for n, (role, content) in enumerate(messages, 1):
        m = pattern.search(content) if pattern else None
        if m:
            raise ConfigError(f"message {n} ({role}) holds the special token {m.group(0)!r}, and this "
                              "model's chat template changes message text, so it cannot be kept apart")
