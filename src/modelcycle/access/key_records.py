"""API key rows: insert (audited), find within the caller's reach, show, check.

The pieces ``AccessService`` composes into create, revoke and rotate; each runs
inside the caller's transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from modelcycle.access import keys
from modelcycle.access.schemas import ApiKey, Principal
from modelcycle.errors import Conflict, InvalidInput, NotFound
from modelcycle.store import audit
from modelcycle.store.audit import AuditRecord
from modelcycle.store.tables import ApiKeyRow, ProjectRow, utcnow
from modelcycle.types import ROOT_PROJECT, Role

SYSTEM_ACTOR = "system"


def key_out(row: ApiKeyRow, project: str) -> ApiKey:
    """A key as the API shows it (never its hash)."""
    return ApiKey(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        role=Role(row.role),
        project=project,
        created_by=row.created_by,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        deployments=row.deployments,
        rotated_from=row.rotated_from,
    )


def key_audit(row: ApiKeyRow) -> dict[str, object]:
    """A key as the audit log records it (never its hash)."""
    return {
        "name": row.name,
        "prefix": row.prefix,
        "role": row.role,
        "deployments": row.deployments,
        "rotated_from": row.rotated_from,
        "expires_at": row.expires_at.isoformat() if row.expires_at else None,
        "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
    }


def insert_key(
    session: Session,
    project: ProjectRow,
    name: str,
    role: Role,
    raw: str,
    *,
    actor: str = SYSTEM_ACTOR,
    expires_at: datetime | None = None,
    deployments: list[str] | None = None,
    rotated_from: int | None = None,
) -> ApiKeyRow:
    """Store the digest of ``raw`` as a key of ``project`` and audit ``key.create``."""
    prefix = keys.parse_prefix(raw)
    assert prefix is not None
    row = ApiKeyRow(
        project_id=project.id,
        name=name,
        prefix=prefix,
        key_hash=keys.hash_key(raw),
        role=role.value,
        created_by=actor,
        expires_at=expires_at,
        deployments=deployments,
        rotated_from=rotated_from,
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict("a key with this prefix exists; generate a new key") from exc
    audit.append(
        session,
        AuditRecord(
            actor=actor,
            action="key.create",
            target=f"key:{prefix}",
            project=project.name,
            after=key_audit(row),
        ),
    )
    return row


def expiry_in_utc(expires_at: datetime | None) -> datetime | None:
    """A requested expiry in UTC; ``InvalidInput`` without an offset or when not in the future."""
    if expires_at is None:
        return None
    if expires_at.tzinfo is None:
        raise InvalidInput(
            "expires_at needs a UTC offset, e.g. 2027-01-01T00:00:00Z", param="expires_at"
        )
    try:
        in_utc = expires_at.astimezone(UTC)
    except OverflowError:
        # e.g. 9999-12-31T23:59:59-05:00 lies past the last instant a datetime holds.
        raise InvalidInput("expires_at is after the year 9999 in UTC", param="expires_at") from None
    if in_utc <= utcnow():
        raise InvalidInput("expires_at is in the past", param="expires_at")
    return in_utc


def visible_key(
    session: Session, principal: Principal, key_id: int
) -> tuple[ApiKeyRow, ProjectRow]:
    """A key of the caller's project (any project for root admins); 404 otherwise.

    Other projects' keys are reported exactly like missing ones.
    """
    found = session.execute(
        select(ApiKeyRow, ProjectRow)
        .join(ProjectRow, ProjectRow.id == ApiKeyRow.project_id)
        .where(ApiKeyRow.id == key_id)
    ).first()
    if found is None or (not principal.is_root and found[1].id != principal.project_id):
        raise NotFound(f"key {key_id} not found")
    return found[0], found[1]


def check_rotatable(session: Session, row: ApiKeyRow) -> None:
    """``Conflict`` when ``row`` is revoked, expired or was rotated already."""
    if row.revoked_at is not None:
        raise Conflict(f"key {row.id} is revoked; create a new key with: modelcycle keys create")
    if row.expires_at is not None and row.expires_at <= utcnow():
        raise Conflict(f"key {row.id} has expired; create a new key with: modelcycle keys create")
    successor = session.execute(
        select(ApiKeyRow.id).where(ApiKeyRow.rotated_from == row.id)
    ).scalar()
    if successor is not None:
        raise Conflict(
            f"key {row.id} was already rotated into key {successor}; rotate that one instead"
        )


def principal_of(row: ApiKeyRow, project: ProjectRow) -> Principal:
    """The caller a valid key row of ``project`` stands for."""
    role = Role(row.role)
    return Principal(
        key_id=row.id,
        key_name=row.name,
        prefix=row.prefix,
        project_id=project.id,
        project=project.name,
        role=role,
        is_root=project.name == ROOT_PROJECT and role is Role.ADMIN,
        deployments=None if row.deployments is None else frozenset(row.deployments),
    )
