"""Aliases (movable pointers to versions), their history, and lineage."""

from __future__ import annotations

import builtins

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelcycle import events
from modelcycle.access import Principal, require
from modelcycle.errors import Conflict, InvalidInput, NotFound
from modelcycle.plugins import EventBus
from modelcycle.registry import queries
from modelcycle.registry.schemas import Alias, AliasMove, Lineage, VersionRef
from modelcycle.store import Store, audit
from modelcycle.store.audit import AuditRecord
from modelcycle.store.tables import (
    AliasHistoryRow,
    AliasRow,
    LineageEdgeRow,
    ModelRow,
    ModelVersionRow,
    utcnow,
)
from modelcycle.types import NAME_RE, Role, VersionStatus

MAX_LINEAGE_DEPTH = 1000


class Aliases:
    """Move, remove and read aliases of a project's models; read lineage."""

    def __init__(self, store: Store, bus: EventBus):
        self._store = store
        self._bus = bus

    def set(self, principal: Principal, model_name: str, alias: str, version: int) -> Alias:
        """Point ``alias`` at ``version`` (creating the alias if new)."""
        require(principal, Role.MAINTAINER)
        if not NAME_RE.match(alias):
            raise_invalid_alias(alias)
        with self._store.write() as session:
            model = queries.find_model(session, principal.project_id, model_name, lock=True)
            target = queries.find_version(session, model, version)
            if target.status != VersionStatus.ACTIVE.value:
                raise Conflict(
                    f"{model_name}@{version} is archived; restore it before pointing an alias at it"
                )
            row = self._find(session, model, alias)
            previous = self._version_number(session, row.version_id) if row else None
            if row is None:
                row = AliasRow(model_id=model.id, name=alias, version_id=target.id)
                session.add(row)
            else:
                row.version_id, row.updated_at = target.id, utcnow()
            self._record_move(session, principal, model, alias, previous, version)
            session.flush()
            out = Alias(model=model_name, alias=alias, version=version, updated_at=row.updated_at)
        self._emit(principal, model_name, alias, previous, version)
        return out

    def delete(self, principal: Principal, model_name: str, alias: str) -> None:
        """Remove an alias; its history is kept."""
        require(principal, Role.MAINTAINER)
        with self._store.write() as session:
            model = queries.find_model(session, principal.project_id, model_name, lock=True)
            row = self._find(session, model, alias)
            if row is None:
                raise NotFound(f"model '{model_name}' has no alias '{alias}'")
            previous = self._version_number(session, row.version_id)
            session.delete(row)
            self._record_move(session, principal, model, alias, previous, None)
        self._emit(principal, model_name, alias, previous, None)

    def get(self, principal: Principal, model_name: str, alias: str) -> Alias:
        """Where ``alias`` points now."""
        require(principal, Role.VIEWER)
        with self._store.read() as session:
            model = queries.find_model(session, principal.project_id, model_name)
            row = self._find(session, model, alias)
            if row is None:
                raise NotFound(
                    f"model '{model_name}' has no alias '{alias}'; set it with: "
                    f"modelcycle aliases set {model_name} {alias} VERSION"
                )
            number = self._version_number(session, row.version_id)
            return Alias(model=model_name, alias=alias, version=number, updated_at=row.updated_at)

    def list(self, principal: Principal, model_name: str) -> list[Alias]:
        """Every alias of a model, by name."""
        require(principal, Role.VIEWER)
        with self._store.read() as session:
            model = queries.find_model(session, principal.project_id, model_name)
            rows = session.execute(
                select(AliasRow, ModelVersionRow.version)
                .join(ModelVersionRow, ModelVersionRow.id == AliasRow.version_id)
                .where(AliasRow.model_id == model.id)
                .order_by(AliasRow.name)
            ).all()
            return [
                Alias(model=model_name, alias=row.name, version=number, updated_at=row.updated_at)
                for row, number in rows
            ]

    def history(
        self, principal: Principal, model_name: str, alias: str | None
    ) -> builtins.list[AliasMove]:
        """Every move of the model's aliases (or of one alias), oldest first."""
        require(principal, Role.VIEWER)
        with self._store.read() as session:
            model = queries.find_model(session, principal.project_id, model_name)
            query = (
                select(AliasHistoryRow)
                .where(AliasHistoryRow.model_id == model.id)
                .order_by(AliasHistoryRow.id)
            )
            if alias is not None:
                query = query.where(AliasHistoryRow.alias == alias)
            return [
                AliasMove(
                    alias=row.alias,
                    from_version=row.from_version,
                    to_version=row.to_version,
                    actor=row.actor,
                    at=row.at,
                )
                for row in session.execute(query).scalars()
            ]

    def lineage(self, principal: Principal, model_name: str, version: int) -> Lineage:
        """A version's ancestors (nearest first) and its lineage edges."""
        require(principal, Role.VIEWER)
        with self._store.read() as session:
            model = queries.find_model(session, principal.project_id, model_name)
            row = queries.find_version(session, model, version)
            return Lineage(
                version=VersionRef(model=model_name, version=version),
                ancestors=queries.ancestors(session, row, MAX_LINEAGE_DEPTH),
                edges=queries.lineage_edges(session, row.id),
            )

    @staticmethod
    def _find(session: Session, model: ModelRow, alias: str) -> AliasRow | None:
        return session.execute(
            select(AliasRow).where(AliasRow.model_id == model.id, AliasRow.name == alias)
        ).scalar_one_or_none()

    @staticmethod
    def _version_number(session: Session, version_id: int) -> int:
        row = session.get(ModelVersionRow, version_id)
        assert row is not None
        return row.version

    @staticmethod
    def _record_move(
        session: Session,
        principal: Principal,
        model: ModelRow,
        alias: str,
        previous: int | None,
        version: int | None,
    ) -> None:
        session.add(
            AliasHistoryRow(
                model_id=model.id,
                alias=alias,
                from_version=previous,
                to_version=version,
                actor=principal.actor,
            )
        )
        audit.append(
            session,
            AuditRecord(
                actor=principal.actor,
                action="alias.set" if version is not None else "alias.delete",
                target=f"model:{model.name}/alias:{alias}",
                project=principal.project,
                before={"version": previous} if previous is not None else None,
                after={"version": version} if version is not None else None,
            ),
        )

    def _emit(
        self,
        principal: Principal,
        model: str,
        alias: str,
        previous: int | None,
        version: int | None,
    ) -> None:
        self._bus.emit(
            events.AliasMoved(
                project=principal.project,
                model=model,
                alias=alias,
                from_version=previous,
                to_version=version,
                actor=principal.actor,
                at=utcnow(),
            )
        )


def raise_invalid_alias(alias: str) -> None:
    """Reject an alias name that does not match the naming rule."""
    raise InvalidInput(
        f"invalid alias name {alias!r}: use lowercase letters, digits, '.', '_' or '-'",
        param="alias",
    )


def add_lineage_edge(
    session: Session,
    version_id: int,
    *,
    relation: str,
    target_kind: str,
    target_ref: str,
    metadata: dict[str, object] | None = None,
) -> None:
    """Link a version to a record of another stage, inside the caller's transaction."""
    session.add(
        LineageEdgeRow(
            version_id=version_id,
            relation=relation,
            target_kind=target_kind,
            target_ref=target_ref,
            meta=dict(metadata or {}),
        )
    )
