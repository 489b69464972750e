"""Model reports: gather one version's records, map them to duties, render them."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from modelcycle.access import Principal, require
from modelcycle.errors import InvalidInput
from modelcycle.monitor.queries import Traces
from modelcycle.monitor.trace_schemas import GroupBy, RollupQuery
from modelcycle.plugins import EventBus
from modelcycle.reports import activity, gather
from modelcycle.reports.compliance import RETENTION_DAYS_REQUIRED, compliance_map
from modelcycle.reports.render import render_html, render_markdown
from modelcycle.reports.schemas import Changes, ModelReport, ReportFormat, ReportSection, Retention
from modelcycle.settings import Settings
from modelcycle.store import Store
from modelcycle.store.tables import MonitorPolicyRow
from modelcycle.types import Role

log = logging.getLogger(__name__)

DEFAULT_DAYS = 30
MAX_DAYS = 3_660
"""Longest activity window (ten years): rollups are kept for the platform's lifetime."""


class ModelReports:
    """Model cards and deployment records of the versions of one project at a time."""

    def __init__(self, store: Store, bus: EventBus, traces: Traces, settings: Settings):
        self._store = store
        self._bus = bus
        self._traces = traces
        self._settings = settings

    def gather(
        self,
        principal: Principal,
        model: str,
        ref: str,
        *,
        days: int = DEFAULT_DAYS,
        now: datetime | None = None,
    ) -> ModelReport:
        """Everything the platform records about ``model@ref`` (a number or an alias)."""
        require(principal, Role.VIEWER)
        if not 1 <= days <= MAX_DAYS:
            raise InvalidInput(f"days must be between 1 and {MAX_DAYS}", param="days")
        end = now or datetime.now(UTC)
        start = end - timedelta(days=days)
        project_id = principal.project_id
        with self._store.read() as session:
            model_row, row = gather.find_version(session, project_id, model, ref)
            identity = gather.identity(session, model_row, row)
            use = gather.use_fields(model_row, row)
            lineage = gather.lineage(session, row)
            deployments = gather.deployments_using(session, project_id, model_row.name, row.version)
        version = identity.version
        query = RollupQuery(
            start=start, end=end, group_by=GroupBy.ROUTE, model=identity.model, version=version
        )
        rollups = self._traces.rollups(principal, query, now=end)
        serving = {d.name for d in deployments}
        seen = serving | {s.deployment for s in rollups.series if s.deployment}
        policies = {d.guard.name for d in deployments if d.guard is not None}
        with self._store.read() as session:
            decided = activity.guard_counts(
                session, project_id, start, end, activity.version_spans(identity.model, version)
            )
            unrouted = (
                activity.guard_counts(
                    session, project_id, start, end, activity.unrouted_spans(serving)
                )
                if serving
                else {}
            )
            incidents = activity.incidents(session, project_id, seen, start, end)
            rules = [rule.name for rule in incidents.rules]
            # The audit log is admin-only; a report must not be a way around that.
            changes = (
                activity.changes(
                    session, principal.project, identity.model, version, seen, policies, rules
                )
                if principal.role.allows(Role.ADMIN)
                else Changes(entries=[], truncated=False, withheld=True)
            )
            retention = self._retention(session.get(MonitorPolicyRow, project_id))
        report = ModelReport(
            generated_at=end,
            project=principal.project,
            identity=identity,
            use=use,
            lineage=lineage,
            evaluations=self._sections(project_id, identity.model, version),
            deployments=deployments,
            monitoring=activity.monitoring(rollups, days, decided, unrouted),
            incidents=incidents,
            changes=changes,
            retention=retention,
            compliance=[],
        )
        mapped = compliance_map(report, rate_limited_by_settings=self._settings_limit(principal))
        return report.model_copy(update={"compliance": mapped})

    def render(self, report: ModelReport, form: ReportFormat) -> str:
        """The report as Markdown, a standalone HTML page or JSON."""
        if form == "md":
            return render_markdown(report)
        if form == "html":
            return render_html(report)
        return report.model_dump_json(indent=2)

    def _retention(self, policy: MonitorPolicyRow | None) -> Retention:
        days = policy.retention_days if policy is not None else None
        tracing = self._settings.tracing
        return Retention(
            tracing=tracing,
            content_recorded=tracing and self._settings.trace_content,
            raw_text_stored=bool(policy is not None and policy.store_raw_text),
            retention_days=days,
            required_days=RETENTION_DAYS_REQUIRED,
            meets_requirement=tracing and (days is None or days >= RETENTION_DAYS_REQUIRED),
        )

    def _settings_limit(self, principal: Principal) -> bool:
        """Whether server-wide settings rate-limit the project or its keys."""
        s = self._settings
        own = s.project_limits.get(principal.project)
        values = [s.project_rpm, s.project_tpm, s.key_rpm, s.key_tpm]
        if own is not None:
            values += [own.rpm, own.tpm, own.key_rpm, own.key_tpm]
        return any(value is not None for value in values)

    def _sections(self, project_id: int, model: str, version: int) -> list[ReportSection]:
        """Sections other stages contribute; a failing plugin is named, never fatal."""
        hook = self._bus.manager.hook.modelcycle_model_report_sections
        found: list[ReportSection] = []
        for impl in hook.get_hookimpls():  # registration order
            try:
                answer = cast(
                    Iterable[Mapping[str, Any]] | None,
                    impl.function(project_id=project_id, model=model, version=version),
                )
                found.extend(_section(item) for item in answer or [])
            except Exception as exc:  # a plugin's bug must not hide the rest of the record
                # Plugins registered without a name are known by an id: show their class.
                name = impl.plugin_name
                name = type(impl.plugin).__name__ if name.isdigit() else name
                log.warning("plugin %s: report sections failed: %r", name, exc)
                found.append(_failed(name, exc))
        return found


def _section(item: Mapping[str, Any]) -> ReportSection:
    return ReportSection.model_validate(dict(item))


def _failed(plugin: str, exc: Exception) -> ReportSection:
    return ReportSection(
        title=f"Results of {plugin} missing",
        markdown=f"The plugin failed ({type(exc).__name__}); its results are not in this report.",
    )
