"""Every gateway request becomes a stored trace; a full queue, shutdown and an outage lose none
silently.

The recorder's contract, as a user relies on it: a request is never slowed or failed by
tracing; what cannot be queued is counted (and shown on ``/metrics``); ``Services.close``
writes what is queued; while the database is down spans go to a spill file and arrive,
exactly once, when it is back.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, func, select, text

from gateway.harness import Env
from modelcycle.monitor import SpanRecord
from modelcycle.settings import Settings
from modelcycle.store import Store
from modelcycle.store.tables import SpanRollupRow, SpanRow
from monitor.recording import gateway, settings_for
from postgres_schema import POSTGRES_URL

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "one two"}]}


def spans_of(store: Store) -> list[SpanRow]:
    with store.read() as session:
        return list(session.execute(select(SpanRow).order_by(SpanRow.start_time)).scalars())


async def eventually(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    """Wait for ``condition``, letting background tasks run (no event exists to wait on)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.01)


def completion_id(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return str(response.json()["id"]).split("-", 1)[1]


async def test_a_request_is_one_span_with_who_asked_what_and_the_answer(tmp_path: Path) -> None:
    async with gateway(settings_for(tmp_path)) as env:
        env.deploy("chat", (env.version("bot", "mock://script?reply=a+b+c"), 100))
        parent = "00f067aa0ba902b7"
        trace = uuid.uuid4().hex
        response = await env.http().post(
            "/v1/chat/completions",
            json={**CHAT, "temperature": 0.3},
            headers={
                "X-Modelcycle-User": "alice",
                "X-Modelcycle-Session": "s-1",
                "X-Modelcycle-Metadata": '{"feature": "search", "tier": 2}',
                "traceparent": f"00-{trace}-{parent}-01",
            },
        )
        env.services.recorder.flush()

        [span] = spans_of(env.services.store)
        assert span.request_id == completion_id(response)
        assert (span.deployment, span.model, span.version, span.route) == (
            "chat",
            "bot",
            1,
            "primary",
        )
        assert (span.source, span.kind, span.endpoint, span.status) == (
            "gateway",
            "llm",
            "chat.completions",
            "ok",
        )
        assert (span.input_tokens, span.output_tokens) == (2, 3)
        assert orjson.loads(span.input or "") == [{"role": "user", "content": "one two"}]
        assert span.output == "a b c"
        assert (span.user_id, span.session_id) == ("alice", "s-1")
        assert span.attributes == {"feature": "search", "tier": 2}
        assert (span.trace_id, span.parent_span_id) == (trace, parent)
        assert span.params is not None
        assert span.params["temperature"] == 0.3
        assert span.key_id == env.app_key.principal.key_id
        assert span.ttft_ms is None
        assert span.stream is False
        with env.services.store.read() as session:
            rollup = session.execute(select(SpanRollupRow)).scalar_one()
        assert (rollup.deployment, rollup.version, rollup.requests) == ("chat", 1, 1)


async def test_a_stream_records_its_time_to_first_token_and_whole_answer(tmp_path: Path) -> None:
    async with gateway(settings_for(tmp_path)) as env:
        env.deploy("chat", (env.version("bot", "mock://echo", chunk_delay_ms=20), 100))
        stream = await env.openai().completions.create(model="chat", prompt="a b c d", stream=True)
        async for _ in stream:
            pass
        env.services.recorder.flush()

        [span] = spans_of(env.services.store)
        assert span.stream is True
        assert span.endpoint == "completions"
        assert span.ttft_ms is not None
        assert 0 < span.ttft_ms < span.duration_ms
        assert span.output == "a b c d"
        assert orjson.loads(span.input or "") == "a b c d"
        assert span.output_tokens == 4


async def test_a_shadow_copy_is_its_own_span_with_its_answer(tmp_path: Path) -> None:
    async with gateway(settings_for(tmp_path)) as env:
        live = env.version("bot", "mock://script?reply=live")
        shadow = env.version("bot", "mock://script?reply=shadow")
        env.deploy("chat", (live, 100), shadow=shadow)

        response = await env.http().post("/v1/chat/completions", json=CHAT)
        await eventually(lambda: len(env.finished.events) == 2, "the shadow call ended")
        env.services.recorder.flush()

        spans = {span.route: span for span in spans_of(env.services.store)}
        assert set(spans) == {"primary", "shadow"}
        assert spans["primary"].request_id == completion_id(response)
        assert (spans["primary"].version, spans["primary"].output) == (1, "live")
        assert (spans["shadow"].version, spans["shadow"].status) == (2, "ok")
        assert spans["shadow"].output == "shadow"
        assert spans["shadow"].input == spans["primary"].input


async def test_a_full_queue_drops_and_counts_and_never_fails_a_request(tmp_path: Path) -> None:
    async with gateway(settings_for(tmp_path, trace_queue_size=5)) as env:
        env.deploy("chat", (env.version("bot", "mock://script?reply=ok"), 100))
        recorder = env.services.recorder
        inside, release = threading.Event(), threading.Event()

        def stall_the_writer(_spans: Sequence[SpanRecord]) -> None:
            inside.set()
            release.wait(30)

        recorder.exporters.append(stall_the_writer)
        http = env.http()
        assert (await http.post("/v1/chat/completions", json=CHAT)).status_code == 200
        assert inside.wait(10), "the writer never took the first span"

        answers = [await http.post("/v1/chat/completions", json=CHAT) for _ in range(12)]

        assert [a.status_code for a in answers] == [200] * 12
        scraped = await scrape(env)  # counts every request answered so far (settles)
        assert recorder.dropped == 12 - 5
        assert scraped["modelcycle_traces_dropped_total"] == 7
        assert scraped["modelcycle_trace_queue_depth"] == 5
        release.set()
        recorder.flush()
        assert len(spans_of(env.services.store)) == 1 + 5
        assert (await scrape(env))["modelcycle_traces_written_total"] == 6


async def scrape(env: Env) -> dict[str, float]:
    """Unlabelled samples of ``/metrics`` by name."""
    response = await env.http().get("/metrics")
    assert response.status_code == 200
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if not sample.labels
    }


async def test_requests_are_settled_a_few_at_a_time_and_all_before_a_scrape(
    tmp_path: Path,
) -> None:
    # The writer thread would wake only after a minute: only the request path settles.
    async with gateway(settings_for(tmp_path, trace_flush_interval_s=60)) as env:
        env.deploy("chat", (env.version("bot", "mock://script?reply=ok"), 100))
        recorder = env.services.recorder
        batches: list[int] = []
        recorder.observers.append(lambda requests: batches.append(len(requests)))
        http = env.http()
        every = recorder.settle_every
        for _ in range(every - 1):
            assert (await http.post("/v1/chat/completions", json=CHAT)).status_code == 200
        assert batches == [], "nothing settled on the way"
        assert recorder.pending == every - 1, "taken, and counted as waiting"

        assert (await http.post("/v1/chat/completions", json=CHAT)).status_code == 200
        assert batches == [every], "settled in one go"
        for _ in range(3):
            assert (await http.post("/v1/chat/completions", json=CHAT)).status_code == 200
        scraped = await scrape_labelled(env, "modelcycle_requests_total")

        assert batches == [every, 3]
        assert scraped == every + 3, "a scrape counts every request answered"
        recorder.flush()
        assert len(spans_of(env.services.store)) == every + 3


async def scrape_labelled(env: Env, name: str) -> float:
    """The sum of a labelled family's samples on ``/metrics``."""
    response = await env.http().get("/metrics")
    assert response.status_code == 200
    return sum(
        sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name == name
    )


async def test_close_writes_everything_still_queued(tmp_path: Path) -> None:
    # The writer would wake only after a minute: close() alone must write the queue.
    settings = settings_for(tmp_path, trace_flush_interval_s=60)
    async with gateway(settings) as env:
        env.deploy("chat", (env.version("bot", "mock://script?reply=ok"), 100))
        http = env.http()
        ids = {completion_id(await http.post("/v1/chat/completions", json=CHAT)) for _ in range(20)}
        assert env.services.recorder.written == 0
        assert env.services.recorder.pending == 20

        env.services.close()

        store = Store(settings.resolved_database_url)
        try:
            assert {span.request_id for span in spans_of(store)} == ids
        finally:
            store.dispose()


# -- the database goes away mid-load ------------------------------------------------------


@contextmanager
def sqlite_outage(settings: Settings) -> Iterator[None]:
    """Another process holds SQLite's write lock: every write times out ("database is locked")."""
    holder = sqlite3.connect(settings.home / "modelcycle.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@contextmanager
def postgres_outage(database_url: str, application_name: str) -> Iterator[None]:
    """Kill the server's connections, and hide its tables until the database "comes back"."""
    schema = unquote(database_url).rsplit("search_path=", 1)[1].split("&", 1)[0]
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER SCHEMA "{schema}" RENAME TO "{schema}_down"'))
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = :name"
                ),
                {"name": application_name},
            )
        yield
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER SCHEMA "{schema}_down" RENAME TO "{schema}"'))
        admin.dispose()


async def test_spans_spill_while_the_database_is_down_and_each_arrives_once(
    tmp_path: Path, modelcycle_database_url: str | None
) -> None:
    url = modelcycle_database_url
    name = f"mc-recorder-{uuid.uuid4().hex[:8]}"
    if url is not None:  # lets the outage find exactly this server's connections
        url = f"{url}&application_name={name}"
    settings = settings_for(
        tmp_path,
        url,
        sqlite_busy_timeout_s=0.05,
        spill_replay_interval_s=0.05,
        auth_cache_ttl_s=300,
        trace_batch_size=16,
    )
    total, workers = 240, 8
    async with gateway(settings) as env:
        env.deploy("chat", (env.version("bot", "mock://script?reply=ok", latency_ms=2), 100))
        recorder = env.services.recorder
        http = env.http()
        sent = 0
        statuses: list[int] = []
        served: set[str] = set()
        outage = sqlite_outage(settings) if url is None else postgres_outage(url, name)
        down = asyncio.Event()

        async def client() -> None:
            nonlocal sent
            while sent < total:
                sent += 1
                response = await http.post("/v1/chat/completions", json=CHAT)
                statuses.append(response.status_code)
                if response.status_code == 200:
                    served.add(completion_id(response))
                if sent >= total // 3:
                    down.set()

        async def operator() -> None:
            await down.wait()
            with outage:  # until the writer has failed and a third more requests were sent
                await eventually(
                    lambda: recorder.failed_writes > 0 and sent >= 2 * total // 3,
                    "a write failed during the outage",
                )

        await asyncio.wait_for(
            asyncio.gather(operator(), *(client() for _ in range(workers))), timeout=120
        )
        await eventually(lambda: recorder.pending == 0 and not recorder.spill_files(), "replayed")
        recorder.flush()

        assert len(statuses) == total
        assert recorder.failed_writes > 0, "the outage was not felt"
        assert recorder.spilled > 0
        spans = spans_of(env.services.store)
        assert len(spans) == total, "a trace was lost or stored twice"
        assert len({(s.trace_id, s.span_id) for s in spans}) == total
        assert served <= {s.request_id for s in spans}
        with env.services.store.read() as session:
            counted = session.execute(select(func.sum(SpanRollupRow.requests))).scalar_one()
        assert counted == total, "a replayed span was rolled up twice"
        assert recorder.dropped == 0
