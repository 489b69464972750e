"""A run's status from start to end: begin (inputs, caller), finish (summary, lineage, event), fail.

Each step is one transaction. ``EvalFinished`` is emitted after the commit of
a run that succeeded or failed for good; lineage edges ``evaluated_in`` are
written with the summary, once, even if two attempts race to the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelcycle import events
from modelcycle.access import Principal
from modelcycle.backends import GenerationParams
from modelcycle.errors import Conflict, NotFound
from modelcycle.evaluate import run_setup
from modelcycle.evaluate.caller import is_version_target
from modelcycle.evaluate.run_records import (
    categories,
    dataset_ref,
    load_results,
    run_samples,
    version_lineage,
)
from modelcycle.evaluate.runner import RunInputs
from modelcycle.evaluate.schemas import RunSummary, ScorerSpec
from modelcycle.evaluate.scorers import Scorer, ScorerRegistry
from modelcycle.evaluate.summary import ScorerInfo, summarize
from modelcycle.jobs import JobContext
from modelcycle.jobs.worker import PERMANENT_ERRORS
from modelcycle.plugins import EventBus
from modelcycle.store import Store
from modelcycle.store.tables import DatasetVersionRow, EvalRunRow, ProjectRow, utcnow

FINISHED = ("succeeded", "failed", "cancelled")


def build_scorers(registry: ScorerRegistry, specs: Sequence[dict[str, Any]]) -> list[Scorer]:
    """The stored scorer specs of a run, built (once per registry)."""
    return run_setup.build_scorers(registry, [ScorerSpec.model_validate(s) for s in specs])


class RunLifecycle:
    """Moves runs through their statuses."""

    def __init__(self, store: Store, bus: EventBus, scorers: ScorerRegistry):
        self._store, self._bus, self._scorers = store, bus, scorers

    def begin(self, run_id: int) -> RunSummary | tuple[RunInputs, Principal]:
        """The run's inputs and caller, the run marked running; or its summary if it succeeded.

        A cancelled run is a ``Conflict``; a key revoked since, or a scorer that
        no longer builds, fails the run for good.
        """
        with self._store.read() as session:
            row = session.get(EvalRunRow, run_id)
            if row is None:
                raise NotFound(f"evaluation run {run_id} not found")
            if row.status == "succeeded" and row.summary is not None:
                return RunSummary.model_validate(row.summary)
            if row.status == "cancelled":
                raise Conflict(f"run {run_id} was cancelled; start a new run to evaluate again")
            version = session.get(DatasetVersionRow, row.dataset_version_id)
            assert version is not None
            try:
                principal = run_setup.run_principal(session, row.project_id, row.key_id)
                scorers = build_scorers(self._scorers, row.scorers)
                problem = None
            except Exception as exc:
                problem = exc
        if problem is not None:
            self.failed(run_id, problem, None)
            raise problem
        params = row.params
        samples = run_samples(row, version)
        inputs = RunInputs(
            run_id=run_id,
            version_id=version.id,
            targets=tuple(row.targets),
            baseline=row.baseline,
            scorers=tuple(scorers),
            params=GenerationParams(
                max_tokens=params.get("max_tokens"),
                temperature=params.get("temperature"),
                seed=params.get("seed"),
            ),
            concurrency=int(params.get("concurrency") or 4),
            sample_limit=samples,
            total=samples * len(row.targets),
        )
        self.set_status(run_id, "running", None)
        return inputs, principal

    def finish(self, run_id: int, inputs: RunInputs, complete: bool, duration: float) -> RunSummary:
        """Summarise the stored results: succeeded (gates, lineage, event) or cancelled."""
        with self._store.read() as session:
            row = session.get(EvalRunRow, run_id)
            version = session.get(DatasetVersionRow, inputs.version_id)
            assert row is not None
            assert version is not None
            gates = run_setup.check_gates(row.gates, inputs.scorers) if complete else []
            summary = summarize(
                dataset=dataset_ref(session, version),
                dataset_hash=version.content_hash,
                samples=inputs.sample_limit or 0,
                targets=inputs.targets,
                baseline=inputs.baseline,
                scorers=[ScorerInfo.of(scorer) for scorer in inputs.scorers],
                gates=gates,
                results=load_results(session, run_id),
                categories=categories(session, inputs.version_id, inputs.sample_limit),
                duration_s=duration,
            )
        with self._store.write() as session:
            row = session.get(EvalRunRow, run_id, with_for_update=True)
            assert row is not None
            if row.status == "succeeded" and row.summary is not None:
                return RunSummary.model_validate(row.summary)  # another attempt got here first
            # Cancelled as the last answers came in: it stays cancelled, gates unclaimed.
            status = "succeeded" if complete and row.status != "cancelled" else "cancelled"
            row.status, row.summary = status, summary.model_dump(mode="json")
            row.gates_passed = summary.gates_passed if status == "succeeded" else None
            row.finished_at, row.error = utcnow(), None
            if status == "succeeded":
                for target in inputs.targets:
                    if is_version_target(target):
                        version_lineage(session, row, target, summary.dataset)
            event = _finished(session, row)
        if status == "succeeded":
            self._bus.emit(event)
        return summary

    def failed(self, run_id: int, exc: BaseException, context: JobContext | None) -> None:
        """Record a failure: for good, or (when the job will try again) as queued."""
        message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        retrying = (
            context is not None
            and not isinstance(exc, PERMANENT_ERRORS)
            and context.job.attempts < context.job.max_attempts
        )
        if retrying:
            self.set_status(run_id, "queued", f"attempt failed, retrying: {message}")
            return
        with self._store.write() as session:
            row = session.get(EvalRunRow, run_id)
            if row is None or row.status in FINISHED:
                return
            row.status, row.error, row.finished_at = "failed", message[:4000], utcnow()
            event = _finished(session, row)
        self._bus.emit(event)

    def set_status(self, run_id: int, status: str, error: str | None) -> None:
        """Queued, running: never over a cancellation."""
        with self._store.write() as session:
            row = session.get(EvalRunRow, run_id)
            if row is not None and row.status != "cancelled":
                row.status, row.error = status, error


def _finished(session: Session, row: EvalRunRow) -> events.EvalFinished:
    project = session.execute(
        select(ProjectRow.name).where(ProjectRow.id == row.project_id)
    ).scalar_one()
    assert row.finished_at is not None
    return events.EvalFinished(
        project=project,
        project_id=row.project_id,
        run_id=row.id,
        kind=row.kind,
        status=row.status,
        gates_passed=row.gates_passed,
        at=row.finished_at,
    )
