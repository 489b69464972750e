"""``modelcycle.trace``: trace your application's own steps next to the gateway's requests.

::

    from modelcycle import trace

    @trace(kind="retriever")
    def search(query: str) -> list[str]: ...

    @trace
    async def answer(question: str) -> str:
        with trace("llm call", kind="llm") as span:
            reply = client.chat.completions.create(..., extra_headers=trace.headers())
            span.set(model="default", usage=reply.usage)
        return reply.choices[0].message.content

Spans nest through ``contextvars``: across ``await``, in asyncio tasks (each
task keeps the parent it was created under) and in threads started with a copied
context (``contextvars.copy_context().run``, ``asyncio.to_thread``). A finished
span is queued and a background thread sends the queue as OTLP/JSON to
``{server}/v1/traces`` every ``flush_interval_s`` or every ``batch_size`` spans;
when ``queue_size`` spans wait, new ones are dropped and counted (``dropped``),
so tracing never blocks the application. What is queued is sent at exit.
``trace.headers()`` gives the W3C ``traceparent`` of the current span: a request
through the gateway with it becomes a child span of the same trace.
"""

from __future__ import annotations

import atexit
import gzip
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, overload

import httpx

from modelcycle.client.scope import P, R, SpanScope, current
from modelcycle.client.span import KINDS, Span, otlp_document
from modelcycle.client.transport import headers, resolve_api_key, resolve_server
from modelcycle.errors import InvalidInput

log = logging.getLogger("modelcycle.trace")

GZIP_FROM_BYTES = 16_384
"""Batches larger than this are sent gzipped."""
MAX_BATCH_BYTES = 4 * 1_048_576
"""A batch is cut before it passes this size (the server takes 8 MiB by default)."""
RETRY_STATUSES = frozenset({429, 502, 503, 504})
"""Answers after which a batch is sent again (OTLP/HTTP's retryable statuses)."""


class Tracer:
    """Records spans and sends them in batches to a modelcycle server.

    Args:
        server: Base URL; ``configure`` or the first send falls back to ``MODELCYCLE_SERVER``.
        api_key: Bearer key (any role; ``app`` is enough); else ``MODELCYCLE_API_KEY``.
        service_name: The ``service.name`` of the spans; else ``OTEL_SERVICE_NAME``.
        batch_size: Spans per request, and the queue length that triggers a send.
        flush_interval_s: How long a finished span waits at most before it is sent.
        queue_size: Finished spans waiting at most; beyond it new ones are dropped.
        retries: Sends after the first for a batch answered 429/502/503/504 or unreachable.
        enabled: ``False`` records nothing (the decorators still run the code).
        transport: An ``httpx`` transport (tests: ``httpx.MockTransport``).
    """

    def __init__(
        self,
        server: str | None = None,
        api_key: str | None = None,
        *,
        service_name: str | None = None,
        batch_size: int = 512,
        flush_interval_s: float = 1.0,
        queue_size: int = 8_192,
        timeout_s: float = 10.0,
        retries: int = 2,
        enabled: bool = True,
        transport: httpx.BaseTransport | None = None,
    ):
        self.server = server
        self.api_key = api_key
        self.service_name = service_name
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.queue_size = queue_size
        self.timeout_s = timeout_s
        self.retries = retries
        self.enabled = enabled
        self.transport = transport
        self.sent = 0
        """Spans the server accepted."""
        self.dropped = 0
        """Spans dropped because the queue was full."""
        self.failed = 0
        """Spans lost: the server refused them or could not be reached after retries."""
        self._resolved = False
        self._queue: deque[bytes] = deque()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._sending = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._http: httpx.Client | None = None

    # -- configuration (the edge: environment variables are read here) -----------------

    def configure(
        self,
        server: str | None = None,
        api_key: str | None = None,
        *,
        service_name: str | None = None,
        enabled: bool | None = None,
    ) -> Tracer:
        """Set where spans go; what is not given comes from the environment.

        Spans queued before the call are sent to the previous destination first.
        """
        self.flush()
        with self._lock:
            self._resolve(server, api_key, service_name)
            if enabled is not None:
                self.enabled = enabled
            if self._http is not None:
                self._http.close()
                self._http = None
        return self

    def _resolve(
        self, server: str | None = None, api_key: str | None = None, service_name: str | None = None
    ) -> None:
        self.server = resolve_server(server or self.server)
        self.api_key = resolve_api_key(api_key or self.api_key)
        self.service_name = (
            service_name
            or self.service_name
            or os.environ.get("OTEL_SERVICE_NAME")
            or "unknown_service:python"
        )
        self._resolved = True

    # -- making spans ------------------------------------------------------------------

    @overload
    def __call__(self, func: Callable[P, R], /) -> Callable[P, R]: ...

    @overload
    def __call__(
        self,
        name: str | None = None,
        /,
        *,
        kind: str = "span",
        capture: bool = True,
        **attributes: Any,
    ) -> SpanScope: ...

    def __call__(
        self,
        name: str | Callable[P, R] | None = None,
        /,
        *,
        kind: str = "span",
        capture: bool = True,
        **attributes: Any,
    ) -> SpanScope | Callable[P, R]:
        """``@trace``, ``@trace("name", kind=...)`` or ``with trace("name") as span``.

        ``capture``: a decorated function's arguments and return value become the
        span's input and output. ``attributes`` are set on the span as given.
        """
        if callable(name):
            return SpanScope(self, None, kind, capture, attributes)(name)
        return SpanScope(self, name, kind, capture, attributes)

    def start(self, name: str, *, kind: str = "span", **attributes: Any) -> Span:
        """A span under the current one (not made current; ``end`` it yourself)."""
        if kind not in KINDS:
            raise InvalidInput(f"span kind {kind!r}: use one of {', '.join(sorted(KINDS))}")
        parent = current.get()
        span = Span.child_of(parent, name, kind)
        if attributes:
            span.set(**attributes)
        return span

    def end(self, span: Span) -> None:
        """Finish ``span`` and queue it for sending (once; later calls do nothing)."""
        if not span.finish() or not self.enabled:
            return
        item = span.otlp()
        with self._lock:
            if len(self._queue) >= self.queue_size:
                self.dropped += 1
                return
            self._queue.append(item)
            full = len(self._queue) >= self.batch_size
        if self._thread is None:
            self._start()
        if full:
            self._wake.set()

    @staticmethod
    def current_span() -> Span | None:
        """The span the calling code runs in, ``None`` outside any."""
        return current.get()

    @staticmethod
    def headers() -> dict[str, str]:
        """``traceparent`` (and the user and session) of the current span, for a gateway call.

        Pass as ``extra_headers=trace.headers()`` to an OpenAI client: the gateway's
        span of that request becomes a child of the current span. Empty outside a span.
        """
        span = current.get()
        return span.propagation_headers() if span is not None else {}

    # -- sending -----------------------------------------------------------------------

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Send every span finished so far; ``False`` when ``timeout_s`` passed first."""
        if self._thread is None or not self._thread.is_alive():
            self._send_queued()
            return not self._queue
        deadline = time.monotonic() + timeout_s
        with self._idle:
            self._wake.set()
            while self._queue or self._sending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(min(left, 0.05))
                self._wake.set()
        return True

    def close(self, timeout_s: float = 10.0) -> None:
        """Send what is queued and stop the sender thread (also done at exit)."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
            atexit.unregister(self.close)
        self._send_queued()
        with self._lock:
            if self._http is not None:
                self._http.close()
                self._http = None
            self._thread = None
        self._stop.clear()

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._run, name="modelcycle-trace-sender", daemon=True
            )
            self._thread.start()
        atexit.register(self.close)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            self._send_queued()

    def _send_queued(self) -> None:
        while True:
            with self._lock:
                if not self._queue or self._sending:
                    self._idle.notify_all()
                    return
                batch = self._take()
                self._sending = True
            try:
                self._send(batch)
            except Exception:  # the sender thread must outlive any one batch
                log.exception("dropped %d spans: sending failed", len(batch))
                self.failed += len(batch)
            finally:
                with self._lock:
                    self._sending = False
                    self._idle.notify_all()

    def _take(self) -> list[bytes]:
        """The next batch: at most ``batch_size`` spans and about ``MAX_BATCH_BYTES``."""
        batch = [self._queue.popleft()]
        size = len(batch[0])
        while self._queue and len(batch) < self.batch_size:
            size += len(self._queue[0]) + 1
            if size > MAX_BATCH_BYTES:
                break
            batch.append(self._queue.popleft())
        return batch

    def _send(self, batch: list[bytes]) -> None:
        if not self._resolved:
            self._resolve()
        body = otlp_document(batch, self.service_name or "unknown_service:python")
        request_headers = {**headers(self.api_key), "Content-Type": "application/json"}
        if len(body) > GZIP_FROM_BYTES:
            body = gzip.compress(body, compresslevel=5)
            request_headers["Content-Encoding"] = "gzip"
        if self._http is None:
            self._http = httpx.Client(transport=self.transport, timeout=self.timeout_s)
        url = f"{self.server}/v1/traces"
        for attempt in range(self.retries + 1):
            try:
                response = self._http.post(url, content=body, headers=request_headers)
            except httpx.HTTPError as exc:
                problem = f"cannot reach {self.server} ({type(exc).__name__})"
            else:
                if response.status_code < 300:
                    self._count_accepted(len(batch), response)
                    return
                problem = f"{self.server} answered {response.status_code}: {response.text[:200]}"
                if response.status_code not in RETRY_STATUSES:
                    break
            if attempt < self.retries and self._stop.wait(0.5 * 2**attempt):
                break  # closing: do not hold the exit up with back-off
        log.warning("dropped %d spans: %s", len(batch), problem)
        self.failed += len(batch)

    def _count_accepted(self, count: int, response: httpx.Response) -> None:
        rejected = 0
        try:
            partial = response.json().get("partialSuccess") or {}
            rejected = int(partial.get("rejectedSpans") or 0)
        except (ValueError, AttributeError, TypeError):
            pass
        if rejected:
            log.warning("the server refused %d spans (its queue was full)", rejected)
        self.failed += rejected
        self.sent += count - rejected


# The one module-level instance, so that ``@modelcycle.trace`` works with no set-up (as
# logging's root logger does). It is inert until a span ends: no thread, no connection,
# and MODELCYCLE_SERVER / MODELCYCLE_API_KEY are read only by ``configure`` or the first
# send. Applications that want their own settings create a ``Tracer``.
trace = Tracer()
