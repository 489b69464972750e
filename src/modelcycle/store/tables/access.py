"""Tables of projects (tenants) and API keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from modelcycle.store.tables.base import Base, JSONColumn, utcnow


class ProjectRow(Base):
    """A tenant: keys, models and everything else belong to one project."""

    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(String(1000), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKeyRow(Base):
    """An API key, stored as a hash; only its prefix is ever shown again."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    deployments: Mapped[list[str] | None] = mapped_column(JSONColumn, default=None)
    """The deployments this key may call through ``/v1``; ``None``: every one of its project."""
    rotated_from: Mapped[int | None] = mapped_column(default=None)
    """The key this one replaced by rotation (same name, role and allowlist)."""


class UiSessionRow(Base):
    """A dashboard sign-in: the browser holds a random token, this row only its hash.

    A session acts as the key it was opened with, and ends with it: every
    request re-reads the key, so revoking or expiring the key signs it out.
    """

    __tablename__ = "ui_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
