"""The ``minilm`` safety classifier's encoder at run time: the fine-tuned all-MiniLM-L6-v2
(``safety/data/encoder.gguf``, 25 MB, Q8_0; built by ``muse safety train --encoder minilm``, ``finetune.py``) run
by llama.cpp — the engine the project already ships — with mean pooling. The pieces of one
request are embedded in one batch, one sequence each.

The weights load with the same choice of llama.cpp's extra buffer types as the chat engine
(``engines/cpu.py``: off where a build feature is known to crash in them), so the encoder runs
wherever the engine does.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigError

MAX_TOKENS = 128  # a piece longer than this is cut (the layer's pieces stay under 80 tokens in all)
MAX_SEQS = 8  # pieces embedded in one batch


class Encoder:
    """Mean-pooled embeddings of the fine-tuned encoder; loaded once per file and process, thread-safe."""

    _lock = threading.Lock()
    _loaded: ClassVar[dict[str, tuple[Any, Any, Any]]] = {}
    CACHE = 256  # a conversation's earlier turns come back each turn

    def __init__(self, path: Path, threads: int | None = None):
        self.path = Path(path)
        self.threads = threads or max(1, min(2, os.cpu_count() or 1))
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def _load(self) -> tuple[Any, Any, Any]:
        key = str(self.path.resolve())
        if key in Encoder._loaded:
            return Encoder._loaded[key]
        if not self.path.is_file():
            raise ConfigError(f"no safety encoder at {self.path}: run `muse safety train --encoder minilm`")
        import llama_cpp
        import llama_cpp._logger
        from llama_cpp._internals import LlamaBatch, LlamaContext, LlamaModel

        from ..engines import cpu

        llama_cpp._logger.set_verbose(False)
        llama_cpp.llama_backend_init()
        buffers = cpu.choose_extra_buffers("auto", cpu.system_info())
        try:
            with cpu.captured_llama_log():
                model = LlamaModel(path_model=str(self.path), params=cpu.model_params(buffers), verbose=False)
        except ValueError as e:
            raise ConfigError(f"the safety encoder at {self.path} cannot be loaded: "
                              "run `muse safety train --encoder minilm`") from e
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = params.n_batch = params.n_ubatch = MAX_TOKENS * MAX_SEQS
        params.n_seq_max = MAX_SEQS
        params.n_threads = params.n_threads_batch = self.threads
        params.embeddings = True
        params.pooling_type = llama_cpp.LLAMA_POOLING_TYPE_MEAN
        with cpu.captured_llama_log():
            ctx = LlamaContext(model=model, params=params, verbose=False)
        batch = LlamaBatch(n_tokens=MAX_TOKENS * MAX_SEQS, embd=0, n_seq_max=MAX_SEQS, verbose=False)
        Encoder._loaded[key] = (model, ctx, batch)
        return Encoder._loaded[key]

    def _ids(self, model: Any, text: str) -> list[int]:
        ids = model.tokenize(text.encode("utf-8"), add_bos=True, special=False)
        return ids if len(ids) <= MAX_TOKENS else ids[:MAX_TOKENS - 1] + ids[-1:]

    def tokens(self, text: str) -> int:
        """How many tokens the encoder reads for ``text`` (the time of an embedding grows with it)."""
        with Encoder._lock:
            return len(self._ids(self._load()[0], text))

    def embed(self, texts: list[str]) -> np.ndarray:
        """One row per text (mean-pooled, not normalised: the head was trained on these); recent
        texts come from a cache."""
        import llama_cpp

        with Encoder._lock:  # one context: one batch at a time
            model, ctx, batch = self._load()
            found = {t: self._cache[t] for t in texts if t in self._cache}
            todo = [t for t in dict.fromkeys(texts) if t not in found]
            n = model.n_embd()
            for i in range(0, len(todo), MAX_SEQS):
                group = todo[i:i + MAX_SEQS]
                batch.reset()
                for s, t in enumerate(group):
                    batch.add_sequence(self._ids(model, t), s, True)  # every token pooled
                ctx.kv_cache_clear()
                ctx.decode(batch)
                for s, t in enumerate(group):
                    found[t] = np.ctypeslib.as_array(llama_cpp.llama_get_embeddings_seq(ctx.ctx, s), (n,)).copy()
            for t in dict.fromkeys(texts):
                self._cache[t] = found[t]
                self._cache.move_to_end(t)
            while len(self._cache) > self.CACHE:
                self._cache.popitem(last=False)
            return np.stack([found[t] for t in texts]).astype(np.float32) if texts else np.zeros((0, n), np.float32)
