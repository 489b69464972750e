"""The extension points of modelcycle, as pluggy hook specifications.

Built-in behaviour registers through the same hooks as third-party plugins
(``modelcycle.plugins``). Lifecycle hooks take one frozen event object (see
``events.py`` for the concurrency contract).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

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


@hookspec
def modelcycle_deployment_changed(event: events.DeploymentChanged) -> None:
    """React to a deployment that was created, changed, promoted, rolled back or deleted."""


@hookspec
def modelcycle_request_finished(event: events.RequestFinished) -> None:
    """Receive each finished gateway request (served or failed).

    Called on the request's event loop: enqueue and return, never block or do I/O.
    """


@hookspec
def modelcycle_alert_fired(event: events.AlertFired) -> None:
    """React to an alert rule that fired or resolved (``event.state``)."""


@hookspec
def modelcycle_drift_detected(event: events.DriftDetected) -> None:
    """React to a drift check that found a metric past its threshold."""


@hookspec
def modelcycle_eval_finished(event: events.EvalFinished) -> None:
    """React to an evaluation run that succeeded or failed (``event.gates_passed``)."""


@hookspec
def modelcycle_tune_finished(event: events.TuneFinished) -> None:
    """React to a tuning job that succeeded (a new version registered) or failed."""


@hookspec
def modelcycle_check_version(  # type: ignore[empty-body]
    backend: str, source: str, params: Mapping[str, Any]
) -> list[str]:
    """Say what is wrong with a version about to be registered: one message per problem.

    Called by the registry before anything is stored; any message refuses the
    registration with a 400 that lists them. Built-in checks refuse credentials
    written into params in plain text (for every kind) and malformed ``openai``
    versions. Return an empty list for kinds you do not know.
    """


@hookspec
def modelcycle_register_backends() -> Mapping[str, Callable[..., Any]]:  # type: ignore[empty-body]
    """Offer backend kinds: a mapping of kind -> factory.

    A factory is called as ``factory(source, params)`` with a version's source
    (a path, a URL) and its parameters, and returns an object implementing
    ``modelcycle.backends.Backend``. It must not load weights or connect yet
    (do that lazily on the first request). Built-in kinds (``llamacpp``,
    ``mock``) register through this hook too; a plugin may override one.
    """


@hookspec
def modelcycle_guard_detectors() -> Mapping[str, Callable[..., Any]]:  # type: ignore[empty-body]
    """Offer guard detectors: a mapping of name -> factory.

    A factory is called as ``factory(options)`` with a policy rule's ``options``
    and returns an object implementing ``modelcycle.guard.Detector`` (a
    ``name`` and ``detect(text) -> list[Finding]``). Built-in detectors
    (``pii``, ``secrets``, ``injection``, ``toxicity``, ``topics``,
    ``max_size``, ``json_schema``) register through this hook too; a plugin
    registered later may override one by name.
    """


@hookspec
def modelcycle_erase_user(project_id: int, user: str) -> Mapping[str, int]:  # type: ignore[empty-body]
    """Erase what a stage holds about an end user (GDPR art. 17): return counts per kind.

    Called by ``modelcycle privacy erase --user U`` after the traces and
    feedback are gone; stages that derive data from traces (dataset samples,
    say) delete theirs and report ``{"dataset_samples": n}``.
    """


@hookspec
def modelcycle_export_user(project_id: int, user: str) -> Mapping[str, Any]:  # type: ignore[empty-body]
    """Everything a stage holds about an end user, as JSON-ready data keyed by kind."""


@hookspec
def modelcycle_model_report_sections(  # type: ignore[empty-body]
    project_id: int, model: str, version: int
) -> list[Mapping[str, Any]]:
    """Contribute sections to the model report of ``model@version`` (evaluations, safety).

    Each section is ``{"title": str, "markdown": str, "covers": [str, ...]}``;
    ``covers`` names the controls it is evidence for (``LLM01`` .. ``LLM10``,
    ``art11``, ``art12``, ``art13``, ``art14``, ``art15``, ``art19``, ``art50``),
    which the report's compliance map cites. Return an empty list when you
    hold nothing about the version. Called on a worker thread per report.
    """


@hookspec
def modelcycle_register_scorers() -> Mapping[str, Callable[[Mapping[str, Any]], Any]]:  # type: ignore[empty-body]
    """Offer evaluation scorers: a mapping of name -> factory.

    A factory is called as ``factory(options)`` with the options a run gives the
    scorer, validates them (``InvalidInput`` naming a bad one) and returns a
    ``modelcycle.evaluate.scorers.Scorer`` (``name``, ``kind``,
    ``needs_reference``, ``higher_is_better``, ``score``, ``score_many``). It
    must not load a model yet (do that on first use). Built-in scorers
    (``exact_match``, ``rouge_l``, ``bleu``, ``pii_leak``...) register through
    this hook too; a plugin registered later may override one by name.
    """
