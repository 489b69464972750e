"""Each SDK operation as a ``Call``: the HTTP request and how to read the answer.

The sync and async clients share these, so an endpoint's path, body and
response type are written once.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypeAlias, TypeVar

from pydantic import BaseModel, TypeAdapter

from modelcycle.access import (
    ApiKey,
    AuditEntry,
    AuditVerification,
    CreatedApiKey,
    KeyCreate,
    KeyRotate,
    Project,
    ProjectCreate,
    RotatedApiKey,
    WhoAmI,
)
from modelcycle.deploy import (
    BreakerPolicy,
    CachePolicy,
    Deployment,
    DeploymentConfig,
    DeploymentLimits,
    DeploymentRevision,
    DeploymentSpec,
    Route,
)
from modelcycle.errors import NotFound
from modelcycle.jobs import JobEventView, JobView
from modelcycle.monitor.alert_rules import (
    AlertEvaluation,
    AlertEvent,
    AlertRule,
    AlertRuleCreate,
    AlertRuleUpdate,
    LogChannel,
    WebhookChannel,
)
from modelcycle.monitor.drift_schemas import (
    DriftCheck,
    DriftReport,
    DriftSchedule,
    DriftScheduleCreate,
)
from modelcycle.monitor.trace_schemas import (
    Feedback,
    FeedbackCreate,
    MonitorPolicy,
    MonitorPolicyUpdate,
    RollupQuery,
    Rollups,
    Trace,
    TraceFilter,
    TracePage,
)
from modelcycle.registry import (
    Alias,
    AliasMove,
    AliasSet,
    Lineage,
    Model,
    ModelCreate,
    ModelUpdate,
    ModelVersion,
    VersionCreate,
    VersionRef,
)
from modelcycle.store import encode_cursor
from modelcycle.types import BackendKind, Role

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

API = "/api/v1"


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One HTTP request and the parser of its JSON answer."""

    method: str
    path: str
    parse: Callable[[Any], T]
    json: Any = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PageCall(Generic[T]):
    """A paginated list: the first request; the client follows ``next_cursor``."""

    path: str
    item: Callable[[Any], T]
    params: dict[str, Any] = field(default_factory=dict)


def _one(model: type[M]) -> Callable[[Any], M]:
    return model.model_validate


def _many(model: type[M]) -> Callable[[Any], list[M]]:
    adapter = TypeAdapter(list[model])  # type: ignore[valid-type]
    return adapter.validate_python


def _none(_: Any) -> None:
    return None


def _body(model: BaseModel) -> Any:
    return model.model_dump(mode="json", exclude_unset=True)


def _clean(**params: Any) -> dict[str, Any]:
    return {key: value for key, value in params.items() if value is not None}


def whoami() -> Call[WhoAmI]:
    return Call("GET", f"{API}/whoami", _one(WhoAmI))


def create_project(name: str, description: str) -> Call[Project]:
    body = ProjectCreate(name=name, description=description)
    return Call("POST", f"{API}/projects", _one(Project), json=_body(body))


def list_projects() -> Call[list[Project]]:
    return Call("GET", f"{API}/projects", _many(Project))


def create_key(
    name: str,
    role: Role | str,
    project: str | None,
    expires_at: datetime | None,
    deployments: Sequence[str] | None,
) -> Call[CreatedApiKey]:
    body = KeyCreate(
        name=name,
        role=Role(role),
        project=project,
        expires_at=expires_at,
        deployments=None if deployments is None else list(deployments),
    )
    return Call("POST", f"{API}/keys", _one(CreatedApiKey), json=_body(body))


def rotate_key(key_id: int, grace_s: int, expires_at: datetime | None) -> Call[RotatedApiKey]:
    body = KeyRotate(grace_s=grace_s, expires_at=expires_at)
    return Call("POST", f"{API}/keys/{key_id}/rotate", _one(RotatedApiKey), json=_body(body))


def list_keys(project: str | None) -> PageCall[ApiKey]:
    return PageCall(f"{API}/keys", _one(ApiKey), _clean(project=project))


def get_key(key_id: int) -> Call[ApiKey]:
    return Call("GET", f"{API}/keys/{key_id}", _one(ApiKey))


def revoke_key(key_id: int) -> Call[ApiKey]:
    return Call("DELETE", f"{API}/keys/{key_id}", _one(ApiKey))


def create_model(name: str, description: str, metadata: dict[str, Any] | None) -> Call[Model]:
    body = ModelCreate(name=name, description=description, metadata=metadata or {})
    return Call("POST", f"{API}/models", _one(Model), json=_body(body))


def list_models() -> PageCall[Model]:
    return PageCall(f"{API}/models", _one(Model))


def get_model(name: str) -> Call[Model]:
    return Call("GET", f"{API}/models/{name}", _one(Model))


def update_model(
    name: str, description: str | None, metadata: dict[str, Any] | None
) -> Call[Model]:
    body = ModelUpdate(description=description, metadata=metadata)
    return Call(
        "PATCH", f"{API}/models/{name}", _one(Model), json=body.model_dump(exclude_none=True)
    )


def delete_model(name: str) -> Call[None]:
    return Call("DELETE", f"{API}/models/{name}", _none)


def register_version(
    name: str,
    *,
    source: str,
    backend: BackendKind | str,
    params: dict[str, Any] | None,
    parent: tuple[str, int] | None,
    description: str,
    metadata: dict[str, Any] | None,
) -> Call[ModelVersion]:
    body = VersionCreate(
        source=source,
        backend=BackendKind(backend),
        params=params or {},
        parent=VersionRef(model=parent[0], version=parent[1]) if parent else None,
        description=description,
        metadata=metadata or {},
    )
    return Call("POST", f"{API}/models/{name}/versions", _one(ModelVersion), json=_body(body))


def list_versions(name: str, include_archived: bool) -> PageCall[ModelVersion]:
    return PageCall(
        f"{API}/models/{name}/versions",
        _one(ModelVersion),
        {"include_archived": str(include_archived).lower()},
    )


def get_version(name: str, version: int) -> Call[ModelVersion]:
    return Call("GET", f"{API}/models/{name}/versions/{version}", _one(ModelVersion))


def set_version_status(name: str, version: int, action: str) -> Call[ModelVersion]:
    return Call("POST", f"{API}/models/{name}/versions/{version}/{action}", _one(ModelVersion))


def delete_version(name: str, version: int) -> Call[None]:
    return Call("DELETE", f"{API}/models/{name}/versions/{version}", _none)


def lineage(name: str, version: int) -> Call[Lineage]:
    return Call("GET", f"{API}/models/{name}/versions/{version}/lineage", _one(Lineage))


def set_alias(model: str, alias: str, version: int) -> Call[Alias]:
    body = AliasSet(version=version)
    return Call("PUT", f"{API}/models/{model}/aliases/{alias}", _one(Alias), json=_body(body))


def get_alias(model: str, alias: str) -> Call[Alias]:
    return Call("GET", f"{API}/models/{model}/aliases/{alias}", _one(Alias))


def list_aliases(model: str) -> Call[list[Alias]]:
    return Call("GET", f"{API}/models/{model}/aliases", _many(Alias))


def delete_alias(model: str, alias: str) -> Call[None]:
    return Call("DELETE", f"{API}/models/{model}/aliases/{alias}", _none)


def alias_history(model: str, alias: str | None) -> Call[list[AliasMove]]:
    return Call(
        "GET", f"{API}/models/{model}/alias-history", _many(AliasMove), params=_clean(alias=alias)
    )


def list_audit(action: str | None, actor: str | None, target: str | None) -> PageCall[AuditEntry]:
    return PageCall(
        f"{API}/audit", _one(AuditEntry), _clean(action=action, actor=actor, target=target)
    )


def verify_audit() -> Call[AuditVerification]:
    return Call("GET", f"{API}/audit/verify", _one(AuditVerification))


class _Keep(enum.Enum):
    KEEP = "keep"


KEEP = _Keep.KEEP
"""Default of ``deployments.update`` arguments: leave this field as it is."""

Keep: TypeAlias = Literal[_Keep.KEEP]
Routes: TypeAlias = str | Mapping[str, int] | Sequence[Route]
"""One target (all traffic), ``{target: weight}`` in order (primary first), or routes."""


def routes_of(routes: Routes) -> list[Route]:
    """The routes given in any of the accepted forms."""
    if isinstance(routes, str):
        return [Route(target=routes, weight=100)]
    if isinstance(routes, Mapping):
        return [Route(target=target, weight=weight) for target, weight in routes.items()]
    return list(routes)


def create_deployment(
    name: str,
    routes: Routes,
    *,
    shadow: str | None,
    fallbacks: Sequence[str],
    timeout_s: float,
    retries: int,
    sticky: bool,
    limits: DeploymentLimits | None = None,
    cache: CachePolicy | None = None,
    breaker: BreakerPolicy | None = None,
    guard: str | None = None,
) -> Call[Deployment]:
    policies = {"limits": limits, "cache": cache, "breaker": breaker}
    body = DeploymentSpec(
        name=name,
        guard=guard,
        routes=routes_of(routes),
        shadow=shadow,
        fallbacks=list(fallbacks),
        timeout_s=timeout_s,
        retries=retries,
        sticky=sticky,
        **{key: value for key, value in policies.items() if value is not None},
    )
    return Call("POST", f"{API}/deployments", _one(Deployment), json=_body(body))


def list_deployments() -> PageCall[Deployment]:
    return PageCall(f"{API}/deployments", _one(Deployment))


def get_deployment(name: str) -> Call[Deployment]:
    return Call("GET", f"{API}/deployments/{name}", _one(Deployment))


def changed_config(
    current: DeploymentConfig,
    *,
    routes: Routes | None = None,
    shadow: str | Keep | None = KEEP,
    fallbacks: Sequence[str] | None = None,
    timeout_s: float | None = None,
    retries: int | None = None,
    sticky: bool | None = None,
    limits: DeploymentLimits | None = None,
    cache: CachePolicy | None = None,
    breaker: BreakerPolicy | None = None,
    guard: str | Keep | None = KEEP,
) -> DeploymentConfig:
    """``current`` with the given fields replaced (``None``/``KEEP``: unchanged)."""
    values = current.model_dump()
    if guard is not KEEP:
        values["guard"] = guard
    if routes is not None:
        values["routes"] = [route.model_dump() for route in routes_of(routes)]
    if shadow is not KEEP:
        values["shadow"] = shadow
    if fallbacks is not None:
        values["fallbacks"] = list(fallbacks)
    optional = {"timeout_s": timeout_s, "retries": retries, "sticky": sticky}
    values.update({key: value for key, value in optional.items() if value is not None})
    policies = {"limits": limits, "cache": cache, "breaker": breaker}
    values.update({k: v.model_dump() for k, v in policies.items() if v is not None})
    return DeploymentConfig.model_validate(values)


def update_deployment(
    name: str, config: DeploymentConfig, expected_revision: int | None
) -> Call[Deployment]:
    return Call(
        "PUT",
        f"{API}/deployments/{name}",
        _one(Deployment),
        json=config.model_dump(mode="json"),
        params=_clean(expected_revision=expected_revision),
    )


def promote_deployment(name: str) -> Call[Deployment]:
    return Call("POST", f"{API}/deployments/{name}/promote", _one(Deployment))


def rollback_deployment(name: str, to_revision: int | None) -> Call[Deployment]:
    return Call(
        "POST",
        f"{API}/deployments/{name}/rollback",
        _one(Deployment),
        params=_clean(to_revision=to_revision),
    )


def delete_deployment(name: str) -> Call[None]:
    return Call("DELETE", f"{API}/deployments/{name}", _none)


def deployment_revisions(name: str) -> Call[list[DeploymentRevision]]:
    return Call("GET", f"{API}/deployments/{name}/revisions", _many(DeploymentRevision))


# -- alerts --------------------------------------------------------------------------------

ChannelSpec: TypeAlias = WebhookChannel | LogChannel | Mapping[str, Any]
"""A channel as a model or as its JSON, e.g. ``{"type": "webhook", "url": "https://..."}``."""


def _alert_body(model: BaseModel) -> Any:
    # Webhook secrets are masked in JSON dumps; the request body is where they must go.
    return model.model_dump(mode="json", exclude_unset=True, context={"reveal_secrets": True})


def _channels(channels: Sequence[ChannelSpec]) -> list[Any]:
    return [c.model_dump() if isinstance(c, BaseModel) else dict(c) for c in channels]


def create_alert(fields: dict[str, Any], channels: Sequence[ChannelSpec] | None) -> Call[AlertRule]:
    values = _clean(**fields)
    if channels is not None:
        values["channels"] = _channels(channels)
    body = AlertRuleCreate.model_validate(values)
    return Call("POST", f"{API}/alerts", _one(AlertRule), json=_alert_body(body))


def list_alerts(name: str | None, state: str | None) -> PageCall[AlertRule]:
    return PageCall(f"{API}/alerts", _one(AlertRule), _clean(name=name, state=state))


def get_alert(rule_id: int) -> Call[AlertRule]:
    return Call("GET", f"{API}/alerts/{rule_id}", _one(AlertRule))


def update_alert(
    rule_id: int, fields: dict[str, Any], channels: Sequence[ChannelSpec] | None
) -> Call[AlertRule]:
    values = {key: value for key, value in fields.items() if value is not KEEP}
    if channels is not None:
        values["channels"] = _channels(channels)
    body = AlertRuleUpdate.model_validate(values)
    return Call("PATCH", f"{API}/alerts/{rule_id}", _one(AlertRule), json=_alert_body(body))


def delete_alert(rule_id: int) -> Call[None]:
    return Call("DELETE", f"{API}/alerts/{rule_id}", _none)


def alert_events(rule_id: int) -> PageCall[AlertEvent]:
    return PageCall(f"{API}/alerts/{rule_id}/events", _one(AlertEvent))


def evaluate_alerts() -> Call[AlertEvaluation]:
    return Call("POST", f"{API}/alerts/evaluate", _one(AlertEvaluation))


def alert_changes(**fields: Any) -> dict[str, Any]:
    """The fields of an alert update that were given (``None``/``KEEP``: unchanged).

    ``deployment`` and ``version`` may be set to ``None`` (any), so only ``KEEP`` skips them.
    """
    nullable = {"deployment", "version"}
    return {
        key: value
        for key, value in fields.items()
        if value is not KEEP and (value is not None or key in nullable)
    }


def rule_id_of(name: str, found: Sequence[AlertRule]) -> int:
    """The id of the rule ``name`` among ``found``; ``NotFound`` when it is not there."""
    if not found:
        raise NotFound(
            f"alert rule '{name}' not found; list them with: modelcycle alerts list",
            code="alert_not_found",
        )
    return found[0].id


# -- traces, feedback, rollups -------------------------------------------------------------


def _query(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_none=True)


def search_traces(filters: dict[str, Any]) -> Call[TracePage]:
    query = TraceFilter.model_validate(_clean(**filters))
    return Call("GET", f"{API}/traces", _one(TracePage), params=_query(query))


def get_trace(trace_id: str) -> Call[Trace]:
    return Call("GET", f"{API}/traces/{trace_id}", _one(Trace))


def add_feedback(trace_id: str, fields: dict[str, Any]) -> Call[Feedback]:
    body = FeedbackCreate.model_validate(_clean(**fields))
    return Call("POST", f"{API}/traces/{trace_id}/feedback", _one(Feedback), json=_body(body))


def list_feedback(trace_id: str) -> Call[list[Feedback]]:
    return Call("GET", f"{API}/traces/{trace_id}/feedback", _many(Feedback))


def rollups(fields: dict[str, Any]) -> Call[Rollups]:
    query = RollupQuery.model_validate(_clean(**fields))
    return Call("GET", f"{API}/rollups", _one(Rollups), params=_query(query))


def monitor_policy() -> Call[MonitorPolicy]:
    return Call("GET", f"{API}/monitor/policy", _one(MonitorPolicy))


def set_monitor_policy(retention_days: int | None) -> Call[MonitorPolicy]:
    body = MonitorPolicyUpdate(retention_days=retention_days)
    return Call("PUT", f"{API}/monitor/policy", _one(MonitorPolicy), json=_body(body))


# -- jobs and drift ------------------------------------------------------------------------


def _page_items(model: type[M]) -> Callable[[Any], list[M]]:
    many = _many(model)
    return lambda body: many(body["data"])


def list_jobs(kind: str | None, state: str | None, limit: int) -> Call[list[JobView]]:
    params = _clean(kind=kind, state=state, limit=limit)
    return Call("GET", f"{API}/jobs", _page_items(JobView), params=params)


def get_job(job_id: int) -> Call[JobView]:
    return Call("GET", f"{API}/jobs/{job_id}", _one(JobView))


def job_events(job_id: int, after_id: int, limit: int) -> Call[list[JobEventView]]:
    params = _clean(cursor=encode_cursor(after_id) if after_id else None, limit=limit)
    return Call("GET", f"{API}/jobs/{job_id}/events", _page_items(JobEventView), params=params)


def cancel_job(job_id: int) -> Call[JobView]:
    return Call("POST", f"{API}/jobs/{job_id}/cancel", _one(JobView))


def drift_check_body(fields: Mapping[str, Any]) -> DriftCheck:
    """A ``DriftCheck`` from SDK keyword arguments (``None`` values left to their defaults)."""
    return DriftCheck.model_validate(_clean(**fields))


def run_drift_check(check: DriftCheck) -> Call[DriftReport]:
    body = check.model_dump(mode="json", exclude_none=True)
    return Call("POST", f"{API}/drift/checks", _one(DriftReport), json=body)


def list_drift_reports(
    deployment: str | None, drifted: bool | None, limit: int
) -> Call[list[DriftReport]]:
    flag = None if drifted is None else str(drifted).lower()
    params = _clean(deployment=deployment, drifted=flag, limit=limit)
    return Call("GET", f"{API}/drift/reports", _page_items(DriftReport), params=params)


def get_drift_report(report_id: int) -> Call[DriftReport]:
    return Call("GET", f"{API}/drift/reports/{report_id}", _one(DriftReport))


def set_drift_schedule(name: str, interval_s: int, check: DriftCheck) -> Call[DriftSchedule]:
    body = DriftScheduleCreate(name=name, interval_s=interval_s, check=check)
    json_body = body.model_dump(mode="json", exclude_none=True)
    return Call("POST", f"{API}/drift/schedules", _one(DriftSchedule), json=json_body)


def list_drift_schedules() -> Call[list[DriftSchedule]]:
    return Call("GET", f"{API}/drift/schedules", _many(DriftSchedule))


def delete_drift_schedule(name: str) -> Call[None]:
    return Call("DELETE", f"{API}/drift/schedules/{name}", _none)
