"""Reading what a run stored: its public shape, its results page by page, its lineage edges."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from modelcycle.evaluate.schemas import (
    MAX_TARGETS,
    EvalResult,
    EvalRun,
    RunSummary,
    ScoreOut,
    ScorerSpec,
)
from modelcycle.evaluate.summary import StoredResult
from modelcycle.registry import add_lineage_edge
from modelcycle.store import Page, encode_cursor
from modelcycle.store.tables import (
    DatasetRow,
    DatasetSampleRow,
    DatasetVersionRow,
    EvalResultRow,
    EvalRunRow,
    ModelRow,
    ModelVersionRow,
)

STRIDE = MAX_TARGETS + 1
"""Result cursor keys: ``position * STRIDE + target index`` (the index counts from 1)."""


def dataset_ref(session: Session, version: DatasetVersionRow) -> str:
    """``NAME@N`` of a dataset version."""
    name = session.execute(
        select(DatasetRow.name).where(DatasetRow.id == version.dataset_id)
    ).scalar_one()
    return f"{name}@{version.version}"


def run_samples(row: EvalRunRow, version: DatasetVersionRow) -> int:
    """How many samples the run evaluates (its ``limit`` applied)."""
    limit = row.params.get("limit")
    return min(version.sample_count, int(limit)) if limit else version.sample_count


def run_out(row: EvalRunRow, ref: str, version: DatasetVersionRow, stored: int) -> EvalRun:
    """The public shape of a run; ``stored``: its results so far."""
    total = run_samples(row, version) * len(row.targets)
    return EvalRun(
        id=row.id,
        name=row.name,
        kind=row.kind,
        dataset=ref,
        targets=list(row.targets),
        baseline=row.baseline,
        scorers=[ScorerSpec.model_validate(spec) for spec in row.scorers],
        gates=list(row.gates),
        params=dict(row.params),
        status=row.status,
        job_id=row.job_id,
        progress=min(1.0, stored / total) if total else 0.0,
        summary=RunSummary.model_validate(row.summary) if row.summary else None,
        gates_passed=row.gates_passed,
        error=row.error,
        created_by=row.created_by,
        created_at=row.created_at,
        finished_at=row.finished_at,
    )


def stored_counts(session: Session, run_ids: Sequence[int]) -> dict[int, int]:
    """Results stored so far, by run."""
    if not run_ids:
        return {}
    rows = session.execute(
        select(EvalResultRow.run_id, func.count())
        .where(EvalResultRow.run_id.in_(run_ids))
        .group_by(EvalResultRow.run_id)
    ).all()
    return {run_id: int(count) for run_id, count in rows}


def load_results(session: Session, run_id: int) -> list[StoredResult]:
    """Every stored result of a run, as the statistics read them."""
    rows = session.execute(
        select(
            EvalResultRow.sample_id,
            EvalResultRow.target,
            EvalResultRow.error,
            EvalResultRow.latency_ms,
            EvalResultRow.tokens_out,
            EvalResultRow.cost,
            EvalResultRow.scores,
        ).where(EvalResultRow.run_id == run_id)
    ).all()
    return [StoredResult(*row) for row in rows]


def categories(session: Session, version_id: int, limit: int | None) -> dict[int, str]:
    """``metadata.category`` of the run's samples that have one, by sample id."""
    query = select(DatasetSampleRow.id, DatasetSampleRow.meta).where(
        DatasetSampleRow.version_id == version_id
    )
    if limit:
        query = query.where(DatasetSampleRow.position < limit)
    found = {}
    for sample_id, meta in session.execute(query):
        category = (meta or {}).get("category")
        if category is not None and category != "":
            found[sample_id] = str(category)
    return found


def result_page(
    session: Session, row: EvalRunRow, target: str | None, limit: int, after: int
) -> Page[EvalResult]:
    """Results by sample position, then the run's target order, after cursor key ``after``.

    A key is ``position * STRIDE + target index`` (1-based, so 0 starts).
    Rows are read by position; the last position read may be cut short by
    the SQL limit, so it is left to the next page unless it is the only one.
    """
    index = {name: i + 1 for i, name in enumerate(row.targets)}
    start = after // STRIDE
    fetch = limit + 1 + 2 * MAX_TARGETS
    query = (
        select(EvalResultRow, DatasetSampleRow.input, DatasetSampleRow.expected)
        .join(DatasetSampleRow, DatasetSampleRow.id == EvalResultRow.sample_id)
        .where(EvalResultRow.run_id == row.id, EvalResultRow.position >= start)
        .order_by(EvalResultRow.position)
        .limit(fetch)
    )
    if target is not None:
        query = query.where(EvalResultRow.target == target)
    found = session.execute(query).all()
    cut = len(found) == fetch
    if cut and found[0][0].position != found[-1][0].position:
        last = found[-1][0].position
        found = [item for item in found if item[0].position != last]

    def key(result: EvalResultRow) -> int:
        return result.position * STRIDE + index.get(result.target, MAX_TARGETS)

    ordered = sorted((item for item in found if key(item[0]) > after), key=lambda i: key(i[0]))
    page = ordered[:limit]
    more = len(ordered) > limit or cut
    items = [_result_out(result, input, expected) for result, input, expected in page]
    return Page(items, encode_cursor(key(page[-1][0])) if more and page else None)


def _result_out(row: EvalResultRow, input: dict[str, object], expected: str | None) -> EvalResult:
    return EvalResult(
        sample_id=row.sample_id,
        position=row.position,
        target=row.target,
        input=dict(input),
        expected=expected,
        output=row.output,
        error=row.error,
        trace_id=row.trace_id,
        model=row.model,
        version=row.version,
        latency_ms=row.latency_ms,
        tokens_in=row.tokens_in,
        tokens_out=row.tokens_out,
        cost=row.cost,
        scores={name: ScoreOut.model_validate(score) for name, score in row.scores.items()},
    )


def version_lineage(session: Session, run: EvalRunRow, target: str, dataset: str) -> None:
    """Link each version that answered for ``target`` to the run (``evaluated_in``)."""
    served = session.execute(
        select(EvalResultRow.model, EvalResultRow.version)
        .where(
            EvalResultRow.run_id == run.id,
            EvalResultRow.target == target,
            EvalResultRow.model.is_not(None),
            EvalResultRow.version.is_not(None),
        )
        .distinct()
    ).all()
    for model, number in served:
        version_id = session.execute(
            select(ModelVersionRow.id)
            .join(ModelRow, ModelRow.id == ModelVersionRow.model_id)
            .where(
                ModelRow.project_id == run.project_id,
                ModelRow.name == model,
                ModelVersionRow.version == number,
            )
        ).scalar_one_or_none()
        if version_id is not None:
            add_lineage_edge(
                session,
                version_id,
                relation="evaluated_in",
                target_kind="eval_run",
                target_ref=str(run.id),
                metadata={"target": target, "dataset": dataset, "gates_passed": run.gates_passed},
            )
