"""Datasets modelcycle ships (red-team, bias probes): read from package data, stored once.

A built-in set is written into a project as an ordinary dataset version (source
``builtin``) the first time a run needs it, and again only when the shipped
content changed (a new modelcycle release): the latest version is reused when
its content hash matches, so runs of different days compare on the same
version.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelcycle.access import Principal
from modelcycle.errors import Conflict, InvalidInput, NotFound
from modelcycle.evaluate.samples import SampleIn, load_samples, version_hash, write_version
from modelcycle.evaluate.schemas import EvalResult, EvalRun, EvalRunCreate, RunKind, ScoreOut
from modelcycle.store import audit
from modelcycle.store.audit import AuditRecord
from modelcycle.store.tables import (
    DatasetRow,
    DatasetVersionRow,
    EvalResultRow,
    EvalRunRow,
    ProjectRow,
)


class RunCreator(Protocol):
    """What starting a built-in run needs of ``EvalRuns``."""

    def create(
        self,
        principal: Principal,
        body: EvalRunCreate,
        *,
        kind: RunKind = ...,
        dataset_version_id: int | None = ...,
    ) -> EvalRun:
        """Queue a run of ``body`` on an already resolved dataset version."""
        ...


def read_jsonl(package: str, folder: str) -> list[dict[str, Any]]:
    """Every row of every ``*.jsonl`` file in ``package/folder``, files in name order."""
    rows: list[dict[str, Any]] = []
    base = resources.files(package) / folder
    for entry in sorted(base.iterdir(), key=lambda item: item.name):
        if not entry.name.endswith(".jsonl"):
            continue
        for line in entry.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rows.append(json.loads(line))
    return rows


def ensure_builtin(
    session: Session,
    project_id: int,
    actor: str,
    name: str,
    samples: Sequence[SampleIn],
    *,
    description: str,
) -> DatasetVersionRow:
    """The latest version of ``name`` when it holds ``samples``; else a new version (audited)."""
    wanted = version_hash(samples)
    latest = session.execute(
        select(DatasetVersionRow)
        .join(DatasetRow, DatasetRow.id == DatasetVersionRow.dataset_id)
        .where(DatasetRow.project_id == project_id, DatasetRow.name == name)
        .order_by(DatasetVersionRow.version.desc())
        .limit(1)
    ).scalar_one_or_none()
    if latest is not None and latest.content_hash == wanted:
        return latest
    version = write_version(
        session,
        project_id,
        name,
        samples,
        source="builtin",
        actor=actor,
        meta={"builtin": name},
        parent_version_id=latest.id if latest is not None else None,
        description=description,
    )
    project = session.get(ProjectRow, project_id)
    audit.append(
        session,
        AuditRecord(
            actor=actor,
            action="dataset.builtin",
            target=f"dataset:{name}",
            project=project.name if project is not None else None,
            after={
                "version": version.version,
                "source": "builtin",
                "sample_count": version.sample_count,
                "content_hash": wanted,
            },
        ),
    )
    return version


def samples_of(rows: Iterable[dict[str, Any]]) -> list[SampleIn]:
    """Package-data rows (``input``, ``metadata``, optional ``expected``) as samples."""
    return [
        SampleIn(input=row["input"], expected=row.get("expected"), metadata=row["metadata"])
        for row in rows
    ]


def _score_out(raw: Any) -> ScoreOut:
    if isinstance(raw, Mapping):
        return ScoreOut.model_validate(dict(raw))
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return ScoreOut(value=float(raw))
    return ScoreOut(value=None, error=f"unreadable stored score {raw!r}")


def run_results(
    session: Session, run: EvalRunRow, target: str
) -> tuple[list[EvalResult], dict[int, Mapping[str, Any]]]:
    """A run's stored answers for ``target`` and the metadata of its samples by id."""
    samples = {s.id: s for s in load_samples(session, run.dataset_version_id)}
    rows = session.execute(
        select(EvalResultRow)
        .where(EvalResultRow.run_id == run.id, EvalResultRow.target == target)
        .order_by(EvalResultRow.position)
    ).scalars()
    results = []
    for row in rows:
        sample = samples.get(row.sample_id)
        results.append(
            EvalResult(
                sample_id=row.sample_id,
                position=row.position,
                target=row.target,
                input=dict(sample.input) if sample else {},
                expected=sample.expected if sample else None,
                output=row.output,
                error=row.error,
                trace_id=row.trace_id,
                model=row.model,
                version=row.version,
                latency_ms=row.latency_ms,
                tokens_in=row.tokens_in,
                tokens_out=row.tokens_out,
                cost=row.cost,
                scores={name: _score_out(raw) for name, raw in (row.scores or {}).items()},
            )
        )
    return results, {sample_id: s.metadata for sample_id, s in samples.items()}


def finished_run(session: Session, principal: Principal, run_id: int, kind: str) -> EvalRunRow:
    """The project's finished run ``run_id`` of ``kind``: 404 if missing, 400/409 otherwise."""
    run = session.get(EvalRunRow, run_id)
    if run is None or run.project_id != principal.project_id:
        raise NotFound(f"evaluation run {run_id} not found; list them with: modelcycle eval list")
    if run.kind != kind:
        raise InvalidInput(
            f"run {run_id} is a {run.kind} run, not a {kind} run; start one with: "
            f"modelcycle safety-eval {kind} --target T",
            param="run_id",
        )
    if run.status != "succeeded":
        raise Conflict(f"run {run_id} is {run.status}; its {kind} report needs a finished run")
    return run
