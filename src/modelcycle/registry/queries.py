"""Lookups shared by the registry's operations, scoped to one project."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelcycle.errors import NotFound
from modelcycle.registry.schemas import LineageEdge, ModelVersion, VersionRef
from modelcycle.store.tables import AliasRow, LineageEdgeRow, ModelRow, ModelVersionRow
from modelcycle.types import BackendKind, VersionStatus


def find_model(session: Session, project_id: int, name: str, *, lock: bool = False) -> ModelRow:
    """The model ``name`` of the project, or ``NotFound`` with the fix."""
    query = select(ModelRow).where(ModelRow.project_id == project_id, ModelRow.name == name)
    if lock:
        query = query.with_for_update()
    row = session.execute(query).scalar_one_or_none()
    if row is None:
        raise NotFound(f"model '{name}' not found; list models with: modelcycle models list")
    return row


def find_version(session: Session, model: ModelRow, version: int) -> ModelVersionRow:
    """Version ``version`` of ``model``, or ``NotFound``."""
    row = session.execute(
        select(ModelVersionRow).where(
            ModelVersionRow.model_id == model.id, ModelVersionRow.version == version
        )
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(
            f"model '{model.name}' has no version {version}; "
            f"list them with: modelcycle models show {model.name}"
        )
    return row


def aliases_of(session: Session, model_id: int) -> dict[int, list[str]]:
    """Version id -> names of the aliases pointing at it."""
    out: dict[int, list[str]] = {}
    rows = session.execute(
        select(AliasRow.version_id, AliasRow.name)
        .where(AliasRow.model_id == model_id)
        .order_by(AliasRow.name)
    )
    for version_id, name in rows:
        out.setdefault(version_id, []).append(name)
    return out


def ref_of(session: Session, version_id: int | None) -> VersionRef | None:
    """The (model, version) reference of a version row id."""
    if version_id is None:
        return None
    found = session.execute(
        select(ModelRow.name, ModelVersionRow.version)
        .join(ModelRow, ModelRow.id == ModelVersionRow.model_id)
        .where(ModelVersionRow.id == version_id)
    ).first()
    return VersionRef(model=found[0], version=found[1]) if found else None


def version_out(
    session: Session, model: ModelRow, row: ModelVersionRow, aliases: list[str]
) -> ModelVersion:
    """The public shape of a version row."""
    return ModelVersion(
        model=model.name,
        version=row.version,
        source=row.source,
        backend=BackendKind(row.backend),
        params=row.params,
        parent=ref_of(session, row.parent_id),
        metadata=row.meta,
        status=VersionStatus(row.status),
        aliases=aliases,
        created_by=row.created_by,
        created_at=row.created_at,
    )


def ancestors(session: Session, row: ModelVersionRow, max_depth: int) -> list[VersionRef]:
    """The parent chain of a version, nearest first, at most ``max_depth`` long."""
    found: list[VersionRef] = []
    seen = {row.id}
    parent_id = row.parent_id
    while parent_id is not None and parent_id not in seen and len(found) < max_depth:
        seen.add(parent_id)
        parent = session.get(ModelVersionRow, parent_id)
        ref = ref_of(session, parent_id)
        if parent is None or ref is None:
            break
        found.append(ref)
        parent_id = parent.parent_id
    return found


def lineage_edges(session: Session, version_id: int) -> list[LineageEdge]:
    """The lineage edges later stages recorded on a version, oldest first."""
    rows = session.execute(
        select(LineageEdgeRow)
        .where(LineageEdgeRow.version_id == version_id)
        .order_by(LineageEdgeRow.id)
    ).scalars()
    return [
        LineageEdge(
            relation=edge.relation,
            target_kind=edge.target_kind,
            target_ref=edge.target_ref,
            metadata=edge.meta,
            created_at=edge.created_at,
        )
        for edge in rows
    ]
