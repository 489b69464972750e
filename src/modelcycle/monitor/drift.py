"""Drift checks: compare a window of production with a reference, store the report, notify.

A check runs where it is asked: ``check`` (the API) runs it at once on bounded
samples; a schedule enqueues ``drift.check`` jobs that the background worker
runs through ``handle_job``. Either way the report is one row with every
metric's statistics and evidence, and ``DriftDetected`` is emitted after commit
when any metric drifted. See docs/drift.md.
"""

from __future__ import annotations

import builtins
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelcycle import events
from modelcycle.access import Principal, require
from modelcycle.errors import NotFound
from modelcycle.jobs import JobContext, Scheduler, ScheduleView
from modelcycle.monitor import drift_metrics
from modelcycle.monitor.drift_data import Sample, texts_sample, window_sample
from modelcycle.monitor.drift_embed import Embedder
from modelcycle.monitor.drift_schemas import (
    DriftCheck,
    DriftMetric,
    DriftReport,
    DriftSchedule,
    DriftScheduleCreate,
    TextsReference,
)
from modelcycle.plugins import EventBus
from modelcycle.store import Page, Store, audit, encode_cursor
from modelcycle.store.audit import AuditRecord
from modelcycle.store.pagination import check_limit, decode_cursor
from modelcycle.store.tables import DriftReportRow, ProjectRow, utcnow
from modelcycle.types import Role

JOB_KIND = "drift.check"


def _schedule_key(project_id: int, name: str) -> str:
    return f"drift:{project_id}:{name}"


def report_out(row: DriftReportRow) -> DriftReport:
    """The public shape of a stored report."""
    metrics = [DriftMetric.model_validate(metric) for metric in row.metrics]
    return DriftReport(
        id=row.id,
        deployment=row.deployment,
        current_start=row.current_from,
        current_end=row.current_to,
        reference=row.reference,
        metrics=metrics,
        drifted=row.drifted,
        drifted_metrics=[m.name for m in metrics if m.drifted],
        created_by=row.created_by,
        created_at=row.created_at,
    )


def _schedule_out(view: ScheduleView) -> DriftSchedule:
    return DriftSchedule(
        name=view.name.split(":", 2)[2],
        interval_s=view.interval_s,
        check=DriftCheck.model_validate(view.payload["check"]),
        next_run_at=view.next_run_at,
        last_job_id=view.last_job_id,
        created_by=view.created_by,
        created_at=view.created_at,
    )


class Drift:
    """Drift checks, reports and recurring checks of every project."""

    def __init__(
        self,
        store: Store,
        bus: EventBus,
        scheduler: Scheduler,
        *,
        embedder: Embedder | None = None,
    ):
        self._store = store
        self._bus = bus
        self._scheduler = scheduler
        self.embedder = embedder or Embedder()
        """Loads all-MiniLM-L6-v2 on the first embedding metric, then keeps it."""

    # -- running -------------------------------------------------------------------

    def check(self, principal: Principal, check: DriftCheck) -> DriftReport:
        """Run a check now for the caller's project (maintainer+, audited)."""
        require(principal, Role.MAINTAINER)
        return self.run(principal.project_id, check, actor=principal.actor, audited=True)

    def run(
        self,
        project_id: int,
        check: DriftCheck,
        *,
        actor: str,
        now: datetime | None = None,
        context: JobContext | None = None,
        audited: bool = False,
    ) -> DriftReport:
        """Run a check for a project, store its report, emit ``DriftDetected`` if it drifted.

        ``audited``: also write a ``drift.check`` audit entry (checks people ask for;
        scheduled runs are covered by the audited schedule).
        """
        end = check.end or now or utcnow()
        start = check.start or end - timedelta(seconds=check.window_s)
        with self._store.read() as session:
            current = self._window(session, project_id, check, start, end)
            reference, described = self._reference(session, project_id, check, start, end)
        progress = (lambda fraction: context.progress(fraction)) if context else None
        metrics = drift_metrics.compute(check, current, reference, self.embedder, progress)
        drifted = [m.name for m in metrics if m.drifted]
        with self._store.write() as session:
            row = DriftReportRow(
                project_id=project_id,
                deployment=check.deployment,
                current_from=start,
                current_to=end,
                reference=described,
                metrics=[m.model_dump(mode="json") for m in metrics],
                drifted=bool(drifted),
                created_by=actor[:100],
                created_at=utcnow(),
            )
            session.add(row)
            session.flush()
            project = self._project_name(session, project_id)
            if audited:
                audit.append(
                    session,
                    AuditRecord(
                        actor=actor,
                        action="drift.check",
                        target=f"drift-report:{row.id}",
                        project=project,
                        after={"deployment": check.deployment, "drifted": drifted},
                    ),
                )
            report = report_out(row)
        if drifted:
            self._bus.emit(
                events.DriftDetected(
                    project=project,
                    deployment=check.deployment,
                    report_id=report.id,
                    metrics=tuple(drifted),
                    at=report.created_at,
                )
            )
        return report

    @staticmethod
    def _window(
        session: Session, project_id: int, check: DriftCheck, start: datetime, end: datetime
    ) -> Sample:
        return window_sample(
            session,
            project_id=project_id,
            deployment=check.deployment,
            start=start,
            end=end,
            max_samples=check.max_samples,
        )

    def _reference(
        self, session: Session, project_id: int, check: DriftCheck, start: datetime, end: datetime
    ) -> tuple[Sample, dict[str, Any]]:
        ref = check.reference
        if isinstance(ref, TextsReference):
            described = {
                "kind": "texts",
                "inputs": len(ref.inputs),
                "outputs": len(ref.outputs or []),
            }
            return texts_sample(ref), described
        ref_start = ref.start or start - (end - start)
        ref_end = ref.end or start
        sample = self._window(session, project_id, check, ref_start, ref_end)
        described = {"kind": "window", "start": ref_start.isoformat(), "end": ref_end.isoformat()}
        return sample, described

    @staticmethod
    def _project_name(session: Session, project_id: int) -> str:
        return session.execute(
            select(ProjectRow.name).where(ProjectRow.id == project_id)
        ).scalar_one()

    def handle_job(self, context: JobContext) -> dict[str, Any]:
        """The ``drift.check`` job handler: runs the check in its payload."""
        if context.project_id is None:
            raise NotFound("a drift check job needs a project")
        check = DriftCheck.model_validate(context.payload["check"])
        report = self.run(context.project_id, check, actor=context.job.created_by, context=context)
        return {"report_id": report.id, "drifted": report.drifted_metrics}

    # -- reading -------------------------------------------------------------------

    def reports(
        self,
        principal: Principal,
        *,
        deployment: str | None = None,
        drifted: bool | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[DriftReport]:
        """Reports of the caller's project, newest first."""
        require(principal, Role.VIEWER)
        before, limit = decode_cursor(cursor), check_limit(limit)
        query = select(DriftReportRow).where(DriftReportRow.project_id == principal.project_id)
        if before:
            query = query.where(DriftReportRow.id < before)
        if deployment is not None:
            query = query.where(DriftReportRow.deployment == deployment)
        if drifted is not None:
            query = query.where(DriftReportRow.drifted.is_(drifted))
        with self._store.read() as session:
            rows = session.execute(query.order_by(DriftReportRow.id.desc()).limit(limit + 1))
            found = rows.scalars().all()
            items = [report_out(row) for row in found[:limit]]
        return Page(items, encode_cursor(items[-1].id) if len(found) > limit else None)

    def report(self, principal: Principal, report_id: int) -> DriftReport:
        """One report of the caller's project."""
        require(principal, Role.VIEWER)
        with self._store.read() as session:
            row = session.get(DriftReportRow, report_id)
            if row is None or row.project_id != principal.project_id:
                raise NotFound(f"drift report {report_id} not found")
            return report_out(row)

    # -- schedules -----------------------------------------------------------------

    def schedule(self, principal: Principal, body: DriftScheduleCreate) -> DriftSchedule:
        """Create or replace a recurring check of the caller's project (maintainer+, audited)."""
        require(principal, Role.MAINTAINER)
        key = _schedule_key(principal.project_id, body.name)
        check = body.check.model_dump(mode="json", exclude_none=True)
        with self._store.write() as session:
            before = self._scheduler.find(session, key)
            view = self._scheduler.ensure(
                key,
                JOB_KIND,
                {"check": check},
                interval_s=body.interval_s,
                project_id=principal.project_id,
                actor=principal.actor,
                session=session,
            )
            audit.append(
                session,
                AuditRecord(
                    actor=principal.actor,
                    action="drift.schedule.set",
                    target=f"drift-schedule:{body.name}",
                    project=principal.project,
                    before=_audited(before),
                    after=_audited(view),
                ),
            )
        return _schedule_out(view)

    def schedules(self, principal: Principal) -> builtins.list[DriftSchedule]:
        """Recurring checks of the caller's project, by name."""
        require(principal, Role.VIEWER)
        views = self._scheduler.list(
            project_id=principal.project_id,
            kind=JOB_KIND,
            prefix=_schedule_key(principal.project_id, ""),
        )
        return [_schedule_out(view) for view in views]

    def unschedule(self, principal: Principal, name: str) -> None:
        """Delete a recurring check (maintainer+, audited); checks already run stay."""
        require(principal, Role.MAINTAINER)
        with self._store.write() as session:
            try:
                removed = self._scheduler.remove(
                    _schedule_key(principal.project_id, name), session=session
                )
            except NotFound:
                raise NotFound(f"drift schedule {name!r} not found") from None
            audit.append(
                session,
                AuditRecord(
                    actor=principal.actor,
                    action="drift.schedule.delete",
                    target=f"drift-schedule:{name}",
                    project=principal.project,
                    before=_audited(removed),
                ),
            )


def _audited(view: ScheduleView | None) -> dict[str, Any] | None:
    if view is None:
        return None
    return {"interval_s": view.interval_s, "check": view.payload.get("check")}
