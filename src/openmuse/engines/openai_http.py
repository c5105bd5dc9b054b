"""Any OpenAI-compatible endpoint: vLLM, SGLang, llama-server, Ollama, llama-cpp-python's server.

This is how OpenMuse goes past one machine: run vLLM or SGLang with tensor/pipeline parallelism
and point ``--base-url`` at it. ``generate_many`` sends its requests concurrently; the server
batches them and shares the common prefix in its own cache.

Reasoning may come back as ``reasoning_content`` (vLLM, SGLang), ``reasoning`` (Ollama, newer
vLLM) or inside ``<think>…</think>`` in the content; all three are separated from the answer.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai

from ..errors import EngineUnavailable, ModelNotFound
from ..types import Capabilities, ChatRequest, Completion, Delta, Message, TokenLogprob, ToolCall, Usage
from ..functions import prompt as fn_prompt
from .base import Engine, EngineSettings, OnDelta
from .control import RequestControl
from .reasoning import ThinkSplitter

_REASONING_FIELDS = ("reasoning_content", "reasoning")


def wire(m: Message) -> dict[str, Any]:
    """A message in OpenAI's wire shape (name, tool calls and tool_call_id only where set)."""
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.name:
        out["name"] = m.name
    if m.tool_calls:
        out["tool_calls"] = [c.to_openai() for c in m.tool_calls]
        out["content"] = m.content or None
    if m.tool_call_id:
        out["tool_call_id"] = m.tool_call_id
    return out


def _logprobs(content: Any) -> list[TokenLogprob]:
    return [TokenLogprob(token=t.token, logprob=t.logprob, bytes=t.bytes,
                         top=[(x.token, x.logprob) for x in (t.top_logprobs or [])]) for t in content or []]


def _field(obj: Any, name: str) -> Any:
    value = getattr(obj, name, None)
    if value is None and getattr(obj, "model_extra", None):
        value = obj.model_extra.get(name)
    return value


class OpenAIEngine(Engine):
    name = "openai"

    def __init__(self, settings: EngineSettings):
        if not settings.base_url:
            raise EngineUnavailable("the openai engine needs --base-url (e.g. http://localhost:8000/v1)")
        self.settings = settings
        self.base_url = settings.base_url.rstrip("/")
        self._client = openai.OpenAI(
            base_url=self.base_url,
            api_key=settings.api_key or "not-needed",
            timeout=settings.timeout_s,
            max_retries=1,
        )
        self._model = settings.model

    # -- contract ---------------------------------------------------------------------------
    @property
    def model(self) -> str:
        if self._model is None:
            self._model = self._first_model()
        return self._model

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            input_modalities=self.settings.modalities,
            logprobs=True,
            parallel_sequences=64,
            assistant_prefill=self.settings.prefill != "no",
            native_reasoning=self.settings.reasoning == "native",
        )

    def generate_many(
        self, requests: Sequence[ChatRequest], on_delta: OnDelta | None = None,
        control: RequestControl | None = None,
    ) -> list[Completion]:
        if control is not None:
            control.check()
        if len(requests) == 1 and on_delta is None and control is None:
            return [self._generate_one(requests[0])]

        def run(i: int) -> Completion:
            result = None
            for item in self.stream(requests[i], control=control, index=i):
                if isinstance(item, Delta):
                    if on_delta:
                        on_delta(item)
                else:
                    result = item
            assert result is not None
            return result

        with ThreadPoolExecutor(max_workers=min(len(requests), 64)) as pool:
            return list(pool.map(run, range(len(requests))))

    def stream(self, request: ChatRequest, control: RequestControl | None = None,
               index: int = 0) -> Iterator[Delta | Completion]:
        t0 = time.perf_counter()
        kwargs = self._kwargs(request)
        kwargs["stream"] = True
        kwargs["stream_options"] = {"include_usage": True}
        splitter = ThinkSplitter(index=index)
        usage_obj = None
        finish = "stop"
        first_token_s = None
        pieces = 0  # content chunks: the token count when the server reports no usage
        logprobs: list[float] = []
        tops: list[TokenLogprob] = []
        calls: dict[int, dict[str, str]] = {}  # streamed tool-call pieces by their index
        with self._errors():
            response = self._client.chat.completions.create(**kwargs)
            for chunk in response:
                if control is not None and control.cancelled:
                    response.close()  # the server sees the connection go and stops decoding
                    control.check()
                if chunk.usage is not None:
                    usage_obj = chunk.usage
                for choice in chunk.choices or []:
                    if first_token_s is None:
                        first_token_s = time.perf_counter() - t0
                    if choice.finish_reason:
                        finish = choice.finish_reason
                    if choice.logprobs and choice.logprobs.content:
                        logprobs.extend(t.logprob for t in choice.logprobs.content)
                        tops.extend(_logprobs(choice.logprobs.content))
                    for tc in choice.delta.tool_calls or []:
                        acc = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                        acc["id"] = tc.id or acc["id"]
                        if tc.function is not None:
                            acc["name"] += tc.function.name or ""
                            acc["arguments"] += tc.function.arguments or ""
                    for name in _REASONING_FIELDS:
                        r = _field(choice.delta, name)
                        if r:
                            pieces += 1
                            splitter.reasoning += r
                            yield Delta(kind="reasoning", text=r, index=index)
                    if choice.delta.content:
                        pieces += 1
                        yield from splitter.feed(choice.delta.content)
        yield from splitter.close()
        c = self._completion(
            request, splitter.reasoning, splitter.answer, finish, usage_obj,
            logprobs if request.logprobs else None, t0, first_token_s, pieces,
        )
        tool_calls = [ToolCall(id=a["id"] or fn_prompt.call_id(), name=a["name"], arguments=a["arguments"] or "{}")
                      for _, a in sorted(calls.items())]
        yield c.model_copy(update={"tool_calls": tool_calls, "logprobs": tops if request.logprobs else None,
                                   "finish_reason": "tool_calls" if tool_calls else c.finish_reason})

    # -- helpers ----------------------------------------------------------------------------
    def _generate_one(self, request: ChatRequest) -> Completion:
        t0 = time.perf_counter()
        with self._errors():
            resp = self._client.chat.completions.create(**self._kwargs(request))
        choice = resp.choices[0]
        reasoning = ""
        for name in _REASONING_FIELDS:
            reasoning += _field(choice.message, name) or ""
        splitter = ThinkSplitter()
        for _ in splitter.feed(choice.message.content or ""):
            pass
        for _ in splitter.close():
            pass
        logprobs = None
        if request.logprobs and choice.logprobs and choice.logprobs.content:
            logprobs = [t.logprob for t in choice.logprobs.content]
        c = self._completion(
            request, reasoning + splitter.reasoning, splitter.answer,
            choice.finish_reason or "stop", resp.usage, logprobs, t0, None,
        )
        tool_calls = [ToolCall(id=t.id or fn_prompt.call_id(), name=t.function.name, arguments=t.function.arguments)
                      for t in choice.message.tool_calls or [] if getattr(t, "function", None) is not None]
        return c.model_copy(update={
            "tool_calls": tool_calls, "finish_reason": "tool_calls" if tool_calls else c.finish_reason,
            "logprobs": _logprobs(choice.logprobs.content) if request.logprobs and choice.logprobs else None})

    def _kwargs(self, request: ChatRequest) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": [wire(m) for m in request.messages],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
        }
        extra: dict[str, Any] = {}
        if request.seed is not None:
            kwargs["seed"] = request.seed
        if request.stop:
            kwargs["stop"] = list(request.stop)
        if request.logprobs:
            kwargs["logprobs"] = True
            if request.top_logprobs:
                kwargs["top_logprobs"] = request.top_logprobs
        if request.tools:  # the server applies its chat template's own tool format
            kwargs["tools"] = list(request.tools)
            kwargs["tool_choice"] = request.tool_choice or "auto"
            kwargs["parallel_tool_calls"] = request.parallel_tool_calls
        if request.response_format is not None:
            kwargs["response_format"] = request.response_format
        if request.top_k:
            extra["top_k"] = request.top_k
        if request.ignore_eos:
            extra["ignore_eos"] = True
        if request.prefill is not None:
            # vLLM / SGLang spelling; llama-server continues a final assistant message by itself.
            extra["continue_final_message"] = True
            extra["add_generation_prompt"] = False
        if extra:
            kwargs["extra_body"] = extra
        return kwargs

    def _completion(self, request, reasoning, answer, finish, usage_obj, logprobs, t0, ttft, pieces=0):
        wall = time.perf_counter() - t0
        usage = Usage()
        estimated = r_estimated = False
        if usage_obj is None and pieces:
            # Some servers (llama-cpp-python's) send no usage when streaming: they send one
            # token a chunk, so the chunks are the count; the prompt is not counted.
            usage_obj = openai.types.CompletionUsage(
                prompt_tokens=0, completion_tokens=pieces, total_tokens=pieces
            )
            estimated = True
        if usage_obj is not None:
            details = getattr(usage_obj, "completion_tokens_details", None)
            r_tokens = getattr(details, "reasoning_tokens", None) if details else None
            if r_tokens is None and reasoning:
                # The server did not count them: share completion tokens out by characters.
                total_chars = len(reasoning) + len(answer)
                r_tokens = round(usage_obj.completion_tokens * len(reasoning) / max(total_chars, 1))
                r_estimated = True
            usage = Usage(
                prompt_tokens=usage_obj.prompt_tokens,
                completion_tokens=usage_obj.completion_tokens,
                reasoning_tokens=r_tokens or 0,
                estimated=estimated,
                reasoning_estimated=r_estimated,
            )
        timings = {"wall_s": wall}
        if ttft is not None:
            timings["first_token_s"] = ttft
        return Completion(
            text=answer.strip() if reasoning else answer,
            reasoning=reasoning.strip(),
            finish_reason="length" if finish == "length" else "stop",
            usage=usage,
            model=self.model,
            timings=timings,
            token_logprobs=logprobs,
        )

    def _first_model(self) -> str:
        with self._errors():
            models = self._client.models.list().data
        if not models:
            raise ModelNotFound(f"{self.base_url} serves no models; pass --model")
        return models[0].id

    def list_models(self) -> list[str]:
        with self._errors():
            return [m.id for m in self._client.models.list().data]

    def _errors(self):
        return _translate_errors(self.base_url)


class _translate_errors:
    """Turn the client's exceptions into one-line OpenMuse errors."""

    def __init__(self, base_url: str):
        self.base_url = base_url

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None:
            return False
        if isinstance(exc, openai.APITimeoutError):
            raise EngineUnavailable(f"{self.base_url} timed out") from None
        if isinstance(exc, openai.APIConnectionError):
            raise EngineUnavailable(f"cannot reach the engine at {self.base_url}") from None
        if isinstance(exc, openai.NotFoundError):
            raise ModelNotFound(f"{self.base_url}: {_message(exc)}") from None
        if isinstance(exc, openai.APIStatusError):
            raise EngineUnavailable(
                f"{self.base_url} answered {exc.status_code}: {_message(exc)}"
            ) from None
        return False


def _message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"]).splitlines()[0]
    return str(exc).splitlines()[0]
