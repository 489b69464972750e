"""Datasets: upload versions, build them from traces, split, dedupe, read, export, delete.

An upload is the file itself as the body (JSONL, chat JSONL or CSV) or JSON
``{"samples": [...]}``; a malformed file is a 400 naming its line.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response, status
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from modelcycle.api.deps import CursorQuery, LimitQuery, PrincipalDep, ServicesDep
from modelcycle.api.pages import PageOut, page_out
from modelcycle.errors import InvalidInput
from modelcycle.evaluate.dataset_files import MAX_FILE_BYTES, ExportFormat, FileFormat
from modelcycle.evaluate.datasets import (
    DatasetOut,
    DatasetVersionOut,
    DedupeIn,
    DedupeOut,
    FromTracesIn,
    SampleOut,
    SamplesIn,
    SplitIn,
)
from modelcycle.evaluate.samples import DATASET_NAME_PATTERN
from modelcycle.types import MAX_INT32

router = APIRouter(prefix="/api/v1/datasets", tags=["datasets"])

PREFIX = "/api/v1/datasets/"
"""Uploads under this prefix may be as large as a dataset file (``MAX_FILE_BYTES``)."""

DatasetName = Annotated[str, Path(pattern=DATASET_NAME_PATTERN, description="Dataset name.")]
VersionNumber = Annotated[int, Path(ge=1, le=MAX_INT32, description="Version number.")]
MEDIA_TYPES: dict[ExportFormat, str] = {"jsonl": "application/x-ndjson", "csv": "text/csv"}

_FILE_BODY = {
    "requestBody": {
        "required": True,
        "description": "The dataset file as the body (JSONL, chat JSONL or CSV), or JSON "
        '{"samples": [...]}; a bad line is a 400 naming it and imports nothing.',
        "content": {
            "application/x-ndjson": {"schema": {"type": "string", "format": "binary"}},
            "text/csv": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {"schema": SamplesIn.model_json_schema()},
        },
    }
}


@router.get("", response_model=PageOut[DatasetOut])
def list_datasets(
    principal: PrincipalDep,
    services: ServicesDep,
    cursor: CursorQuery = None,
    limit: LimitQuery = 100,
) -> PageOut[DatasetOut]:
    """Datasets of the caller's project, oldest first, each with its latest version."""
    return page_out(services.datasets.list(principal, cursor=cursor, limit=limit))


@router.post("/from-traces", response_model=DatasetVersionOut, status_code=status.HTTP_201_CREATED)
def dataset_from_traces(
    body: FromTracesIn, principal: PrincipalDep, services: ServicesDep
) -> DatasetVersionOut:
    """A new version built from the traces a filter selects (personal data scrubbed).

    Each sample's input is the trace's request, its expected answer the feedback's
    correction (or the output, per ``expected_from``), its ``trace_id`` the lineage.
    """
    return services.datasets.from_traces(principal, body)


@router.get("/{name}", response_model=DatasetOut)
def show_dataset(name: DatasetName, principal: PrincipalDep, services: ServicesDep) -> DatasetOut:
    """A dataset with every version, newest first."""
    return services.datasets.show(principal, name)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_dataset(name: DatasetName, principal: PrincipalDep, services: ServicesDep) -> Response:
    """Delete a dataset and its versions; 409 while an evaluation run uses one."""
    services.datasets.delete(principal, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{name}/versions",
    response_model=DatasetVersionOut,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_FILE_BODY,
)
async def upload_version(
    name: DatasetName,
    request: Request,
    principal: PrincipalDep,
    services: ServicesDep,
    format: Annotated[
        FileFormat | None,
        Query(description="jsonl, chat or csv; default: from filename, Content-Type or content."),
    ] = None,
    filename: Annotated[str | None, Query(max_length=255)] = None,
    description: Annotated[str | None, Query(max_length=2_000)] = None,
) -> DatasetVersionOut:
    """A new version from the request body: a dataset file, or JSON ``{"samples": [...]}``."""
    content = await request.body()
    content_type = request.headers.get("content-type", "")
    if format is None and content_type.split(";")[0].strip().lower() == "application/json":
        body = _samples_body(content, description)
        return await run_in_threadpool(services.datasets.import_samples, principal, name, body)
    return await run_in_threadpool(
        lambda: services.datasets.import_file(
            principal,
            name,
            content,
            format=format,
            filename=filename,
            content_type=content_type,
            description=description,
        )
    )


def _samples_body(content: bytes, description: str | None) -> SamplesIn:
    try:
        body = SamplesIn.model_validate_json(content)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise InvalidInput(
            f'{where}: {first["msg"]}; send {{"samples": [...]}}, or the file itself with '
            "?format=jsonl|chat|csv",
            param=where,
        ) from None
    if description is not None and body.description is None:
        body = body.model_copy(update={"description": description})
    return body


@router.get("/{name}/versions/{version}/samples", response_model=PageOut[SampleOut])
def list_samples(
    name: DatasetName,
    version: VersionNumber,
    principal: PrincipalDep,
    services: ServicesDep,
    cursor: CursorQuery = None,
    limit: LimitQuery = 100,
) -> PageOut[SampleOut]:
    """The samples of a version in order, one page at a time."""
    ref = f"{name}@{version}"
    return page_out(services.datasets.samples(principal, ref, cursor=cursor, limit=limit))


@router.get(
    "/{name}/versions/{version}/export",
    response_class=Response,
    responses={
        200: {
            "description": "The version as a file.",
            "content": {media: {} for media in MEDIA_TYPES.values()},
        }
    },
)
def export_version(
    name: DatasetName,
    version: VersionNumber,
    principal: PrincipalDep,
    services: ServicesDep,
    format: Annotated[Literal["jsonl", "csv"], Query(description="jsonl or csv.")] = "jsonl",
) -> Response:
    """A version as JSONL (lossless: re-importing it gives the same content hash) or CSV."""
    content = services.datasets.export(principal, f"{name}@{version}", format)
    return Response(
        content,
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{name}-{version}.{format}"'},
    )


@router.post("/{name}/split", response_model=list[DatasetVersionOut], status_code=201)
def split_dataset(
    name: DatasetName, body: SplitIn, principal: PrincipalDep, services: ServicesDep
) -> list[DatasetVersionOut]:
    """New datasets NAME-PART (one per ratio): disjoint, covering, the same for a seed."""
    return services.datasets.split(principal, name, body)


@router.post("/{name}/dedupe", response_model=DedupeOut)
def dedupe_dataset(
    name: DatasetName, body: DedupeIn, principal: PrincipalDep, services: ServicesDep
) -> DedupeOut:
    """A new version without duplicate inputs; ``created`` is false when there were none."""
    return services.datasets.dedupe(principal, name, body)


__all__ = ["MAX_FILE_BYTES", "PREFIX", "router"]
