"""``modelcycle.trace``: an application's own spans, nested right and delivered in batches.

What a user relies on: decorated functions and ``with trace(...)`` blocks nest
the way the code runs (across ``await``, concurrent tasks and threads started
with a copied context); an exception is recorded and still raised; spans go out
in batches without slowing the application, and what is queued at exit is sent;
``trace.headers()`` makes the gateway's span of a call a child of the caller's.
"""

from __future__ import annotations

import asyncio
import contextvars
import gzip
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest
from sqlalchemy import select

import modelcycle
from e2e.live import LiveServer
from modelcycle import Tracer
from modelcycle.deploy import DeploymentSpec, Route
from modelcycle.errors import InvalidInput
from modelcycle.monitor import SpanRecord, otlp
from modelcycle.services import Services
from modelcycle.store.tables import SpanRow
from modelcycle.testing import admin_of, make_key, register
from modelcycle.types import Role


class Collector:
    """A stand-in server (an ``httpx.MockTransport`` handler) keeping every export."""

    def __init__(self, statuses: tuple[int, ...] = ()):
        self.bodies: list[bytes] = []
        self.requests: list[httpx.Request] = []
        self.arrived = threading.Event()
        self._statuses = list(statuses)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = request.content
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        self.requests.append(request)
        status = self._statuses.pop(0) if self._statuses else 200
        if status == 200:
            self.bodies.append(body)
        self.arrived.set()
        return httpx.Response(status, json={} if status == 200 else {"error": "no"})

    def batch_sizes(self) -> list[int]:
        return [len(self.records_of(body)) for body in self.bodies]

    @staticmethod
    def records_of(body: bytes) -> list[SpanRecord]:
        """The spans as the server's OTLP ingest reads them."""
        return otlp.decode(body, "json", project_id=1, max_bytes=8_000_000)

    def spans(self) -> dict[str, SpanRecord]:
        return {r.name: r for body in self.bodies for r in self.records_of(body)}


@pytest.fixture
def collector() -> Collector:
    return Collector()


@pytest.fixture
def tracer(collector: Collector) -> Iterator[Tracer]:
    """Sends only when told (``flush``) or when a batch is full."""
    made = Tracer(
        "http://collector.test",
        "mc_testtest_" + "k" * 32,
        transport=httpx.MockTransport(collector),
        flush_interval_s=60,
    )
    yield made
    made.close()


# -- nesting --------------------------------------------------------------------------------


def test_decorators_and_blocks_nest_as_the_code_runs(tracer: Tracer, collector: Collector) -> None:
    @tracer("search", kind="retriever")
    def search(query: str, limit: int = 2) -> list[str]:
        return ["doc-1", "doc-2"][:limit]

    @tracer
    def answer(question: str) -> str:
        search(question)
        with tracer("llm call", kind="llm") as span:
            span.set(model="gpt-x", usage={"prompt_tokens": 5, "completion_tokens": 2}, output="42")
        return "42"

    assert answer("meaning?") == "42"
    assert tracer.flush()

    spans = collector.spans()
    root = spans[answer.__qualname__]
    assert root.parent_span_id is None
    assert spans["search"].parent_span_id == root.span_id
    assert spans["llm call"].parent_span_id == root.span_id
    assert {s.trace_id for s in spans.values()} == {root.trace_id}
    assert {s.source for s in spans.values()} == {"sdk"}
    assert (root.kind, spans["search"].kind, spans["llm call"].kind) == ("span", "retriever", "llm")
    assert orjson.loads(spans["search"].input or "") == {"query": "meaning?"}
    assert spans["search"].output == '["doc-1","doc-2"]'
    assert orjson.loads(root.input or "") == {"question": "meaning?"}
    assert root.output == "42"
    llm = spans["llm call"]
    assert (llm.model, llm.input_tokens, llm.output_tokens, llm.output) == ("gpt-x", 5, 2, "42")
    assert root.start_time <= llm.start_time <= llm.end_time <= root.end_time
    assert tracer.current_span() is None


async def test_concurrent_tasks_keep_their_own_parents(
    tracer: Tracer, collector: Collector
) -> None:
    @tracer(kind="tool")
    async def fetch(n: int) -> int:
        await asyncio.sleep(0)
        return n

    async def worker(n: int) -> None:
        async with tracer(f"task-{n}"):
            await asyncio.sleep(0)  # let the other task run in between
            async with tracer(f"step-{n}"):
                await asyncio.sleep(0)
                await fetch(n)

    async with tracer("root") as root:
        await asyncio.gather(worker(1), worker(2))
    tracer.flush()

    spans = collector.spans()
    assert sum(collector.batch_sizes()) == 7
    for n in (1, 2):
        assert spans[f"task-{n}"].parent_span_id == root.span_id
        assert spans[f"step-{n}"].parent_span_id == spans[f"task-{n}"].span_id
    fetches = [
        r for body in collector.bodies for r in collector.records_of(body) if r.kind == "tool"
    ]
    assert sorted(f.parent_span_id or "" for f in fetches) == sorted(
        spans[f"step-{n}"].span_id for n in (1, 2)
    )
    assert sorted(f.output or "" for f in fetches) == ["1", "2"]


def test_threads_with_a_copied_context_nest_and_others_start_a_trace(
    tracer: Tracer, collector: Collector
) -> None:
    def work(name: str) -> None:
        with tracer(name):
            pass

    with tracer("request") as request:
        copied = threading.Thread(target=contextvars.copy_context().run, args=(work, "copied"))
        bare = threading.Thread(target=work, args=("bare",))
        copied.start()
        bare.start()
        copied.join()
        bare.join()
    tracer.flush()

    spans = collector.spans()
    assert spans["copied"].parent_span_id == request.span_id
    assert spans["copied"].trace_id == request.trace_id
    assert spans["bare"].parent_span_id is None
    assert spans["bare"].trace_id != request.trace_id


def test_a_generator_span_lasts_until_its_last_item(tracer: Tracer, collector: Collector) -> None:
    @tracer("stream")
    def stream() -> Iterator[int]:
        yield 1
        yield 2

    assert list(stream()) == [1, 2]
    stopped = stream()
    assert next(stopped) == 1
    stopped.close()  # the consumer stops early: not a failure
    tracer.flush()

    records = [r for body in collector.bodies for r in collector.records_of(body)]
    assert [(r.name, r.status) for r in records] == [("stream", "ok"), ("stream", "ok")]


# -- errors -------------------------------------------------------------------------------


async def test_an_exception_is_recorded_and_raised(tracer: Tracer, collector: Collector) -> None:
    @tracer("lookup")
    async def lookup() -> None:
        raise KeyError("missing-id")

    with pytest.raises(ValueError, match="bad input"), tracer("parse"):
        raise ValueError("bad input")
    with pytest.raises(KeyError):
        await lookup()
    tracer.flush()

    spans = collector.spans()
    assert (spans["parse"].status, spans["parse"].error_type) == ("error", "ValueError")
    assert spans["parse"].error_message == "bad input"
    assert (spans["lookup"].status, spans["lookup"].error_type) == ("error", "KeyError")
    assert tracer.current_span() is None, "the failed span is no longer current"


def test_an_unknown_kind_is_refused_with_the_choices(tracer: Tracer) -> None:
    with pytest.raises(InvalidInput, match="retriever"):
        tracer("x", kind="database")


# -- sending --------------------------------------------------------------------------------


def test_spans_wait_for_a_full_batch_then_go_together(collector: Collector) -> None:
    tracer = Tracer(
        "http://collector.test",
        "k",
        transport=httpx.MockTransport(collector),
        batch_size=10,
        flush_interval_s=60,
    )
    try:
        for i in range(9):
            with tracer(f"s{i}"):
                pass
        assert collector.requests == [], "nine spans wait for the tenth"
        with tracer("s9"):
            pass
        assert collector.arrived.wait(10), "a full batch is sent without a flush"
        for i in range(10, 15):
            with tracer(f"s{i}"):
                pass
        tracer.flush()
    finally:
        tracer.close()

    assert collector.batch_sizes() == [10, 5]
    assert tracer.sent == 15
    assert collector.requests[0].headers["authorization"] == "Bearer k"


def test_spans_are_sent_after_the_interval_without_a_flush(collector: Collector) -> None:
    tracer = Tracer(
        "http://collector.test",
        "k",
        transport=httpx.MockTransport(collector),
        flush_interval_s=0.05,
    )
    try:
        with tracer("alone"):
            pass
        assert collector.arrived.wait(10)
    finally:
        tracer.close()
    assert list(collector.spans()) == ["alone"]


def test_a_full_queue_drops_and_counts(collector: Collector) -> None:
    tracer = Tracer(
        "http://collector.test",
        "k",
        transport=httpx.MockTransport(collector),
        queue_size=3,
        batch_size=100,
        flush_interval_s=60,
    )
    try:
        for i in range(5):
            with tracer(f"s{i}"):
                pass
        assert tracer.dropped == 2
        tracer.flush()
    finally:
        tracer.close()
    assert sorted(collector.spans()) == ["s0", "s1", "s2"]


def test_a_busy_server_is_retried_and_a_refusal_is_counted_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    busy = Collector(statuses=(503,))
    refusing = Collector(statuses=(400,))
    for collector in (busy, refusing):
        tracer = Tracer("http://c.test", "k", transport=httpx.MockTransport(collector), retries=1)
        try:
            with tracer("s"):
                pass
            tracer.flush()
        finally:
            tracer.close()
        if collector is busy:
            assert (tracer.sent, tracer.failed, len(busy.requests)) == (1, 0, 2)
        else:
            assert (tracer.sent, tracer.failed, len(refusing.requests)) == (0, 1, 1)
    assert any("dropped 1 spans" in r.getMessage() for r in caplog.records)


def test_large_batches_are_gzipped(tracer: Tracer, collector: Collector) -> None:
    with tracer("big") as span:
        span.set(input="x" * 50_000)
    tracer.flush()
    assert collector.requests[0].headers["content-encoding"] == "gzip"
    assert len(collector.spans()["big"].input or "") == 50_002


def test_a_disabled_tracer_runs_the_code_and_sends_nothing(collector: Collector) -> None:
    tracer = Tracer("http://c.test", "k", transport=httpx.MockTransport(collector), enabled=False)

    @tracer
    def work() -> int:
        return 7

    assert work() == 7
    tracer.flush()
    tracer.close()
    assert collector.requests == []


def test_the_environment_configures_a_tracer_without_arguments(
    monkeypatch: pytest.MonkeyPatch, collector: Collector
) -> None:
    monkeypatch.setenv("MODELCYCLE_SERVER", "http://from-env.test:9000")
    monkeypatch.setenv("MODELCYCLE_API_KEY", "mc_fromenv_" + "e" * 32)
    tracer = Tracer(transport=httpx.MockTransport(collector))
    with tracer("s"):
        pass
    tracer.close()
    (request,) = collector.requests
    assert str(request.url) == "http://from-env.test:9000/v1/traces"
    assert request.headers["authorization"] == "Bearer mc_fromenv_" + "e" * 32


def test_headers_carry_the_current_span_and_its_user(tracer: Tracer) -> None:
    assert tracer.headers() == {}
    with tracer("outer") as outer:
        outer.set(user="alice", session="s-1")
        with tracer("inner") as inner:
            sent = tracer.headers()
            assert modelcycle.trace.headers() == sent, "every tracer sees the current span"
    assert sent == {
        "traceparent": f"00-{inner.trace_id}-{inner.span_id}-01",
        "X-Modelcycle-User": "alice",
        "X-Modelcycle-Session": "s-1",
    }
    assert isinstance(modelcycle.trace, Tracer)


# -- against a real server --------------------------------------------------------------------


def all_spans(services: Services) -> list[SpanRow]:
    services.recorder.flush()
    with services.store.read() as session:
        return list(session.execute(select(SpanRow).order_by(SpanRow.start_time)).scalars())


@pytest.mark.e2e
def test_an_app_span_is_the_parent_of_the_gateway_span_it_calls(live_server: LiveServer) -> None:
    services = live_server.services
    admin = admin_of(services)
    register(services, admin.principal, "bot")
    services.deployments.create(
        admin.principal, DeploymentSpec(name="chat", routes=[Route(target="bot@1", weight=100)])
    )
    key = make_key(services, Role.APP)
    tracer = Tracer(live_server.url, key.key)
    client = openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=key.key, max_retries=0)

    @tracer("handle", kind="chain")
    def handle(question: str) -> str:
        with tracer("ask the model", kind="llm") as span:
            span.set(user="alice")
            reply = client.chat.completions.create(
                model="chat",
                messages=[{"role": "user", "content": question}],
                extra_headers=tracer.headers(),
            )
            span.set(model="chat", usage=reply.usage)
        return reply.choices[0].message.content or ""

    try:
        answer = handle("hello there")
        assert tracer.flush()
    finally:
        tracer.close()
        client.close()

    rows = all_spans(services)
    assert answer
    assert len(rows) == 3
    assert len({row.trace_id for row in rows}) == 1, "one trace"
    by_source = {row.source: row for row in rows if row.source == "gateway"}
    app = {row.name: row for row in rows if row.source == "sdk"}
    gateway = by_source["gateway"]
    assert gateway.parent_span_id == app["ask the model"].span_id
    assert app["ask the model"].parent_span_id == app["handle"].span_id
    assert gateway.user_id == "alice", "the span's user travels to the gateway"
    assert app["handle"].user_id == "alice", "a trace's user is copied onto its spans"
    assert app["ask the model"].input_tokens == gateway.input_tokens > 0
    assert app["handle"].output == answer


@pytest.mark.e2e
def test_the_default_tracer_sends_what_is_queued_when_the_program_exits(
    live_server: LiveServer,
) -> None:
    key = make_key(live_server.services, Role.APP)
    program = (
        "import modelcycle\n"
        "@modelcycle.trace(kind='tool')\n"
        "def step(n):\n"
        "    return n * 2\n"
        "with modelcycle.trace('script'):\n"
        "    step(21)\n"
    )
    env: dict[str, Any] = {
        **os.environ,
        "MODELCYCLE_SERVER": live_server.url,
        "MODELCYCLE_API_KEY": key.key,
        "OTEL_SERVICE_NAME": "exit-test",
    }
    finished = subprocess.run(
        [sys.executable, "-c", program], env=env, capture_output=True, timeout=120, check=False
    )
    assert finished.returncode == 0, finished.stderr.decode()

    rows = {row.name: row for row in all_spans(live_server.services)}
    assert set(rows) == {"script", "step"}
    assert rows["step"].parent_span_id == rows["script"].span_id
    assert rows["step"].output == "42"
    assert rows["script"].attributes is not None
    assert rows["script"].attributes["service.name"] == "exit-test"
