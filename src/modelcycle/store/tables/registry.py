"""Tables of the model registry: models, versions, aliases, lineage."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from modelcycle.store.tables.base import Base, JSONColumn, utcnow


class ModelRow(Base):
    """A named model of a project, e.g. ``support-bot``."""

    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(2000), default="")
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONColumn, default=dict)
    last_version: Mapped[int] = mapped_column(default=0, server_default="0")
    """Highest version number ever given; deleted numbers are never handed out again."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelVersionRow(Base):
    """An immutable version of a model."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    version: Mapped[int]
    source: Mapped[str] = mapped_column(Text)
    backend: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSONColumn, default=dict)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"), default=None)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONColumn, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AliasRow(Base):
    """A movable pointer from a name to one version of a model."""

    __tablename__ = "aliases"
    __table_args__ = (UniqueConstraint("model_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AliasHistoryRow(Base):
    """Each move of an alias, oldest first."""

    __tablename__ = "alias_history"

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    alias: Mapped[str] = mapped_column(String(64))
    from_version: Mapped[int | None]
    to_version: Mapped[int | None]
    actor: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class LineageEdgeRow(Base):
    """A link from a version to what it came from or was judged by.

    ``relation`` is e.g. ``parent``, ``trained_on``, ``produced_by``,
    ``evaluated_in``; ``target_kind`` names the other record's kind
    (``model_version``, ``dataset_version``, ``tune_job``, ``eval_run``) and
    ``target_ref`` its identifier. Later stages add edges; none are removed.
    """

    __tablename__ = "lineage_edges"

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), index=True)
    relation: Mapped[str] = mapped_column(String(32))
    target_kind: Mapped[str] = mapped_column(String(32))
    target_ref: Mapped[str] = mapped_column(String(200))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONColumn, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
