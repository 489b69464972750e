"""The asynchronous SDK client (mirrors ``Client`` method for method)."""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx

from modelcycle.access import (
    ApiKey,
    AuditEntry,
    AuditVerification,
    CreatedApiKey,
    Project,
    RotatedApiKey,
    WhoAmI,
)
from modelcycle.client import calls
from modelcycle.client.datasets import AsyncDatasets
from modelcycle.client.evals import AsyncEvals
from modelcycle.client.guard import AsyncGuard
from modelcycle.client.online_eval import AsyncOnlineEval
from modelcycle.client.privacy import AsyncPrivacy
from modelcycle.client.reports import AsyncReports
from modelcycle.client.safety_eval import AsyncSafetyEval
from modelcycle.client.transport import (
    connection_error,
    headers,
    raise_for_error,
    resolve_api_key,
    resolve_server,
)
from modelcycle.client.tune import AsyncTune
from modelcycle.deploy import (
    BreakerPolicy,
    CachePolicy,
    Deployment,
    DeploymentConfig,
    DeploymentLimits,
    DeploymentRevision,
)
from modelcycle.jobs import JobEventView, JobView
from modelcycle.monitor.alert_rules import AlertEvaluation, AlertEvent, AlertRule
from modelcycle.monitor.drift_schemas import DriftReport, DriftSchedule
from modelcycle.monitor.trace_schemas import Feedback, MonitorPolicy, Rollups, Trace, TracePage
from modelcycle.registry import Alias, AliasMove, Lineage, Model, ModelVersion
from modelcycle.types import BackendKind, Role

T = TypeVar("T")


class AsyncClient:
    """A modelcycle server over HTTP, for asyncio code.

    Args:
        server: Base URL; ``MODELCYCLE_SERVER`` or ``http://127.0.0.1:8000`` when omitted.
        api_key: Bearer key; ``MODELCYCLE_API_KEY`` when omitted.
        timeout: Seconds to wait for each request.
        http_client: An ``httpx.AsyncClient`` to use instead of a new one (tests, proxies).
    """

    def __init__(
        self,
        server: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        http_client: httpx.AsyncClient | None = None,
    ):
        self.server = resolve_server(server)
        self._http = http_client or httpx.AsyncClient(timeout=timeout)
        self._headers = headers(resolve_api_key(api_key))
        self.projects = Projects(self)
        self.keys = Keys(self)
        self.models = Models(self)
        self.aliases = Aliases(self)
        self.audit = Audit(self)
        self.deployments = Deployments(self)
        self.alerts = Alerts(self)
        self.traces = Traces(self)
        self.jobs = Jobs(self)
        self.drift = Drift(self)
        self.reports = AsyncReports(self)
        self.privacy = AsyncPrivacy(self)
        self.guard = AsyncGuard(self)
        self.online_eval = AsyncOnlineEval(self)
        self.datasets = AsyncDatasets(self)
        self.evals = AsyncEvals(self)
        self.safety_eval = AsyncSafetyEval(self)
        self.tune = AsyncTune(self)

    async def run(self, call: calls.Call[T]) -> T:
        """Send one call and parse its answer; errors raise ``ModelcycleError``."""
        try:
            response = await self._http.request(
                call.method,
                self.server + call.path,
                json=call.json,
                params=call.params or None,
                headers=self._headers,
            )
        except httpx.HTTPError as exc:
            raise connection_error(self.server, exc) from exc
        raise_for_error(response)
        return call.parse(response.json() if response.content else None)

    async def content(self, path: str, *, params: dict[str, Any] | None = None) -> bytes:
        """The raw body of ``GET path`` (an HTML report, a file); errors raise as for ``run``."""
        try:
            response = await self._http.get(
                self.server + path, params=params, headers=self._headers
            )
        except httpx.HTTPError as exc:
            raise connection_error(self.server, exc) from exc
        raise_for_error(response)
        return response.content

    async def collect(self, call: calls.PageCall[T]) -> list[T]:
        """Every item of a paginated list, following ``next_cursor``."""
        items: list[T] = []
        cursor: str | None = None
        while True:
            params = {**call.params, **({"cursor": cursor} if cursor else {})}
            page = await self.run(calls.Call("GET", call.path, lambda body: body, params=params))
            items.extend(call.item(item) for item in page["data"])
            cursor = page["next_cursor"]
            if not cursor:
                return items

    async def whoami(self) -> WhoAmI:
        """The key in use: its role and project."""
        return await self.run(calls.whoami())

    async def close(self) -> None:
        """Close pooled connections."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class Projects:
    """Tenants (root admins create them)."""

    def __init__(self, client: AsyncClient):
        self._c = client

    async def create(self, name: str, description: str = "") -> Project:
        """Create a project."""
        return await self._c.run(calls.create_project(name, description))

    async def list(self) -> list[Project]:
        """Projects visible to the key."""
        return await self._c.run(calls.list_projects())


class Keys:
    """API keys (maintainers and admins)."""

    def __init__(self, client: AsyncClient):
        self._c = client

    async def create(
        self,
        name: str,
        role: Role | str,
        *,
        project: str | None = None,
        expires_at: datetime | None = None,
        deployments: Sequence[str] | None = None,
    ) -> CreatedApiKey:
        """Create a key; its ``key`` field is the only time the secret is shown.

        ``deployments`` limits the deployments it may call through ``/v1``.
        """
        return await self._c.run(calls.create_key(name, role, project, expires_at, deployments))

    async def list(self, *, project: str | None = None) -> list[ApiKey]:
        """Keys of the project."""
        return await self._c.collect(calls.list_keys(project))

    async def get(self, key_id: int) -> ApiKey:
        """One key."""
        return await self._c.run(calls.get_key(key_id))

    async def revoke(self, key_id: int) -> ApiKey:
        """Revoke a key at once."""
        return await self._c.run(calls.revoke_key(key_id))

    async def rotate(
        self, key_id: int, *, grace_s: int = 0, expires_at: datetime | None = None
    ) -> RotatedApiKey:
        """Replace a key by a new one (shown this once); the old one works ``grace_s`` more."""
        return await self._c.run(calls.rotate_key(key_id, grace_s, expires_at))


class Models:
    """Models and their versions."""

    def __init__(self, client: AsyncClient):
        self._c = client

    async def create(
        self, name: str, *, description: str = "", metadata: dict[str, Any] | None = None
    ) -> Model:
        """Create an empty model."""
        return await self._c.run(calls.create_model(name, description, metadata))

    async def list(self) -> list[Model]:
        """Every model of the project."""
        return await self._c.collect(calls.list_models())

    async def get(self, name: str) -> Model:
        """One model."""
        return await self._c.run(calls.get_model(name))

    async def update(
        self,
        name: str,
        *,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Model:
        """Change a model's description or metadata."""
        return await self._c.run(calls.update_model(name, description, metadata))

    async def delete(self, name: str) -> None:
        """Delete a model without versions."""
        await self._c.run(calls.delete_model(name))

    async def register(
        self,
        name: str,
        *,
        source: str,
        backend: BackendKind | str,
        params: dict[str, Any] | None = None,
        parent: tuple[str, int] | None = None,
        description: str = "",
        metadata: dict[str, Any] | None = None,
    ) -> ModelVersion:
        """Register the next version of ``name`` (the model is created if new)."""
        return await self._c.run(
            calls.register_version(
                name,
                source=source,
                backend=backend,
                params=params,
                parent=parent,
                description=description,
                metadata=metadata,
            )
        )

    async def versions(
        self, name: str, *, include_archived: bool = True
    ) -> builtins.list[ModelVersion]:
        """Every version of a model."""
        return await self._c.collect(calls.list_versions(name, include_archived))

    async def version(self, name: str, version: int) -> ModelVersion:
        """One version."""
        return await self._c.run(calls.get_version(name, version))

    async def archive(self, name: str, version: int) -> ModelVersion:
        """Archive a version."""
        return await self._c.run(calls.set_version_status(name, version, "archive"))

    async def restore(self, name: str, version: int) -> ModelVersion:
        """Restore an archived version."""
        return await self._c.run(calls.set_version_status(name, version, "restore"))

    async def delete_version(self, name: str, version: int) -> None:
        """Delete a version nothing points at."""
        await self._c.run(calls.delete_version(name, version))

    async def lineage(self, name: str, version: int) -> Lineage:
        """Ancestors and lineage links of a version."""
        return await self._c.run(calls.lineage(name, version))


class Aliases:
    """Movable pointers to versions."""

    def __init__(self, client: AsyncClient):
        self._c = client

    async def set(self, model: str, alias: str, version: int) -> Alias:
        """Point ``alias`` at ``version``."""
        return await self._c.run(calls.set_alias(model, alias, version))

    async def get(self, model: str, alias: str) -> Alias:
        """Where an alias points."""
        return await self._c.run(calls.get_alias(model, alias))

    async def list(self, model: str) -> list[Alias]:
        """Aliases of a model."""
        return await self._c.run(calls.list_aliases(model))

    async def delete(self, model: str, alias: str) -> None:
        """Remove an alias."""
        await self._c.run(calls.delete_alias(model, alias))

    async def history(self, model: str, alias: str | None = None) -> builtins.list[AliasMove]:
        """Alias moves, oldest first."""
        return await self._c.run(calls.alias_history(model, alias))


class Audit:
    """The audit log (admins)."""

    def __init__(self, client: AsyncClient):
        self._c = client

    async def list(
        self, *, action: str | None = None, actor: str | None = None, target: str | None = None
    ) -> list[AuditEntry]:
        """Entries of the project, oldest first."""
        return await self._c.collect(calls.list_audit(action, actor, target))

    async def verify(self) -> AuditVerification:
        """Check the hash chain."""
        return await self._c.run(calls.verify_audit())


class Deployments:
    """Deployments: what OpenAI clients call, routed to model versions."""

    def __init__(self, client: AsyncClient):
        self._c = client

    async def create(
        self,
        name: str,
        routes: calls.Routes,
        *,
        shadow: str | None = None,
        fallbacks: Sequence[str] = (),
        timeout_s: float = 60.0,
        retries: int = 0,
        sticky: bool = False,
        limits: DeploymentLimits | None = None,
        cache: CachePolicy | None = None,
        breaker: BreakerPolicy | None = None,
        guard: str | None = None,
    ) -> Deployment:
        """Create a deployment; ``routes`` is a target, or ``{target: weight}`` primary first.

        ``guard``: the guard policy its requests run (see ``client.guard.policies``).
        """
        return await self._c.run(
            calls.create_deployment(
                name,
                routes,
                shadow=shadow,
                fallbacks=fallbacks,
                timeout_s=timeout_s,
                retries=retries,
                sticky=sticky,
                limits=limits,
                cache=cache,
                breaker=breaker,
                guard=guard,
            )
        )

    async def list(self) -> builtins.list[Deployment]:
        """Every deployment of the project."""
        return await self._c.collect(calls.list_deployments())

    async def get(self, name: str) -> Deployment:
        """One deployment and its configuration."""
        return await self._c.run(calls.get_deployment(name))

    async def update(
        self,
        name: str,
        *,
        routes: calls.Routes | None = None,
        shadow: str | calls.Keep | None = calls.KEEP,
        fallbacks: Sequence[str] | None = None,
        timeout_s: float | None = None,
        retries: int | None = None,
        sticky: bool | None = None,
        limits: DeploymentLimits | None = None,
        cache: CachePolicy | None = None,
        breaker: BreakerPolicy | None = None,
        guard: str | calls.Keep | None = calls.KEEP,
    ) -> Deployment:
        """Change some fields; refused (Conflict) if someone changed it since it was read.

        ``guard``: a guard policy name, or ``None`` to run none.
        """
        current = await self.get(name)
        config = calls.changed_config(
            current.spec,
            routes=routes,
            shadow=shadow,
            fallbacks=fallbacks,
            timeout_s=timeout_s,
            retries=retries,
            sticky=sticky,
            limits=limits,
            cache=cache,
            breaker=breaker,
            guard=guard,
        )
        return await self._c.run(calls.update_deployment(name, config, current.revision))

    async def replace(
        self, name: str, config: DeploymentConfig, *, expected_revision: int | None = None
    ) -> Deployment:
        """Replace the whole configuration."""
        return await self._c.run(calls.update_deployment(name, config, expected_revision))

    async def promote(self, name: str) -> Deployment:
        """The canary becomes the only route."""
        return await self._c.run(calls.promote_deployment(name))

    async def rollback(self, name: str, *, to_revision: int | None = None) -> Deployment:
        """Restore the previous configuration (or ``to_revision``)."""
        return await self._c.run(calls.rollback_deployment(name, to_revision))

    async def delete(self, name: str) -> None:
        """Delete a deployment."""
        await self._c.run(calls.delete_deployment(name))

    async def revisions(self, name: str) -> builtins.list[DeploymentRevision]:
        """Every configuration the deployment has had, oldest first."""
        return await self._c.run(calls.deployment_revisions(name))


class Alerts:
    """Alert rules: conditions on metrics that fire, resolve and notify webhooks.

    Rules are named by id or by name (``"high-errors"``).
    """

    def __init__(self, client: AsyncClient):
        self._c = client

    async def create(
        self,
        name: str,
        *,
        metric: str,
        op: str,
        threshold: float,
        window_s: int = 300,
        deployment: str | None = None,
        version: int | None = None,
        min_requests: int | None = None,
        severity: str = "warning",
        channels: Sequence[calls.ChannelSpec] | None = None,
        enabled: bool = True,
    ) -> AlertRule:
        """Create a rule, e.g. ``metric="error_rate", op=">", threshold=0.1``."""
        fields = {
            "name": name,
            "metric": metric,
            "op": op,
            "threshold": threshold,
            "window_s": window_s,
            "deployment": deployment,
            "version": version,
            "min_requests": min_requests,
            "severity": severity,
            "enabled": enabled,
        }
        return await self._c.run(calls.create_alert(fields, channels))

    async def list(
        self, *, name: str | None = None, state: str | None = None
    ) -> builtins.list[AlertRule]:
        """Rules of the project, oldest first; ``state="firing"`` for those firing."""
        return await self._c.collect(calls.list_alerts(name, state))

    async def get(self, rule: int | str) -> AlertRule:
        """One rule and its state."""
        return await self._c.run(calls.get_alert(await self._id(rule)))

    async def update(
        self,
        rule: int | str,
        *,
        metric: str | None = None,
        op: str | None = None,
        threshold: float | None = None,
        window_s: int | None = None,
        deployment: str | calls.Keep | None = calls.KEEP,
        version: int | calls.Keep | None = calls.KEEP,
        min_requests: int | None = None,
        severity: str | None = None,
        channels: Sequence[calls.ChannelSpec] | None = None,
        enabled: bool | None = None,
    ) -> AlertRule:
        """Change the fields given (``deployment=None``: every deployment)."""
        fields = calls.alert_changes(
            metric=metric,
            op=op,
            threshold=threshold,
            window_s=window_s,
            deployment=deployment,
            version=version,
            min_requests=min_requests,
            severity=severity,
            enabled=enabled,
        )
        return await self._c.run(calls.update_alert(await self._id(rule), fields, channels))

    async def delete(self, rule: int | str) -> None:
        """Delete a rule and its events."""
        await self._c.run(calls.delete_alert(await self._id(rule)))

    async def events(self, rule: int | str) -> builtins.list[AlertEvent]:
        """The rule's transitions and their deliveries, newest first."""
        return await self._c.collect(calls.alert_events(await self._id(rule)))

    async def evaluate(self) -> AlertEvaluation:
        """Evaluate the project's rules now; returns the transitions."""
        return await self._c.run(calls.evaluate_alerts())

    async def _id(self, rule: int | str) -> int:
        if isinstance(rule, int):
            return rule
        return calls.rule_id_of(rule, await self._c.collect(calls.list_alerts(rule, None)))


class Traces:
    """Traces of gateway requests and traced applications, their feedback and rollups."""

    def __init__(self, client: AsyncClient):
        self._c = client

    async def list(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        deployment: str | None = None,
        model: str | None = None,
        version: int | None = None,
        status: str | None = None,
        route: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        key_id: int | None = None,
        text: str | None = None,
        guard: str | None = None,
        has_feedback: bool | None = None,
        min_score: float | None = None,
        max_score: float | None = None,
        thumbs: int | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> TracePage:
        """One page of matching traces, newest first (the last 24 hours by default).

        Pass the page's ``next_cursor`` as ``cursor`` (with the same filters) for the next.
        """
        filters = dict(locals())
        del filters["self"]
        return await self._c.run(calls.search_traces(filters))

    async def get(self, trace_id: str) -> Trace:
        """A trace in full: its spans in tree order and its feedback."""
        return await self._c.run(calls.get_trace(trace_id))

    async def add_feedback(
        self,
        trace_id: str,
        *,
        score: float | None = None,
        thumbs: int | None = None,
        label: str | None = None,
        comment: str | None = None,
        correction: str | None = None,
        span_id: str | None = None,
        user_id: str | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> Feedback:
        """Attach feedback: ``score`` (0..1) or ``thumbs`` (1 or -1), label, comment, correction."""
        fields = dict(locals())
        del fields["self"], fields["trace_id"]
        return await self._c.run(calls.add_feedback(trace_id, fields))

    async def feedback(self, trace_id: str) -> builtins.list[Feedback]:
        """Feedback of a trace, oldest first."""
        return await self._c.run(calls.list_feedback(trace_id))

    async def rollups(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        step: int | None = None,
        group_by: str = "deployment",
        deployment: str | None = None,
        model: str | None = None,
        version: int | None = None,
        route: str | None = None,
    ) -> Rollups:
        """Per-bucket requests, errors, latency percentiles, tokens, cost and feedback."""
        fields = dict(locals())
        del fields["self"]
        return await self._c.run(calls.rollups(fields))

    async def policy(self) -> MonitorPolicy:
        """The project's monitoring policy (trace retention)."""
        return await self._c.run(calls.monitor_policy())

    async def set_policy(self, *, retention_days: int | None) -> MonitorPolicy:
        """Keep traces ``retention_days`` days (``None``: forever); admins."""
        return await self._c.run(calls.set_monitor_policy(retention_days))


class Jobs:
    """Background jobs of the project: state, progress, logs; cancel."""

    def __init__(self, client: AsyncClient):
        self._c = client

    async def list(
        self, *, kind: str | None = None, state: str | None = None, limit: int = 50
    ) -> builtins.list[JobView]:
        """The newest ``limit`` jobs, optionally of one kind or state."""
        return await self._c.run(calls.list_jobs(kind, state, limit))

    async def get(self, job_id: int) -> JobView:
        """One job."""
        return await self._c.run(calls.get_job(job_id))

    async def events(
        self, job_id: int, *, after_id: int = 0, limit: int = 100
    ) -> builtins.list[JobEventView]:
        """A job's log lines and metric points after the event ``after_id``, oldest first."""
        return await self._c.run(calls.job_events(job_id, after_id, limit))

    async def cancel(self, job_id: int) -> JobView:
        """Cancel a job (maintainers): a waiting one at once, a running one soon after."""
        return await self._c.run(calls.cancel_job(job_id))

    async def wait(self, job_id: int, *, timeout_s: float = 600.0, poll_s: float = 1.0) -> JobView:
        """Poll until the job has finished; ``TimeoutError`` after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            job = await self.get(job_id)
            if job.state.finished:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {job.state} after {timeout_s}s")
            await asyncio.sleep(poll_s)


class Drift:
    """Drift checks and reports; recurring checks run by the server's worker."""

    def __init__(self, client: AsyncClient):
        self._c = client

    async def check(
        self,
        *,
        deployment: str | None = None,
        window_s: int | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        reference: Mapping[str, Any] | None = None,
        metrics: Sequence[str] | None = None,
        thresholds: Mapping[str, float] | None = None,
        min_samples: int | None = None,
        max_samples: int | None = None,
    ) -> DriftReport:
        """Compare a window of production with ``reference`` now (maintainers).

        ``reference``: ``{"kind": "window", "start": ..., "end": ...}`` (default: the
        window just before) or ``{"kind": "texts", "inputs": [...], "outputs": [...]}``.
        """
        fields = dict(locals())
        del fields["self"]
        return await self._c.run(calls.run_drift_check(calls.drift_check_body(fields)))

    async def reports(
        self, *, deployment: str | None = None, drifted: bool | None = None, limit: int = 50
    ) -> builtins.list[DriftReport]:
        """The newest ``limit`` reports, optionally of one deployment, drifted or not."""
        return await self._c.run(calls.list_drift_reports(deployment, drifted, limit))

    async def report(self, report_id: int) -> DriftReport:
        """One report with every metric's statistics and evidence."""
        return await self._c.run(calls.get_drift_report(report_id))

    async def schedule(
        self,
        name: str,
        *,
        interval_s: int,
        deployment: str | None = None,
        window_s: int | None = None,
        reference: Mapping[str, Any] | None = None,
        metrics: Sequence[str] | None = None,
        thresholds: Mapping[str, float] | None = None,
        min_samples: int | None = None,
        max_samples: int | None = None,
    ) -> DriftSchedule:
        """Create or replace a check that the worker runs every ``interval_s`` seconds."""
        fields = dict(locals())
        del fields["self"], fields["name"], fields["interval_s"]
        check = calls.drift_check_body(fields)
        return await self._c.run(calls.set_drift_schedule(name, interval_s, check))

    async def schedules(self) -> builtins.list[DriftSchedule]:
        """The project's recurring checks."""
        return await self._c.run(calls.list_drift_schedules())

    async def unschedule(self, name: str) -> None:
        """Delete a recurring check."""
        await self._c.run(calls.delete_drift_schedule(name))
