"""The model registry: models, immutable versions, archive and delete."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from modelcycle import events
from modelcycle.access import Principal, require
from modelcycle.errors import Conflict, InvalidInput, NotFound
from modelcycle.plugins import EventBus
from modelcycle.registry import queries
from modelcycle.registry.schemas import (
    Model,
    ModelCreate,
    ModelUpdate,
    ModelVersion,
    VersionCreate,
)
from modelcycle.store import Page, Store, audit, encode_cursor
from modelcycle.store.audit import AuditRecord
from modelcycle.store.pagination import check_limit, decode_cursor
from modelcycle.store.tables import (
    AliasRow,
    LineageEdgeRow,
    ModelRow,
    ModelVersionRow,
    utcnow,
)
from modelcycle.types import Role, VersionStatus


def _model_out(session: Session, row: ModelRow) -> Model:
    latest = session.execute(
        select(func.max(ModelVersionRow.version)).where(ModelVersionRow.model_id == row.id)
    ).scalar_one()
    pointers = session.execute(
        select(AliasRow.name, ModelVersionRow.version)
        .join(ModelVersionRow, ModelVersionRow.id == AliasRow.version_id)
        .where(AliasRow.model_id == row.id)
        .order_by(AliasRow.name)
    ).all()
    return Model(
        name=row.name,
        description=row.description,
        metadata=row.meta,
        created_at=row.created_at,
        latest_version=latest,
        aliases=dict(pointers),
    )


def _version_audit(model: str, row: ModelVersionRow) -> dict[str, object]:
    return {
        "model": model,
        "version": row.version,
        "source": row.source,
        "backend": row.backend,
        "params": row.params,
        "status": row.status,
    }


class Registry:
    """Models and their versions in one project at a time."""

    def __init__(self, store: Store, bus: EventBus):
        self._store = store
        self._bus = bus

    # -- models ------------------------------------------------------------------

    def create_model(self, principal: Principal, body: ModelCreate) -> Model:
        """Create an empty model; ``Conflict`` when the name is taken."""
        require(principal, Role.MAINTAINER)
        with self._store.write() as session:
            row = self._insert_model(session, principal, body)
            return _model_out(session, row)

    def _insert_model(self, session: Session, principal: Principal, body: ModelCreate) -> ModelRow:
        exists = session.execute(
            select(ModelRow.id).where(
                ModelRow.project_id == principal.project_id, ModelRow.name == body.name
            )
        ).first()
        if exists:
            raise Conflict(f"model '{body.name}' exists; register a new version of it instead")
        row = ModelRow(
            project_id=principal.project_id,
            name=body.name,
            description=body.description,
            meta=body.metadata,
        )
        try:
            # A savepoint: on PostgreSQL a concurrent transaction may have inserted
            # the same name since the check above; that is a conflict, not a 500.
            with session.begin_nested():
                session.add(row)
                session.flush()
        except IntegrityError as exc:
            raise Conflict(
                f"model '{body.name}' exists; register a new version of it instead"
            ) from exc
        audit.append(
            session,
            AuditRecord(
                actor=principal.actor,
                action="model.create",
                target=f"model:{body.name}",
                project=principal.project,
                after=body.model_dump(),
            ),
        )
        return row

    def update_model(self, principal: Principal, name: str, body: ModelUpdate) -> Model:
        """Change a model's description or metadata."""
        require(principal, Role.MAINTAINER)
        with self._store.write() as session:
            row = queries.find_model(session, principal.project_id, name, lock=True)
            before = {"description": row.description, "metadata": row.meta}
            if body.description is not None:
                row.description = body.description
            if body.metadata is not None:
                row.meta = body.metadata
            audit.append(
                session,
                AuditRecord(
                    actor=principal.actor,
                    action="model.update",
                    target=f"model:{name}",
                    project=principal.project,
                    before=before,
                    after={"description": row.description, "metadata": row.meta},
                ),
            )
            return _model_out(session, row)

    def delete_model(self, principal: Principal, name: str) -> None:
        """Delete a model that has no versions left."""
        require(principal, Role.MAINTAINER)
        with self._store.write() as session:
            row = queries.find_model(session, principal.project_id, name, lock=True)
            count = session.execute(
                select(func.count(ModelVersionRow.id)).where(ModelVersionRow.model_id == row.id)
            ).scalar_one()
            if count:
                raise Conflict(
                    f"model '{name}' still has {count} version(s); delete or archive them first"
                )
            session.delete(row)
            audit.append(
                session,
                AuditRecord(
                    actor=principal.actor,
                    action="model.delete",
                    target=f"model:{name}",
                    project=principal.project,
                    before={"name": name},
                ),
            )

    def list_models(self, principal: Principal, *, cursor: str | None, limit: int) -> Page[Model]:
        """Models of the caller's project, oldest first."""
        require(principal, Role.VIEWER)
        after, limit = decode_cursor(cursor), check_limit(limit)
        with self._store.read() as session:
            rows = (
                session.execute(
                    select(ModelRow)
                    .where(ModelRow.project_id == principal.project_id, ModelRow.id > after)
                    .order_by(ModelRow.id)
                    .limit(limit + 1)
                )
                .scalars()
                .all()
            )
            items = [_model_out(session, row) for row in rows[:limit]]
        return Page(items, encode_cursor(rows[limit - 1].id) if len(rows) > limit else None)

    def get_model(self, principal: Principal, name: str) -> Model:
        """One model of the caller's project."""
        require(principal, Role.VIEWER)
        with self._store.read() as session:
            return _model_out(session, queries.find_model(session, principal.project_id, name))

    # -- versions ----------------------------------------------------------------

    def register_version(
        self, principal: Principal, model_name: str, body: VersionCreate
    ) -> ModelVersion:
        """Register the next version of ``model_name`` (creating the model if new)."""
        require(principal, Role.MAINTAINER)
        self._check(body)
        with self._store.write() as session:
            model = session.execute(
                select(ModelRow)
                .where(ModelRow.project_id == principal.project_id, ModelRow.name == model_name)
                .with_for_update()
            ).scalar_one_or_none()
            if model is None:
                try:
                    model = self._insert_model(session, principal, ModelCreate(name=model_name))
                except Conflict:
                    # Another registration created the model first: use (and lock) it.
                    model = queries.find_model(session, principal.project_id, model_name, lock=True)
            parent_id = self._parent_id(session, principal, model, body)
            # The model row is locked, so the counter hands out each number once.
            model.last_version += 1
            number = model.last_version
            row = ModelVersionRow(
                model_id=model.id,
                version=number,
                source=body.source,
                backend=body.backend.value,
                params=body.params,
                parent_id=parent_id,
                meta={
                    **body.metadata,
                    **({"description": body.description} if body.description else {}),
                },
                status=VersionStatus.ACTIVE.value,
                created_by=principal.actor,
            )
            session.add(row)
            session.flush()
            if parent_id is not None:
                session.add(
                    LineageEdgeRow(
                        version_id=row.id,
                        relation="parent",
                        target_kind="model_version",
                        target_ref=f"{body.parent.model}@{body.parent.version}"
                        if body.parent
                        else "",
                        meta={},
                    )
                )
            audit.append(
                session,
                AuditRecord(
                    actor=principal.actor,
                    action="version.register",
                    target=f"model:{model.name}@{number}",
                    project=principal.project,
                    after=_version_audit(model.name, row),
                ),
            )
            out = queries.version_out(session, model, row, [])
        self._bus.emit(
            events.VersionRegistered(
                project=principal.project,
                model=out.model,
                version=out.version,
                backend=out.backend.value,
                source=out.source,
                parent_version=out.parent.version if out.parent else None,
                actor=principal.actor,
                at=out.created_at,
            )
        )
        return out

    def _check(self, body: VersionCreate) -> None:
        """Refuse what a ``modelcycle_check_version`` plugin objects to (plain-text keys...)."""
        found = self._bus.manager.hook.modelcycle_check_version(
            backend=body.backend.value, source=body.source, params=body.params
        )
        problems = [problem for answer in found for problem in answer]
        if problems:
            raise InvalidInput("; ".join(problems), param="params")

    @staticmethod
    def _parent_id(
        session: Session, principal: Principal, model: ModelRow, body: VersionCreate
    ) -> int | None:
        if body.parent is None:
            return None
        try:
            parent_model = (
                model
                if body.parent.model == model.name
                else queries.find_model(session, principal.project_id, body.parent.model)
            )
            return queries.find_version(session, parent_model, body.parent.version).id
        except NotFound as exc:
            raise InvalidInput(
                f"parent {body.parent.model}@{body.parent.version} does not exist", param="parent"
            ) from exc

    def list_versions(
        self,
        principal: Principal,
        model_name: str,
        *,
        cursor: str | None,
        limit: int,
        include_archived: bool = True,
    ) -> Page[ModelVersion]:
        """Versions of a model, oldest first."""
        require(principal, Role.VIEWER)
        after, limit = decode_cursor(cursor), check_limit(limit)
        with self._store.read() as session:
            model = queries.find_model(session, principal.project_id, model_name)
            query = (
                select(ModelVersionRow)
                .where(ModelVersionRow.model_id == model.id, ModelVersionRow.version > after)
                .order_by(ModelVersionRow.version)
                .limit(limit + 1)
            )
            if not include_archived:
                query = query.where(ModelVersionRow.status == VersionStatus.ACTIVE.value)
            rows = session.execute(query).scalars().all()
            pointers = queries.aliases_of(session, model.id)
            items = [
                queries.version_out(session, model, row, pointers.get(row.id, []))
                for row in rows[:limit]
            ]
        more = len(rows) > limit
        return Page(items, encode_cursor(items[-1].version) if more else None)

    def get_version(self, principal: Principal, model_name: str, version: int) -> ModelVersion:
        """One version of a model."""
        require(principal, Role.VIEWER)
        with self._store.read() as session:
            model = queries.find_model(session, principal.project_id, model_name)
            row = queries.find_version(session, model, version)
            pointers = queries.aliases_of(session, model.id)
            return queries.version_out(session, model, row, pointers.get(row.id, []))

    def set_status(
        self, principal: Principal, model_name: str, version: int, status: VersionStatus
    ) -> ModelVersion:
        """Archive a version (refused while an alias points at it) or restore it."""
        require(principal, Role.MAINTAINER)
        with self._store.write() as session:
            model = queries.find_model(session, principal.project_id, model_name, lock=True)
            row = queries.find_version(session, model, version)
            pointers = queries.aliases_of(session, model.id).get(row.id, [])
            if row.status == status.value:
                raise Conflict(f"{model_name}@{version} is already {status.value}")
            if status is VersionStatus.ARCHIVED and pointers:
                raise Conflict(
                    f"{model_name}@{version} is the target of alias(es) {', '.join(pointers)}; "
                    "move them to another version first"
                )
            before = _version_audit(model.name, row)
            row.status = status.value
            action = "version.archive" if status is VersionStatus.ARCHIVED else "version.restore"
            audit.append(
                session,
                AuditRecord(
                    actor=principal.actor,
                    action=action,
                    target=f"model:{model.name}@{version}",
                    project=principal.project,
                    before=before,
                    after=_version_audit(model.name, row),
                ),
            )
            out = queries.version_out(session, model, row, pointers)
        if status is VersionStatus.ARCHIVED:
            self._bus.emit(
                events.VersionArchived(
                    project=principal.project,
                    model=model_name,
                    version=version,
                    actor=principal.actor,
                    at=utcnow(),
                )
            )
        return out

    def delete_version(self, principal: Principal, model_name: str, version: int) -> None:
        """Delete a version nothing points at; otherwise ``Conflict`` with the reasons."""
        require(principal, Role.MAINTAINER)
        with self._store.write() as session:
            model = queries.find_model(session, principal.project_id, model_name, lock=True)
            row = queries.find_version(session, model, version)
            reasons = self._references(session, principal, model, row)
            if reasons:
                raise Conflict(f"cannot delete {model_name}@{version}: {'; '.join(reasons)}")
            before = _version_audit(model.name, row)
            session.query(LineageEdgeRow).filter(LineageEdgeRow.version_id == row.id).delete()
            session.delete(row)
            audit.append(
                session,
                AuditRecord(
                    actor=principal.actor,
                    action="version.delete",
                    target=f"model:{model.name}@{version}",
                    project=principal.project,
                    before=before,
                ),
            )
        self._bus.emit(
            events.VersionDeleted(
                project=principal.project,
                model=model_name,
                version=version,
                actor=principal.actor,
                at=utcnow(),
            )
        )

    def _references(
        self, session: Session, principal: Principal, model: ModelRow, row: ModelVersionRow
    ) -> list[str]:
        reasons = [
            f"alias '{name}' points at it"
            for name in queries.aliases_of(session, model.id).get(row.id, [])
        ]
        children = session.execute(
            select(func.count(ModelVersionRow.id)).where(ModelVersionRow.parent_id == row.id)
        ).scalar_one()
        if children:
            reasons.append(f"{children} version(s) derive from it (archive it instead)")
        for found in self._bus.manager.hook.modelcycle_version_references(
            project=principal.project, model=model.name, version=row.version
        ):
            reasons.extend(found)
        return reasons
