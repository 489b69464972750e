"""Named guard policies of each project: create, change, delete (audited), and run them.

A policy is compiled when it is written, so a wrong detector name or option is
a 400 naming the rule and never reaches the request path. The request path
asks ``compiled``/``policy``: the row is re-read after ``ttl_s`` seconds (which
bounds how long a change made by *another* process takes to arrive) and the
compiled policy is kept per (project, name, revision), so an unchanged policy
is never compiled twice. A change made through this object is seen at once.
"""

from __future__ import annotations

import asyncio
import builtins
import inspect
import threading
import time
from collections.abc import Callable
from typing import Any

import pluggy
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from modelcycle.access import Principal, require
from modelcycle.errors import Conflict, InvalidInput, NotFound
from modelcycle.guard.defaults import DEFAULT_POLICY_NAME, default_policy
from modelcycle.guard.engine import CompiledPolicy, DetectorRegistry
from modelcycle.guard.schemas import (
    DetectorInfo,
    FindingOut,
    GuardCheckRequest,
    GuardCheckResponse,
    GuardPolicy,
    GuardPolicyCreate,
    GuardPolicySpec,
)
from modelcycle.store import Page, Store, audit, encode_cursor
from modelcycle.store.audit import AuditRecord
from modelcycle.store.pagination import check_limit, decode_cursor
from modelcycle.store.tables import GuardPolicyRow, utcnow
from modelcycle.types import Role

MAX_COMPILED = 1024
"""Compiled policies kept (all projects and revisions); the cache starts over past this."""

PolicyUsers = Callable[[int, str], builtins.list[str]]
"""(project id, policy name) -> names of the deployments that use the policy."""
DeploymentGuard = Callable[[int, str], "str | None"]
"""(project id, deployment) -> its guard policy name; ``NotFound`` when no such deployment."""

_Snapshot = tuple[int, dict[str, Any]] | None
"""(revision, spec) of a stored policy, or ``None`` when there is none."""


def policy_out(row: GuardPolicyRow) -> GuardPolicy:
    """The public shape of a policy row."""
    return GuardPolicy(
        name=row.name,
        revision=row.revision,
        spec=GuardPolicySpec.model_validate(row.spec),
        created_by=row.created_by,
        created_at=row.created_at,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )


def not_found(name: str) -> NotFound:
    """The 404 of a policy the caller's project does not have."""
    return NotFound(
        f"guard policy '{name}' not found; list them with: modelcycle guard policy list"
    )


def describe(factory: Callable[..., Any]) -> str:
    """First line of the docstring of a detector factory's module (or of the factory)."""
    module = inspect.getmodule(factory)
    doc = (module.__doc__ if module is not None else None) or factory.__doc__ or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


class GuardPolicies:
    """Guard policies of one project at a time, and the compiled ones the gateway runs."""

    def __init__(
        self,
        store: Store,
        detectors: DetectorRegistry,
        *,
        policy_users: PolicyUsers | None = None,
        deployment_guard: DeploymentGuard | None = None,
        ttl_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._store = store
        self.detectors = detectors
        self._policy_users = policy_users
        self._deployment_guard = deployment_guard
        self._ttl_s, self._clock = ttl_s, clock
        self._lock = threading.Lock()
        self._snapshots: dict[tuple[int, str], tuple[float, _Snapshot]] = {}
        self._generation = 0
        self._compiled: dict[tuple[int, str, int], CompiledPolicy] = {}
        self._builtin: CompiledPolicy | None = None

    # -- reads ---------------------------------------------------------------------------

    def get(self, principal: Principal, name: str) -> GuardPolicy:
        """One policy of the caller's project."""
        require(principal, Role.VIEWER)
        with self._store.read() as session:
            return policy_out(self._find(session, principal.project_id, name))

    def list(
        self, principal: Principal, *, cursor: str | None = None, limit: int = 100
    ) -> Page[GuardPolicy]:
        """Policies of the caller's project, oldest first."""
        require(principal, Role.VIEWER)
        after, limit = decode_cursor(cursor), check_limit(limit)
        with self._store.read() as session:
            rows = (
                session.execute(
                    select(GuardPolicyRow)
                    .where(
                        GuardPolicyRow.project_id == principal.project_id,
                        GuardPolicyRow.id > after,
                    )
                    .order_by(GuardPolicyRow.id)
                    .limit(limit + 1)
                )
                .scalars()
                .all()
            )
        items = [policy_out(row) for row in rows[:limit]]
        return Page(items, encode_cursor(rows[limit - 1].id) if len(rows) > limit else None)

    def exists(self, project_id: int, name: str) -> bool:
        """Whether the project has a policy ``name`` (deployments check their ``guard``)."""
        return self._snapshot(project_id, name) is not None

    def detector_catalog(self, principal: Principal) -> builtins.list[DetectorInfo]:
        """The detectors a rule may name, with what each finds."""
        require(principal, Role.VIEWER)
        factories = self.detectors.factories
        return [
            DetectorInfo(name=name, description=describe(factories[name]))
            for name in sorted(factories)
        ]

    # -- mutations -----------------------------------------------------------------------

    def create(self, principal: Principal, body: GuardPolicyCreate) -> GuardPolicy:
        """Create a policy; it must compile (every detector installed, every option valid)."""
        require(principal, Role.MAINTAINER)
        spec = body.spec()
        self.detectors.compile(spec, body.name)
        try:
            with self._store.write() as session:
                if self._lookup(session, principal.project_id, body.name) is not None:
                    raise self._exists(body.name)
                now = utcnow()
                row = GuardPolicyRow(
                    project_id=principal.project_id,
                    name=body.name,
                    spec=spec.model_dump(mode="json"),
                    revision=1,
                    created_by=principal.actor,
                    created_at=now,
                    updated_by=principal.actor,
                    updated_at=now,
                )
                session.add(row)
                session.flush()
                self._audit(session, principal, "create", row.name, None, _state(row))
                out = policy_out(row)
        except IntegrityError:  # created concurrently
            raise self._exists(body.name) from None
        self.invalidate()
        return out

    def update(
        self,
        principal: Principal,
        name: str,
        spec: GuardPolicySpec,
        *,
        expected_revision: int | None = None,
    ) -> GuardPolicy:
        """Replace a policy's configuration (a new revision); in force everywhere within ``ttl_s``.

        ``expected_revision``, when given, must be the revision in force, so two
        people editing at once cannot overwrite each other silently.
        """
        require(principal, Role.MAINTAINER)
        with self._store.write() as session:
            row = self._find(session, principal.project_id, name, lock=True)
            if expected_revision is not None and expected_revision != row.revision:
                raise Conflict(
                    f"guard policy '{name}' is at revision {row.revision}, not "
                    f"{expected_revision}; read it again and retry"
                )
            self.detectors.compile(spec, name)
            before = _state(row)
            row.spec = spec.model_dump(mode="json")
            row.revision += 1
            row.updated_by, row.updated_at = principal.actor, utcnow()
            session.flush()
            self._audit(session, principal, "update", name, before, _state(row))
            out = policy_out(row)
        self.invalidate()
        return out

    def delete(self, principal: Principal, name: str) -> None:
        """Delete a policy; refused (409) while a deployment names it."""
        require(principal, Role.MAINTAINER)
        # Asked before the write transaction: it reads deployments (another stage's rows).
        users = self._policy_users(principal.project_id, name) if self._policy_users else []
        with self._store.write() as session:
            row = self._find(session, principal.project_id, name, lock=True)
            if users:
                listed = ", ".join(sorted(users))
                raise Conflict(
                    f"guard policy '{name}' is in use by deployment(s) {listed}; give them "
                    "another guard first (modelcycle deploy update NAME ...)"
                )
            before = _state(row)
            session.delete(row)
            self._audit(session, principal, "delete", name, before, None)
        self.invalidate()

    def ensure(self, principal: Principal, name: str, spec: GuardPolicySpec) -> bool:
        """Create ``name`` with ``spec`` unless the project has it; whether it was created."""
        if self.exists(principal.project_id, name):
            return False
        body = GuardPolicyCreate.model_validate({**spec.model_dump(), "name": name})
        try:
            self.create(principal, body)
        except Conflict:
            return False
        return True

    # -- running policies ------------------------------------------------------------------

    def compiled(self, project_id: int, name: str) -> CompiledPolicy:
        """The policy ``name`` ready to run (cached); ``NotFound`` when the project has none.

        ``InvalidInput`` when the stored policy no longer compiles (a plugin
        detector it names was uninstalled).
        """
        snapshot = self._snapshot(project_id, name)
        if snapshot is None:
            raise not_found(name)
        revision, spec = snapshot
        key = (project_id, name, revision)
        found = self._compiled.get(key)
        if found is None:
            found = self.detectors.compile(GuardPolicySpec.model_validate(spec), name)
            with self._lock:
                if len(self._compiled) >= MAX_COMPILED:
                    self._compiled = {}
                self._compiled[key] = found
        return found

    async def policy(self, project_id: int, name: str) -> CompiledPolicy:
        """``compiled`` for the event loop: a fresh cached policy without a thread hop."""
        key = (project_id, name)
        entry = self._snapshots.get(key)
        if entry is not None and entry[0] >= self._clock() and entry[1] is not None:
            found = self._compiled.get((project_id, name, entry[1][0]))
            if found is not None:
                return found
        return await asyncio.to_thread(self.compiled, project_id, name)

    def builtin_default(self) -> CompiledPolicy:
        """The built-in default policy (``guard.defaults``), compiled once."""
        if self._builtin is None:
            self._builtin = self.detectors.compile(default_policy(), DEFAULT_POLICY_NAME)
        return self._builtin

    def check(self, principal: Principal, request: GuardCheckRequest) -> GuardCheckResponse:
        """What a policy makes of a text (any key may ask: applications pre-check input).

        The policy: ``request.policy``; else the guard of ``request.deployment``
        (none: nothing runs, the answer is ``allow``); else the project's policy
        named ``default``; else modelcycle's built-in default.
        """
        require(principal, Role.APP)
        policy = self._policy_for(principal.project_id, request)
        if policy is None:
            return GuardCheckResponse(action="allow", findings=[], redacted_text=request.text)
        decision = policy.check(request.text, request.stage)
        return GuardCheckResponse(
            action=decision.action,
            findings=[FindingOut.model_validate(f.as_dict()) for f in decision.findings],
            redacted_text=decision.redacted_text,
            errors=list(decision.errors),
            policy=policy.name,
        )

    def invalidate(self) -> None:
        """Forget cached rows (the next use reads the database again)."""
        with self._lock:
            self._generation += 1
            self._snapshots = {}

    # -- helpers -----------------------------------------------------------------------------

    def _policy_for(self, project_id: int, request: GuardCheckRequest) -> CompiledPolicy | None:
        if request.policy is not None:
            return self.compiled(project_id, request.policy)
        if request.deployment is not None:
            if self._deployment_guard is None:
                raise InvalidInput("this server cannot look up deployments' guard policies")
            name = self._deployment_guard(project_id, request.deployment)
            return self.compiled(project_id, name) if name is not None else None
        try:
            return self.compiled(project_id, DEFAULT_POLICY_NAME)
        except NotFound:
            return self.builtin_default()

    def _snapshot(self, project_id: int, name: str) -> _Snapshot:
        key = (project_id, name)
        entry = self._snapshots.get(key)
        if entry is not None and entry[0] >= self._clock():
            return entry[1]
        generation = self._generation
        with self._store.read() as session:
            row = self._lookup(session, project_id, name)
            snapshot = (row.revision, dict(row.spec)) if row is not None else None
        with self._lock:
            if generation == self._generation:  # not changed while we read
                if len(self._snapshots) >= MAX_COMPILED:
                    self._snapshots = {}
                self._snapshots[key] = (self._clock() + self._ttl_s, snapshot)
        return snapshot

    @staticmethod
    def _lookup(
        session: Session, project_id: int, name: str, *, lock: bool = False
    ) -> GuardPolicyRow | None:
        query = select(GuardPolicyRow).where(
            GuardPolicyRow.project_id == project_id, GuardPolicyRow.name == name
        )
        if lock:
            query = query.with_for_update()
        return session.execute(query).scalar_one_or_none()

    def _find(
        self, session: Session, project_id: int, name: str, *, lock: bool = False
    ) -> GuardPolicyRow:
        row = self._lookup(session, project_id, name, lock=lock)
        if row is None:
            raise not_found(name)
        return row

    @staticmethod
    def _exists(name: str) -> Conflict:
        return Conflict(
            f"guard policy '{name}' exists; change it with: "
            f"modelcycle guard policy set {name} --file FILE"
        )

    @staticmethod
    def _audit(
        session: Session,
        principal: Principal,
        action: str,
        name: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> None:
        audit.append(
            session,
            AuditRecord(
                actor=principal.actor,
                action=f"guard_policy.{action}",
                target=f"guard_policy:{name}",
                project=principal.project,
                before=before,
                after=after,
            ),
        )


def _state(row: GuardPolicyRow) -> dict[str, Any]:
    return {"revision": row.revision, "spec": row.spec}


def detector_registry(manager: pluggy.PluginManager) -> DetectorRegistry:
    """The detectors every ``modelcycle_guard_detectors`` implementation offers.

    Plugins registered later override earlier ones by name (built-ins come first).
    """
    merged: dict[str, Any] = {}
    # pluggy calls the most recently registered plugin first.
    for offered in reversed(manager.hook.modelcycle_guard_detectors()):
        merged.update(offered)
    return DetectorRegistry(merged)
