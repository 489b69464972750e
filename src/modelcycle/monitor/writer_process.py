"""The trace writer child process of ``modelcycle up``, and the server's side of its pipe.

Storing a span (redaction, rows, rollups, the commit) costs about a hundred
microseconds of CPU, most of it Python holding the GIL that the request path
needs: in the server's own writer thread it took 15-20% of the gateway's
requests/s. ``WriterProcess`` moves that work to a child process. The server's
recorder still counts each request for ``/metrics`` and queues it as a JSON
array of its fields (``spans.to_wire``, about 1 µs, on the request path, a few
requests at a time: ``Recorder.settle``), so the writer thread only joins the
texts of a batch and writes them to the child's stdin. The child (``serve``)
stores the batch exactly as the server would (``Recorder.store_batch``:
redaction, exporters, batched writes, spill file when the database fails) and
answers one JSON line: the batch's number and its running counts.

Nothing is lost when the child dies: the server keeps each batch until the
child has said it is stored, and stores the batches a dead child left behind
itself (checked against stored ids, as one of them may have been stored just
before the child died). A batch the child cannot take is stored in the server;
a dead child is started again at most every ``restart_after_s``. Closing the
pipe is the child's signal to store what it has and exit, so a server that is
killed never leaves a writer behind.

Frames on the pipe: a header (payload length, batch number; big-endian
``uint32``, ``uint64``) and the JSON ``[requests, given spans]``, each request
the array ``to_wire`` wrote (the child runs the same code, so positions stand
for the field names).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from struct import Struct
from typing import IO, Any

import orjson

from modelcycle.monitor import gil
from modelcycle.monitor.recorder import Recorder, Request, span_from_json
from modelcycle.monitor.spans import SpanRecord, to_json, to_wire

log = logging.getLogger(__name__)

HEADER = Struct(">IQ")
"""Payload length, batch number."""
Batch = tuple[list[Request], list[SpanRecord]]
PIPE_BYTES = 1 << 20
"""The pipe's capacity, asked of Linux: a whole batch fits, so the server rarely waits."""
SLICE = 256
"""Requests serialised between two GIL yields (under a millisecond)."""


class WriterProcess:
    """The server's side: ships batches to the child and keeps each until it is stored."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        restart_after_s: float = 5.0,
    ):
        self.command = list(command)
        self.env = dict(env) if env is not None else None
        self.restart_after_s = restart_after_s
        self.starts = 0
        """Children started (more than one: a child died and was replaced)."""
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._send_lock = threading.Lock()
        self._state = threading.Condition()
        self._pending: dict[int, Batch] = {}
        self._orphans: list[Batch] = []
        self._sent = 0
        self._acked = 0
        self._counts = {"written": 0, "spilled": 0, "failed_writes": 0}
        self._earlier = dict(self._counts)
        self._next_start = 0.0
        self._closed = False

    # -- counts, summed over every child this server started -----------------------------

    @property
    def written(self) -> int:
        """Spans the children stored."""
        return self._earlier["written"] + self._counts["written"]

    @property
    def spilled(self) -> int:
        """Spans the children spilled to disk."""
        return self._earlier["spilled"] + self._counts["spilled"]

    @property
    def failed_writes(self) -> int:
        """Batches the database refused in the children."""
        return self._earlier["failed_writes"] + self._counts["failed_writes"]

    @property
    def pending(self) -> int:
        """Requests and spans shipped, or left by a dead child, and not stored yet."""
        with self._state:
            batches = [*self._pending.values(), *self._orphans]
        return sum(len(requests) + len(given) for requests, given in batches)

    @property
    def pid(self) -> int | None:
        """The running child's process id."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    # -- the server's writer thread --------------------------------------------------------

    def start(self) -> bool:
        """Start a child now (``modelcycle up`` does, so that its start-up is paid early)."""
        with self._send_lock:
            return self._ensure_child()

    def ship(self, requests: Sequence[Request], given: Sequence[SpanRecord]) -> bool:
        """Write a batch to the child; ``False`` when it cannot take it (store it here)."""
        try:
            payload = _serialise(requests, given)
        except TypeError:  # a value orjson cannot write: the recorder stores it itself
            return False
        with self._send_lock:
            if self._closed or not self._ensure_child():
                return False
            process = self._process
            assert process is not None
            assert process.stdin is not None
            with self._state:
                number = self._sent + 1
                self._pending[number] = (list(requests), list(given))
            try:
                process.stdin.write(HEADER.pack(len(payload), number) + payload)
                process.stdin.flush()
            except (OSError, ValueError):  # the child died (BrokenPipe) or its pipe is closed
                with self._state:
                    self._pending.pop(number, None)
                log.warning("the trace writer child is gone; storing traces in the server")
                return False
            with self._state:
                self._sent = number
            return True

    def reclaim(self) -> list[Batch]:
        """Batches a dead child did not say it stored: the recorder stores them itself."""
        with self._state:
            found, self._orphans = self._orphans, []
        return found

    def flush(self, timeout_s: float) -> bool:
        """Wait until the child has stored every batch shipped so far; ``False`` otherwise."""
        with self._state:
            target = self._sent
            self._state.wait_for(lambda: self._acked >= target, timeout=timeout_s)
            return self._acked >= target and not self._orphans

    def close(self, timeout_s: float = 60.0) -> None:
        """Close the pipe (the child stores what it has, then exits) and wait for it."""
        with self._send_lock:
            self._closed = True
            process = self._process
        if process is None:
            return
        if process.stdin is not None:
            with contextlib.suppress(OSError):  # a dead child's pipe
                process.stdin.close()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("the trace writer child did not finish in %.0f s; killing it", timeout_s)
            process.kill()
            process.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)

    # -- the child's lifetime ---------------------------------------------------------------

    def _ensure_child(self) -> bool:
        """A live child, started when none runs (at most every ``restart_after_s``)."""
        process = self._process
        if process is not None and process.poll() is None:
            return True
        now = time.monotonic()
        if now < self._next_start:
            return False
        if process is not None and process.stdin is not None:
            with contextlib.suppress(OSError):  # the dead child's end of the pipe
                process.stdin.close()
        self._next_start = now + self.restart_after_s
        try:
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                self.command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=self.env,
            )
        except OSError as exc:
            log.warning("could not start the trace writer child (%s); writing in the server", exc)
            return False
        assert process.stdin is not None
        _grow_pipe(process.stdin)
        self.starts += 1
        with self._state:
            self._earlier = {k: self._earlier[k] + self._counts[k] for k in self._counts}
            self._counts = dict.fromkeys(self._counts, 0)
            self._acked = self._sent  # the new child's numbers start after the last sent
        reader = threading.Thread(
            target=self._read_answers,
            args=(process,),
            name="modelcycle-trace-writer-answers",
            daemon=True,
        )
        self._process, self._reader = process, reader
        reader.start()
        return True

    def _read_answers(self, process: subprocess.Popen[bytes]) -> None:
        """Take the child's answers; when it ends, orphan what it did not store."""
        assert process.stdout is not None
        for line in process.stdout:
            try:
                answer: dict[str, Any] = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            number = answer.get("stored")
            with self._state:
                for key in self._counts:
                    if isinstance(answer.get(key), int):
                        self._counts[key] = answer[key]
                if isinstance(number, int):
                    for done in [n for n in self._pending if n <= number]:
                        del self._pending[done]
                    self._acked = max(self._acked, number)
                self._state.notify_all()
        process.stdout.close()
        code = process.wait()
        with self._state:
            self._orphans.extend(self._pending[n] for n in sorted(self._pending))
            self._pending.clear()
            self._acked = self._sent
            self._state.notify_all()
        if not self._closed or code:
            log.warning("the trace writer child exited with %s", code)


def _serialise(requests: Sequence[Request], given: Sequence[SpanRecord]) -> bytes:
    """``[requests, given]`` as JSON (requests queued as ``to_wire`` text are used as they are)."""
    parts: list[bytes] = []
    for i, request in enumerate(requests):
        if isinstance(request, bytes):
            parts.append(request)
            continue
        if i and not i % SLICE:
            gil.pause()
        parts.append(to_json(request) if isinstance(request, dict | list) else to_wire(request))
    return b"[[" + b",".join(parts) + b"]," + to_json(given) + b"]"


def _grow_pipe(pipe: IO[bytes]) -> None:
    try:
        import fcntl

        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (ImportError, AttributeError, OSError):  # not Linux, or over pipe-max-size
        pass


# -- the child ------------------------------------------------------------------------------


def serve(recorder: Recorder, source: int, answers: IO[bytes]) -> int:
    """Store the batches read from the file descriptor ``source`` until it closes.

    Answers one line per batch on ``answers``; replays spill files whenever the
    replay interval passes, with or without traffic. Returns batches stored.
    """
    frames = _FrameReader(source)
    stored = 0
    while True:
        frame = frames.next(timeout_s=recorder.replay_interval_s)
        if frame is None:
            recorder.replay_due()
            continue
        if frame is _EOF:
            return stored
        number, payload = frame
        requests, given = orjson.loads(payload)
        recorder.store_batch(requests, [span_from_json(item) for item in given])
        recorder.replay_due()
        stored += 1
        answer = {
            "stored": number,
            "written": recorder.written,
            "spilled": recorder.spilled,
            "failed_writes": recorder.failed_writes,
        }
        answers.write(orjson.dumps(answer) + b"\n")
        answers.flush()


_EOF = (-1, b"")


class _FrameReader:
    """Reads frames from a file descriptor, waiting at most a timeout for the next one."""

    def __init__(self, fd: int):
        self._fd = fd
        self._buffer = bytearray()

    def next(self, timeout_s: float) -> tuple[int, bytes] | None:
        """The next frame, ``_EOF`` when the pipe closed, ``None`` after ``timeout_s`` idle."""
        while True:
            if len(self._buffer) >= HEADER.size:
                length, number = HEADER.unpack_from(self._buffer)
                end = HEADER.size + length
                if len(self._buffer) >= end:
                    payload = bytes(self._buffer[HEADER.size : end])
                    del self._buffer[:end]
                    return number, payload
            if not self._buffer:
                ready, _, _ = select.select([self._fd], [], [], timeout_s)
                if not ready:
                    return None
            chunk = os.read(self._fd, PIPE_BYTES)
            if not chunk:
                return _EOF
            self._buffer += chunk
