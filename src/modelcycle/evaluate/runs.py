"""Evaluation runs: create (validated, audited, queued), read, cancel, execute, check gates.

A run is a row in ``eval_runs`` and an ``eval.run`` job. The job's handler
(``handle_job``) runs :meth:`EvalRuns.execute`, which sends every sample to
every target through the gateway as the key that started the run, scores the
answers and stores them (``evaluate.runner``), then stores the summary
(``evaluate.summary``): aggregates with intervals, paired comparisons with the
baseline, and the gates' verdicts. See docs/evaluation.md.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import time
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelcycle.access import Principal, require
from modelcycle.errors import Conflict, InvalidInput, NotFound
from modelcycle.evaluate import run_setup
from modelcycle.evaluate.caller import EVAL_RUN_MARKER, TargetCaller
from modelcycle.evaluate.run_lifecycle import FINISHED, RunLifecycle, build_scorers
from modelcycle.evaluate.run_records import (
    dataset_ref,
    load_results,
    result_page,
    run_out,
    stored_counts,
)
from modelcycle.evaluate.runner import RunExecution
from modelcycle.evaluate.schemas import (
    EvalResult,
    EvalRun,
    EvalRunCreate,
    GateVerdict,
    RunKind,
    RunSummary,
)
from modelcycle.evaluate.scorers import ScorerRegistry
from modelcycle.evaluate.summary import gate_verdicts, score_values
from modelcycle.gateway import Gateway
from modelcycle.jobs import JobContext, JobInterrupted, Jobs
from modelcycle.plugins import EventBus
from modelcycle.store import Page, Store, audit, encode_cursor
from modelcycle.store.audit import AuditRecord
from modelcycle.store.pagination import check_limit, decode_cursor
from modelcycle.store.tables import DatasetVersionRow, EvalRunRow, utcnow
from modelcycle.types import Role

JOB_KIND = "eval.run"
KINDS = ("eval", "bias", "redteam")
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")


class EvalRuns:
    """Evaluation runs of every project."""

    def __init__(
        self, store: Store, bus: EventBus, jobs: Jobs, gateway: Gateway, scorers: ScorerRegistry
    ):
        self._store, self._bus, self._jobs = store, bus, jobs
        self._gateway, self._scorers = gateway, scorers
        self._lifecycle = RunLifecycle(store, bus, scorers)
        self.result_batch = 100
        """Answers stored per transaction: a crash loses at most this many (they are asked again
        on resume); larger batches cost fewer commits (benchmarks/eval_overhead.py)."""

    # -- creating ------------------------------------------------------------------------

    def create(
        self,
        principal: Principal,
        body: EvalRunCreate,
        *,
        kind: RunKind = "eval",
        dataset_version_id: int | None = None,
    ) -> EvalRun:
        """Validate everything, store the run with its audit entry and job (maintainer+).

        ``dataset_version_id`` overrides ``body.dataset`` (the bias and red-team
        suites write their own version first).
        """
        require(principal, Role.MAINTAINER)
        if kind not in KINDS:
            raise InvalidInput(f"kind must be one of {', '.join(KINDS)}", param="kind")
        plan = run_setup.plan_run(body, self._scorers)
        params = body.model_dump(
            include={"concurrency", "temperature", "max_tokens", "seed", "limit"}
        )
        with self._store.write() as session:
            version = run_setup.dataset_version(
                session, principal.project_id, body.dataset, dataset_version_id
            )
            run_setup.check_targets(session, principal, plan.targets)
            row = EvalRunRow(
                project_id=principal.project_id,
                name=body.name,
                kind=kind,
                dataset_version_id=version.id,
                targets=plan.targets,
                baseline=plan.baseline,
                scorers=[spec.model_dump() for spec in body.scorers],
                gates=list(body.gates),
                params=params,
                status="queued",
                key_id=principal.key_id,
                created_by=principal.actor[:100],
                created_at=utcnow(),
            )
            session.add(row)
            session.flush()
            ref = dataset_ref(session, version)
            audit.append(
                session,
                AuditRecord(
                    actor=principal.actor,
                    action="eval.create",
                    target=f"eval-run:{row.id}",
                    project=principal.project,
                    after={
                        "kind": kind,
                        "dataset": ref,
                        "targets": plan.targets,
                        "baseline": plan.baseline,
                        "scorers": [spec.name for spec in body.scorers],
                        "gates": list(body.gates),
                    },
                ),
            )
            job = self._jobs.enqueue(
                JOB_KIND,
                {"run_id": row.id},
                project_id=principal.project_id,
                actor=principal.actor,
                session=session,
            )
            row.job_id = job.id
            return run_out(row, ref, version, 0)

    # -- reading -------------------------------------------------------------------------

    def get(self, principal: Principal, run_id: int) -> EvalRun:
        """One run of the caller's project, with its progress (viewer+)."""
        require(principal, Role.VIEWER)
        with self._store.read() as session:
            row = _own_run(session, principal, run_id)
            return self._out(session, row)

    def list(
        self,
        principal: Principal,
        *,
        limit: int = 50,
        cursor: str | None = None,
        kind: str | None = None,
        status: str | None = None,
    ) -> Page[EvalRun]:
        """Runs of the caller's project, newest first (viewer+)."""
        require(principal, Role.VIEWER)
        before, limit = decode_cursor(cursor), check_limit(limit)
        if kind is not None and kind not in KINDS:
            raise InvalidInput(f"kind must be one of {', '.join(KINDS)}", param="kind")
        if status is not None and status not in STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(STATUSES)}", param="status")
        query = select(EvalRunRow).where(EvalRunRow.project_id == principal.project_id)
        if before:
            query = query.where(EvalRunRow.id < before)
        if kind is not None:
            query = query.where(EvalRunRow.kind == kind)
        if status is not None:
            query = query.where(EvalRunRow.status == status)
        with self._store.read() as session:
            found = session.execute(query.order_by(EvalRunRow.id.desc()).limit(limit + 1))
            rows = found.scalars().all()[: limit + 1]
            counts = stored_counts(session, [row.id for row in rows[:limit]])
            items = [self._out(session, row, counts.get(row.id, 0)) for row in rows[:limit]]
        return Page(items, encode_cursor(items[-1].id) if len(rows) > limit else None)

    def results(
        self,
        principal: Principal,
        run_id: int,
        *,
        target: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[EvalResult]:
        """Per-sample answers and scores, by sample position then target order (viewer+)."""
        require(principal, Role.VIEWER)
        after, limit = decode_cursor(cursor), check_limit(limit)
        with self._store.read() as session:
            row = _own_run(session, principal, run_id)
            if target is not None and target not in row.targets:
                raise InvalidInput(
                    f"run {run_id} has no target '{target}' (its targets: "
                    f"{', '.join(row.targets)})",
                    param="target",
                )
            return result_page(session, row, target, limit, after)

    def _out(self, session: Session, row: EvalRunRow, stored: int | None = None) -> EvalRun:
        version = session.get(DatasetVersionRow, row.dataset_version_id)
        assert version is not None
        if stored is None:
            stored = stored_counts(session, [row.id]).get(row.id, 0)
        return run_out(row, dataset_ref(session, version), version, stored)

    # -- cancelling and gates ------------------------------------------------------------

    def cancel(self, principal: Principal, run_id: int) -> EvalRun:
        """Stop a queued or running run (maintainer+, audited); what it stored stays."""
        require(principal, Role.MAINTAINER)
        with self._store.write() as session:
            row = _own_run(session, principal, run_id)
            if row.status in FINISHED:
                raise Conflict(
                    f"run {run_id} is already {row.status}; only a queued or running run "
                    "can be cancelled"
                )
            before = row.status
            row.status, row.finished_at = "cancelled", utcnow()
            audit.append(
                session,
                AuditRecord(
                    actor=principal.actor,
                    action="eval.cancel",
                    target=f"eval-run:{run_id}",
                    project=principal.project,
                    before={"status": before},
                    after={"status": "cancelled"},
                ),
            )
            job_id = row.job_id
        if job_id is not None:
            # A job that ended already is fine: the runner reads the run's status too.
            with contextlib.suppress(Conflict, NotFound):
                self._jobs.cancel(job_id, actor=principal.actor)
        return self.get(principal, run_id)

    def check_gates(
        self, principal: Principal, run_id: int, gates: Sequence[str]
    ) -> builtins.list[GateVerdict]:
        """``gates`` over a succeeded run's stored scores, without running anything (viewer+)."""
        require(principal, Role.VIEWER)
        with self._store.read() as session:
            row = _own_run(session, principal, run_id)
            if row.status != "succeeded":
                raise Conflict(
                    f"run {run_id} is {row.status}; gates are checked on a succeeded run"
                )
            scorers = build_scorers(self._scorers, row.scorers)
            parsed = run_setup.check_gates(gates, scorers)
            for gate in parsed:
                if gate.baseline is not None and gate.baseline not in row.targets:
                    raise InvalidInput(
                        f"gate '{gate}': {gate.baseline} is not a target of run {run_id} "
                        f"(its targets: {', '.join(row.targets)})",
                        param="gates",
                    )
            values = score_values(load_results(session, run_id))
        return gate_verdicts(parsed, row.targets, row.baseline, values)

    # -- executing -----------------------------------------------------------------------

    def handle_job(self, context: JobContext) -> dict[str, object]:
        """The ``eval.run`` job handler: executes (or resumes) the run in its payload."""
        run_id = int(context.payload["run_id"])
        summary = asyncio.run(self.execute(run_id, context=context))
        with self._store.read() as session:
            status = session.execute(
                select(EvalRunRow.status).where(EvalRunRow.id == run_id)
            ).scalar_one()
        return {"run_id": run_id, "status": status, "gates_passed": summary.gates_passed}

    async def execute(self, run_id: int, *, context: JobContext | None = None) -> RunSummary:
        """Run (or resume) a run to its end and store its summary; tests call this directly.

        A succeeded run returns its stored summary; a cancelled one is a ``Conflict``.
        When the worker is stopping, what is answered is stored and
        ``JobInterrupted`` is raised: the next attempt resumes from there.
        """
        started = time.monotonic()
        begun = await asyncio.to_thread(self._lifecycle.begin, run_id)
        if isinstance(begun, RunSummary):
            return begun
        inputs, principal = begun
        elapsed = float((context.resume_from or {}).get("elapsed_s", 0.0)) if context else 0.0
        caller = TargetCaller(self._gateway, principal, metadata={EVAL_RUN_MARKER: run_id})
        execution = RunExecution(
            self._store,
            caller,
            inputs,
            context=context,
            elapsed_before_s=elapsed,
            batch_size=self.result_batch,
        )
        try:
            outcome = await execution.run()
            if outcome == "stopping":
                await asyncio.to_thread(self._lifecycle.set_status, run_id, "queued", None)
                raise JobInterrupted(
                    f"run {run_id}: the worker is stopping; {execution.progress.stored} of "
                    f"{inputs.total} answers stored, the next attempt resumes from there"
                )
            duration = elapsed + time.monotonic() - started
            return await asyncio.to_thread(
                self._lifecycle.finish, run_id, inputs, outcome == "done", duration
            )
        except (JobInterrupted, asyncio.CancelledError):
            raise
        except Exception as exc:
            await asyncio.to_thread(self._lifecycle.failed, run_id, exc, context)
            raise


def _own_run(session: Session, principal: Principal, run_id: int) -> EvalRunRow:
    row = session.get(EvalRunRow, run_id)
    if row is None or row.project_id != principal.project_id:
        raise NotFound(f"evaluation run {run_id} not found; list them with: modelcycle eval list")
    return row
