"""Spans with known values, written straight through the ``SpanWriter`` (and so rolled up).

Imported as ``monitor.trace_factory`` by the trace query, feedback and CLI tests.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from modelcycle.monitor import SpanRecord
from modelcycle.services import Services
from modelcycle.store.tables import AuditEntryRow

NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
"""The tests' "now": queries pass it, spans are placed relative to it."""

_ids = itertools.count(1)


def trace_id() -> str:
    return f"{next(_ids):032x}"


def span_id() -> str:
    return f"{next(_ids):016x}"


def llm_span(
    project_id: int,
    *,
    trace: str | None = None,
    ago: timedelta = timedelta(minutes=5),
    latency_ms: float = 100.0,
    **fields: Any,
) -> SpanRecord:
    """A gateway model call that started ``ago`` before ``NOW``."""
    start = NOW - ago
    values: dict[str, Any] = {
        "project_id": project_id,
        "trace_id": trace or trace_id(),
        "span_id": span_id(),
        "name": "chat.completions chat",
        "kind": "llm",
        "source": "gateway",
        "start_time": start,
        "end_time": start + timedelta(milliseconds=latency_ms),
        "duration_ms": latency_ms,
        "status": "ok",
        "endpoint": "chat.completions",
        "deployment": "chat",
        "model": "chat-model",
        "version": 1,
        "route": "primary",
        "key_id": 7,
        "input_tokens": 10,
        "output_tokens": 20,
        "input": '[{"role":"user","content":"What is the capital of France?"}]',
        "output": "Paris.",
    }
    values.update(fields)
    return SpanRecord(**values)


def app_trace(project_id: int, *, ago: timedelta = timedelta(minutes=5)) -> list[SpanRecord]:
    """An application trace: a root chain with a retriever and two model calls."""
    trace = trace_id()
    start = NOW - ago
    root = SpanRecord(
        project_id=project_id,
        trace_id=trace,
        span_id=span_id(),
        name="answer_question",
        kind="chain",
        source="sdk",
        start_time=start,
        end_time=start + timedelta(milliseconds=900),
        duration_ms=900.0,
        status="ok",
        user_id="ada",
        session_id="s-1",
        input="How do refunds work?",
        output="Within 30 days.",
    )
    retriever = replace(
        root,
        span_id=span_id(),
        parent_span_id=root.span_id,
        name="search_docs",
        kind="retriever",
        end_time=start + timedelta(milliseconds=50),
        duration_ms=50.0,
        input=None,
        output=None,
    )
    first = llm_span(
        project_id,
        trace=trace,
        ago=ago - timedelta(milliseconds=60),
        parent_span_id=root.span_id,
        source="sdk",
        status="error",
        error_message="upstream timed out",
        user_id="ada",
        input_tokens=30,
        output_tokens=0,
    )
    second = llm_span(
        project_id,
        trace=trace,
        ago=ago - timedelta(milliseconds=400),
        parent_span_id=root.span_id,
        source="sdk",
        version=2,
        route="canary",
        user_id="ada",
        input_tokens=40,
        output_tokens=25,
    )
    return [root, retriever, first, second]


def count(services: Services, table: type[Any]) -> int:
    with services.store.read() as session:
        return int(session.execute(select(func.count()).select_from(table)).scalar_one())


def audit_actions(services: Services) -> list[str]:
    with services.store.read() as session:
        return list(
            session.execute(select(AuditEntryRow.action).order_by(AuditEntryRow.seq)).scalars()
        )
