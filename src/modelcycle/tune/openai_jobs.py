"""OpenAI's fine-tuning shapes over our tuning jobs (``/v1/fine_tuning/jobs``).

The request (``FineTuningJobCreate``) becomes a ``TuneJobCreate``: ``method.type``
``supervised`` is ``sft-lora`` and ``dpo`` is ``dpo``; ``n_epochs`` is
``epochs``; ``learning_rate_multiplier`` scales our default learning rate
(``learning_rate = 2e-4 x multiplier``); ``"auto"`` keeps our default; ``seed``
goes into the hyperparameters. The answer objects (``job_object``,
``event_object``, ``checkpoint_object``) are what the ``openai`` SDK parses.
See docs/openai-fine-tuning.md.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError
from sqlalchemy import select

from modelcycle.errors import InvalidInput, NotFound
from modelcycle.jobs import JobEventView
from modelcycle.store import Store
from modelcycle.store.tables import JobEventRow, TuneJobRow
from modelcycle.tune.schemas import TuneCheckpoint, TuneJob, TuneJobCreate
from modelcycle.types import RequestBody

BASE_LEARNING_RATE = 2e-4
"""``learning_rate_multiplier`` 1 (and ``"auto"``): the default of ``Hyperparameters``."""
EVENT_PREFIX = "ftevent-"
_EVENT_ID = re.compile(r"^ftevent-([0-9]{1,18})$")
_LEVELS = {"info": "info", "metric": "info", "warning": "warn", "warn": "warn", "error": "error"}

Auto = Literal["auto"]


class SupervisedHyperparameters(RequestBody):
    """OpenAI's supervised hyperparameters; ``"auto"`` or absent keeps our default."""

    n_epochs: Auto | Annotated[int, Field(ge=1, le=100)] | None = None
    batch_size: Auto | Annotated[int, Field(ge=1, le=512)] | None = None
    learning_rate_multiplier: Auto | Annotated[float, Field(gt=0, le=5000)] | None = Field(
        default=None, description="Scales the default learning rate 2e-4."
    )


class DpoHyperparameters(SupervisedHyperparameters):
    """DPO adds ``beta``, the KL penalty."""

    beta: Auto | Annotated[float, Field(gt=0, le=10)] | None = None


class SupervisedMethod(RequestBody):
    """``method.supervised``."""

    hyperparameters: SupervisedHyperparameters | None = None


class DpoMethod(RequestBody):
    """``method.dpo``."""

    hyperparameters: DpoHyperparameters | None = None


class Method(RequestBody):
    """``{"type": "supervised" | "dpo", "supervised" | "dpo": {"hyperparameters": {...}}}``."""

    type: Literal["supervised", "dpo", "reinforcement"]
    supervised: SupervisedMethod | None = None
    dpo: DpoMethod | None = None
    reinforcement: dict[str, Any] | None = None


class FineTuningJobCreate(RequestBody):
    """The body of ``POST /v1/fine_tuning/jobs``, as the ``openai`` SDK sends it."""

    model: str = Field(
        min_length=1,
        max_length=200,
        description="NAME@VERSION, NAME@alias, or a deployment name (its primary version).",
    )
    training_file: str = Field(min_length=1, max_length=40)
    validation_file: str | None = Field(default=None, max_length=40)
    hyperparameters: SupervisedHyperparameters | None = Field(
        default=None, description="Legacy place of the supervised hyperparameters."
    )
    method: Method | None = None
    suffix: str | None = Field(default=None, max_length=40, pattern=r"^[A-Za-z0-9._\-]+$")
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    integrations: list[dict[str, Any]] | None = None
    metadata: dict[str, str] | None = None


def _set(values: dict[str, Any], key: str, value: Any) -> None:
    if value is not None and value != "auto":
        values[key] = value


def tune_request(body: FineTuningJobCreate, base: str) -> TuneJobCreate:
    """Our job request for an OpenAI one whose ``model`` resolved to ``base``."""
    kind = body.method.type if body.method is not None else "supervised"
    if kind == "reinforcement":
        raise InvalidInput(
            "method 'reinforcement' is not supported; use 'supervised' or 'dpo'",
            param="method.type",
        )
    if body.integrations:
        raise InvalidInput(
            "integrations are not supported; the job's metrics are in its events "
            "(GET /v1/fine_tuning/jobs/{id}/events)",
            param="integrations",
        )
    if body.metadata:
        raise InvalidInput("metadata is not stored on fine-tuning jobs; leave it out",
                           param="metadata")  # fmt: skip
    chosen: SupervisedHyperparameters | None = None
    if body.method is not None:
        spec = body.method.dpo if kind == "dpo" else body.method.supervised
        chosen = spec.hyperparameters if spec is not None else None
    values: dict[str, Any] = {}
    for source in (body.hyperparameters, chosen):  # the method's settings win
        if source is None:
            continue
        _set(values, "epochs", source.n_epochs)
        _set(values, "batch_size", source.batch_size)
        multiplier = source.learning_rate_multiplier
        if multiplier is not None and multiplier != "auto":
            values["learning_rate"] = BASE_LEARNING_RATE * multiplier
        if isinstance(source, DpoHyperparameters):
            _set(values, "beta", source.beta)
    _set(values, "seed", body.seed)
    try:
        return TuneJobCreate.model_validate(
            {
                "method": "dpo" if kind == "dpo" else "sft-lora",
                "base": base,
                "training_file": body.training_file,
                "validation_file": body.validation_file,
                "hyperparameters": values,
                "suffix": body.suffix,
            }
        )
    except ValidationError as exc:  # pragma: no cover - the fields above are checked already
        first = exc.errors()[0]
        raise InvalidInput(f"invalid fine-tuning job: {first['msg']}") from None


def epoch_seconds(moment: datetime | None) -> int | None:
    """Unix seconds, as OpenAI's objects give times."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def job_object(job: TuneJob, organization: str) -> dict[str, Any]:
    """A ``fine_tuning.job`` object."""
    settings = job.hyperparameters
    hyper: dict[str, Any] = {
        "n_epochs": settings.epochs,
        "batch_size": settings.batch_size,
        "learning_rate_multiplier": round(settings.learning_rate / BASE_LEARNING_RATE, 6),
    }
    if job.method == "dpo":
        method = {"type": "dpo", "dpo": {"hyperparameters": {**hyper, "beta": settings.beta}}}
    else:
        method = {"type": "supervised", "supervised": {"hyperparameters": hyper}}
    error = None
    if job.status == "failed":
        error = {"code": "training_failed", "message": job.error or "the job failed",
                 "param": None}  # fmt: skip
    finished = job.result_model is not None and job.result_version is not None
    return {
        "object": "fine_tuning.job",
        "id": job.id,
        "model": job.base,
        "created_at": epoch_seconds(job.created_at),
        "finished_at": epoch_seconds(job.finished_at),
        "fine_tuned_model": f"{job.result_model}@{job.result_version}" if finished else None,
        "organization_id": organization,
        "result_files": [],
        "status": job.status,
        "validation_file": job.validation_file
        or (f"dataset:{job.validation_dataset}" if job.validation_dataset else None),
        # A job created from a dataset (/api/v1/tune/jobs) names it here: OpenAI requires a value.
        "training_file": job.training_file or f"dataset:{job.dataset}",
        "hyperparameters": hyper,
        "trained_tokens": job.trained_tokens,
        "error": error,
        "seed": settings.seed,
        "method": method,
        "estimated_finish": None,
        "integrations": [],
        "metadata": None,
    }


def _openai_names(data: dict[str, Any] | None) -> dict[str, Any]:
    """An event's data, with ``val_loss`` also under OpenAI's name ``valid_loss``."""
    out = dict(data or {})
    if "val_loss" in out and "valid_loss" not in out:
        out["valid_loss"] = out["val_loss"]
    return out


def event_object(event: JobEventView) -> dict[str, Any]:
    """A ``fine_tuning.job.event`` object; metric points have ``type`` ``metrics``."""
    return {
        "object": "fine_tuning.job.event",
        "id": f"{EVENT_PREFIX}{event.id}",
        "created_at": epoch_seconds(event.at),
        "level": _LEVELS.get(event.level, "info"),
        "message": event.message,
        "data": _openai_names(event.data),
        "type": "metrics" if event.level == "metric" else "message",
    }


def checkpoint_object(checkpoint: TuneCheckpoint, job_id: str) -> dict[str, Any]:
    """A ``fine_tuning.job.checkpoint`` object."""
    metrics: dict[str, Any] = {
        key: value
        for key, value in checkpoint.metrics.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
    if "val_loss" in metrics:  # OpenAI's name for it
        metrics["valid_loss"] = metrics["val_loss"]
    metrics["step"] = float(checkpoint.step)
    return {
        "object": "fine_tuning.job.checkpoint",
        "id": checkpoint.id,
        "created_at": epoch_seconds(checkpoint.created_at),
        "fine_tuned_model_checkpoint": f"{job_id}:ckpt-step-{checkpoint.step}",
        "step_number": checkpoint.step,
        "metrics": metrics,
        "fine_tuning_job_id": job_id,
    }


def event_after(after: str | None) -> int | None:
    """The event id an ``after`` cursor names (``ftevent-N``); ``None`` for the first page."""
    if after is None:
        return None
    found = _EVENT_ID.match(after)
    if found is None:
        raise InvalidInput(f"after: {after!r} is not an event id (ftevent-...)", param="after")
    return int(found.group(1))


def newest_events(
    store: Store, job_id: int, *, before: int | None, limit: int
) -> tuple[list[JobEventView], bool]:
    """A queue job's events newest first (as OpenAI lists them), older than ``before``."""
    query = select(JobEventRow).where(JobEventRow.job_id == job_id)
    if before is not None:
        query = query.where(JobEventRow.id < before)
    with store.read() as session:
        rows = session.execute(query.order_by(JobEventRow.id.desc()).limit(limit + 1)).scalars()
        found = [JobEventView.of(row) for row in rows]
    return found[:limit], len(found) > limit


def job_row_id(store: Store, project_id: int, public_id: str) -> int:
    """The row id of a job of the project (for ``after`` cursors); 404 as a missing job."""
    with store.read() as session:
        found = session.execute(
            select(TuneJobRow.id).where(
                TuneJobRow.public_id == public_id, TuneJobRow.project_id == project_id
            )
        ).scalar_one_or_none()
    if found is None:
        raise NotFound(f"fine-tuning job {public_id} not found", param="after")
    return int(found)


def page(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    """OpenAI's list object (cursor pages: the next ``after`` is the last item's id)."""
    return {
        "object": "list",
        "data": data,
        "has_more": has_more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
