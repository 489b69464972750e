"""The one place dataset versions are written and read: immutable, content-hashed, with lineage.

It sits in the store so that evaluation and tuning (sibling stages) share it;
``modelcycle.evaluate.samples`` re-exports it.

Every way of making a version (an import, a trace filter, a split, a
deduplication, the built-in red-team and bias sets) ends in
:func:`write_version`; every reader (runs, exports, tuning) goes through
:func:`resolve_version` and :func:`load_samples`. A sample's hash is the
SHA-256 of its canonical JSON (input, expected, metadata); a version's hash is
the SHA-256 of its samples' hashes in order, so equal content means equal hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from modelcycle.errors import InvalidInput, NotFound
from modelcycle.store.tables import DatasetRow, DatasetSampleRow, DatasetVersionRow, utcnow

DATASET_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$"
MAX_SAMPLES_PER_VERSION = 1_000_000
_INSERT_BATCH = 1_000


@dataclass(frozen=True, slots=True)
class SampleIn:
    """A sample to write: ``input`` is ``{"messages": [...]}`` or ``{"prompt": str}``."""

    input: Mapping[str, Any]
    expected: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    trace_id: str | None = None
    """The production trace it came from (lineage), if any."""

    @property
    def content_hash(self) -> str:
        """SHA-256 of the canonical JSON of input, expected and metadata (not the trace)."""
        body = {"input": self.input, "expected": self.expected, "metadata": self.metadata}
        return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(frozen=True, slots=True)
class EvalSample:
    """A stored sample, as runs and exports read it."""

    id: int
    position: int
    input: Mapping[str, Any]
    expected: str | None
    metadata: Mapping[str, Any]
    trace_id: str | None
    content_hash: str

    @property
    def messages(self) -> list[dict[str, Any]] | None:
        """The chat messages, or ``None`` for a completion prompt."""
        messages = self.input.get("messages")
        return list(messages) if isinstance(messages, list) else None

    @property
    def prompt(self) -> str | None:
        """The completion prompt, or ``None`` for chat messages."""
        prompt = self.input.get("prompt")
        return prompt if isinstance(prompt, str) else None

    def as_sample_in(self) -> SampleIn:
        """The same content, to write into a derived version."""
        return SampleIn(self.input, self.expected, self.metadata, self.trace_id)


def version_hash(samples: Sequence[SampleIn]) -> str:
    """The content hash of a version holding ``samples`` in this order."""
    digest = hashlib.sha256()
    for sample in samples:
        digest.update(sample.content_hash.encode("ascii"))
    return digest.hexdigest()


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``NAME`` (latest version) or ``NAME@N``; a bad reference is a 400 that shows the form."""
    name, at, number = ref.partition("@")
    if not name or (at and not number.isdigit()):
        raise InvalidInput(
            f"bad dataset reference {ref!r}: write NAME (latest version) or NAME@VERSION, "
            "for example qa@2",
            param="dataset",
        )
    return name, int(number) if at else None


def dataset_row(session: Session, project_id: int, name: str) -> DatasetRow:
    """The dataset ``name`` of a project; ``NotFound`` with the command that lists them."""
    row = session.execute(
        select(DatasetRow).where(DatasetRow.project_id == project_id, DatasetRow.name == name)
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"dataset '{name}' not found; list them with: modelcycle datasets list")
    return row


def resolve_version(session: Session, project_id: int, ref: str) -> DatasetVersionRow:
    """The version ``ref`` (``NAME`` or ``NAME@N``) names in a project."""
    name, number = parse_ref(ref)
    dataset = dataset_row(session, project_id, name)
    query = select(DatasetVersionRow).where(DatasetVersionRow.dataset_id == dataset.id)
    if number is None:
        query = query.order_by(DatasetVersionRow.version.desc()).limit(1)
    else:
        query = query.where(DatasetVersionRow.version == number)
    row = session.execute(query).scalar_one_or_none()
    if row is None:
        which = f"version {number}" if number is not None else "any version"
        raise NotFound(f"dataset '{name}' has no {which}; see: modelcycle datasets show {name}")
    return row


def version_ref(session: Session, version: DatasetVersionRow) -> str:
    """``NAME@N`` of a stored version."""
    dataset = session.get(DatasetRow, version.dataset_id)
    assert dataset is not None
    return f"{dataset.name}@{version.version}"


def load_samples(
    session: Session, version_id: int, *, offset: int = 0, limit: int | None = None
) -> list[EvalSample]:
    """The samples of a version in position order (a page of them with offset/limit)."""
    # Columns, not ORM objects: building mapped instances was most of a run's reading time.
    table = DatasetSampleRow
    query = (
        select(
            table.id, table.position, table.input, table.expected, table.meta, table.trace_id,
            table.content_hash,
        )
        .where(table.version_id == version_id, table.position >= offset)
        .order_by(table.position)
    )  # fmt: skip
    if limit is not None:
        query = query.limit(limit)
    return [
        EvalSample(r.id, r.position, r.input, r.expected, r.meta or {}, r.trace_id, r.content_hash)
        for r in session.execute(query)
    ]


def write_version(
    session: Session,
    project_id: int,
    name: str,
    samples: Iterable[SampleIn],
    *,
    source: str,
    actor: str,
    meta: Mapping[str, Any] | None = None,
    parent_version_id: int | None = None,
    description: str | None = None,
) -> DatasetVersionRow:
    """Write a new version of dataset ``name`` (created when missing) in ``session``.

    Nothing is visible until the caller's transaction commits, so a failure
    half-way leaves no partial version. An empty version is refused.
    """
    rows = list(samples)
    if not rows:
        raise InvalidInput(
            f"dataset '{name}': a version needs at least one sample", param="samples"
        )
    if len(rows) > MAX_SAMPLES_PER_VERSION:
        raise InvalidInput(
            f"dataset '{name}': {len(rows)} samples is over the limit of "
            f"{MAX_SAMPLES_PER_VERSION} per version; split the file",
            param="samples",
        )
    dataset = session.execute(
        select(DatasetRow).where(DatasetRow.project_id == project_id, DatasetRow.name == name)
    ).scalar_one_or_none()
    if dataset is None:
        dataset = DatasetRow(
            project_id=project_id, name=name, description=description, created_by=actor
        )
        session.add(dataset)
        session.flush()
    elif description is not None:
        dataset.description = description
    latest = session.execute(
        select(func.max(DatasetVersionRow.version)).where(
            DatasetVersionRow.dataset_id == dataset.id
        )
    ).scalar_one()
    version = DatasetVersionRow(
        dataset_id=dataset.id,
        version=(latest or 0) + 1,
        content_hash=version_hash(rows),
        sample_count=len(rows),
        source=source,
        parent_version_id=parent_version_id,
        meta=dict(meta or {}),
        created_by=actor,
        created_at=utcnow(),
    )
    session.add(version)
    session.flush()
    for start in range(0, len(rows), _INSERT_BATCH):
        session.execute(
            insert(DatasetSampleRow),
            [
                {
                    "version_id": version.id,
                    "position": start + offset,
                    "input": dict(sample.input),
                    "expected": sample.expected,
                    "meta": dict(sample.metadata),
                    "trace_id": sample.trace_id,
                    "content_hash": sample.content_hash,
                }
                for offset, sample in enumerate(rows[start : start + _INSERT_BATCH])
            ],
        )
    return version
