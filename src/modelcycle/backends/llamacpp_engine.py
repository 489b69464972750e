"""Loaded llama.cpp models: one ``Engine`` per (file, context size, threads, role).

A ``Llama`` object is not thread-safe, so each engine owns one worker thread:
calls queue on it in arrival order and never run on the event loop. An engine
loads its model on the first call; an embedding engine (``embedding=True``) is a
second ``Llama`` of the same file, built to pool hidden states.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from modelcycle.backends.base import ResidentModel
from modelcycle.errors import MissingExtra, UpstreamError

T = TypeVar("T")


class Engine:
    """One loaded GGUF file and the single thread allowed to touch it."""

    def __init__(
        self,
        source: str,
        n_ctx: int,
        n_threads: int | None,
        *,
        embedding: bool = False,
        pooling: str | None = None,
    ):
        self.source, self.n_ctx, self.n_threads = source, n_ctx, n_threads
        self.embedding, self.pooling = embedding, pooling
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
                if self.embedding:
                    from modelcycle.backends import llamacpp_embed

                    self._llm = llamacpp_embed.load(
                        self.source, self.n_ctx, self.n_threads, self.pooling
                    )
                else:
                    self._llm = Llama(
                        model_path=self.source,
                        n_ctx=self.n_ctx,
                        n_threads=self.n_threads,
                        verbose=False,
                    )
            except (ValueError, OSError, RuntimeError) as exc:
                raise UpstreamError(f"cannot load GGUF model {self.source}: {exc}") from exc
        return self._llm

    @property
    def is_loaded(self) -> bool:
        """Whether the model is in memory now."""
        return self._llm is not None

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
    """Loaded models of one process, keyed by file, context size, threads and role."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._engines: dict[tuple[str, int, int | None, bool, str | None], Engine] = {}

    def get(
        self,
        source: str,
        n_ctx: int,
        n_threads: int | None,
        *,
        embedding: bool = False,
        pooling: str | None = None,
    ) -> Engine:
        """The engine for this file and settings, created once (loaded on first use)."""
        key = (source, n_ctx, n_threads, embedding, pooling if embedding else None)
        with self._lock:
            engine = self._engines.get(key)
            if engine is None:
                engine = Engine(source, n_ctx, n_threads, embedding=embedding, pooling=pooling)
                self._engines[key] = engine
            return engine

    def loaded(self) -> list[ResidentModel]:
        """Each GGUF file in memory once, sized as the file (its weights are mapped from it).

        Engines of the same file (generation, embeddings) share those pages.
        """
        with self._lock:
            sources = sorted({e.source for e in self._engines.values() if e.is_loaded})
        found = []
        for source in sources:
            try:
                size: int | None = Path(source).stat().st_size
            except OSError:
                size = None
            found.append(ResidentModel("llamacpp", source, size))
        return found

    def close(self) -> None:
        """Close every engine."""
        with self._lock:
            engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            engine.close()
