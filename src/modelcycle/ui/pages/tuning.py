"""Dashboard section: tuning jobs (list, start, live progress with loss curves, cancel).

A job's progress comes from the queue (fraction done) and from its events: the
trainer writes one ``metric`` event per reporting step (``step``, ``train_loss``,
``val_loss`` when validated) and logs ``T steps over E epochs`` when it starts,
which is where the step counts and the loss curve come from.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup
from pydantic import ValidationError

from modelcycle.access import Principal
from modelcycle.errors import Conflict, InvalidInput, PermissionDenied
from modelcycle.jobs import JobEventView
from modelcycle.services import Services
from modelcycle.tune.schemas import TuneJob, TuneJobCreate
from modelcycle.types import Role
from modelcycle.ui.auth import FormChecked, ViewerDep
from modelcycle.ui.charts import StepSeries, step_chart
from modelcycle.ui.render import renderer
from modelcycle.ui.routing import UiRoute

router = APIRouter(route_class=UiRoute)

PAGE_SIZE = 20
EVENT_PAGE = 500
EVENT_PAGES = 20
"""At most this many pages of events are read for one job page (10,000 events)."""
LOG_TAIL = 60
METHODS: tuple[tuple[str, str], ...] = (("sft-lora", "SFT (LoRA)"), ("dpo", "DPO"))
METHOD_ALIASES = {"sft": "sft-lora", "sft-lora": "sft-lora", "dpo": "dpo"}
FINISHED = frozenset({"succeeded", "failed", "cancelled"})
TOTAL_STEPS = re.compile(r"\b(\d+) steps over \d+ epochs?\b")
JobId = Annotated[str, Path(min_length=1, max_length=64)]
Notice = Annotated[str | None, Query(max_length=300)]


@dataclass(frozen=True, slots=True)
class JobProgress:
    """What the progress bar and its caption show."""

    fraction: float | None
    step: int | None
    total_steps: int | None
    epoch: float | None
    latest: dict[str, float]
    """The newest metric point's numbers (train_loss, val_loss, learning_rate...)."""


@dataclass(frozen=True, slots=True)
class JobEvents:
    """A job's events read for its page: metric points for the curve, the log's tail."""

    metrics: list[dict[str, Any]]
    tail: list[JobEventView]
    total_steps: int | None
    truncated: bool


def read_events(services: Services, principal: Principal, job_id: str) -> JobEvents:
    """The job's events, oldest first, read in pages (bounded: see ``EVENT_PAGES``)."""
    metrics: list[dict[str, Any]] = []
    tail: list[JobEventView] = []
    total: int | None = None
    after, truncated = 0, True
    for _ in range(EVENT_PAGES):
        found = services.tune.events(principal, job_id, after_id=after, limit=EVENT_PAGE)
        for event in found:
            if event.level == "metric" and event.data and "step" in event.data:
                metrics.append(event.data)
            matched = TOTAL_STEPS.search(event.message)
            if matched:
                total = int(matched.group(1))
        tail = (tail + found)[-LOG_TAIL:]
        if len(found) < EVENT_PAGE:
            truncated = False
            break
        after = found[-1].id
    return JobEvents(metrics, tail, total, truncated)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def progress_of(job: TuneJob, events: JobEvents) -> JobProgress:
    """Fraction done and step counts, from the queue's progress and the newest metric point."""
    last = events.metrics[-1] if events.metrics else {}
    latest = {key: found for key, raw in last.items() if (found := _number(raw)) is not None}
    step = int(latest["step"]) if "step" in latest else None
    final_steps = _number(job.metrics.get("steps"))
    if job.status == "succeeded" and final_steps is not None:
        step = int(final_steps)
    total = events.total_steps
    fraction = job.progress
    if job.status == "succeeded":
        fraction = 1.0
    elif step is not None and total:
        fraction = max(fraction or 0.0, min(1.0, step / total))
    return JobProgress(fraction, step, total, latest.get("epoch"), latest)


def loss_chart(points: Sequence[Mapping[str, Any]]) -> Markup:
    """Training and validation loss over steps."""
    series = []
    for key, name in (("train_loss", "training loss"), ("val_loss", "validation loss")):
        pairs = [
            (int(step), value)
            for point in points
            if (step := _number(point.get("step"))) is not None
            and (value := _number(point.get(key))) is not None
        ]
        series.append(StepSeries(name, [s for s, _ in pairs], [v for _, v in pairs]))
    return step_chart(series, title="Loss over training steps", empty="No loss reported yet.")


ONLY_FOR = {"beta": "dpo", "budget": "prompt-search", "candidates": "prompt-search"}
"""Hyperparameters that mean something for one method only."""


def shown_hyperparameters(job: TuneJob) -> dict[str, Any]:
    """The job's settings that apply to its method (DPO's beta only for DPO, say)."""
    values = job.hyperparameters.model_dump(exclude_none=True)
    return {k: v for k, v in values.items() if ONLY_FOR.get(k, job.method) == job.method}


def base_model_name(ref: str) -> str:
    """The model part of ``NAME@VERSION`` / ``NAME@alias``."""
    return ref.partition("@")[0]


def base_choices(services: Services, principal: Principal) -> list[str]:
    """Suggestions for the base field: each model's latest version and its aliases."""
    choices: list[str] = []
    for model in services.registry.list_models(principal, cursor=None, limit=100).items:
        choices.extend(f"{model.name}@{alias}" for alias in sorted(model.aliases))
        if model.latest_version is not None:
            choices.append(f"{model.name}@{model.latest_version}")
    return choices


def dataset_choices(services: Services, principal: Principal) -> list[tuple[str, int]]:
    """``(NAME@N, samples)`` of each dataset's latest version."""
    return [
        (dataset.latest.ref, dataset.latest.sample_count)
        for dataset in services.datasets.list(principal, limit=100).items
        if dataset.latest is not None
    ]


@router.get("/tune")
def tune_list(
    request: Request,
    viewer: ViewerDep,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    notice: Notice = None,
) -> Response:
    """Tuning jobs, newest first, and (for maintainers) the form that starts one."""
    services, principal = viewer.services, viewer.principal
    page = services.tune.list(principal, cursor=cursor, limit=PAGE_SIZE)
    starts = principal.role.allows(Role.MAINTAINER)
    return renderer(request).page(
        request,
        "tune.html",
        {
            "title": "Tuning",
            "jobs": page.items,
            "cursor": page.next_cursor,
            "live": any(job.status not in FINISHED for job in page.items),
            "methods": METHODS,
            "bases": base_choices(services, principal) if starts else [],
            "datasets": dataset_choices(services, principal) if starts else [],
            "notice": notice,
        },
    )


def _validation_text(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(p) for p in error["loc"] if p != "hyperparameters")
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def create_body(fields: Mapping[str, str]) -> TuneJobCreate:
    """The create request a submitted form describes; a bad field is an ``InvalidInput``."""
    method = METHOD_ALIASES.get(fields["method"].strip())
    if method is None:
        raise InvalidInput(
            f"unknown method {fields['method']!r}: choose sft-lora or dpo", param="method"
        )
    hyperparameters = {
        key: fields[key].strip() for key in ("epochs", "learning_rate", "lora_r") if fields[key]
    }
    values: dict[str, Any] = {
        "method": method,
        "base": fields["base"].strip(),
        "dataset": fields["dataset"].strip() or None,
        "validation_dataset": fields["validation_dataset"].strip() or None,
        "suffix": fields["suffix"].strip() or None,
        "hyperparameters": hyperparameters,
    }
    if not values["base"]:
        raise InvalidInput("give a base version: NAME@VERSION or NAME@alias", param="base")
    if not values["dataset"]:
        raise InvalidInput("choose a training dataset", param="dataset")
    try:
        return TuneJobCreate.model_validate(values)
    except ValidationError as exc:
        raise InvalidInput(_validation_text(exc)) from None


FormText = Annotated[str, Form(max_length=200)]


@router.post("/tune", dependencies=[FormChecked])
def tune_start(
    viewer: ViewerDep,
    base: FormText = "",
    dataset: FormText = "",
    method: FormText = "sft-lora",
    validation_dataset: FormText = "",
    epochs: FormText = "",
    learning_rate: FormText = "",
    lora_r: FormText = "",
    suffix: FormText = "",
) -> Response:
    """Start a job (maintainer+, checked by the service) and show it."""
    body = create_body(
        {
            "method": method,
            "base": base,
            "dataset": dataset,
            "validation_dataset": validation_dataset,
            "epochs": epochs,
            "learning_rate": learning_rate,
            "lora_r": lora_r,
            "suffix": suffix,
        }
    )
    job = viewer.services.tune.create(viewer.principal, body)
    notice = quote(f"Tuning job {job.id} queued: it starts when a worker is free.")
    return RedirectResponse(f"/tune/{job.id}?notice={notice}", 303)


@router.get("/tune/{job_id}")
def tune_detail(
    request: Request, viewer: ViewerDep, job_id: JobId, notice: Notice = None
) -> Response:
    """One job: live progress, loss curve, log tail, settings, result."""
    services, principal = viewer.services, viewer.principal
    job = services.tune.get(principal, job_id)
    events = read_events(services, principal, job_id)
    return renderer(request).page(
        request,
        "tune_job.html",
        {
            "title": f"Tuning job {job.id}",
            "job": job,
            "finished": job.status in FINISHED,
            "base_model": base_model_name(job.base),
            "progress": progress_of(job, events),
            "loss_chart": loss_chart(events.metrics),
            "events": events,
            "hyperparameters": shown_hyperparameters(job),
            "checkpoints": services.tune.checkpoints(principal, job_id)[:10],
            "notice": notice,
        },
    )


def _cancellable(job: TuneJob) -> TuneJob:
    if job.status in FINISHED:
        raise Conflict(f"tuning job {job.id} is already {job.status}; there is nothing to cancel")
    return job


@router.get("/tune/{job_id}/confirm-cancel")
def tune_confirm_cancel(request: Request, viewer: ViewerDep, job_id: JobId) -> Response:
    """What cancelling will do, and the form that does it."""
    if not viewer.principal.role.allows(Role.MAINTAINER):
        raise PermissionDenied("cancelling a tuning job needs the maintainer role")
    job = _cancellable(viewer.services.tune.get(viewer.principal, job_id))
    return renderer(request).page(
        request, "tune_cancel.html", {"title": f"Cancel {job.id}?", "job": job}
    )


@router.post("/tune/{job_id}/cancel", dependencies=[FormChecked])
def tune_cancel(viewer: ViewerDep, job_id: JobId) -> Response:
    """Cancel (maintainer+, audited by the service): a queued job at once, a running one soon."""
    job = viewer.services.tune.cancel(viewer.principal, job_id)
    if job.status == "cancelled":
        text = f"Tuning job {job.id} cancelled."
    else:
        text = f"Cancel requested: tuning job {job.id} stops at its next step."
    return RedirectResponse(f"/tune/{job.id}?notice={quote(text)}", 303)
