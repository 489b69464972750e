"""Local GGUF models through llama-cpp-python.

A ``Llama`` object is not thread-safe, so each loaded model (an ``Engine``,
shared by every version with the same file and context size) owns one worker
thread: calls queue on it in arrival order and never run on the event loop.
Streams bridge the worker's generator to the loop through an ``asyncio.Queue``;
a consumer that stops reading (a client gone, a timeout) sets a flag that the
engine checks after every token, so the worker moves on to the next request.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from modelcycle.backends.base import (
    Chunk,
    Completion,
    GenerationParams,
    Message,
    Usage,
    merge_params,
)
from modelcycle.backends.prompting import render_chat, uses_template
from modelcycle.errors import InvalidInput, MissingExtra, ModelcycleError, UpstreamError

T = TypeVar("T")

DEFAULT_CONTEXT = 2048
DEFAULT_TEMPERATURE = 1.0
DEFAULT_TOP_P = 1.0


class Engine:
    """One loaded GGUF file and the single thread allowed to touch it."""

    def __init__(self, source: str, n_ctx: int, n_threads: int | None):
        self.source, self.n_ctx, self.n_threads = source, n_ctx, n_threads
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="llamacpp")
        self._llm: Any = None

    def llm(self) -> Any:
        """The ``Llama`` object, loaded on first use; call it on the engine's thread only."""
        if self._llm is None:
            try:
                from llama_cpp import Llama
            except ImportError as exc:
                raise MissingExtra("llama-cpp-python", "local") from exc
            if not Path(self.source).is_file():
                raise UpstreamError(f"cannot load GGUF model {self.source}: no such file")
            try:
                self._llm = Llama(
                    model_path=self.source,
                    n_ctx=self.n_ctx,
                    n_threads=self.n_threads,
                    verbose=False,
                )
            except (ValueError, OSError, RuntimeError) as exc:
                raise UpstreamError(f"cannot load GGUF model {self.source}: {exc}") from exc
        return self._llm

    async def run(self, work: Callable[[], T]) -> T:
        """Run ``work`` on the engine's thread, after the calls queued before it."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    def close(self) -> None:
        """Free the model once the queued calls are done, then stop the thread."""
        self._executor.submit(self._free)
        self._executor.shutdown(wait=False)

    def _free(self) -> None:
        llm, self._llm = self._llm, None
        if llm is not None:
            llm.close()


class Engines:
    """Loaded models of one process, keyed by (file, context size, threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._engines: dict[tuple[str, int, int | None], Engine] = {}

    def get(self, source: str, n_ctx: int, n_threads: int | None) -> Engine:
        """The engine for this file and settings, created once."""
        key = (source, n_ctx, n_threads)
        with self._lock:
            engine = self._engines.get(key)
            if engine is None:
                engine = self._engines[key] = Engine(source, n_ctx, n_threads)
            return engine

    def close(self) -> None:
        """Close every engine."""
        with self._lock:
            engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            engine.close()


@dataclass(frozen=True, slots=True)
class _Job:
    prompt: str | None
    messages: list[dict[str, str]] | None
    params: GenerationParams
    strip_leading: bool = False
    """Drop the whitespace a template's ``Answer:`` leaves before the answer."""


class LlamaCppBackend:
    """A version served by llama.cpp; see the module docstring for threading.

    Version params used: ``context_length`` (``n_ctx``, default 2048),
    ``n_threads``, ``prompt_format``/``prompt_template``/``stop`` (see
    ``modelcycle.backends.prompting``) and the sampling defaults ``max_tokens``,
    ``temperature``, ``top_p``, ``seed``.
    """

    def __init__(self, engines: Engines, source: str, params: Mapping[str, Any]):
        self._params = dict(params)
        n_ctx = int(self._params.get("context_length") or DEFAULT_CONTEXT)
        threads = self._params.get("n_threads")
        self._engine = engines.get(source, n_ctx, int(threads) if threads else None)

    # -- Backend ---------------------------------------------------------------------

    async def chat(self, messages: Sequence[Message], params: GenerationParams) -> Completion:
        """Answer a conversation (rendered into the template for base models)."""
        return await self._whole(self._chat_job(messages, params))

    async def complete(self, prompt: str, params: GenerationParams) -> Completion:
        """Continue a prompt."""
        return await self._whole(_Job(prompt, None, merge_params(self._params, params)))

    def stream_chat(
        self, messages: Sequence[Message], params: GenerationParams
    ) -> AsyncIterator[Chunk]:
        """Stream an answer to a conversation."""
        return self._stream(self._chat_job(messages, params))

    def stream_complete(self, prompt: str, params: GenerationParams) -> AsyncIterator[Chunk]:
        """Stream the continuation of a prompt."""
        return self._stream(_Job(prompt, None, merge_params(self._params, params)))

    async def close(self) -> None:
        """Engines are shared between versions; ``Engines.close`` frees them."""

    # -- internals -------------------------------------------------------------------

    def _chat_job(self, messages: Sequence[Message], params: GenerationParams) -> _Job:
        if uses_template(self._params):
            prompt, rendered = render_chat(messages, self._params, params)
            return _Job(prompt, None, merge_params(self._params, rendered), strip_leading=True)
        chat = [{"role": m.role, "content": m.content} for m in messages]
        return _Job(None, chat, merge_params(self._params, params))

    async def _whole(self, job: _Job) -> Completion:
        cancel = threading.Event()
        try:
            return await self._engine.run(lambda: _generate(self._engine.llm(), job, cancel))
        finally:
            cancel.set()

    async def _stream(self, job: _Job) -> AsyncIterator[Chunk]:
        queue: asyncio.Queue[Chunk | BaseException] = asyncio.Queue()
        cancel = threading.Event()
        produce = _producer(self._engine, job, asyncio.get_running_loop(), queue, cancel)
        task = asyncio.ensure_future(self._engine.run(produce))
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise _as_error(item) from item
                yield item
                if item.finish_reason is not None:
                    return
        finally:
            cancel.set()
            if task.done() and not task.cancelled():
                task.exception()  # consumed: errors were delivered through the queue


def _producer(
    engine: Engine,
    job: _Job,
    loop: asyncio.AbstractEventLoop,
    queue: asyncio.Queue[Chunk | BaseException],
    cancel: threading.Event,
) -> Callable[[], None]:
    """The worker-thread side of a stream: hands each chunk (or the error) to the loop."""

    def put(item: Chunk | BaseException) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is reading any more
            cancel.set()

    def produce() -> None:
        try:
            for chunk in _pieces(engine.llm(), job, cancel):
                if cancel.is_set():
                    return
                put(chunk)
        except BaseException as exc:  # handed to the reader, re-raised there
            put(exc)

    return produce


def _sampling(llm: Any, job: _Job, cancel: threading.Event, counter: list[int]) -> dict[str, Any]:
    def stop_when_cancelled(_ids: Any, _logits: Any) -> bool:
        counter[0] += 1
        return cancel.is_set()

    params = job.params
    return {
        "max_tokens": params.max_tokens,
        "temperature": DEFAULT_TEMPERATURE if params.temperature is None else params.temperature,
        "top_p": DEFAULT_TOP_P if params.top_p is None else params.top_p,
        "stop": list(params.stop) if params.stop else None,
        # llama.cpp seeds are 32-bit; OpenAI allows 64-bit ones.
        "seed": None if params.seed is None else params.seed & 0xFFFFFFFF,
        "stopping_criteria": stop_when_cancelled,
    }


def _generate(llm: Any, job: _Job, cancel: threading.Event) -> Completion:
    counter = [0]
    try:
        if job.prompt is not None:
            out = llm.create_completion(job.prompt, **_sampling(llm, job, cancel, counter))
            text = out["choices"][0]["text"]
        else:
            kwargs = _sampling(llm, job, cancel, counter)
            kwargs.pop("stopping_criteria")  # not accepted by the chat API
            out = llm.create_chat_completion(messages=job.messages, **kwargs)
            text = out["choices"][0]["message"]["content"] or ""
    except ValueError as exc:
        raise _as_error(exc) from exc
    usage = out.get("usage") or {}
    return Completion(
        text=text.lstrip() if job.strip_leading else text,
        finish_reason=out["choices"][0].get("finish_reason") or "stop",
        usage=Usage(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))),
    )


def _pieces(llm: Any, job: _Job, cancel: threading.Event) -> Iterator[Chunk]:
    counter = [0]
    kwargs = _sampling(llm, job, cancel, counter)
    if job.prompt is not None:
        prompt_tokens = len(llm.tokenize(job.prompt.encode("utf-8"), special=True))
        parts = llm.create_completion(job.prompt, stream=True, **kwargs)
        texts = ((p["choices"][0]["text"], p["choices"][0]["finish_reason"]) for p in parts)
    else:
        kwargs.pop("stopping_criteria")
        prompt_tokens = 0
        parts = llm.create_chat_completion(messages=job.messages, stream=True, **kwargs)
        texts = (
            (p["choices"][0]["delta"].get("content") or "", p["choices"][0]["finish_reason"])
            for p in parts
        )
    finish: str | None = None
    leading = job.strip_leading
    for text, reason in texts:
        finish = reason or finish
        if leading and text:
            text = text.lstrip()
            leading = not text
        if text:
            yield Chunk(text)
    # The stopping criterion runs once per sampled token: a cheap, exact count.
    yield Chunk("", finish or "stop", Usage(prompt_tokens, counter[0]))


def _as_error(exc: BaseException) -> ModelcycleError:
    if isinstance(exc, ModelcycleError):
        return exc
    message = str(exc)
    if isinstance(exc, ValueError) and "context window" in message:
        return InvalidInput(message, param="messages", code="context_length_exceeded")
    return UpstreamError(f"llama.cpp failed: {type(exc).__name__}: {message}")


def make_factory(engines: Engines) -> Callable[[str, Mapping[str, Any]], LlamaCppBackend]:
    """The factory of kind ``llamacpp``, sharing ``engines`` between versions."""

    def factory(source: str, params: Mapping[str, Any]) -> LlamaCppBackend:
        return LlamaCppBackend(engines, source, params)

    return factory
