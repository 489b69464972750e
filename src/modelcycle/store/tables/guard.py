"""Tables of the guard stage: named guard policies per project."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from modelcycle.store.tables.base import Base, JSONColumn, utcnow


class GuardPolicyRow(Base):
    """A named guard policy: which detectors run on input and output, and what they do.

    Deployments name the policy they use (``DeploymentConfig.guard``); a change
    here takes effect on every such deployment at once. ``revision`` counts
    changes, starting at 1; the audit log holds each one with before and after.
    """

    __tablename__ = "guard_policies"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]] = mapped_column(JSONColumn)
    revision: Mapped[int]
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
