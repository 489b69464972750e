"""The ``transformers`` backend: the async side of a version served by a batching worker."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from modelcycle.backends.base import Chunk, Completion, GenerationParams, Message, ResidentModel
from modelcycle.backends.hf.batching import Batcher, Loader
from modelcycle.backends.hf.loading import ModelKey, check_dtype, load
from modelcycle.backends.hf.rows import Request, Sink
from modelcycle.errors import InvalidInput, ModelcycleError

KIND = "transformers"
DEFAULT_MAX_BATCH_SIZE = 8
DEFAULT_BATCH_WAIT_MS = 10.0


class Models:
    """The models of one process, each loaded once per (source, adapter, dtype).

    ``loader`` loads a model on its worker thread (tests wrap the default to observe it).
    """

    def __init__(self, cache_dir: Path | None = None, *, loader: Loader = load):
        self.cache_dir = cache_dir
        self._loader = loader
        self._lock = threading.Lock()
        self._batchers: dict[ModelKey, Batcher] = {}

    def get(self, key: ModelKey) -> Batcher:
        """The batcher of ``key``, created once (its model loads on the first request)."""
        with self._lock:
            batcher = self._batchers.get(key)
            if batcher is None:
                batcher = self._batchers[key] = Batcher(key, self.cache_dir, self._loader)
            return batcher

    def batchers(self) -> list[Batcher]:
        """The batchers created so far (each serves one model)."""
        with self._lock:
            return list(self._batchers.values())

    def loaded(self) -> list[ResidentModel]:
        """The models in memory now, with their parameters' size."""
        return [
            ResidentModel("transformers", batcher.key.source, batcher.loaded_bytes)
            for batcher in self.batchers()
            if batcher.loaded_bytes is not None
        ]

    def close(self) -> None:
        """Free every model once its queued requests are served."""
        with self._lock:
            batchers, self._batchers = list(self._batchers.values()), {}
        for batcher in batchers:
            batcher.close()


class TransformersBackend:
    """A version served by transformers, batched with every version on the same model.

    Version params:
        adapter: a PEFT LoRA adapter directory, merged into the weights at load.
        dtype: ``float32`` (default), ``bfloat16`` or ``float16``.
        max_batch_size: most requests generated together (default 8).
        batch_wait_ms: how long the first request of a batch waits for others (default 10).
        context_length: prompt plus answer, in tokens (default: the model's maximum).
        prompt_format, prompt_template, stop: see ``modelcycle.backends.prompting``;
            a chat request uses the tokenizer's chat template when it has one and
            the version does not ask for ``prompt_format: completion``.
        max_tokens, temperature, top_p, seed: sampling defaults.
    """

    def __init__(self, models: Models, source: str, params: Mapping[str, Any]):
        problems = check_params(params)
        if problems:
            raise InvalidInput("; ".join(problems), param="params")
        self._params = dict(params)
        adapter = params.get("adapter")
        key = ModelKey(source, str(adapter) if adapter else None, check_dtype(params.get("dtype")))
        self._max_batch = int(params.get("max_batch_size", DEFAULT_MAX_BATCH_SIZE))
        self._wait_s = float(params.get("batch_wait_ms", DEFAULT_BATCH_WAIT_MS)) / 1000
        context = params.get("context_length")
        self._context = int(context) if context is not None else None
        self.batcher = models.get(key)

    # -- Backend ---------------------------------------------------------------------

    async def chat(self, messages: Sequence[Message], params: GenerationParams) -> Completion:
        """Answer a conversation."""
        return await self._whole(None, tuple(messages), params)

    async def complete(self, prompt: str, params: GenerationParams) -> Completion:
        """Continue a prompt."""
        return await self._whole(prompt, None, params)

    def stream_chat(
        self, messages: Sequence[Message], params: GenerationParams
    ) -> AsyncIterator[Chunk]:
        """Stream an answer to a conversation."""
        return self._stream(None, tuple(messages), params)

    def stream_complete(self, prompt: str, params: GenerationParams) -> AsyncIterator[Chunk]:
        """Stream the continuation of a prompt."""
        return self._stream(prompt, None, params)

    async def close(self) -> None:
        """Models are shared between versions; ``Models.close`` frees them."""

    # -- internals -------------------------------------------------------------------

    def _submit(
        self,
        prompt: str | None,
        messages: tuple[Message, ...] | None,
        params: GenerationParams,
        stream: bool,
    ) -> tuple[Request, asyncio.Queue[Chunk | ModelcycleError]]:
        queue: asyncio.Queue[Chunk | ModelcycleError] = asyncio.Queue()
        cancel = threading.Event()
        request = Request(
            prompt=prompt,
            messages=messages,
            params=params,
            version=self._params,
            stream=stream,
            max_batch_size=self._max_batch,
            batch_wait_s=self._wait_s,
            context_length=self._context,
            sink=Sink(asyncio.get_running_loop(), queue, cancel),
            cancel=cancel,
        )
        self.batcher.submit(request)
        return request, queue

    async def _whole(
        self, prompt: str | None, messages: tuple[Message, ...] | None, params: GenerationParams
    ) -> Completion:
        request, queue = self._submit(prompt, messages, params, stream=False)
        try:
            item = await queue.get()
        finally:
            request.cancel.set()  # a caller that gave up (timeout, disconnect) frees the row
        if isinstance(item, ModelcycleError):
            raise item
        assert item.finish_reason is not None  # the worker sends whole answers as one last chunk
        assert item.usage is not None
        return Completion(item.text, item.finish_reason, item.usage)

    async def _stream(
        self, prompt: str | None, messages: tuple[Message, ...] | None, params: GenerationParams
    ) -> AsyncIterator[Chunk]:
        request, queue = self._submit(prompt, messages, params, stream=True)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, ModelcycleError):
                    raise item
                yield item
                if item.finish_reason is not None:
                    return
        finally:
            request.cancel.set()


def check_params(params: Mapping[str, Any]) -> list[str]:
    """What is wrong with the serving params of a ``transformers`` version (one per problem)."""
    problems: list[str] = []
    try:
        check_dtype(params.get("dtype"))
    except InvalidInput as exc:
        problems.append(f"params.{exc.message}")
    adapter = params.get("adapter")
    if adapter is not None and not (isinstance(adapter, str) and adapter):
        problems.append("params.adapter must be the path of a PEFT LoRA adapter directory")
    for name, minimum, integer in (
        ("max_batch_size", 1, True),
        ("batch_wait_ms", 0, False),
        ("context_length", 1, True),
    ):
        value = params.get(name)
        if value is None:
            continue
        wrong_type = isinstance(value, bool) or not isinstance(
            value, int if integer else int | float
        )
        if wrong_type or value < minimum:
            kind = "an integer" if integer else "a number"
            problems.append(f"params.{name} must be {kind} >= {minimum}, not {value!r}")
    return problems


def check_version(backend: str, params: Mapping[str, Any]) -> list[str]:
    """Problems of a version about to be registered (kind ``transformers`` only)."""
    return check_params(params) if backend == KIND else []


def make_factory(models: Models) -> Callable[[str, Mapping[str, Any]], TransformersBackend]:
    """The factory of kind ``transformers``, sharing ``models`` between versions."""

    def factory(source: str, params: Mapping[str, Any]) -> TransformersBackend:
        return TransformersBackend(models, source, params)

    return factory
