"""The extension points of modelcycle, as pluggy hook specifications.

Built-in behaviour registers through the same hooks as third-party plugins
(``modelcycle.plugins``). Lifecycle hooks take one frozen event object (see
``events.py`` for the concurrency contract).
"""

from __future__ import annotations

import pluggy

from modelcycle import events

PROJECT_NAME = "modelcycle"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def modelcycle_version_registered(event: events.VersionRegistered) -> None:
    """React to a newly registered model version."""


@hookspec
def modelcycle_version_archived(event: events.VersionArchived) -> None:
    """React to an archived model version."""


@hookspec
def modelcycle_version_deleted(event: events.VersionDeleted) -> None:
    """React to a deleted model version."""


@hookspec
def modelcycle_alias_moved(event: events.AliasMoved) -> None:
    """React to an alias that now points at another version (or was removed)."""


@hookspec
def modelcycle_audit_recorded(event: events.AuditRecorded) -> None:
    """Receive each audit entry after it is committed (export to a SIEM, say)."""


@hookspec
def modelcycle_version_references(project: str, model: str, version: int) -> list[str]:  # type: ignore[empty-body]
    """Say why a version may not be deleted: one reason per thing that points at it.

    Later stages (deployments, running jobs) implement this so the registry can
    refuse to delete what they use. Return an empty list when nothing does.
    """
