"""Builds the plugin manager: hook specs, built-in plugins, then installed ones."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import pluggy

from modelcycle import events, hookspecs

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "modelcycle"


def build_plugin_manager(
    builtins: Iterable[object] = (), *, load_entry_points: bool = True
) -> pluggy.PluginManager:
    """A plugin manager with modelcycle's hook specs, ``builtins`` and installed plugins."""
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    for plugin in builtins:
        manager.register(plugin)
    if load_entry_points:
        manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    return manager


_DISPATCH: dict[type[Any], str] = {
    events.VersionRegistered: "modelcycle_version_registered",
    events.VersionArchived: "modelcycle_version_archived",
    events.VersionDeleted: "modelcycle_version_deleted",
    events.AliasMoved: "modelcycle_alias_moved",
    events.AuditRecorded: "modelcycle_audit_recorded",
    events.DeploymentChanged: "modelcycle_deployment_changed",
    events.RequestFinished: "modelcycle_request_finished",
    events.AlertFired: "modelcycle_alert_fired",
    events.DriftDetected: "modelcycle_drift_detected",
    events.EvalFinished: "modelcycle_eval_finished",
    events.TuneFinished: "modelcycle_tune_finished",
}


class EventBus:
    """Delivers committed events to the hooks; a failing plugin never breaks the caller."""

    def __init__(self, manager: pluggy.PluginManager):
        self._manager = manager

    @property
    def manager(self) -> pluggy.PluginManager:
        """The underlying plugin manager (for hooks that return values)."""
        return self._manager

    def emit(self, event: events.Event) -> None:
        """Call every implementation of ``event``'s hook; one failing plugin skips no other."""
        name = _DISPATCH[type(event)]
        hook = getattr(self._manager.hook, name)
        for impl in hook.get_hookimpls():
            function: Callable[..., object] = impl.function
            try:
                function(event=event)
            except Exception:
                log.exception(
                    "plugin %s: hook %s failed; the change stands", impl.plugin_name, name
                )
