"""Append-only audit log with a SHA-256 hash chain.

Each entry's hash covers its own fields and the previous entry's hash, so an
edited, inserted or deleted row breaks the chain from that point on. The head
row (last sequence and hash) is locked by each writer, which serialises appends
on PostgreSQL and catches rows deleted from the end.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from modelcycle.store.tables import AuditEntryRow, AuditHeadRow, utcnow

GENESIS_HASH = "0" * 64
_HEAD_ID = 1
_VERIFY_BATCH = 1000


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """What a mutating action writes to the audit log."""

    actor: str
    action: str
    target: str
    project: str | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ChainStatus:
    """Result of verifying the audit chain."""

    ok: bool
    entries: int
    first_bad_seq: int | None = None
    reason: str | None = None


def entry_hash(*, seq: int, at: datetime, record: AuditRecord, prev_hash: str) -> str:
    """The SHA-256 of an entry's canonical JSON and the previous hash."""
    payload = {
        "seq": seq,
        "at": at.isoformat(timespec="microseconds"),
        "project": record.project,
        "actor": record.actor,
        "action": record.action,
        "target": record.target,
        "before": record.before,
        "after": record.after,
    }
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS))
    return digest.hexdigest()


def append(session: Session, record: AuditRecord) -> AuditEntryRow:
    """Append ``record`` inside the caller's transaction and return the stored row."""
    head = session.execute(
        select(AuditHeadRow).where(AuditHeadRow.id == _HEAD_ID).with_for_update()
    ).scalar_one_or_none()
    if head is None:
        head = AuditHeadRow(id=_HEAD_ID, seq=0, hash=GENESIS_HASH)
        session.add(head)
    seq = head.seq + 1
    # Microsecond precision survives both databases, so the hash re-computes.
    at = utcnow()
    digest = entry_hash(seq=seq, at=at, record=record, prev_hash=head.hash)
    row = AuditEntryRow(
        seq=seq,
        at=at,
        project=record.project,
        actor=record.actor,
        action=record.action,
        target=record.target,
        before=record.before,
        after=record.after,
        prev_hash=head.hash,
        hash=digest,
    )
    session.add(row)
    head.seq, head.hash = seq, digest
    session.flush()
    return row


def _rows(session: Session) -> Iterator[AuditEntryRow]:
    last = 0
    while True:
        batch = (
            session.execute(
                select(AuditEntryRow)
                .where(AuditEntryRow.seq > last)
                .order_by(AuditEntryRow.seq)
                .limit(_VERIFY_BATCH)
            )
            .scalars()
            .all()
        )
        if not batch:
            return
        yield from batch
        last = batch[-1].seq


def _check_row(row: AuditEntryRow, expected_seq: int, prev_hash: str) -> str | None:
    if row.seq != expected_seq:
        return f"entry {expected_seq} is missing (next stored entry is {row.seq})"
    if row.prev_hash != prev_hash:
        return f"entry {row.seq} does not link to the previous entry's hash"
    record = AuditRecord(
        actor=row.actor,
        action=row.action,
        target=row.target,
        project=row.project,
        before=row.before,
        after=row.after,
    )
    if entry_hash(seq=row.seq, at=row.at, record=record, prev_hash=prev_hash) != row.hash:
        return f"entry {row.seq} was modified after it was written"
    return None


def verify(session: Session) -> ChainStatus:
    """Walk the whole chain and report the first tampered or missing entry."""
    prev_hash, count = GENESIS_HASH, 0
    for row in _rows(session):
        problem = _check_row(row, count + 1, prev_hash)
        if problem is not None:
            return ChainStatus(ok=False, entries=count, first_bad_seq=count + 1, reason=problem)
        prev_hash, count = row.hash, count + 1
    head = session.get(AuditHeadRow, _HEAD_ID)
    if head is None:
        if count == 0:
            return ChainStatus(ok=True, entries=0)
        # Without the head, entries deleted from the end could not be noticed.
        return ChainStatus(
            ok=False, entries=count, first_bad_seq=count, reason="the chain head row is missing"
        )
    return _check_head(head, count, prev_hash)


def _check_head(head: AuditHeadRow, count: int, last_hash: str) -> ChainStatus:
    if head.seq > count:
        reason = f"entries {count + 1}..{head.seq} are missing from the end of the log"
        return ChainStatus(ok=False, entries=count, first_bad_seq=count + 1, reason=reason)
    if head.seq < count:
        reason = (
            f"entries {head.seq + 1}..{count} were added outside modelcycle "
            f"(the chain head ends at {head.seq})"
        )
        return ChainStatus(ok=False, entries=head.seq, first_bad_seq=head.seq + 1, reason=reason)
    if head.hash != last_hash:
        reason = f"entry {count} does not match the chain head; the log was rewritten"
        return ChainStatus(ok=False, entries=count - 1, first_bad_seq=count, reason=reason)
    return ChainStatus(ok=True, entries=count)
