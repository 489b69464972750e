"""Datasets of a project: import, build from traces, split, deduplicate, export, delete.

Every way of making a version ends in ``samples.write_version`` inside one
write transaction with its audit entry, so a version is either complete and
audited or absent. Versions are never changed afterwards: a split, a
deduplication or a new import is a new version with its lineage (``source``,
``parent``, ``meta``). Maintainers write, viewers read; see docs/datasets.md.
The API shapes live in ``dataset_schemas`` and are re-exported here.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from modelcycle.access import Principal, require
from modelcycle.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from modelcycle.evaluate import dataset_files
from modelcycle.evaluate.dataset_files import BadRecord, ExportFormat, FileFormat
from modelcycle.evaluate.dataset_schemas import (
    DatasetOut,
    DatasetVersionOut,
    DedupeIn,
    DedupeOut,
    FromTracesIn,
    SampleOut,
    SamplesIn,
    SplitIn,
)
from modelcycle.evaluate.dataset_transforms import (
    check_name,
    check_ratios,
    deduplicated,
    split_samples,
)
from modelcycle.evaluate.samples import (
    EvalSample,
    SampleIn,
    dataset_row,
    load_samples,
    resolve_version,
    write_version,
)
from modelcycle.evaluate.trace_samples import Redactor, TraceSampleFilter, harvest
from modelcycle.store import Page, Store, audit, encode_cursor
from modelcycle.store.audit import AuditRecord
from modelcycle.store.pagination import check_limit, decode_cursor
from modelcycle.store.tables import (
    DatasetRow,
    DatasetSampleRow,
    DatasetVersionRow,
    EvalRunRow,
)
from modelcycle.types import Role

__all__ = [
    "DatasetOut",
    "DatasetVersionOut",
    "Datasets",
    "DedupeIn",
    "DedupeOut",
    "FromTracesIn",
    "SampleOut",
    "SamplesIn",
    "SplitIn",
]


# -- the service ----------------------------------------------------------------------------


class Datasets:
    """The datasets of the caller's project."""

    def __init__(self, store: Store, *, redactor: Redactor | None = None):
        self._store = store
        self._redactor = redactor
        """The guard stage's storage redactor; ``None`` where it is not installed."""

    # -- writing versions ----------------------------------------------------------------

    def import_file(
        self,
        principal: Principal,
        name: str,
        content: bytes,
        *,
        format: FileFormat | None = None,
        filename: str | None = None,
        content_type: str | None = None,
        description: str | None = None,
    ) -> DatasetVersionOut:
        """A new version from a JSONL, chat JSONL or CSV file; a bad line imports nothing."""
        require(principal, Role.MAINTAINER)
        check_name(name)
        found = format or dataset_files.detect_format(
            content, filename=filename, content_type=content_type
        )
        samples = dataset_files.parse_file(content, found)
        meta = {"format": found, "bytes": len(content), **({"file": filename} if filename else {})}
        return self._write(
            principal, name, samples, "import", meta, description=description, action="import"
        )

    def import_samples(self, principal: Principal, name: str, body: SamplesIn) -> DatasetVersionOut:
        """A new version from sample objects (the JSONL record shape); a bad one imports none."""
        require(principal, Role.MAINTAINER)
        check_name(name)
        samples: list[SampleIn] = []
        for index, record in enumerate(body.samples):
            try:
                samples.append(dataset_files.sample_from_json(record))
            except BadRecord as exc:
                raise InvalidInput(
                    f"samples[{index}]: {exc}; nothing was imported",
                    param=f"samples[{index}]",
                    code="malformed_dataset",
                ) from None
        return self._write(
            principal,
            name,
            samples,
            "import",
            {"format": "json"},
            description=body.description,
            action="import",
        )

    def append(
        self, principal: Principal, name: str, record: Mapping[str, Any], *, source: str
    ) -> DatasetVersionOut:
        """A new version: the latest version's samples, then ``record`` (created when missing).

        Read and written in one transaction, so two appends at the same moment
        give two versions that each hold every sample before them (or a 409),
        never a version that lost the other's sample.
        """
        require(principal, Role.MAINTAINER)
        check_name(name)
        try:
            added = dataset_files.sample_from_json(dict(record))
        except BadRecord as exc:
            raise InvalidInput(f"sample: {exc}; nothing was added", param="sample") from None
        try:
            with self._store.write() as session:
                try:
                    latest: DatasetVersionRow | None = resolve_version(
                        session, principal.project_id, name
                    )
                except NotFound:
                    latest = None
                earlier = [] if latest is None else load_samples(session, latest.id)
                samples = [SampleIn(s.input, s.expected, s.metadata, s.trace_id) for s in earlier]
                row = write_version(
                    session,
                    principal.project_id,
                    name,
                    [*samples, added],
                    source=source,
                    actor=principal.actor,
                    meta={"appended": 1},
                    parent_version_id=None if latest is None else latest.id,
                )
                self._audit(session, principal, "append", name, _state(row))
                return self._out(session, row)
        except IntegrityError:
            raise Conflict(
                f"dataset '{name}' changed while this sample was added; try again"
            ) from None

    def from_traces(self, principal: Principal, body: FromTracesIn) -> DatasetVersionOut:
        """A version built from production traces, scrubbed unless an admin says otherwise."""
        require(principal, Role.MAINTAINER)
        if not body.scrub and not principal.role.allows(Role.ADMIN):
            raise PermissionDenied("scrub=false (keeping personal data) needs an admin key")
        redact = self._redactor if body.scrub else None
        wanted = TraceSampleFilter.model_validate(
            body.model_dump(exclude={"name", "description", "scrub"})
        )
        with self._store.read() as session:
            found = harvest(session, principal.project_id, wanted, redact)
        if not found.samples:
            skipped = f" ({_describe(found.skipped)} could not be used)" if found.skipped else ""
            raise InvalidInput(
                f"no trace matches the filter{skipped}; widen it (--since, --deployment, "
                "--feedback) and check with: modelcycle traces list",
                code="no_matching_traces",
            )
        meta = {
            "filter": wanted.model_dump(mode="json", exclude_none=True),
            "traces": len(found.samples),
            "skipped": found.skipped,
            "scrubbed": redact is not None,
        }
        return self._write(
            principal,
            body.name,
            found.samples,
            "traces",
            meta,
            description=body.description,
            action="from_traces",
        )

    def split(
        self, principal: Principal, name: str, body: SplitIn
    ) -> builtins.list[DatasetVersionOut]:
        """New datasets ``NAME-PART`` from one version: disjoint, covering, the same for a seed."""
        require(principal, Role.MAINTAINER)
        check_ratios(name, body.ratios)
        with self._store.write() as session:
            source = self._version(session, principal, name, body.version)
            samples = load_samples(session, source.id)
            parts = split_samples(
                samples, body.ratios, seed=body.seed, stratify_by=body.stratify_by
            )
            out = []
            for part, chosen in parts.items():
                if not chosen:
                    raise InvalidInput(
                        f"split part '{part}' would be empty ({len(samples)} samples); "
                        "give it a larger ratio or split a larger version",
                        param="ratios",
                    )
                meta = {
                    "from": f"{name}@{source.version}",
                    "part": part,
                    "ratios": body.ratios,
                    "seed": body.seed,
                    **({"stratify_by": body.stratify_by} if body.stratify_by else {}),
                }
                row = write_version(
                    session,
                    principal.project_id,
                    f"{name}-{part}",
                    [sample.as_sample_in() for sample in chosen],
                    source="split",
                    actor=principal.actor,
                    meta=meta,
                    parent_version_id=source.id,
                )
                self._audit(session, principal, "split", f"{name}-{part}", _state(row))
                out.append(self._out(session, row))
            return out

    def dedupe(self, principal: Principal, name: str, body: DedupeIn) -> DedupeOut:
        """A new version without duplicate inputs (first kept); none when nothing repeats."""
        require(principal, Role.MAINTAINER)
        with self._store.write() as session:
            source = self._version(session, principal, name, body.version)
            samples = load_samples(session, source.id)
            kept = deduplicated(samples, near=body.near)
            removed = len(samples) - len(kept)
            if not removed:
                return DedupeOut(removed=0, created=False, version=self._out(session, source))
            meta = {"from": f"{name}@{source.version}", "removed": removed, "near": body.near}
            row = write_version(
                session,
                principal.project_id,
                name,
                kept,
                source="dedupe",
                actor=principal.actor,
                meta=meta,
                parent_version_id=source.id,
            )
            self._audit(session, principal, "dedupe", name, {**_state(row), "removed": removed})
            return DedupeOut(removed=removed, created=True, version=self._out(session, row))

    def delete(self, principal: Principal, name: str) -> None:
        """Delete a dataset and all its versions; refused (409) while an eval run uses one."""
        require(principal, Role.MAINTAINER)
        with self._store.write() as session:
            dataset = dataset_row(session, principal.project_id, name)
            version_ids = select(DatasetVersionRow.id).where(
                DatasetVersionRow.dataset_id == dataset.id
            )
            runs = session.execute(
                select(func.count()).where(EvalRunRow.dataset_version_id.in_(version_ids))
            ).scalar_one()
            if runs:
                raise Conflict(
                    f"dataset '{name}' is used by {runs} evaluation run(s), which must stay "
                    "reproducible; it cannot be deleted"
                )
            counts = session.execute(
                select(
                    func.count(), func.coalesce(func.sum(DatasetVersionRow.sample_count), 0)
                ).where(DatasetVersionRow.dataset_id == dataset.id)
            ).one()
            session.execute(
                delete(DatasetSampleRow).where(DatasetSampleRow.version_id.in_(version_ids))
            )
            session.execute(
                delete(DatasetVersionRow).where(DatasetVersionRow.dataset_id == dataset.id)
            )
            session.delete(dataset)
            before = {"versions": int(counts[0]), "samples": int(counts[1])}
            audit.append(
                session,
                AuditRecord(
                    actor=principal.actor,
                    action="dataset.delete",
                    target=f"dataset:{name}",
                    project=principal.project,
                    before=before,
                ),
            )

    # -- reading -------------------------------------------------------------------------

    def list(
        self, principal: Principal, *, cursor: str | None = None, limit: int = 100
    ) -> Page[DatasetOut]:
        """Datasets of the project, oldest first, each with its latest version."""
        require(principal, Role.VIEWER)
        after, limit = decode_cursor(cursor), check_limit(limit)
        with self._store.read() as session:
            rows = (
                session.execute(
                    select(DatasetRow)
                    .where(DatasetRow.project_id == principal.project_id, DatasetRow.id > after)
                    .order_by(DatasetRow.id)
                    .limit(limit + 1)
                )
                .scalars()
                .all()
            )
            listed = rows[:limit]
            items = [self._dataset_out(session, row, every=False) for row in listed]
        more = len(rows) > limit
        return Page(items, encode_cursor(listed[-1].id) if more else None)

    def show(self, principal: Principal, name: str) -> DatasetOut:
        """A dataset with every version, newest first."""
        require(principal, Role.VIEWER)
        with self._store.read() as session:
            return self._dataset_out(
                session, dataset_row(session, principal.project_id, name), every=True
            )

    def version(self, principal: Principal, ref: str) -> DatasetVersionOut:
        """One version, ``NAME`` (latest) or ``NAME@N``."""
        require(principal, Role.VIEWER)
        with self._store.read() as session:
            return self._out(session, resolve_version(session, principal.project_id, ref))

    def samples(
        self, principal: Principal, ref: str, *, cursor: str | None = None, limit: int = 100
    ) -> Page[SampleOut]:
        """A page of a version's samples in position order."""
        require(principal, Role.VIEWER)
        offset, limit = decode_cursor(cursor), check_limit(limit)
        with self._store.read() as session:
            row = resolve_version(session, principal.project_id, ref)
            found = load_samples(session, row.id, offset=offset, limit=limit + 1)
        items = [_sample_out(sample) for sample in found[:limit]]
        more = len(found) > limit
        return Page(items, encode_cursor(found[limit - 1].position + 1) if more else None)

    def export(self, principal: Principal, ref: str, format: ExportFormat = "jsonl") -> bytes:
        """A version as a file: JSONL (lossless, re-importable) or CSV."""
        require(principal, Role.VIEWER)
        with self._store.read() as session:
            row = resolve_version(session, principal.project_id, ref)
            samples = [sample.as_sample_in() for sample in load_samples(session, row.id)]
        if format == "csv":
            return dataset_files.to_csv(samples)
        return dataset_files.to_jsonl(samples)

    # -- helpers -------------------------------------------------------------------------

    def _write(
        self,
        principal: Principal,
        name: str,
        samples: Sequence[SampleIn],
        source: str,
        meta: Mapping[str, Any],
        *,
        description: str | None,
        action: str,
    ) -> DatasetVersionOut:
        try:
            with self._store.write() as session:
                row = write_version(
                    session,
                    principal.project_id,
                    name,
                    samples,
                    source=source,
                    actor=principal.actor,
                    meta=meta,
                    description=description,
                )
                self._audit(session, principal, action, name, _state(row))
                return self._out(session, row)
        except IntegrityError:  # another version of it was written at the same moment
            raise Conflict(
                f"dataset '{name}' changed while this version was written; try again"
            ) from None

    @staticmethod
    def _version(
        session: Session, principal: Principal, name: str, number: int | None
    ) -> DatasetVersionRow:
        ref = name if number is None else f"{name}@{number}"
        return resolve_version(session, principal.project_id, ref)

    def _dataset_out(self, session: Session, row: DatasetRow, *, every: bool) -> DatasetOut:
        versions = (
            session.execute(
                select(DatasetVersionRow)
                .where(DatasetVersionRow.dataset_id == row.id)
                .order_by(DatasetVersionRow.version.desc())
                .limit(None if every else 1)
            )
            .scalars()
            .all()
        )
        count = session.execute(
            select(func.count()).where(DatasetVersionRow.dataset_id == row.id)
        ).scalar_one()
        outs = [self._out(session, version, name=row.name) for version in versions]
        return DatasetOut(
            name=row.name,
            description=row.description,
            created_by=row.created_by,
            created_at=row.created_at,
            version_count=count,
            latest=outs[0] if outs else None,
            versions=outs if every else None,
        )

    @staticmethod
    def _out(
        session: Session, row: DatasetVersionRow, *, name: str | None = None
    ) -> DatasetVersionOut:
        if name is None:
            dataset = session.get(DatasetRow, row.dataset_id)
            assert dataset is not None
            name = dataset.name
        parent = None
        if row.parent_version_id is not None:
            found = session.execute(
                select(DatasetRow.name, DatasetVersionRow.version)
                .join(DatasetRow, DatasetRow.id == DatasetVersionRow.dataset_id)
                .where(DatasetVersionRow.id == row.parent_version_id)
            ).first()
            parent = f"{found.name}@{found.version}" if found is not None else None
        return DatasetVersionOut(
            dataset=name,
            version=row.version,
            ref=f"{name}@{row.version}",
            content_hash=row.content_hash,
            sample_count=row.sample_count,
            source=row.source,
            parent=parent,
            meta=dict(row.meta or {}),
            created_by=row.created_by,
            created_at=row.created_at,
        )

    @staticmethod
    def _audit(
        session: Session, principal: Principal, action: str, name: str, after: dict[str, Any]
    ) -> None:
        audit.append(
            session,
            AuditRecord(
                actor=principal.actor,
                action=f"dataset.{action}",
                target=f"dataset:{name}",
                project=principal.project,
                after=after,
            ),
        )


# -- helpers ---------------------------------------------------------------------------------


def _state(row: DatasetVersionRow) -> dict[str, Any]:
    return {
        "version": row.version,
        "content_hash": row.content_hash,
        "sample_count": row.sample_count,
        "source": row.source,
    }


def _sample_out(sample: EvalSample) -> SampleOut:
    return SampleOut(
        position=sample.position,
        input=dict(sample.input),
        expected=sample.expected,
        metadata=dict(sample.metadata),
        trace_id=sample.trace_id,
        content_hash=sample.content_hash,
    )


def _describe(skipped: Mapping[str, int]) -> str:
    return ", ".join(f"{count} {reason}" for reason, count in skipped.items())
