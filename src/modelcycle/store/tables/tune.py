"""Tables of the tuning stage: uploaded files, tuning jobs and their checkpoints.

A tuning job is a row here plus a row in ``jobs`` (the durable queue runs it):
this table holds what the job *is* (method, base version, data, settings, what
it produced); ``jobs`` holds how it runs (state, attempts, lease, progress,
events). ``public_id`` (``ftjob-...``) and ``file_id`` (``file-...``) are the
identifiers the OpenAI-compatible API shows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from modelcycle.store.tables.base import Base, JSONColumn, utcnow


class FileRow(Base):
    """An uploaded file (``/v1/files``): training or validation data, stored under the home."""

    __tablename__ = "files"
    __table_args__ = (Index("ix_files_project_created", "project_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    file_id: Mapped[str] = mapped_column(String(40), unique=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    purpose: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(255))
    bytes: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    lines: Mapped[int]
    path: Mapped[str] = mapped_column(Text)
    """Relative to the home's ``files`` directory."""
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TuneJobRow(Base):
    """A tuning job: method, base version, data and hyperparameters, and what it produced.

    ``status`` mirrors the queue job's state; ``result_*`` name the registered
    version once it succeeded; ``artifacts`` holds the adapter (and merged
    checkpoint) paths and the decontamination report; ``metrics`` the final
    training and validation figures.
    """

    __tablename__ = "tune_jobs"
    __table_args__ = (Index("ix_tune_jobs_project_created", "project_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    job_id: Mapped[int | None]
    method: Mapped[str] = mapped_column(String(16))
    base: Mapped[str] = mapped_column(String(200))
    """The base as the user wrote it (``NAME@VERSION`` / ``NAME@alias``)."""
    base_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    dataset_version_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_versions.id"))
    validation_dataset_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("dataset_versions.id")
    )
    training_file_id: Mapped[str | None] = mapped_column(String(40))
    validation_file_id: Mapped[str | None] = mapped_column(String(40))
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSONColumn)
    eval_datasets: Mapped[list[str]] = mapped_column(JSONColumn, default=list)
    suffix: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))
    result_model: Mapped[str | None] = mapped_column(String(128))
    result_version: Mapped[int | None]
    artifacts: Mapped[dict[str, Any]] = mapped_column(JSONColumn, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONColumn, default=dict)
    trained_tokens: Mapped[int | None]
    eval_run_id: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    key_id: Mapped[int | None]
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class TuneCheckpointRow(Base):
    """A checkpoint a tuning job saved (``/v1/fine_tuning/jobs/{id}/checkpoints``)."""

    __tablename__ = "tune_checkpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    tune_job_id: Mapped[int] = mapped_column(ForeignKey("tune_jobs.id"), index=True)
    step: Mapped[int]
    path: Mapped[str] = mapped_column(Text)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONColumn, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
