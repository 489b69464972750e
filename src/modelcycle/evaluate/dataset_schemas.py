"""Request and response shapes of the datasets API (``evaluate.datasets`` re-exports them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from modelcycle.evaluate import dataset_files
from modelcycle.evaluate.samples import DATASET_NAME_PATTERN
from modelcycle.evaluate.trace_samples import TraceSampleFilter
from modelcycle.types import RequestBody


class DatasetVersionOut(BaseModel):
    """One immutable version: its content hash, size and where it came from."""

    dataset: str
    version: int
    ref: str = Field(description="NAME@VERSION, as eval runs and exports name it.")
    content_hash: str
    sample_count: int
    source: str = Field(description="import, traces, split or dedupe.")
    parent: str | None = Field(description="NAME@VERSION it was derived from, if any.")
    meta: dict[str, Any]
    created_by: str
    created_at: datetime


class DatasetOut(BaseModel):
    """A dataset, its latest version and (when shown alone) every version."""

    name: str
    description: str | None
    created_by: str
    created_at: datetime
    version_count: int
    latest: DatasetVersionOut | None
    versions: list[DatasetVersionOut] | None = None


class SampleOut(BaseModel):
    """One sample of a version, in position order."""

    position: int
    input: dict[str, Any]
    expected: str | None
    metadata: dict[str, Any]
    trace_id: str | None
    content_hash: str


class DedupeOut(BaseModel):
    """The version without duplicates; when none were found, the version itself."""

    removed: int
    created: bool
    version: DatasetVersionOut


class SamplesIn(RequestBody):
    """A new version given as JSON (``POST /api/v1/datasets/{name}/versions``)."""

    samples: list[dict[str, Any]] = Field(min_length=1, max_length=dataset_files.MAX_SAMPLES)
    description: str | None = Field(default=None, max_length=2_000)


class SplitIn(RequestBody):
    """Split a version into new datasets ``NAME-PART``, one per ratio."""

    ratios: dict[str, float] = Field(description='e.g. {"train": 0.8, "test": 0.2}')
    seed: int = Field(default=0, ge=0, le=2**63 - 1)
    stratify_by: str | None = Field(default=None, min_length=1, max_length=100)
    version: int | None = Field(default=None, ge=1, description="Default: the latest.")


class DedupeIn(RequestBody):
    """Remove duplicate inputs from a version (a new version of the same dataset)."""

    near: bool = Field(
        default=False,
        description="Also inputs equal after lowercasing and removing "
        "punctuation and extra whitespace.",
    )
    version: int | None = Field(default=None, ge=1, description="Default: the latest.")


class FromTracesIn(TraceSampleFilter):
    """A version of dataset ``name`` built from the traces a filter selects."""

    name: str = Field(pattern=DATASET_NAME_PATTERN)
    description: str | None = Field(default=None, max_length=2_000)
    scrub: bool = Field(
        default=True,
        description="Redact personal data and secrets (false needs an admin key).",
    )
