"""A built-in plugin: the registry may not delete a version a deployment uses."""

from __future__ import annotations

from sqlalchemy import select

from modelcycle.deploy.schemas import DeploymentConfig
from modelcycle.deploy.targets import parse_target
from modelcycle.hookspecs import hookimpl
from modelcycle.store import Store
from modelcycle.store.tables import DeploymentRow, ProjectRow


class DeploymentReferences:
    """Answers ``modelcycle_version_references`` for deployments.

    Only targets pinned by number count: an alias target moves with its alias,
    and the registry already refuses to delete a version an alias points at.
    """

    def __init__(self, store: Store):
        self._store = store

    @hookimpl
    def modelcycle_version_references(self, project: str, model: str, version: int) -> list[str]:
        """One reason per deployment whose routes, shadow or fallbacks name ``model@version``."""
        with self._store.read() as session:
            rows = session.execute(
                select(DeploymentRow.name, DeploymentRow.spec)
                .join(ProjectRow, ProjectRow.id == DeploymentRow.project_id)
                .where(ProjectRow.name == project)
                .order_by(DeploymentRow.name)
            ).all()
        reasons = []
        for name, spec in rows:
            for value in DeploymentConfig.model_validate(spec).targets():
                target = parse_target(value)
                if target.model == model and target.version == version:
                    reasons.append(f"deployment '{name}' routes to it")
                    break
        return reasons
