"""Reading and verifying the audit log, with the caller's rights."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select

from modelcycle.access.schemas import Principal
from modelcycle.access.service import require
from modelcycle.errors import NotFound
from modelcycle.store import Page, Store, audit, encode_cursor
from modelcycle.store.pagination import check_limit, decode_cursor
from modelcycle.store.tables import AuditEntryRow
from modelcycle.types import Role


class AuditEntry(BaseModel):
    """One audited action."""

    seq: int
    at: datetime
    project: str | None
    actor: str
    action: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    prev_hash: str
    hash: str


class AuditVerification(BaseModel):
    """Whether the hash chain is intact, and where it first breaks."""

    ok: bool
    entries: int
    first_bad_seq: int | None
    reason: str | None


class AuditLog:
    """The audit log as admins see it: their own project's entries."""

    def __init__(self, store: Store):
        self._store = store

    def list(
        self,
        principal: Principal,
        *,
        action: str | None = None,
        actor: str | None = None,
        target: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
        newest_first: bool = False,
    ) -> Page[AuditEntry]:
        """Entries oldest first, filtered by exact action/actor and target prefix.

        ``newest_first`` lists them newest first (the dashboard's order); a cursor then
        resumes below the last entry of the previous page.
        """
        require(principal, Role.ADMIN)
        resume, limit = decode_cursor(cursor), check_limit(limit)
        query = select(AuditEntryRow)
        if newest_first:
            order = AuditEntryRow.seq.desc()
            if resume:  # 0: the first page
                query = query.where(AuditEntryRow.seq < resume)
        else:
            order = AuditEntryRow.seq.asc()
            query = query.where(AuditEntryRow.seq > resume)
        if not principal.is_root:
            query = query.where(AuditEntryRow.project == principal.project)
        if action:
            query = query.where(AuditEntryRow.action == action)
        if actor:
            query = query.where(AuditEntryRow.actor == actor)
        if target:
            query = query.where(AuditEntryRow.target.startswith(target, autoescape=True))
        with self._store.read() as session:
            rows = session.execute(query.order_by(order).limit(limit + 1)).scalars().all()
        items = [AuditEntry.model_validate(row, from_attributes=True) for row in rows[:limit]]
        return Page(items, encode_cursor(items[-1].seq) if len(rows) > limit else None)

    def get(self, principal: Principal, seq: int) -> AuditEntry:
        """One entry by sequence number."""
        require(principal, Role.ADMIN)
        with self._store.read() as session:
            row = session.get(AuditEntryRow, seq)
            if row is None or (not principal.is_root and row.project != principal.project):
                raise NotFound(f"audit entry {seq} not found")
            return AuditEntry.model_validate(row, from_attributes=True)

    def verify(self, principal: Principal) -> AuditVerification:
        """Walk the whole chain; the first tampered or missing entry is reported."""
        require(principal, Role.ADMIN)
        with self._store.read() as session:
            status = audit.verify(session)
        return AuditVerification(
            ok=status.ok,
            entries=status.entries,
            first_bad_seq=status.first_bad_seq,
            reason=status.reason,
        )
