"""Tables of the monitoring stage: spans, per-minute rollups, feedback, drift, alerts.

One wide, append-only ``spans`` table holds every span: a gateway request is a
trace of one span; an application traced with ``modelcycle.trace`` or OTLP
adds nested spans under the same ``trace_id``. Trace-level attributes (user,
session, deployment) are copied onto each span so searches never join.
``(trace_id, span_id)`` is unique, which makes re-sent spans and replayed
spill files idempotent. Dashboards read ``span_rollups`` (one row per minute,
deployment, version and route) instead of scanning spans; see
docs/design/monitoring.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from modelcycle.store.tables.base import Base, JSONColumn, utcnow

BigId = BigInteger().with_variant(Integer(), "sqlite")
"""A 64-bit key on PostgreSQL; SQLite needs ``INTEGER`` for its rowid alias."""


class SpanRow(Base):
    """One span: a gateway request, or one operation of a traced application."""

    __tablename__ = "spans"
    __table_args__ = (
        UniqueConstraint("trace_id", "span_id"),
        Index("ix_spans_project_start", "project_id", "start_time"),
        Index("ix_spans_project_deployment_start", "project_id", "deployment", "start_time"),
        # Partial: most spans carry no user or session, and those need no entry.
        Index(
            "ix_spans_project_user_start",
            "project_id",
            "user_id",
            "start_time",
            sqlite_where=text("user_id IS NOT NULL"),
            postgresql_where=text("user_id IS NOT NULL"),
        ),
        Index(
            "ix_spans_project_session_start",
            "project_id",
            "session_id",
            "start_time",
            sqlite_where=text("session_id IS NOT NULL"),
            postgresql_where=text("session_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    project_id: Mapped[int]
    trace_id: Mapped[str] = mapped_column(String(32))
    span_id: Mapped[str] = mapped_column(String(16))
    parent_span_id: Mapped[str | None] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    """``llm``, ``embedding``, ``chain``, ``tool``, ``retriever``, ``agent``, ``span``..."""
    source: Mapped[str] = mapped_column(String(8))
    """``gateway``, ``sdk`` or ``otlp``."""
    start_time: Mapped[datetime]
    end_time: Mapped[datetime]
    duration_ms: Mapped[float] = mapped_column(Float)
    ttft_ms: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(12))
    """``ok``, ``error`` or ``cancelled``."""
    status_code: Mapped[int | None]
    error_type: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(String(64))
    endpoint: Mapped[str | None] = mapped_column(String(32))
    deployment: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(128))
    version: Mapped[int | None]
    route: Mapped[str | None] = mapped_column(String(12))
    """``primary``, ``canary``, ``fallback`` or ``shadow`` (gateway spans)."""
    key_id: Mapped[int | None]
    user_id: Mapped[str | None] = mapped_column(String(128))
    session_id: Mapped[str | None] = mapped_column(String(128))
    input_tokens: Mapped[int] = mapped_column(default=0)
    output_tokens: Mapped[int] = mapped_column(default=0)
    cached_tokens: Mapped[int | None]
    reasoning_tokens: Mapped[int | None]
    cost: Mapped[float | None] = mapped_column(Float)
    cache_hit: Mapped[bool] = mapped_column(default=False)
    attempts: Mapped[int] = mapped_column(default=1)
    stream: Mapped[bool] = mapped_column(default=False)
    finish_reason: Mapped[str | None] = mapped_column(String(32))
    guard: Mapped[str | None] = mapped_column(String(8))
    """The guard stage's decision: ``allow``, ``flag``, ``redact`` or ``block``."""
    params: Mapped[dict[str, Any] | None] = mapped_column(JSONColumn)
    input: Mapped[str | None] = mapped_column(Text)
    """JSON text: the messages, or the prompt string (after redaction)."""
    output: Mapped[str | None] = mapped_column(Text)
    attributes: Mapped[dict[str, Any] | None] = mapped_column(JSONColumn)
    """Free metadata (``X-Modelcycle-Metadata``) and OTel attributes not mapped to a column."""


class SpanRollupRow(Base):
    """Aggregates of the LLM spans of one minute, deployment, model version and route.

    ``*_hist`` are counts per latency bucket (``modelcycle.monitor.histogram``),
    from which any time range's percentiles are computed. Empty strings and 0
    stand for "none" so that the unique key works on both databases.
    """

    __tablename__ = "span_rollups"
    __table_args__ = (
        UniqueConstraint("project_id", "minute", "deployment", "model", "version", "route"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    project_id: Mapped[int]
    minute: Mapped[datetime]
    deployment: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(128))
    version: Mapped[int]
    route: Mapped[str] = mapped_column(String(12))
    requests: Mapped[int] = mapped_column(default=0)
    errors: Mapped[int] = mapped_column(default=0)
    latency_sum_ms: Mapped[float] = mapped_column(Float, default=0.0)
    latency_hist: Mapped[list[int]] = mapped_column(JSONColumn)
    ttft_count: Mapped[int] = mapped_column(default=0)
    ttft_sum_ms: Mapped[float] = mapped_column(Float, default=0.0)
    ttft_hist: Mapped[list[int]] = mapped_column(JSONColumn)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    cache_hits: Mapped[int] = mapped_column(default=0)
    feedback_count: Mapped[int] = mapped_column(default=0)
    feedback_sum: Mapped[float] = mapped_column(Float, default=0.0)


class FeedbackRow(Base):
    """A user's judgement of a trace, linked to the version that answered."""

    __tablename__ = "feedback"
    __table_args__ = (
        Index("ix_feedback_project_trace", "project_id", "trace_id"),
        Index("ix_feedback_project_created", "project_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    trace_id: Mapped[str] = mapped_column(String(32))
    span_id: Mapped[str | None] = mapped_column(String(16))
    deployment: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(128))
    version: Mapped[int | None]
    score: Mapped[float | None] = mapped_column(Float)
    """Normalised to [0, 1]; thumbs up is 1, thumbs down 0."""
    thumbs: Mapped[int | None]
    """+1 or -1."""
    label: Mapped[str | None] = mapped_column(String(64))
    comment: Mapped[str | None] = mapped_column(Text)
    correction: Mapped[str | None] = mapped_column(Text)
    """The answer the model should have given (an SFT target for tuning)."""
    user_id: Mapped[str | None] = mapped_column(String(128))
    actor: Mapped[str] = mapped_column(String(100))
    attributes: Mapped[dict[str, Any] | None] = mapped_column(JSONColumn)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DriftReportRow(Base):
    """One drift check: a current window against a reference, metric by metric."""

    __tablename__ = "drift_reports"
    __table_args__ = (Index("ix_drift_reports_project_created", "project_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    deployment: Mapped[str | None] = mapped_column(String(64))
    current_from: Mapped[datetime]
    current_to: Mapped[datetime]
    reference: Mapped[dict[str, Any]] = mapped_column(JSONColumn)
    """``{"kind": "window", "from": ..., "to": ...}`` or ``{"kind": "dataset", ...}``."""
    metrics: Mapped[list[dict[str, Any]]] = mapped_column(JSONColumn)
    """Per metric: name, test, statistic, p_value, threshold, drifted, evidence."""
    drifted: Mapped[bool]
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AlertRuleRow(Base):
    """A condition on a rollup or drift metric, with where to deliver its transitions."""

    __tablename__ = "alert_rules"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    metric: Mapped[str] = mapped_column(String(64))
    deployment: Mapped[str | None] = mapped_column(String(64))
    version: Mapped[int | None]
    op: Mapped[str] = mapped_column(String(2))
    threshold: Mapped[float] = mapped_column(Float)
    window_s: Mapped[int]
    min_requests: Mapped[int] = mapped_column(default=1)
    severity: Mapped[str] = mapped_column(String(12))
    channels: Mapped[list[dict[str, Any]]] = mapped_column(JSONColumn)
    enabled: Mapped[bool] = mapped_column(default=True)
    state: Mapped[str] = mapped_column(String(12), default="ok")
    """``ok`` or ``firing``."""
    last_value: Mapped[float | None] = mapped_column(Float)
    last_evaluated_at: Mapped[datetime | None]
    state_since: Mapped[datetime | None]
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AlertEventRow(Base):
    """A transition of a rule (``firing`` or ``resolved``) and its deliveries."""

    __tablename__ = "alert_events"
    __table_args__ = (Index("ix_alert_events_project_at", "project_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("alert_rules.id", ondelete="CASCADE"))
    project_id: Mapped[int]
    state: Mapped[str] = mapped_column(String(12))
    value: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    message: Mapped[str] = mapped_column(Text)
    deliveries: Mapped[list[dict[str, Any]]] = mapped_column(JSONColumn)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class MonitorPolicyRow(Base):
    """Per-project monitoring policy: how long traces are kept."""

    __tablename__ = "monitor_policies"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    retention_days: Mapped[int | None]
    """Spans older than this many days are purged by the worker; ``None`` keeps them."""
    store_raw_text: Mapped[bool] = mapped_column(default=False)
    """Keep prompts and answers as sent; by default PII is redacted before traces are stored."""
    updated_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
