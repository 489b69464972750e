"""Projects, API keys, authentication and authorisation."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from modelcycle.access import keys
from modelcycle.access.grants import KEY_MANAGER, allowlist_to_grant, check_manages
from modelcycle.access.key_records import (
    SYSTEM_ACTOR,
    check_rotatable,
    expiry_in_utc,
    insert_key,
    key_audit,
    key_out,
    principal_of,
    visible_key,
)
from modelcycle.access.principals import PrincipalCache
from modelcycle.access.schemas import (
    ApiKey,
    CreatedApiKey,
    KeyCreate,
    KeyRotate,
    Principal,
    Project,
    ProjectCreate,
    RotatedApiKey,
)
from modelcycle.access.throttle import AuthThrottle
from modelcycle.errors import (
    AuthenticationError,
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from modelcycle.singleflight import SingleFlight
from modelcycle.store import Page, Store, audit, encode_cursor
from modelcycle.store.audit import AuditRecord
from modelcycle.store.pagination import check_limit, decode_cursor
from modelcycle.store.tables import ApiKeyRow, ProjectRow, utcnow
from modelcycle.types import ROOT_PROJECT, Role


def require(principal: Principal, role: Role) -> None:
    """Raise ``PermissionDenied`` unless the caller's role includes ``role``."""
    if not principal.role.allows(role):
        raise PermissionDenied(
            f"this action needs a key with role '{role}' or higher; this key is '{principal.role}'"
        )


def _project_out(row: ProjectRow) -> Project:
    return Project(id=row.id, name=row.name, description=row.description, created_at=row.created_at)


class AccessService:
    """Tenants and keys; every mutation is audited in the same transaction."""

    def __init__(
        self,
        store: Store,
        *,
        principal_ttl_s: float = 5.0,
        throttle: AuthThrottle | None = None,
    ):
        self._store = store
        self.principals = PrincipalCache(principal_ttl_s)
        self._reads: SingleFlight[str, Principal] = SingleFlight()
        self.throttle = AuthThrottle(20, 60.0) if throttle is None else throttle
        """Failed authentications per client address; the HTTP layer consults it."""

    # -- bootstrap -----------------------------------------------------------------

    def bootstrap(self, admin_key: str | None) -> str | None:
        """Create the root project and the first admin key on first start.

        Returns the plaintext key when one was generated (to print once), else
        ``None``. A given ``admin_key`` is added if it is not stored yet.
        """
        if admin_key is not None and keys.parse_prefix(admin_key) is None:
            raise InvalidInput(
                "MODELCYCLE_ADMIN_KEY must look like mc_<8 lowercase letters/digits>_<32 letters/"
                "digits>; generate one with: modelcycle keys generate"
            )
        with self._store.write() as session:
            root = self._ensure_root_project(session)
            if admin_key is not None:
                found = session.execute(
                    select(ApiKeyRow.id).where(ApiKeyRow.key_hash == keys.hash_key(admin_key))
                ).first()
                if found is None:
                    insert_key(session, root, "bootstrap-admin", Role.ADMIN, admin_key)
                return None
            has_keys = session.execute(select(func.count(ApiKeyRow.id))).scalar_one() > 0
            if has_keys:
                return None
            raw, _ = keys.generate_key()
            insert_key(session, root, "bootstrap-admin", Role.ADMIN, raw)
            return raw

    def _ensure_root_project(self, session: Session) -> ProjectRow:
        root = session.execute(
            select(ProjectRow).where(ProjectRow.name == ROOT_PROJECT)
        ).scalar_one_or_none()
        if root is None:
            root = ProjectRow(name=ROOT_PROJECT, description="Created on first start.")
            session.add(root)
            session.flush()
            audit.append(
                session,
                AuditRecord(
                    actor=SYSTEM_ACTOR,
                    action="project.create",
                    target=f"project:{ROOT_PROJECT}",
                    project=ROOT_PROJECT,
                    after={"name": ROOT_PROJECT},
                ),
            )
        return root

    # -- authentication ------------------------------------------------------------

    async def authenticate_cached(self, raw_key: str) -> Principal:
        """``authenticate`` for the request path, on the event loop: from memory when possible.

        A key that authenticated within the cache's TTL is answered at once, and read
        again in the background in the last quarter of its entry's life, so a busy key
        never waits for the database. Otherwise the database is read on a worker
        thread, once however many requests present the key meanwhile (they await the
        same read). See ``modelcycle.access.principals`` for how stale an entry may be.
        """
        digest = keys.hash_key(raw_key)
        principal, due = self.principals.lookup(digest)
        if principal is not None:
            if due and not self._reads.running(digest):
                # A key refused meanwhile is forgotten by ``authenticate``.
                self._reads.start(digest, lambda: self.authenticate(raw_key))
            return principal
        if self.principals.ttl_s <= 0:  # no cache: every request reads for itself
            return await asyncio.to_thread(self.authenticate, raw_key)
        return await self._reads.call(digest, lambda: self.authenticate(raw_key))

    def authenticate(self, raw_key: str) -> Principal:
        """The caller behind ``raw_key``; ``AuthenticationError`` when it is not valid.

        Always reads the database, and refreshes the cache ``cached_principal`` reads.
        """
        digest = keys.hash_key(raw_key)
        generation = self.principals.generation
        try:
            principal, expires_at = self._authenticate(raw_key)
        except AuthenticationError:
            self.principals.forget(digest)
            raise
        self.principals.put(digest, principal, expires_at, generation)
        return principal

    def _authenticate(self, raw_key: str) -> tuple[Principal, datetime | None]:
        prefix = keys.parse_prefix(raw_key)
        if prefix is None:
            raise AuthenticationError("invalid API key; pass 'Authorization: Bearer mc_...'")
        with self._store.read() as session:
            found = session.execute(
                select(ApiKeyRow, ProjectRow)
                .join(ProjectRow, ProjectRow.id == ApiKeyRow.project_id)
                .where(ApiKeyRow.prefix == prefix)
            ).first()
        if found is None or not keys.matches(raw_key, found[0].key_hash):
            raise AuthenticationError("invalid API key; pass 'Authorization: Bearer mc_...'")
        row, project = found
        if row.revoked_at is not None:
            raise AuthenticationError("this API key was revoked; ask an admin for a new one")
        if row.expires_at is not None and row.expires_at <= utcnow():
            raise AuthenticationError("this API key has expired; ask an admin for a new one")
        return principal_of(row, project), row.expires_at

    # -- projects ------------------------------------------------------------------

    def create_project(self, principal: Principal, body: ProjectCreate) -> Project:
        """Create a tenant (root admins only)."""
        self._require_root(principal)
        with self._store.write() as session:
            if self._find_project(session, body.name) is not None:
                raise Conflict(f"project '{body.name}' exists; choose another name")
            row = ProjectRow(name=body.name, description=body.description)
            session.add(row)
            try:
                session.flush()
            except IntegrityError as exc:  # created concurrently (PostgreSQL)
                raise Conflict(f"project '{body.name}' exists; choose another name") from exc
            audit.append(
                session,
                AuditRecord(
                    actor=principal.actor,
                    action="project.create",
                    target=f"project:{body.name}",
                    project=body.name,
                    after=body.model_dump(),
                ),
            )
            return _project_out(row)

    def list_projects(self, principal: Principal) -> list[Project]:
        """Every project for root admins; the caller's own for everyone else."""
        require(principal, Role.VIEWER)
        with self._store.read() as session:
            query = select(ProjectRow).order_by(ProjectRow.id)
            if not principal.is_root:
                query = query.where(ProjectRow.id == principal.project_id)
            return [_project_out(row) for row in session.execute(query).scalars()]

    # -- keys ----------------------------------------------------------------------

    def create_key(self, principal: Principal, body: KeyCreate) -> CreatedApiKey:
        """Create a key in the caller's project (or, for root admins, any project).

        The new key's role and allowlist are bounded by the caller's
        (``modelcycle.access.grants``).
        """
        require(principal, KEY_MANAGER)
        deployments = allowlist_to_grant(principal, body.role, body.deployments, inherit=True)
        expires_at = expiry_in_utc(body.expires_at)
        with self._store.write() as session:
            project = self._target_project(session, principal, body.project)
            raw, _ = keys.generate_key()
            row = insert_key(
                session,
                project,
                body.name,
                body.role,
                raw,
                actor=principal.actor,
                expires_at=expires_at,
                deployments=deployments,
            )
            return CreatedApiKey(**key_out(row, project.name).model_dump(), key=raw)

    def list_keys(
        self, principal: Principal, *, project: str | None, cursor: str | None, limit: int
    ) -> Page[ApiKey]:
        """Keys of one project, oldest first."""
        require(principal, KEY_MANAGER)
        after, limit = decode_cursor(cursor), check_limit(limit)
        with self._store.read() as session:
            target = self._target_project(session, principal, project)
            rows = (
                session.execute(
                    select(ApiKeyRow)
                    .where(ApiKeyRow.project_id == target.id, ApiKeyRow.id > after)
                    .order_by(ApiKeyRow.id)
                    .limit(limit + 1)
                )
                .scalars()
                .all()
            )
        items = [key_out(row, target.name) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(items, encode_cursor(items[-1].id) if more else None)

    def get_key(self, principal: Principal, key_id: int) -> ApiKey:
        """One key of the caller's project (any project for root admins)."""
        require(principal, KEY_MANAGER)
        with self._store.read() as session:
            row, project = visible_key(session, principal, key_id)
            return key_out(row, project.name)

    def revoke_key(self, principal: Principal, key_id: int) -> ApiKey:
        """Revoke a key at once; revoking twice is refused."""
        require(principal, KEY_MANAGER)
        with self._store.write() as session:
            row, project = visible_key(session, principal, key_id)
            check_manages(principal, key_id, Role(row.role))
            if row.revoked_at is not None:
                raise Conflict(f"key {key_id} is already revoked")
            before = key_audit(row)
            row.revoked_at = utcnow()
            audit.append(
                session,
                AuditRecord(
                    actor=principal.actor,
                    action="key.revoke",
                    target=f"key:{row.prefix}",
                    project=project.name,
                    before=before,
                    after=key_audit(row),
                ),
            )
            revoked = key_out(row, project.name)
        # After the commit: a request that read the key before it is not cached either.
        self.principals.forget_key(key_id)
        return revoked

    def rotate_key(self, principal: Principal, key_id: int, body: KeyRotate) -> RotatedApiKey:
        """Replace a key by a new one with the same project, name, role and allowlist.

        The old key is revoked at once (``grace_s`` 0) or stops working
        ``grace_s`` seconds from now (sooner if it expires sooner), so that its
        users can switch over without an outage. Whoever may revoke a key may
        rotate it; a key is rotated once (then rotate its successor).
        """
        require(principal, KEY_MANAGER)
        given_expiry = expiry_in_utc(body.expires_at)
        with self._store.write() as session:
            old, project = visible_key(session, principal, key_id)
            role = Role(old.role)
            check_manages(principal, key_id, role)
            deployments = allowlist_to_grant(principal, role, old.deployments, inherit=False)
            session.refresh(old, with_for_update=True)  # one rotation at a time (PostgreSQL)
            check_rotatable(session, old)
            before, inherited_expiry, now = key_audit(old), old.expires_at, utcnow()
            if body.grace_s == 0:
                old.revoked_at = now
            else:
                ends = now + timedelta(seconds=body.grace_s)
                old.expires_at = ends if old.expires_at is None else min(old.expires_at, ends)
            raw, _ = keys.generate_key()
            new = insert_key(
                session,
                project,
                old.name,
                role,
                raw,
                actor=principal.actor,
                expires_at=given_expiry if body.expires_at is not None else inherited_expiry,
                deployments=deployments,
                rotated_from=old.id,
            )
            audit.append(
                session,
                AuditRecord(
                    actor=principal.actor,
                    action="key.rotate",
                    target=f"key:{old.prefix}",
                    project=project.name,
                    before=before,
                    after={**key_audit(old), "replaced_by": new.prefix, "grace_s": body.grace_s},
                ),
            )
            rotated = RotatedApiKey(
                **key_out(new, project.name).model_dump(),
                key=raw,
                previous=key_out(old, project.name),
            )
        # After the commit, as for a revocation: the old key's cached expiry is stale.
        self.principals.forget_key(key_id)
        return rotated

    # -- helpers -------------------------------------------------------------------

    @staticmethod
    def _require_root(principal: Principal) -> None:
        if not principal.is_root:
            raise PermissionDenied(
                f"only admins of the '{ROOT_PROJECT}' project may manage projects"
            )

    @staticmethod
    def _find_project(session: Session, name: str) -> ProjectRow | None:
        return session.execute(
            select(ProjectRow).where(ProjectRow.name == name)
        ).scalar_one_or_none()

    def _target_project(
        self, session: Session, principal: Principal, name: str | None
    ) -> ProjectRow:
        if name is None or name == principal.project:
            project = session.get(ProjectRow, principal.project_id)
            assert project is not None
            return project
        if not principal.is_root:
            # Other projects are invisible, not forbidden: their names do not leak.
            raise NotFound(f"project '{name}' not found")
        project = self._find_project(session, name)
        if project is None:
            raise NotFound(f"project '{name}' not found; list them with: modelcycle projects list")
        return project
