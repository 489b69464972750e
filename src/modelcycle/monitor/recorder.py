"""The recorder: gateway events and ingested spans -> a bounded queue -> batched writes.

On the request path, each request is appended to a deque and settled with
the ones before it every ``settle_every`` requests: observers (Prometheus
metrics: counts and labels, never text) see the batch, and each request is
queued; nothing there waits: when ``queue_size`` items are waiting, new ones
are dropped and counted. A writer thread wakes every ``flush_interval_s``
and stores the batch. Storing (``store_batch``) turns requests into
spans, has a ``SpanRedactor`` remove personal data and secrets from span
text, hands the spans to exporters (OTLP) and writes them. When the database
fails, the batch is appended to a spill file under ``home/spill`` and
replayed once the database answers again; ``close`` writes everything still
queued.

Storing costs about a hundred microseconds of CPU a span, most of it holding
the GIL that the request path needs. ``modelcycle up`` therefore ships each
batch to a child process that stores it (``ship_to``, ``WriterProcess``): the
server then only serialises each request (a few microseconds) and its thread
joins and ships the texts. Whenever the child cannot take a batch, the batch is stored here.
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
from typing import Any, Protocol

import orjson
from sqlalchemy.exc import SQLAlchemyError

from modelcycle import events, hookspecs
from modelcycle.monitor import gil
from modelcycle.monitor.redaction import SpanRedactor
from modelcycle.monitor.spans import (
    SpanRecord,
    from_request,
    from_request_json,
    from_wire,
    to_wire,
)
from modelcycle.monitor.writer import SpanWriter

log = logging.getLogger(__name__)

RequestObserver = Callable[[Sequence[events.RequestFinished]], None]
Exporter = Callable[[Sequence[SpanRecord]], None]
SETTLE_EVERY = 32
"""Gateway requests settled in a row on the request path (tracing_overhead.py: 16, 32
and 64 kept 0.966 of the untraced requests/s, one at a time 0.937)."""
YIELD_EVERY = 64
"""Events converted between two GIL yields of the writer thread."""
Request = events.RequestFinished | bytes | list[Any] | dict[str, Any]
"""A gateway request: the event, its JSON array (``to_wire``: queued for the writer child,
as text, then parsed there) or its JSON object (``request_json``)."""
Item = Request | SpanRecord


class Shipper(Protocol):
    """Somewhere else to store batches: the writer child process (``WriterProcess``)."""

    @property
    def written(self) -> int:
        """Spans stored over there."""

    @property
    def spilled(self) -> int:
        """Spans spilled to disk over there."""

    @property
    def failed_writes(self) -> int:
        """Batches the database refused over there."""

    @property
    def pending(self) -> int:
        """Items handed over and not stored yet."""

    def ship(self, requests: Sequence[Request], given: Sequence[SpanRecord]) -> bool:
        """Hand a batch over; ``False`` when it was not taken (store it here instead)."""

    def flush(self, timeout_s: float) -> bool:
        """Wait until every batch shipped is stored; ``False``: timed out, or some to reclaim."""

    def reclaim(self) -> list[tuple[list[Request], list[SpanRecord]]]:
        """Batches shipped and not stored (the child died): to store here."""

    def close(self) -> None:
        """Store what was shipped and stop."""


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
        settle_every: int = SETTLE_EVERY,
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
        """Applied to every span before it is exported or stored; ``None`` keeps text as given."""
        self.settle_every = settle_every
        """Gateway requests the request path takes before it settles them in one go."""
        self.observers: list[RequestObserver] = []
        """Called with each gateway request as it finishes, on the request path: cheap
        counts and labels only, never text (it is not redacted yet)."""
        self.exporters: list[Exporter] = []
        """Called with each batch once redacted, where it is stored (OTLP export)."""
        self.shipper: Shipper | None = None
        self.dropped = 0
        """Items refused because the queue was full (``modelcycle_traces_dropped_total``)."""
        self._written = 0
        self._spilled = 0
        self._failed_writes = 0
        self._queue: deque[Item] = deque()
        self._fresh: deque[events.RequestFinished] = deque()
        """Gateway requests taken and not settled yet (fewer than ``settle_every``)."""
        self._settle_lock = threading.Lock()
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
        """Take a gateway request; every ``settle_every`` of them are settled at once.

        Settling a request (counting it for the observers, writing its JSON array)
        costs about 3 µs in a loop, and three times that done once between two
        requests, whose code has meanwhile pushed it out of the CPU's caches; so
        the request path only appends, and settles a handful in a row. The
        writer thread settles what is left each time it wakes, and a scrape of
        ``/metrics`` first (``settle``), so counts are never later than that.
        """
        if not self.enabled:
            return
        if self._stop:  # closed: counted, not stored
            _notify(self.observers, (event,))
            self.dropped += 1
            return
        fresh = self._fresh
        fresh.append(event)
        if len(fresh) >= self.settle_every:
            self.settle()
        elif self._thread is None:
            self._start()

    def settle(self) -> None:
        """Count the requests taken so far for the observers and queue their spans.

        With a writer child, each is queued as its JSON array (``to_wire``): the
        event and its objects are then freed at once instead of piling up for a
        second, and the writer thread only joins texts before it ships them.
        """
        fresh = self._fresh
        with self._settle_lock:  # observers see one batch at a time
            found = [fresh.popleft() for _ in range(len(fresh))]  # others only append
            if not found:
                return
            _notify(self.observers, found)
            self._enqueue(found if self.shipper is None else [_wire(event) for event in found])

    def submit(self, item: Item) -> bool:
        """Queue one event or span; ``False`` (and counted) when the queue is full."""
        if self._stop:
            self.dropped += 1
            return False
        return self._enqueue((item,)) == 1

    def _enqueue(self, items: Sequence[Item]) -> int:
        """Queue what fits, count the rest as dropped; returns how many were queued."""
        room = max(0, self.queue_size - len(self._queue))
        taken = items if len(items) <= room else items[:room]
        self._queue.extend(taken)
        self.dropped += len(items) - len(taken)
        if self._thread is None:
            self._start()
        return len(taken)

    def submit_many(self, spans: Sequence[SpanRecord]) -> int:
        """Queue spans (OTLP, SDK); returns how many were accepted, the rest are counted."""
        accepted = 0
        for span in spans:
            accepted += self.submit(span)
        return accepted

    @property
    def pending(self) -> int:
        """Items queued, or handed to the writer child, and not yet written."""
        taken = len(self._fresh) + len(self._queue)
        return taken + (self.shipper.pending if self.shipper else 0)

    @property
    def written(self) -> int:
        """Spans stored in the database since start, by this process and its writer child."""
        return self._written + (self.shipper.written if self.shipper else 0)

    @property
    def spilled(self) -> int:
        """Spans written to a spill file since start (replayed later)."""
        return self._spilled + (self.shipper.spilled if self.shipper else 0)

    @property
    def failed_writes(self) -> int:
        """Batches the database refused (each was spilled)."""
        return self._failed_writes + (self.shipper.failed_writes if self.shipper else 0)

    def ship_to(self, shipper: Shipper) -> None:
        """Store batches through ``shipper`` from now on (``modelcycle up``'s writer child)."""
        self.shipper = shipper

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
                self.settle()
                self._maybe_replay()
                if self.shipper is not None:
                    for requests, given in self.shipper.reclaim():
                        # Checked against stored ids: the child may have stored some.
                        stored += self.store_batch([], self._spans(requests) + given)
                while self._queue:
                    requests, given = _split(self._take())
                    if self.shipper is None or not self.shipper.ship(requests, given):
                        stored += self.store_batch(requests, given)
            finally:
                self._idle.set()
        return stored

    def store_batch(self, requests: Sequence[Request], given: list[SpanRecord]) -> int:
        """Make spans of ``requests``, redact, export and write; returns spans stored.

        ``requests``: gateway requests (their spans' ids are fresh); ``given``: spans
        that may arrive twice (OTLP, SDK), checked against stored ids first. What
        the database refuses is spilled to disk.
        """
        made = self._spans(requests)
        spans = made + given
        if self.redactor is not None:
            self.redactor.apply(spans)
        _notify(self.exporters, spans)
        return self._write(made, fresh=True) + self._write(given, fresh=False)

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until everything queued before this call is written (tests, shutdown)."""
        deadline = time.monotonic() + timeout_s
        if self._thread is None:
            self.drain()
        while (
            self._fresh or self._queue or not self._idle.is_set()
        ) and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.01)
        shipper = self.shipper
        if shipper is None or shipper.flush(max(0.0, deadline - time.monotonic())):
            return
        # A dead child's batches: the writer thread stores them. Never wait on its
        # lock here, since it may be stuck writing to a child that hangs.
        if self._thread is None:
            self.drain()
        while (shipper.pending or not self._idle.is_set()) and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.01)

    def close(self) -> None:
        """Stop accepting, write everything queued, stop the thread (and the writer child)."""
        self._stop = True
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=60)
        self.drain()
        if self.shipper is not None:
            self.shipper.close()
            self.drain()  # what the child could not store

    def _take(self) -> list[Item]:
        batch: list[Item] = []
        queue = self._queue
        while queue and len(batch) < self.batch_size:
            batch.append(queue.popleft())
        return batch

    def _spans(self, requests: Sequence[Request]) -> list[SpanRecord]:
        """The spans of gateway requests (events, their ``to_wire`` arrays, or JSON objects)."""
        made: list[SpanRecord] = []
        for i, request in enumerate(requests):
            if i and not i % YIELD_EVERY:
                gil.pause()
            if isinstance(request, bytes):
                request = orjson.loads(request)
            if isinstance(request, list):
                made.append(from_request_json(from_wire(request), content=self.content))
            elif isinstance(request, dict):
                made.append(from_request_json(request, content=self.content))
            else:
                made.append(from_request(request, content=self.content))
        return made

    def _write(self, spans: list[SpanRecord], *, fresh: bool) -> int:
        if not spans:
            return 0
        try:
            stored = self.writer.write(spans, fresh=fresh)
        except SQLAlchemyError as exc:
            self._failed_writes += 1
            log.warning("trace store unavailable (%s); %d spans spilled to disk", exc, len(spans))
            self._spill(spans)
            return 0
        except Exception:  # a bug must not kill the writer thread: keep the spans
            log.exception("writing %d spans failed; they were spilled to disk", len(spans))
            self._failed_writes += 1
            self._spill(spans)
            return 0
        self._written += stored
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
        self._spilled += len(spans)
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

    def replay_due(self) -> None:
        """Replay the spill files when the replay interval has passed (the writer child)."""
        with self._write_lock:
            self._maybe_replay()

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
                self._written += self.writer.write(batch)
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
            yield span_from_json(data)


def span_from_json(data: dict[str, Any]) -> SpanRecord:
    """A span from its JSON object (``orjson.dumps`` of a ``SpanRecord``)."""
    for name in ("start_time", "end_time"):
        data[name] = datetime.fromisoformat(data[name])
    return SpanRecord(**data)


def _wire(event: events.RequestFinished) -> Item:
    """The event as its ``to_wire`` array, for the writer child; as it is when orjson cannot."""
    try:
        return to_wire(event)
    except TypeError:  # beyond orjson (a huge integer): stored by this process
        return event


def _split(batch: list[Item]) -> tuple[list[Request], list[SpanRecord]]:
    """Gateway requests, and spans given as they are."""
    requests: list[Request] = []
    given: list[SpanRecord] = []
    for item in batch:
        (given if isinstance(item, SpanRecord) else requests).append(item)  # type: ignore[arg-type]
    return requests, given


def _notify(observers: Sequence[Callable[[Sequence[Any]], None]], items: Sequence[Any]) -> None:
    for observer in observers:
        try:
            observer(items)
        except Exception:
            log.exception("trace observer failed")


def _chunks(items: Iterator[SpanRecord], size: int) -> Iterator[list[SpanRecord]]:
    batch: list[SpanRecord] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
