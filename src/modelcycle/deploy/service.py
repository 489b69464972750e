"""Deployments: create, change, promote, roll back and delete, each audited.

Every mutation is one transaction that writes the new configuration, a
revision row and an audit entry; ``DeploymentChanged`` is emitted after commit.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelcycle import events
from modelcycle.access import Principal, require
from modelcycle.deploy import targets
from modelcycle.deploy.schemas import (
    Deployment,
    DeploymentConfig,
    DeploymentRevision,
    DeploymentSpec,
    RevisionAction,
    Route,
)
from modelcycle.errors import Conflict, InvalidInput, NotFound
from modelcycle.plugins import EventBus
from modelcycle.store import Page, Store, audit, encode_cursor
from modelcycle.store.audit import AuditRecord
from modelcycle.store.pagination import check_limit, decode_cursor
from modelcycle.store.tables import DeploymentRevisionRow, DeploymentRow, utcnow
from modelcycle.types import Role


def deployment_out(row: DeploymentRow) -> Deployment:
    """The public shape of a deployment row."""
    return Deployment(
        name=row.name,
        revision=row.revision,
        spec=DeploymentConfig.model_validate(row.spec),
        created_by=row.created_by,
        created_at=row.created_at,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )


def _spec_json(config: DeploymentConfig) -> dict[str, Any]:
    return config.model_dump(mode="json")


def canary_of(config: DeploymentConfig) -> Route:
    """The one canary route (a non-first route with weight); ``Conflict`` otherwise."""
    canaries = [route for route in config.routes[1:] if route.weight > 0]
    if not canaries:
        raise Conflict("this deployment has no canary to promote (no second route with weight)")
    if len(canaries) > 1:
        names = ", ".join(route.target for route in canaries)
        raise Conflict(
            f"this deployment has several canaries ({names}); "
            "set the routes you want with: modelcycle deploy update"
        )
    return canaries[0]


class Deployments:
    """Deployments of one project at a time."""

    def __init__(
        self,
        store: Store,
        bus: EventBus,
        *,
        guard_exists: Callable[[int, str], bool] | None = None,
    ):
        self._store = store
        self._bus = bus
        # (project id, policy name) -> whether that guard policy exists; None: not checked.
        self._guard_exists = guard_exists

    # -- reads ---------------------------------------------------------------------

    def get(self, principal: Principal, name: str) -> Deployment:
        """One deployment of the caller's project."""
        require(principal, Role.VIEWER)
        with self._store.read() as session:
            return deployment_out(self._find(session, principal.project_id, name))

    def list(
        self, principal: Principal, *, cursor: str | None = None, limit: int = 100
    ) -> Page[Deployment]:
        """Deployments of the caller's project, oldest first."""
        require(principal, Role.VIEWER)
        after, limit = decode_cursor(cursor), check_limit(limit)
        with self._store.read() as session:
            rows = (
                session.execute(
                    select(DeploymentRow)
                    .where(
                        DeploymentRow.project_id == principal.project_id,
                        DeploymentRow.id > after,
                    )
                    .order_by(DeploymentRow.id)
                    .limit(limit + 1)
                )
                .scalars()
                .all()
            )
        items = [deployment_out(row) for row in rows[:limit]]
        return Page(items, encode_cursor(rows[limit - 1].id) if len(rows) > limit else None)

    def revisions(self, principal: Principal, name: str) -> builtins.list[DeploymentRevision]:
        """Every configuration the deployment has had, oldest first."""
        require(principal, Role.VIEWER)
        with self._store.read() as session:
            row = self._find(session, principal.project_id, name)
            found = session.execute(
                select(DeploymentRevisionRow)
                .where(DeploymentRevisionRow.deployment_id == row.id)
                .order_by(DeploymentRevisionRow.revision)
            ).scalars()
            return [
                DeploymentRevision(
                    revision=rev.revision,
                    action=rev.action,
                    spec=DeploymentConfig.model_validate(rev.spec),
                    actor=rev.actor,
                    at=rev.at,
                )
                for rev in found
            ]

    def lookup(self, project_id: int, name: str) -> Deployment | None:
        """The deployment ``name`` of a project, without a role check.

        For the gateway, which has authenticated an inference key already.
        """
        with self._store.read() as session:
            row = session.execute(
                select(DeploymentRow).where(
                    DeploymentRow.project_id == project_id, DeploymentRow.name == name
                )
            ).scalar_one_or_none()
            return deployment_out(row) if row is not None else None

    def names(self, project_id: int) -> builtins.list[Deployment]:
        """Every deployment of a project, without a role check (``GET /v1/models``)."""
        with self._store.read() as session:
            rows = session.execute(
                select(DeploymentRow)
                .where(DeploymentRow.project_id == project_id)
                .order_by(DeploymentRow.id)
            ).scalars()
            return [deployment_out(row) for row in rows]

    # -- mutations -----------------------------------------------------------------

    def create(self, principal: Principal, spec: DeploymentSpec) -> Deployment:
        """Create a deployment; its targets must exist and be active."""
        require(principal, Role.MAINTAINER)
        config = spec.config()
        self._check_guard(principal, config)
        with self._store.write() as session:
            exists = session.execute(
                select(DeploymentRow.id).where(
                    DeploymentRow.project_id == principal.project_id,
                    DeploymentRow.name == spec.name,
                )
            ).first()
            if exists:
                raise Conflict(
                    f"deployment '{spec.name}' exists; change it with: "
                    f"modelcycle deploy update {spec.name}"
                )
            self._validate(session, principal, config)
            now = utcnow()
            row = DeploymentRow(
                project_id=principal.project_id,
                name=spec.name,
                spec=_spec_json(config),
                revision=1,
                created_by=principal.actor,
                created_at=now,
                updated_by=principal.actor,
                updated_at=now,
            )
            session.add(row)
            session.flush()
            self._record(session, principal, row, "create", before=None)
            out = deployment_out(row)
        self._emit(principal, out, "create")
        return out

    def update(
        self,
        principal: Principal,
        name: str,
        config: DeploymentConfig,
        *,
        expected_revision: int | None = None,
    ) -> Deployment:
        """Replace the configuration (a new revision).

        ``expected_revision``, when given, must be the revision in force, so that
        two people editing at once cannot overwrite each other silently.
        """
        require(principal, Role.MAINTAINER)
        return self._change(
            principal,
            name,
            "update",
            lambda _session, _row: config,
            expected_revision=expected_revision,
        )

    def promote(self, principal: Principal, name: str) -> Deployment:
        """Make the canary the single route with all the traffic."""
        require(principal, Role.MAINTAINER)

        def promoted(_session: Session, row: DeploymentRow) -> DeploymentConfig:
            current = DeploymentConfig.model_validate(row.spec)
            canary = canary_of(current)
            return current.model_copy(update={"routes": [Route(target=canary.target, weight=100)]})

        return self._change(principal, name, "promote", promoted)

    def rollback(
        self, principal: Principal, name: str, *, to_revision: int | None = None
    ) -> Deployment:
        """Restore an earlier configuration (by default the one before the current).

        The restored configuration becomes a new revision, so a rollback can be
        rolled back too.
        """
        require(principal, Role.MAINTAINER)

        def restored(session: Session, row: DeploymentRow) -> DeploymentConfig:
            wanted = row.revision - 1 if to_revision is None else to_revision
            if wanted < 1 or wanted >= row.revision:
                if to_revision is None:
                    raise Conflict(f"deployment '{name}' has no earlier revision to roll back to")
                raise Conflict(
                    f"deployment '{name}' is at revision {row.revision}; "
                    f"roll back to one of 1..{row.revision - 1}"
                )
            earlier = session.execute(
                select(DeploymentRevisionRow).where(
                    DeploymentRevisionRow.deployment_id == row.id,
                    DeploymentRevisionRow.revision == wanted,
                )
            ).scalar_one()
            return DeploymentConfig.model_validate(earlier.spec)

        return self._change(principal, name, "rollback", restored)

    def delete(self, principal: Principal, name: str) -> None:
        """Delete a deployment and its history (the audit log keeps the record)."""
        require(principal, Role.MAINTAINER)
        with self._store.write() as session:
            row = self._find(session, principal.project_id, name, lock=True)
            before = {"revision": row.revision, "spec": row.spec}
            session.query(DeploymentRevisionRow).filter(
                DeploymentRevisionRow.deployment_id == row.id
            ).delete()
            session.delete(row)
            audit.append(
                session,
                AuditRecord(
                    actor=principal.actor,
                    action="deployment.delete",
                    target=f"deployment:{name}",
                    project=principal.project,
                    before=before,
                ),
            )
            revision = row.revision
        self._bus.emit(
            events.DeploymentChanged(
                project=principal.project,
                name=name,
                action="delete",
                revision=revision,
                actor=principal.actor,
                at=utcnow(),
            )
        )

    # -- helpers -------------------------------------------------------------------

    def _change(
        self,
        principal: Principal,
        name: str,
        action: RevisionAction,
        new_config: Callable[[Session, DeploymentRow], DeploymentConfig],
        *,
        expected_revision: int | None = None,
    ) -> Deployment:
        with self._store.write() as session:
            row = self._find(session, principal.project_id, name, lock=True)
            if expected_revision is not None and expected_revision != row.revision:
                raise Conflict(
                    f"deployment '{name}' is at revision {row.revision}, not "
                    f"{expected_revision}; read it again and retry"
                )
            config = new_config(session, row)
            self._validate(session, principal, config)
            if config.guard != DeploymentConfig.model_validate(row.spec).guard:
                self._check_guard(principal, config)
            before = {"revision": row.revision, "spec": row.spec}
            row.spec = _spec_json(config)
            row.revision += 1
            row.updated_by, row.updated_at = principal.actor, utcnow()
            session.flush()
            self._record(session, principal, row, action, before=before)
            out = deployment_out(row)
        self._emit(principal, out, action)
        return out

    @staticmethod
    def _find(session: Session, project_id: int, name: str, *, lock: bool = False) -> DeploymentRow:
        query = select(DeploymentRow).where(
            DeploymentRow.project_id == project_id, DeploymentRow.name == name
        )
        if lock:
            query = query.with_for_update()
        row = session.execute(query).scalar_one_or_none()
        if row is None:
            raise NotFound(f"deployment '{name}' not found; list them with: modelcycle deploy list")
        return row

    def _check_guard(self, principal: Principal, config: DeploymentConfig) -> None:
        if config.guard is None or self._guard_exists is None:
            return
        if not self._guard_exists(principal.project_id, config.guard):
            raise InvalidInput(
                f"unknown guard policy '{config.guard}'; create it with: "
                f"modelcycle guard policy set {config.guard} --file FILE",
                param="guard",
            )

    @staticmethod
    def _validate(session: Session, principal: Principal, config: DeploymentConfig) -> None:
        for index, route in enumerate(config.routes):
            targets.resolve_active(
                session, principal.project_id, route.target, param=f"routes[{index}].target"
            )
        if config.shadow:
            targets.resolve_active(session, principal.project_id, config.shadow, param="shadow")
        for index, fallback in enumerate(config.fallbacks):
            targets.resolve_active(
                session, principal.project_id, fallback, param=f"fallbacks[{index}]"
            )

    @staticmethod
    def _record(
        session: Session,
        principal: Principal,
        row: DeploymentRow,
        action: RevisionAction,
        *,
        before: dict[str, Any] | None,
    ) -> None:
        session.add(
            DeploymentRevisionRow(
                deployment_id=row.id,
                revision=row.revision,
                spec=row.spec,
                action=action,
                actor=principal.actor,
                at=row.updated_at,
            )
        )
        audit.append(
            session,
            AuditRecord(
                actor=principal.actor,
                action=f"deployment.{action}",
                target=f"deployment:{row.name}",
                project=principal.project,
                before=before,
                after={"revision": row.revision, "spec": row.spec},
            ),
        )

    def _emit(self, principal: Principal, deployment: Deployment, action: str) -> None:
        self._bus.emit(
            events.DeploymentChanged(
                project=principal.project,
                name=deployment.name,
                action=action,
                revision=deployment.revision,
                actor=principal.actor,
                at=deployment.updated_at,
                spec=_spec_json(deployment.spec),
            )
        )
