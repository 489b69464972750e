"""The public shapes of end-user erasure and export (``/api/v1/privacy``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from modelcycle.monitor.trace_schemas import Feedback, Text, Trace
from modelcycle.types import RequestBody

MAX_USER = 128
"""The longest end-user id a span can carry (``spans.user_id``)."""


class ErasureRequest(RequestBody):
    """The body of ``POST /api/v1/privacy/erase``."""

    user: Text = Field(
        min_length=1,
        max_length=MAX_USER,
        description="The end user's id exactly as the application sent it (X-Modelcycle-User, "
        "the OpenAI 'user' field, or a traced span's user attribute).",
    )
    dry_run: bool = Field(
        default=False, description="Count what would be erased; change nothing, audit nothing."
    )


class Erasure(BaseModel):
    """What an erasure removed (or, for a dry run, would remove)."""

    dry_run: bool
    user_hash: str = Field(
        description="The keyed hash the audit log records instead of the user id; a dry run "
        "gives it too, to find earlier erasures of the same user in the audit log."
    )
    counts: dict[str, int] = Field(
        description="Per kind: traces (removed whole), spans, feedback, and what each stage "
        "holding derived data reported (a dry run counts only the first three)."
    )
    failed: list[str] = Field(
        default_factory=list,
        description="Stages whose erasure raised: run the erasure again to finish them.",
    )


class UserExport(BaseModel):
    """Everything held about one end user of a project, as stored."""

    user: str
    project: str
    exported_at: datetime
    traces: list[Trace] = Field(
        description="The user's traces (whole when the user started them, else the user's spans "
        "only), spans with input and output as stored, with the feedback on them."
    )
    feedback: list[Feedback] = Field(
        description="Feedback the user gave on traces not listed in 'traces'."
    )
    stages: dict[str, Any] = Field(
        description="What stages holding derived data returned, by kind (e.g. dataset samples)."
    )
