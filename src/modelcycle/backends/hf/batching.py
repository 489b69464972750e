"""Dynamic batching: one worker thread per loaded model, generating requests together.

The design, chosen as the simplest that is correct and fast on a CPU:

1. Requests queue on the model's worker thread (the only thread that touches
   the model, so inference never runs on an event loop). The worker takes the
   oldest request and then collects more for up to its ``batch_wait_ms`` or
   until its ``max_batch_size`` (the request that opens a batch sets both).
2. The batch is tokenized, **left-padded** to one width with an attention
   mask, and given explicit position ids (``cumsum(mask) - 1``): a padded row
   sees exactly the positions and keys it would see alone, which is what keeps
   greedy output identical alone and in a batch.
3. One prefill forward pass fills a KV cache; then each step runs one forward
   pass over every live row's last token. Each row picks its own next token
   (its temperature, top_p and seeded generator; see ``rows.py``), decides
   whether it is finished (end of sequence, stop sequence, ``max_tokens``) and,
   when streaming, hands its new text to its request's event loop.
4. A row that finishes, or whose client went away, leaves the batch at once:
   its lines of the KV cache, mask and positions are dropped, so it costs
   nothing afterwards.

Requests that arrive while a batch runs wait for the next one (no joining a
batch in flight): that keeps the cache rectangular and the code short, at the
price of some queueing latency under sustained load.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelcycle.backends.hf.loading import LoadedModel, ModelKey, load
from modelcycle.backends.hf.rows import Request, Row, rows_of
from modelcycle.errors import ModelcycleError, UpstreamError

log = logging.getLogger(__name__)

Loader = Callable[[ModelKey, Path | None], LoadedModel]


class Batcher:
    """One model (loaded on first use) and the worker thread that batches requests to it."""

    def __init__(self, key: ModelKey, cache_dir: Path | None, loader: Loader = load):
        self.key = key
        self._cache_dir = cache_dir
        self._loader = loader
        self._queue: queue.SimpleQueue[Request | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.loaded_bytes: int | None = None
        """Bytes of the loaded model's parameters (``None`` until it is loaded)."""
        self.batch_sizes: list[int] = []
        """Size of each batch served so far (for tests and benchmarks; bounded)."""

    def submit(self, request: Request) -> None:
        """Queue ``request``; its chunks or error arrive through its sink."""
        with self._lock:
            if self._closed:
                raise UpstreamError(f"the transformers model {self.key.source} was unloaded")
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name="transformers-batcher", daemon=True
                )
                self._thread.start()
        self._queue.put(request)

    def close(self, timeout_s: float = 10.0) -> None:
        """Serve what is queued, then free the model and stop the thread (waits ``timeout_s``).

        Waiting matters at exit: a daemon thread killed inside torch aborts the process.
        """
        with self._lock:
            self._closed = True
            thread = self._thread
            if thread is not None:
                self._queue.put(None)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)

    # -- the worker thread -----------------------------------------------------------

    def _work(self) -> None:
        loaded: LoadedModel | None = None
        running = True
        while running:
            batch, running = self._collect()
            if not batch:
                continue
            try:
                loaded = self._serve(loaded, batch)
            except Exception as exc:  # the thread must outlive any one batch
                log.exception("transformers batch failed for %s", self.key.source)
                for request in batch:
                    request.sink.put(_as_error(exc, "transformers failed"))

    def _collect(self) -> tuple[list[Request], bool]:
        """The next batch, and whether the worker should go on afterwards."""
        first = self._queue.get()
        if first is None:
            return [], False
        batch = [first]
        deadline = time.monotonic() + first.batch_wait_s
        while len(batch) < first.max_batch_size:
            remaining = deadline - time.monotonic()
            try:
                item = (
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
            if item is None:
                return batch, False
            batch.append(item)
        return batch, True

    def _serve(self, loaded: LoadedModel | None, batch: list[Request]) -> LoadedModel | None:
        if loaded is None:
            try:
                loaded = self._loader(self.key, self._cache_dir)
            except Exception as exc:  # every waiting request gets the reason; the next retries
                error = _as_error(exc, f"cannot load transformers model {self.key.source}")
                for request in batch:
                    request.sink.put(error)
                return None
            self.loaded_bytes = _parameter_bytes(loaded.model)
        rows = rows_of(batch, loaded)
        if rows:
            self.batch_sizes = [*self.batch_sizes[-99:], len(rows)]
            try:
                generate(loaded, rows)
            except Exception as exc:
                log.exception("transformers generation failed for %s", self.key.source)
                error = _as_error(exc, "transformers generation failed")
                for row in rows:
                    if not row.finished:
                        row.request.sink.put(error)
        return loaded


def _parameter_bytes(model: Any) -> int | None:
    """What the model's parameters and buffers occupy (``None`` for a stand-in without them)."""
    try:
        tensors = [*model.parameters(), *model.buffers()]
        return sum(int(t.numel()) * int(t.element_size()) for t in tensors)
    except (AttributeError, TypeError):
        return None


def generate(loaded: LoadedModel, rows: list[Row]) -> None:
    """Run ``rows`` to completion in one padded batch; see the module docstring."""
    import torch

    width = max(len(row.prompt_ids) for row in rows)
    pad = loaded.pad_id
    input_ids = torch.tensor([[pad] * (width - len(r.prompt_ids)) + r.prompt_ids for r in rows])
    mask = torch.tensor([[0] * (width - len(r.prompt_ids)) + [1] * len(r.prompt_ids) for r in rows])
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = loaded.new_cache()
    with torch.inference_mode():
        while rows:
            logits = _forward(loaded, input_ids, mask, positions, cache)
            greedy = logits.argmax(-1).tolist()
            keep: list[int] = []
            tokens: list[int] = []
            for index, row in enumerate(rows):
                if row.request.cancel.is_set():
                    continue
                token = row.pick(logits[index], greedy[index])
                if not row.advance(token):
                    keep.append(index)
                    tokens.append(token)
            if not keep:
                return
            if len(keep) < len(rows):
                selected = torch.tensor(keep)
                cache.batch_select_indices(selected)
                mask, positions = mask[selected], positions[selected]
                rows = [rows[index] for index in keep]
            input_ids = torch.tensor(tokens).unsqueeze(1)
            mask = torch.cat([mask, mask.new_ones((len(rows), 1))], dim=1)
            positions = positions[:, -1:] + 1


def _forward(loaded: LoadedModel, input_ids: Any, mask: Any, positions: Any, cache: Any) -> Any:
    """The logits of each row's last position."""
    kwargs: dict[str, Any] = {
        "input_ids": input_ids,
        "attention_mask": mask,
        "position_ids": positions,
        "use_cache": True,
        loaded.cache_arg: cache,
    }
    if loaded.logits_arg is not None:
        kwargs[loaded.logits_arg] = 1
    return loaded.model(**kwargs).logits[:, -1, :]


def _as_error(exc: Exception, context: str) -> ModelcycleError:
    if isinstance(exc, ModelcycleError):
        return exc
    return UpstreamError(f"{context}: {type(exc).__name__}: {exc}")
