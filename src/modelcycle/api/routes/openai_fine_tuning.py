"""``/v1/fine_tuning/jobs``: OpenAI-compatible fine-tuning jobs over our tuning jobs.

``client.fine_tuning.jobs.create(model=..., training_file="file-...")`` and the
SDK's list, retrieve, cancel, list_events and checkpoints calls work unchanged.
``model`` is ``NAME@VERSION``, ``NAME@alias`` or a deployment name (its primary
route's version); the job is the same one ``/api/v1/tune/jobs`` and
``modelcycle tune`` show. Creating and cancelling need a maintainer key,
reading a viewer key. See docs/openai-fine-tuning.md.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from modelcycle.access import Principal, require
from modelcycle.api.deps import PrincipalDep, ServicesDep
from modelcycle.api.routes.openai_files import OpenAINotFound, openai_not_found
from modelcycle.errors import InvalidInput, NotFound
from modelcycle.services import Services
from modelcycle.store import encode_cursor
from modelcycle.tune.openai_jobs import (
    FineTuningJobCreate,
    checkpoint_object,
    event_after,
    event_object,
    job_object,
    job_row_id,
    newest_events,
    page,
    tune_request,
)
from modelcycle.types import Role

router = APIRouter(prefix="/v1/fine_tuning", tags=["openai-fine-tuning"])

JobId = Annotated[
    str, Path(min_length=1, max_length=40, description="A fine-tuning job id (ftjob-...).")
]
After = Annotated[str | None, Query(max_length=40, description="The last id of the previous page.")]


def _model_not_found(model: str) -> OpenAINotFound:
    return OpenAINotFound(
        f"The model '{model}' does not exist or you do not have access to it; name a version "
        "as NAME@VERSION or NAME@alias, or a deployment",
        param="model",
        code="model_not_found",
    )


def resolve_model(services: Services, principal: Principal, model: str) -> str:
    """The base version ``model`` names: itself (``NAME@...``) or a deployment's primary."""
    if "@" in model:
        return model
    deployment = services.deployments.lookup(principal.project_id, model)
    if deployment is None or not deployment.spec.routes:
        raise _model_not_found(model)
    return deployment.spec.routes[0].target


def _check_file(services: Services, principal: Principal, file_id: str | None, param: str) -> None:
    if file_id is None:
        return
    try:
        services.files.get(principal, file_id)
    except NotFound:  # another project's file too: a 404 exactly like a missing one
        raise OpenAINotFound(
            f"invalid {param}: No such File object: {file_id}; upload it with "
            "POST /v1/files (purpose 'fine-tune')",
            param=param,
            code=f"invalid_{param}",
        ) from None


@router.post("/jobs")
def create_fine_tuning_job(
    body: FineTuningJobCreate, principal: PrincipalDep, services: ServicesDep
) -> dict[str, Any]:
    """Start a job (maintainers); its data is checked first, a bad line is a 400 naming it."""
    require(principal, Role.MAINTAINER)
    _check_file(services, principal, body.training_file, "training_file")
    _check_file(services, principal, body.validation_file, "validation_file")
    base = resolve_model(services, principal, body.model)
    request = tune_request(body, base)
    try:
        job = services.tune.create(principal, request)
    except NotFound as exc:  # the files exist: what is missing is the model, version or alias
        raise _model_not_found(body.model) from exc
    except InvalidInput as exc:
        if exc.param == "base":
            raise InvalidInput(exc.message, param="model") from None
        raise
    return job_object(job, principal.project)


@router.get("/jobs")
def list_fine_tuning_jobs(
    principal: PrincipalDep,
    services: ServicesDep,
    after: After = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
) -> dict[str, Any]:
    """The project's jobs, newest first."""
    require(principal, Role.VIEWER)
    with openai_not_found():
        cursor = (
            encode_cursor(job_row_id(services.store, principal.project_id, after))
            if after
            else None
        )
    found = services.tune.list(principal, cursor=cursor, limit=limit)
    data = [job_object(job, principal.project) for job in found.items]
    return page(data, found.next_cursor is not None)


@router.get("/jobs/{job_id}")
def retrieve_fine_tuning_job(
    job_id: JobId, principal: PrincipalDep, services: ServicesDep
) -> dict[str, Any]:
    """One job: status, hyperparameters, the tuned version once it succeeded."""
    with openai_not_found():
        return job_object(services.tune.get(principal, job_id), principal.project)


@router.post("/jobs/{job_id}/cancel")
def cancel_fine_tuning_job(
    job_id: JobId, principal: PrincipalDep, services: ServicesDep
) -> dict[str, Any]:
    """Cancel a job (maintainers): a queued one at once, a running one at its next step."""
    with openai_not_found():
        return job_object(services.tune.cancel(principal, job_id), principal.project)


@router.get("/jobs/{job_id}/events")
def list_fine_tuning_events(
    job_id: JobId,
    principal: PrincipalDep,
    services: ServicesDep,
    after: After = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
) -> dict[str, Any]:
    """Log lines and metric points (``type: metrics``: loss, learning rate), newest first."""
    before = event_after(after)
    with openai_not_found():
        queue_job = services.tune.get(principal, job_id).job_id
    if queue_job is None:  # pragma: no cover - every job is queued when created
        return page([], False)
    events, more = newest_events(services.store, queue_job, before=before, limit=limit)
    return page([event_object(event) for event in events], more)


@router.get("/jobs/{job_id}/checkpoints")
def list_fine_tuning_checkpoints(
    job_id: JobId,
    principal: PrincipalDep,
    services: ServicesDep,
    after: After = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 10,
) -> dict[str, Any]:
    """The checkpoints the job saved, newest first, with their step metrics."""
    with openai_not_found():
        found = services.tune.checkpoints(principal, job_id)
    if after is not None:
        ids = [checkpoint.id for checkpoint in found]
        if after not in ids:
            raise OpenAINotFound(f"checkpoint {after} not found in job {job_id}", param="after")
        found = found[ids.index(after) + 1 :]
    data = [checkpoint_object(checkpoint, job_id) for checkpoint in found[:limit]]
    return page(data, len(found) > limit)
