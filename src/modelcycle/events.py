"""Typed lifecycle events, delivered to plugins through pluggy hooks.

Each event is a frozen dataclass. Hooks receive it after the change it
describes is committed, on the thread that made the change: implementations
must return fast (enqueue, do not block) and must not raise — an exception in a
hook is logged and swallowed so that a plugin cannot undo a committed change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modelcycle.types import JSONObject


@dataclass(frozen=True, slots=True)
class VersionRegistered:
    """A new immutable version of a model was registered."""

    project: str
    model: str
    version: int
    backend: str
    source: str
    parent_version: int | None
    actor: str
    at: datetime


@dataclass(frozen=True, slots=True)
class VersionArchived:
    """A version was archived (kept for lineage, no longer deployable)."""

    project: str
    model: str
    version: int
    actor: str
    at: datetime


@dataclass(frozen=True, slots=True)
class VersionDeleted:
    """A version was deleted; nothing pointed to it any more."""

    project: str
    model: str
    version: int
    actor: str
    at: datetime


@dataclass(frozen=True, slots=True)
class AliasMoved:
    """An alias now points at ``to_version`` (``None`` when it was removed)."""

    project: str
    model: str
    alias: str
    from_version: int | None
    to_version: int | None
    actor: str
    at: datetime


@dataclass(frozen=True, slots=True)
class AuditRecorded:
    """An entry was appended to the audit log (for exporters and SIEM plugins)."""

    seq: int
    project: str | None
    actor: str
    action: str
    target: str
    at: datetime
    after: JSONObject = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeploymentChanged:
    """A deployment was created, updated, promoted, rolled back or deleted.

    ``spec`` is the configuration now in force (empty when ``action`` is
    ``delete``); ``revision`` is its revision number.
    """

    project: str
    name: str
    action: str
    revision: int
    actor: str
    at: datetime
    spec: JSONObject = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RequestFinished:
    """One OpenAI-compatible request through the gateway ended (served or failed).

    Emitted on the event loop of the request, after the answer (or the last
    stream chunk) is produced: hooks must only enqueue. Times are milliseconds;
    ``ttft_ms`` is the time to the first token (``None`` when none came).
    """

    request_id: str
    project: str
    deployment: str
    key_id: int
    endpoint: str
    """``chat.completions``, ``completions`` or ``embeddings``."""
    model: str | None
    """The registry model that served the request, or the last one tried when every
    route failed (``None`` when none was called)."""
    version: int | None
    route: str | None
    """``primary``, ``canary`` or ``fallback``."""
    status: str
    """``ok`` or ``error``."""
    status_code: int
    error_type: str | None
    latency_ms: float
    ttft_ms: float | None
    prompt_tokens: int
    completion_tokens: int
    stream: bool
    attempts: int
    """Backend calls made, retries and fallbacks included."""
    finish_reason: str | None
    at: datetime
    cache_hit: bool = False
    """Answered from the deployment's response cache (no backend was called)."""
    project_id: int = 0
    trace_id: str | None = None
    """The W3C trace id the request arrived with (``traceparent``); ``None``: its own."""
    parent_span_id: str | None = None
    user: str | None = None
    session: str | None = None
    metadata: Mapping[str, Any] | None = None
    """The ``X-Modelcycle-Metadata`` object."""
    input: Any = None
    """The request's messages (``modelcycle.backends.Message``), prompt or prompts, as
    the gateway received them; serialised by consumers, off the request path."""
    output: str | tuple[str, ...] | None = None
    """The answer's text (one per choice when there are several)."""
    params: Any = None
    """The request's ``modelcycle.backends.GenerationParams``."""
    error_message: str | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    guard: str | None = None
    """The guard stage's decision (``allow``, ``flag``, ``redact``, ``block``), if any."""
    guard_findings: tuple[Mapping[str, Any], ...] = ()
    """What the guard found, both stages: ``stage``, ``index`` (the message, prompt or
    input; the choice for output), ``detector``, ``type``, ``action``, ``start``,
    ``end``, ``score``; never the text found. ``input`` and ``output`` above are the
    texts after redaction (what the model saw, what the caller got)."""
    guard_ms: float | None = None
    """Time spent in guard detectors (``None``: the deployment has no guard policy)."""


@dataclass(frozen=True, slots=True)
class AlertFired:
    """An alert rule changed state: it fired (``state="firing"``) or resolved (``"resolved"``).

    Emitted once per transition (never again while the state holds), for the
    automation stage and notification plugins.
    """

    project: str
    rule: str
    metric: str
    state: str
    severity: str
    value: float | None
    threshold: float
    deployment: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class DriftDetected:
    """A drift check found at least one metric past its threshold."""

    project: str
    deployment: str | None
    report_id: int
    metrics: tuple[str, ...]
    at: datetime


@dataclass(frozen=True, slots=True)
class EvalFinished:
    """An evaluation run ended: ``status`` is ``succeeded`` (its summary stored) or ``failed``.

    ``gates_passed`` is ``None`` when the run had no gates (or failed).
    """

    project: str
    project_id: int
    run_id: int
    kind: str
    status: str
    gates_passed: bool | None
    at: datetime


@dataclass(frozen=True, slots=True)
class TuneFinished:
    """A tuning job ended: ``status`` is ``succeeded`` (a version registered) or ``failed``.

    ``model``/``version`` name the registered version (``None`` unless it
    succeeded); ``eval_datasets`` are the datasets to compare it with its parent on.
    """

    project: str
    project_id: int
    tune_job: str
    """The job's public id (``ftjob-...``)."""
    status: str
    model: str | None
    version: int | None
    parent_version: int | None
    eval_datasets: tuple[str, ...]
    at: datetime


Event = (
    VersionRegistered
    | VersionArchived
    | VersionDeleted
    | AliasMoved
    | AuditRecorded
    | DeploymentChanged
    | RequestFinished
    | AlertFired
    | DriftDetected
    | EvalFinished
    | TuneFinished
)
