"""Dashboard sign-ins: an API key exchanged for a browser session.

The browser keeps a random token in an HttpOnly cookie; the database keeps its
SHA-256 and the key it acts as. Every request re-reads that key, so a revoked
or expired key ends its sessions at once. The CSRF token of a session is an
HMAC of its token: nothing more to store, and it cannot be derived without the
cookie. Signing in and out is audited, like every other change of access.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select

from modelcycle.access.key_records import principal_of
from modelcycle.access.schemas import Principal
from modelcycle.access.service import AccessService
from modelcycle.errors import PermissionDenied
from modelcycle.store import Store, audit
from modelcycle.store.audit import AuditRecord
from modelcycle.store.tables import ApiKeyRow, ProjectRow, UiSessionRow, utcnow
from modelcycle.types import Role

SESSION_TTL = timedelta(hours=12)
"""A session ends this long after sign-in, whatever its use (then sign in again)."""
UI_ROLE = Role.VIEWER
"""The least role that may sign in: ``app`` keys only call models."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def csrf_token(session_token: str) -> str:
    """The CSRF token forms of this session must carry."""
    return hmac.new(session_token.encode(), b"modelcycle-csrf", hashlib.sha256).hexdigest()


def csrf_matches(session_token: str, presented: str | None) -> bool:
    """Constant-time check of a form's (or header's) CSRF token."""
    return bool(presented) and hmac.compare_digest(csrf_token(session_token), presented or "")


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A new session: the token goes into the cookie, and is not kept anywhere else."""

    token: str
    principal: Principal


class UiSessions:
    """Open, resolve and close dashboard sessions."""

    def __init__(self, store: Store, access: AccessService, *, ttl: timedelta = SESSION_TTL):
        self._store = store
        self._access = access
        self._ttl = ttl

    def sign_in(self, raw_key: str) -> SignedIn:
        """A session for ``raw_key``; ``AuthenticationError`` / ``PermissionDenied`` otherwise."""
        principal = self._access.authenticate(raw_key)
        if not principal.role.allows(UI_ROLE):
            raise PermissionDenied(
                f"a '{principal.role}' key only calls models; sign in with a "
                f"'{UI_ROLE}' key or higher"
            )
        token = secrets.token_urlsafe(32)
        now = utcnow()
        with self._store.write() as session:
            session.add(
                UiSessionRow(
                    token_hash=_digest(token),
                    key_id=principal.key_id,
                    created_at=now,
                    expires_at=now + self._ttl,
                )
            )
            # Expired sessions of this key go now: the table holds live ones only.
            session.execute(
                delete(UiSessionRow).where(
                    UiSessionRow.key_id == principal.key_id, UiSessionRow.expires_at <= now
                )
            )
            audit.append(
                session,
                AuditRecord(
                    actor=principal.actor,
                    action="ui.sign_in",
                    target=f"key:{principal.key_id}",
                    project=principal.project,
                ),
            )
        return SignedIn(token=token, principal=principal)

    def principal(self, token: str | None) -> Principal | None:
        """The caller behind a session token, or ``None`` when it is unknown or over."""
        if not token or len(token) > 128:
            return None
        now = utcnow()
        with self._store.read() as session:
            found = session.execute(
                select(UiSessionRow.expires_at, ApiKeyRow, ProjectRow)
                .join(ApiKeyRow, ApiKeyRow.id == UiSessionRow.key_id)
                .join(ProjectRow, ProjectRow.id == ApiKeyRow.project_id)
                .where(UiSessionRow.token_hash == _digest(token))
            ).first()
        if found is None:
            return None
        expires_at, key, project = found
        if expires_at <= now or key.revoked_at is not None:
            return None
        if key.expires_at is not None and key.expires_at <= now:
            return None
        return principal_of(key, project)

    def sign_out(self, token: str | None) -> bool:
        """End a session; whether there was one."""
        principal = self.principal(token)
        if principal is None or token is None:
            return False
        with self._store.write() as session:
            session.execute(delete(UiSessionRow).where(UiSessionRow.token_hash == _digest(token)))
            audit.append(
                session,
                AuditRecord(
                    actor=principal.actor,
                    action="ui.sign_out",
                    target=f"key:{principal.key_id}",
                    project=principal.project,
                ),
            )
        return True
