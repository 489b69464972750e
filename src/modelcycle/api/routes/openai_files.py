"""``/v1/files``: OpenAI-compatible uploads of fine-tuning data.

``client.files.create(file=..., purpose="fine-tune")`` and the rest of the
``openai`` SDK's file calls work unchanged. A key of any project reaches only
its project's files; another project's file is a 404 exactly like a missing
one. Uploading and deleting need a maintainer key, reading a viewer key.
Errors are OpenAI error objects (a 404 has type ``invalid_request_error``, as
OpenAI answers). See docs/openai-fine-tuning.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Path, Query, UploadFile
from fastapi.responses import Response

from modelcycle.api.deps import PrincipalDep, ServicesDep
from modelcycle.errors import NotFound
from modelcycle.tune.files import MAX_FILE_BYTES, MAX_LIST, FileInfo
from modelcycle.tune.openai_jobs import epoch_seconds

router = APIRouter(prefix="/v1", tags=["openai-files"])
PATH = "/v1/files"
"""Uploads here may be as large as a file (``MAX_FILE_BYTES``) and its multipart framing."""
MAX_UPLOAD_BYTES = MAX_FILE_BYTES + 1024 * 1024

FileId = Annotated[str, Path(min_length=1, max_length=40, description="A file id (file-...).")]


class OpenAINotFound(NotFound):
    """A 404 as OpenAI's API answers it (type ``invalid_request_error``)."""

    error_type = "invalid_request_error"


@contextmanager
def openai_not_found() -> Iterator[None]:
    """Re-raise a ``NotFound`` with OpenAI's error type, message and param kept."""
    try:
        yield
    except OpenAINotFound:
        raise
    except NotFound as exc:
        raise OpenAINotFound(exc.message, param=exc.param, code=exc.code) from None


def file_object(info: FileInfo) -> dict[str, Any]:
    """An OpenAI ``file`` object."""
    return {
        "id": info.id,
        "object": "file",
        "bytes": info.bytes,
        "created_at": epoch_seconds(info.created_at),
        "filename": info.filename,
        "purpose": info.purpose,
        "status": "processed",  # checked when uploaded: nothing is processed later
        "status_details": None,
        "expires_at": None,
    }


@router.post("/files")
def upload_file(
    principal: PrincipalDep,
    services: ServicesDep,
    file: Annotated[UploadFile, File(description="JSONL training data.")],
    purpose: Annotated[str, Form(max_length=40, description="'fine-tune'.")],
) -> dict[str, Any]:
    """Upload fine-tuning data (maintainers); 400 naming the first bad line, nothing stored."""
    content = file.file.read(MAX_FILE_BYTES + 1)
    return file_object(services.files.upload(principal, purpose, file.filename, content))


@router.get("/files")
def list_files(
    principal: PrincipalDep,
    services: ServicesDep,
    purpose: Annotated[str | None, Query(max_length=40)] = None,
    after: Annotated[str | None, Query(max_length=40, description="Last id of the page.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = MAX_LIST,
    order: Literal["asc", "desc"] = "desc",
) -> dict[str, Any]:
    """The project's files, newest first (``order=asc``: oldest first)."""
    with openai_not_found():
        found, more = services.files.list(
            principal, purpose=purpose, after=after, limit=limit, order=order
        )
    data = [file_object(info) for info in found]
    return {
        "object": "list",
        "data": data,
        "has_more": more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


@router.get("/files/{file_id}")
def retrieve_file(
    file_id: FileId, principal: PrincipalDep, services: ServicesDep
) -> dict[str, Any]:
    """One file of the project."""
    with openai_not_found():
        return file_object(services.files.get(principal, file_id))


@router.get("/files/{file_id}/content", response_class=Response)
def file_content(file_id: FileId, principal: PrincipalDep, services: ServicesDep) -> Response:
    """The file's bytes, as uploaded."""
    with openai_not_found():
        info, content = services.files.content(principal, file_id)
    # Only the id (file-<hex>) goes into the header: never the user's filename.
    disposition = f'attachment; filename="{info.id}.jsonl"'
    return Response(
        content,
        media_type="application/octet-stream",
        headers={"Content-Disposition": disposition},
    )


@router.delete("/files/{file_id}")
def delete_file(file_id: FileId, principal: PrincipalDep, services: ServicesDep) -> dict[str, Any]:
    """Delete a file (maintainers); 409 while a fine-tuning job that has not finished uses it."""
    with openai_not_found():
        services.files.delete(principal, file_id)
    return {"id": file_id, "object": "file", "deleted": True}
