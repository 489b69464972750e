"""Tables of the evaluation stage: datasets and their versions, runs, results, online scores.

A dataset version is immutable once written: its samples are rows keyed by
``(version_id, position)`` and its ``content_hash`` is the SHA-256 of the
samples' canonical JSON in order, so two versions with the same samples have
the same hash. A run stores one result per ``(run, sample, target)``: that key
is what makes a run resumable without duplicating a sample.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from modelcycle.store.tables.base import Base, JSONColumn, utcnow
from modelcycle.store.tables.monitor import BigId


class DatasetRow(Base):
    """A named dataset of a project; its content lives in its versions."""

    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DatasetVersionRow(Base):
    """One immutable version of a dataset, numbered from 1.

    ``source`` says how it was made (``import``, ``traces``, ``split``,
    ``dedupe``, ``builtin``, ...); ``parent_version_id`` the version it was
    derived from; ``meta`` the details (file name and format, trace filter,
    split seed and ratio, duplicates removed).
    """

    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("dataset_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"), index=True)
    version: Mapped[int]
    content_hash: Mapped[str] = mapped_column(String(64))
    sample_count: Mapped[int]
    source: Mapped[str] = mapped_column(String(32))
    parent_version_id: Mapped[int | None]
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONColumn, default=dict)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DatasetSampleRow(Base):
    """One sample of a dataset version.

    ``input`` is ``{"messages": [{"role", "content"}, ...]}`` (chat) or
    ``{"prompt": str}`` (completion); ``expected`` the reference answer, if any;
    ``trace_id`` the production trace it came from (lineage), if any;
    ``content_hash`` the SHA-256 of its canonical JSON (deduplication).
    """

    __tablename__ = "dataset_samples"
    __table_args__ = (UniqueConstraint("version_id", "position"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"), index=True)
    position: Mapped[int]
    input: Mapped[dict[str, Any]] = mapped_column(JSONColumn)
    expected: Mapped[str | None] = mapped_column(Text)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONColumn, default=dict)
    trace_id: Mapped[str | None] = mapped_column(String(32))
    content_hash: Mapped[str] = mapped_column(String(64))


class EvalRunRow(Base):
    """An evaluation: scorers applied to one or more targets over a dataset version.

    ``kind`` is ``eval`` (a plain run), ``bias`` (counterfactual probes) or
    ``redteam`` (the built-in safety suite); ``status`` follows its job
    (``queued``, ``running``, ``succeeded``, ``failed``, ``cancelled``);
    ``summary`` holds the aggregates, comparisons and gate verdicts
    (``evaluate.schemas.RunSummary``) once it finished.
    """

    __tablename__ = "eval_runs"
    __table_args__ = (Index("ix_eval_runs_project_created", "project_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    name: Mapped[str | None] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16), default="eval")
    dataset_version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"))
    targets: Mapped[list[str]] = mapped_column(JSONColumn)
    baseline: Mapped[str | None] = mapped_column(String(200))
    scorers: Mapped[list[dict[str, Any]]] = mapped_column(JSONColumn)
    gates: Mapped[list[str]] = mapped_column(JSONColumn)
    params: Mapped[dict[str, Any]] = mapped_column(JSONColumn, default=dict)
    status: Mapped[str] = mapped_column(String(16))
    job_id: Mapped[int | None]
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSONColumn)
    gates_passed: Mapped[bool | None] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)
    key_id: Mapped[int | None]
    """The API key that started it: the run calls targets as that key would."""
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class EvalResultRow(Base):
    """One target's answer to one sample, and every scorer's verdict on it.

    ``scores`` maps scorer name to ``{"value": float|None, "error": str|None,
    "details": {...}}``; an errored score is never counted as a value.
    """

    __tablename__ = "eval_results"
    __table_args__ = (UniqueConstraint("run_id", "sample_id", "target"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("eval_runs.id"), index=True)
    sample_id: Mapped[int] = mapped_column(BigInteger)
    position: Mapped[int]
    target: Mapped[str] = mapped_column(String(200))
    output: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    trace_id: Mapped[str | None] = mapped_column(String(32))
    model: Mapped[str | None] = mapped_column(String(128))
    version: Mapped[int | None]
    latency_ms: Mapped[float | None] = mapped_column(Float)
    tokens_in: Mapped[int | None]
    tokens_out: Mapped[int | None]
    cost: Mapped[float | None] = mapped_column(Float)
    scores: Mapped[dict[str, Any]] = mapped_column(JSONColumn, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OnlineEvalConfigRow(Base):
    """Online evaluation of one deployment: which share of its traces, which scorers.

    ``cursor`` is where the scorer left off (``{"start_time": iso, "span_id": str}``).
    """

    __tablename__ = "online_eval_configs"
    __table_args__ = (UniqueConstraint("project_id", "deployment"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    deployment: Mapped[str] = mapped_column(String(64))
    sample_rate: Mapped[float] = mapped_column(Float)
    scorers: Mapped[list[dict[str, Any]]] = mapped_column(JSONColumn)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    cursor: Mapped[dict[str, Any] | None] = mapped_column(JSONColumn)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class OnlineScoreRow(Base):
    """A reference-free scorer's verdict on one production trace (online evaluation).

    ``trace_start`` is the trace's own time, so rollups bucket scores with the
    traffic they judge; ``(trace_id, scorer)`` is unique (a re-run is a no-op).
    """

    __tablename__ = "online_scores"
    __table_args__ = (
        UniqueConstraint("trace_id", "scorer"),
        Index(
            "ix_online_scores_project_deployment_start", "project_id", "deployment", "trace_start"
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    trace_id: Mapped[str] = mapped_column(String(32))
    deployment: Mapped[str] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(128))
    version: Mapped[int | None]
    scorer: Mapped[str] = mapped_column(String(64))
    value: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    trace_start: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
