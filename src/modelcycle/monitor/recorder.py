"""The recorder: gateway events and ingested spans -> a bounded queue -> batched writes.

The request path only appends to a deque (tens of nanoseconds) and never
waits: when ``queue_size`` items are waiting, new ones are dropped and
counted. A writer thread wakes every ``flush_interval_s``, turns events into
spans, hands them to observers (Prometheus metrics) and writes them in
batches. Before anything leaves the process (observers, database, spill
file), a ``SpanRedactor`` removes personal data and secrets from span text on
that same thread. When the database fails, the batch is appended to a spill
file under ``home/spill`` and replayed once the database answers again;
``close`` writes everything still queued.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.exc import SQLAlchemyError

from modelcycle import events, hookspecs
from modelcycle.monitor.redaction import SpanRedactor
from modelcycle.monitor.spans import SpanRecord, from_request
from modelcycle.monitor.writer import SpanWriter

log = logging.getLogger(__name__)

Observer = Callable[[Sequence[SpanRecord]], None]
YIELD_EVERY = 64
"""Events converted between two GIL yields of the writer thread."""
Item = events.RequestFinished | SpanRecord


class Recorder:
    """Records traces off the request path; a pluggy plugin for ``RequestFinished``."""

    def __init__(
        self,
        writer: SpanWriter,
        *,
        spill_dir: Path,
        queue_size: int = 100_000,
        batch_size: int = 2_000,
        flush_interval_s: float = 1.0,
        replay_interval_s: float = 5.0,
        content: bool = True,
        enabled: bool = True,
        redactor: SpanRedactor | None = None,
    ):
        self.writer = writer
        self.spill_dir = spill_dir
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.replay_interval_s = replay_interval_s
        self.content = content
        self.enabled = enabled
        self.redactor = redactor
        """Applied to every span before it is observed or stored; ``None`` stores text as given."""
        self.observers: list[Observer] = []
        self.dropped = 0
        """Items refused because the queue was full (``modelcycle_traces_dropped_total``)."""
        self.written = 0
        self.spilled = 0
        """Spans written to a spill file since start (replayed later)."""
        self.failed_writes = 0
        self._queue: deque[Item] = deque()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._next_replay = 0.0

    # -- producers (any thread, never blocking) ------------------------------------------

    @hookspecs.hookimpl
    def modelcycle_request_finished(self, event: events.RequestFinished) -> None:
        """Queue a gateway request's span."""
        if self.enabled:
            self.submit(event)

    def submit(self, item: Item) -> bool:
        """Queue one event or span; ``False`` (and counted) when the queue is full."""
        if len(self._queue) >= self.queue_size or self._stop:
            self.dropped += 1
            return False
        self._queue.append(item)
        if self._thread is None:
            self._start()
        return True

    def submit_many(self, spans: Sequence[SpanRecord]) -> int:
        """Queue spans (OTLP, SDK); returns how many were accepted, the rest are counted."""
        accepted = 0
        for span in spans:
            accepted += self.submit(span)
        return accepted

    @property
    def pending(self) -> int:
        """Items queued and not yet written."""
        return len(self._queue)

    # -- the writer thread ---------------------------------------------------------------

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None and not self._stop:
                self._thread = threading.Thread(
                    target=self._run, name="modelcycle-trace-writer", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            self.drain()
        self.drain()

    def drain(self) -> int:
        """Write everything queued now (and due spill files); returns spans stored."""
        stored = 0
        with self._write_lock:
            self._idle.clear()
            try:
                self._maybe_replay()
                while self._queue:
                    made, given = self._convert(self._take())
                    spans = made + given
                    if self.redactor is not None:
                        self.redactor.apply(spans)
                    for observer in self.observers:
                        try:
                            observer(spans)
                        except Exception:
                            log.exception("trace observer failed")
                    stored += self._write(made, fresh=True) + self._write(given, fresh=False)
            finally:
                self._idle.set()
        return stored

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until everything queued before this call is written (tests, shutdown)."""
        deadline = time.monotonic() + timeout_s
        if self._thread is None:
            self.drain()
            return
        while (self._queue or not self._idle.is_set()) and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.01)

    def close(self) -> None:
        """Stop accepting, write everything queued, stop the thread."""
        self._stop = True
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=60)
        self.drain()

    def _take(self) -> list[Item]:
        batch: list[Item] = []
        queue = self._queue
        while queue and len(batch) < self.batch_size:
            batch.append(queue.popleft())
        return batch

    def _convert(self, batch: list[Item]) -> tuple[list[SpanRecord], list[SpanRecord]]:
        """Spans made from gateway events (fresh ids), and spans given as they are."""
        made: list[SpanRecord] = []
        given: list[SpanRecord] = []
        for i, item in enumerate(batch):
            if i and not i % YIELD_EVERY:
                time.sleep(0)  # let the event loop thread take the GIL
            if isinstance(item, SpanRecord):
                given.append(item)
            else:
                made.append(from_request(item, content=self.content))
        return made, given

    def _write(self, spans: list[SpanRecord], *, fresh: bool) -> int:
        if not spans:
            return 0
        try:
            stored = self.writer.write(spans, fresh=fresh)
        except SQLAlchemyError as exc:
            self.failed_writes += 1
            log.warning("trace store unavailable (%s); %d spans spilled to disk", exc, len(spans))
            self._spill(spans)
            return 0
        except Exception:  # a bug must not kill the writer thread: keep the spans
            log.exception("writing %d spans failed; they were spilled to disk", len(spans))
            self.failed_writes += 1
            self._spill(spans)
            return 0
        self.written += stored
        return stored

    # -- spill files ---------------------------------------------------------------------

    def _spill(self, spans: list[SpanRecord]) -> None:
        self.spill_dir.mkdir(parents=True, exist_ok=True)
        path = self.spill_dir / f"spans-{os.getpid()}.jsonl"
        with path.open("ab") as handle:
            for span in spans:
                handle.write(orjson.dumps(asdict(span)) + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.spilled += len(spans)
        self._next_replay = time.monotonic() + self.replay_interval_s

    def spill_files(self) -> list[Path]:
        """Spill files waiting to be replayed."""
        if not self.spill_dir.is_dir():
            return []
        return sorted(self.spill_dir.glob("spans-*.jsonl"))

    def replay_pending(self) -> list[Path]:
        """Write queued spans and replay every spill file now; returns the files left.

        Erasure calls this first, so that nothing written to the database after
        it (a replayed spill file) can bring an erased user's spans back.
        """
        self.flush()
        with self._write_lock:
            for path in self.spill_files():
                self.replay(path)
            return self.spill_files()

    def _maybe_replay(self) -> None:
        if time.monotonic() < self._next_replay:
            return
        for path in self.spill_files():
            if not self.replay(path):
                self._next_replay = time.monotonic() + self.replay_interval_s
                return

    def replay(self, path: Path) -> bool:
        """Write a spill file's spans (duplicates skipped) and delete it; ``False`` on failure."""
        claimed = path.with_suffix(f".replaying-{os.getpid()}")
        try:
            path.rename(claimed)  # one process replays a given file
        except FileNotFoundError:
            return True
        try:
            for batch in _chunks(_read_spill(claimed), self.batch_size):
                self.written += self.writer.write(batch)
        except Exception as exc:  # the database, or a bad line: keep the file, retry later
            log.warning("replaying %s failed (%s); the file is kept", path.name, exc)
            claimed.rename(path)
            return False
        claimed.unlink()
        return True


def _read_spill(path: Path) -> Iterator[SpanRecord]:
    with path.open("rb") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                data: dict[str, Any] = orjson.loads(line)
            except orjson.JSONDecodeError:
                log.warning("skipping a torn line in %s", path)  # a crash mid-write
                continue
            for name in ("start_time", "end_time"):
                data[name] = datetime.fromisoformat(data[name])
            yield SpanRecord(**data)


def _chunks(items: Iterator[SpanRecord], size: int) -> Iterator[list[SpanRecord]]:
    batch: list[SpanRecord] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
