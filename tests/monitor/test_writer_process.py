"""The trace writer child of ``modelcycle up``: a real child process on a real pipe."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from e2e.live import free_port, wait_until_answers
from modelcycle.access.keys import generate_key
from modelcycle.backends import GenerationParams, Message
from modelcycle.cli.trace_writer import writer_command
from modelcycle.client import Client
from modelcycle.events import RequestFinished
from modelcycle.monitor.spans import SpanRecord, from_request, from_wire, request_json, to_wire
from modelcycle.monitor.writer_process import WriterProcess
from modelcycle.services import Services
from modelcycle.store import Store
from modelcycle.store.tables import SpanRollupRow, SpanRow
from modelcycle.testing import admin_of, make_services, make_settings

EMAIL = "maria.garcia@example.com"
DEADLINE_S = 60.0


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    found = make_services(make_settings(tmp_path / "home"))
    yield found
    found.close()


def child_env(services: Services) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")}
    return env | {
        "MODELCYCLE_HOME": str(services.settings.home),
        "MODELCYCLE_DATABASE_URL": services.settings.resolved_database_url,
    }


def request(project_id: int, text: str = "hello", **fields: Any) -> RequestFinished:
    values: dict[str, Any] = {
        "request_id": f"req_{uuid.uuid4().hex}",
        "project": "root",
        "deployment": "chat",
        "key_id": 1,
        "endpoint": "chat.completions",
        "model": "bot",
        "version": 1,
        "route": "primary",
        "status": "ok",
        "status_code": 200,
        "error_type": None,
        "latency_ms": 12.5,
        "ttft_ms": None,
        "prompt_tokens": 7,
        "completion_tokens": 3,
        "stream": False,
        "attempts": 1,
        "finish_reason": "stop",
        "at": datetime.now(UTC) - timedelta(seconds=1),
        "project_id": project_id,
        "input": (Message(role="user", content=f"{text}, write to {EMAIL}"),),
        "output": "ok",
        "params": GenerationParams(max_tokens=16, temperature=0.5),
        "metadata": {"app": "support"},
    }
    values.update(fields)
    return RequestFinished(**values)


def rows(services: Services) -> dict[str, SpanRow]:
    with services.store.read() as session:
        return {row.request_id: row for row in session.execute(select(SpanRow)).scalars()}


def rolled_up(services: Services) -> int:
    with services.store.read() as session:
        return int(session.execute(select(func.sum(SpanRollupRow.requests))).scalar() or 0)


def until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_the_child_stores_shipped_requests_redacted_and_rolled_up(services: Services) -> None:
    project_id = admin_of(services).principal.project_id
    writer = WriterProcess(writer_command(), env=child_env(services))
    services.recorder.ship_to(writer)
    sent = [request(project_id, f"question {i}") for i in range(300)]
    try:
        for event in sent:
            services.recorder.submit(event)
        services.recorder.flush(timeout_s=DEADLINE_S)
        stored = rows(services)
        assert writer.pid is not None, "the child still runs"
        # Requests go first: the child only takes CPU time nothing else wants, in
        # every thread (policy and niceness are per thread; libraries start some).
        threads = [int(t) for t in os.listdir(f"/proc/{writer.pid}/task")]
        policies = {os.sched_getscheduler(t) for t in threads}
        niceness = {os.getpriority(os.PRIO_PROCESS, t) for t in threads}
    finally:
        services.recorder.close()

    assert policies == {os.SCHED_IDLE}
    assert niceness == {19}
    assert set(stored) == {event.request_id for event in sent}
    assert all(EMAIL not in (row.input or "") for row in stored.values()), "redacted"
    assert "[EMAIL_ADDRESS]" in (stored[sent[0].request_id].input or "")
    assert rolled_up(services) == 300
    assert services.recorder.written == 300
    assert services.recorder.pending == 0
    assert writer.starts == 1


def test_a_span_is_the_same_stored_by_the_child_or_by_a_thread(tmp_path: Path) -> None:
    child = make_services(make_settings(tmp_path / "child"))
    thread = make_services(make_settings(tmp_path / "thread"))
    project_id = admin_of(child).principal.project_id
    findings = ({"stage": "input", "detector": "pii", "type": "EMAIL_ADDRESS", "action": "redact"},)
    events = [
        request(project_id),
        request(project_id, status="error", status_code=502, error_message="upstream said no"),
        request(project_id, endpoint="completions", input=("one", "two"), output=("a", "b")),
        request(project_id, guard="redact", guard_findings=findings, guard_ms=0.25),
        request(project_id, user="maria", session="s1", ttft_ms=3.5, stream=True),
    ]
    child.recorder.ship_to(WriterProcess(writer_command(), env=child_env(child)))
    try:
        for services in (child, thread):
            for event in events:
                services.recorder.submit(event)
            services.recorder.flush(timeout_s=DEADLINE_S)
        by_child, by_thread = rows(child), rows(thread)
    finally:
        child.close()
        thread.close()

    def columns(row: SpanRow) -> dict[str, Any]:
        return {c.key: getattr(row, c.key) for c in SpanRow.__table__.columns if c.key != "id"}

    assert set(by_child) == {event.request_id for event in events}
    for request_id, row in by_child.items():
        assert columns(row) == columns(by_thread[request_id])


def test_batches_a_killed_child_had_not_stored_are_stored_by_the_server_once(
    services: Services,
) -> None:
    project_id = admin_of(services).principal.project_id
    writer = WriterProcess(writer_command(), env=child_env(services), restart_after_s=0.0)
    services.recorder.ship_to(writer)
    try:
        assert writer.start()
        first_pid = writer.pid
        assert first_pid is not None
        os.kill(first_pid, signal.SIGSTOP)  # it takes batches into its pipe, stores none
        sent = [request(project_id, f"q{i}") for i in range(50)]
        for event in sent:
            services.recorder.submit(event)
        until(lambda: services.recorder.pending == 50 and not services.recorder._queue, "a ship")
        os.kill(first_pid, signal.SIGKILL)
        services.recorder.flush(timeout_s=DEADLINE_S)
        stored = rows(services)
        later = request(project_id, "after the crash")
        services.recorder.submit(later)
        services.recorder.flush(timeout_s=DEADLINE_S)
        assert writer.pid not in (None, first_pid), "a new child took over"
    finally:
        services.recorder.close()

    assert set(stored) == {event.request_id for event in sent}
    assert later.request_id in rows(services)
    assert rolled_up(services) == 51, "each request counted once"
    assert services.recorder.written == 51


def test_flush_gives_up_at_its_timeout_when_the_child_hangs(services: Services) -> None:
    project_id = admin_of(services).principal.project_id
    writer = WriterProcess(writer_command(), env=child_env(services))
    services.recorder.ship_to(writer)
    assert writer.start()
    pid = writer.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # alive, reads nothing, answers nothing
    try:
        services.recorder.submit(request(project_id))
        started = time.monotonic()
        services.recorder.flush(timeout_s=1.0)
        waited = time.monotonic() - started
        assert services.recorder.pending == 1, "still with the child, not lost"
    finally:
        os.kill(pid, signal.SIGCONT)
        services.recorder.close()
    assert waited < 5
    assert len(rows(services)) == 1, "stored once the child went on"


def test_closing_stores_everything_and_the_child_exits(services: Services) -> None:
    project_id = admin_of(services).principal.project_id
    services_writer = WriterProcess(writer_command(), env=child_env(services))
    services.recorder.ship_to(services_writer)
    sent = [request(project_id, f"q{i}") for i in range(40)]
    assert services_writer.start()
    pid = services_writer.pid
    for event in sent:
        services.recorder.submit(event)

    services.recorder.close()

    assert set(rows(services)) == {event.request_id for event in sent}
    with pytest.raises(ProcessLookupError):
        os.kill(pid or 0, 0)  # exited and reaped


def test_a_request_orjson_cannot_write_is_stored_by_the_server(services: Services) -> None:
    project_id = admin_of(services).principal.project_id
    writer = WriterProcess(writer_command(), env=child_env(services))
    services.recorder.ship_to(writer)
    odd = request(project_id, metadata={"huge": 2**70})  # beyond 64 bits: orjson refuses
    usual = request(project_id, metadata=MappingProxyType({"app": "support"}))
    try:
        services.recorder.submit(odd)
        services.recorder.flush(timeout_s=DEADLINE_S)
        services.recorder.submit(usual)
        services.recorder.flush(timeout_s=DEADLINE_S)
        stored = rows(services)
    finally:
        services.recorder.close()
    assert stored[odd.request_id].attributes == {"huge": str(2**70)}
    assert stored[usual.request_id].attributes == {"app": "support"}
    assert writer.written == 1, "the usual one went through the child"


def test_without_a_child_to_start_the_server_stores_traces_itself(services: Services) -> None:
    project_id = admin_of(services).principal.project_id
    writer = WriterProcess(["/nonexistent/python", "-c", "pass"])
    services.recorder.ship_to(writer)
    event = request(project_id)
    services.recorder.submit(event)
    services.recorder.flush(timeout_s=DEADLINE_S)
    services.recorder.close()
    assert event.request_id in rows(services)
    assert writer.starts == 0


def test_an_event_sent_as_an_array_reads_back_as_its_json_object() -> None:
    findings = ({"stage": "input", "detector": "pii", "type": "EMAIL_ADDRESS", "action": "redact"},)
    event = request(
        1,
        guard="redact",
        guard_findings=findings,
        user="maria",
        params=GenerationParams(max_tokens=5, stop=("x",), passthrough={"top_k": 3}),
    )
    sent = to_wire(event)
    assert len(sent) < len(orjson.dumps(request_json(event))) * 0.7, "positions, not names"
    assert from_wire(orjson.loads(sent)) == request_json(event)
    with pytest.raises(ValueError, match="fields"):
        from_wire(orjson.loads(sent)[:-1])  # never a span with fields shifted


def test_from_request_keeps_params_inputs_and_guard_findings() -> None:
    findings = ({"stage": "output", "detector": "pii", "type": "PHONE", "action": "flag"},)
    event = request(
        1,
        guard="flag",
        guard_findings=findings,
        guard_ms=1.23456,
        params=GenerationParams(max_tokens=5, stop=("x",), passthrough={"top_k": 3}),
    )
    span = from_request(event)
    assert isinstance(span, SpanRecord)
    assert span.params == {"max_tokens": 5, "stop": ["x"], "top_k": 3}
    assert span.input == f'[{{"role":"user","content":"hello, write to {EMAIL}"}}]'
    assert span.attributes == {
        "app": "support",
        "guard.findings": [dict(findings[0])],
        "guard.ms": 1.235,
    }
    assert span.start_time == event.at - timedelta(milliseconds=12.5)
    assert span.span_id == event.request_id[-16:]


@pytest.mark.e2e
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_up_stores_traces_through_its_child_and_writes_everything_when_stopped(
    tmp_path: Path, stop: signal.Signals
) -> None:
    home = tmp_path / "home"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    admin, _ = generate_key()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")}
    env |= {
        "MODELCYCLE_HOME": str(home),
        "MODELCYCLE_REGISTER_DEFAULT_MODEL": "false",
        "MODELCYCLE_ADMIN_KEY": admin,
        "MODELCYCLE_WORKER": "false",
        "MODELCYCLE_TRACE_FLUSH_INTERVAL_S": "60",  # nothing is written before the signal
    }
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("modelcycle")), "up", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_answers(f"{url}/readyz", timeout_s=DEADLINE_S)
        with Client(url, admin) as client:
            version = client.models.register("chat", source="mock://echo", backend="mock")
            client.deployments.create("chat", f"chat@{version.version}")
        body = {"model": "chat", "messages": [{"role": "user", "content": f"mail {EMAIL}"}]}
        headers = {"Authorization": f"Bearer {admin}"}
        answers = [
            httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=30)
            for _ in range(25)
        ]
    finally:
        process.send_signal(stop)
        out, err = process.communicate(timeout=DEADLINE_S)

    assert [a.status_code for a in answers] == [200] * 25
    found = re.search(r"trace writer: pid (\d+) \(modelcycle trace-writer\)", out)
    assert found, out
    assert process.returncode == 0, err
    assert "Traceback" not in err
    assert "stopped" in err
    with pytest.raises(ProcessLookupError):
        os.kill(int(found.group(1)), 0)  # stopped with the server
    store = Store(f"sqlite:///{home / 'modelcycle.db'}")
    try:
        with store.read() as session:
            texts = list(session.execute(select(SpanRow.input)).scalars())
    finally:
        store.dispose()
    assert len(texts) == 25, "every request's trace was written at shutdown"
    assert not any(EMAIL in (text or "") for text in texts)
