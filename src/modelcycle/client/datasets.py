"""``client.datasets``: import files, build from traces, split, dedupe, read and export.

An upload is a file, not JSON, so it goes over the client's HTTP connection
directly (``_upload``); an export is read with ``content``; every other call
is a JSON ``Call``.
"""

from __future__ import annotations

import builtins
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from modelcycle.client.calls import API, Call, PageCall
from modelcycle.client.transport import connection_error, raise_for_error
from modelcycle.errors import NotFound
from modelcycle.evaluate.dataset_files import ExportFormat, FileFormat
from modelcycle.evaluate.datasets import (
    DatasetOut,
    DatasetVersionOut,
    DedupeIn,
    DedupeOut,
    FromTracesIn,
    SampleOut,
    SplitIn,
)
from modelcycle.evaluate.samples import parse_ref
from modelcycle.evaluate.trace_samples import ExpectedFrom, FeedbackKind

if TYPE_CHECKING:
    from modelcycle.client.asyncio import AsyncClient
    from modelcycle.client.sync import Client

PATH = f"{API}/datasets"


def _none_dropped(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def list_call() -> PageCall[DatasetOut]:
    """``GET /api/v1/datasets`` (every page)."""
    return PageCall(PATH, DatasetOut.model_validate)


def show_call(name: str) -> Call[DatasetOut]:
    """``GET /api/v1/datasets/{name}``."""
    return Call("GET", f"{PATH}/{name}", DatasetOut.model_validate)


def delete_call(name: str) -> Call[None]:
    """``DELETE /api/v1/datasets/{name}``."""
    return Call("DELETE", f"{PATH}/{name}", lambda _body: None)


def samples_call(name: str, version: int, limit: int, cursor: str | None) -> Call[Any]:
    """``GET /api/v1/datasets/{name}/versions/{version}/samples`` (one page)."""
    params = _none_dropped(limit=limit, cursor=cursor)
    return Call(
        "GET", f"{PATH}/{name}/versions/{version}/samples", lambda body: body, params=params
    )


def split_call(name: str, body: SplitIn) -> Call[list[DatasetVersionOut]]:
    """``POST /api/v1/datasets/{name}/split``."""
    return Call(
        "POST",
        f"{PATH}/{name}/split",
        lambda found: [DatasetVersionOut.model_validate(item) for item in found],
        json=body.model_dump(mode="json", exclude_none=True),
    )


def dedupe_call(name: str, body: DedupeIn) -> Call[DedupeOut]:
    """``POST /api/v1/datasets/{name}/dedupe``."""
    return Call(
        "POST",
        f"{PATH}/{name}/dedupe",
        DedupeOut.model_validate,
        json=body.model_dump(mode="json", exclude_none=True),
    )


def from_traces_call(body: FromTracesIn) -> Call[DatasetVersionOut]:
    """``POST /api/v1/datasets/from-traces``."""
    return Call(
        "POST",
        f"{PATH}/from-traces",
        DatasetVersionOut.model_validate,
        json=body.model_dump(mode="json", exclude_none=True),
    )


def from_traces_body(name: str, fields: dict[str, Any]) -> FromTracesIn:
    """The request body, validated here so a wrong option fails before any request."""
    return FromTracesIn.model_validate({"name": name, **_none_dropped(**fields)})


def upload_request(
    name: str,
    format: FileFormat | None,
    filename: str | None,
    description: str | None,
) -> tuple[str, dict[str, Any]]:
    """Path and query of ``POST /api/v1/datasets/{name}/versions`` for a file."""
    params = _none_dropped(format=format, filename=filename, description=description)
    return f"{PATH}/{name}/versions", params


def _file(path: str | Path) -> tuple[bytes, str]:
    file = Path(path)
    return file.read_bytes(), file.name


def _version_of(client_show: DatasetOut, ref: str) -> int:
    """The version number ``ref`` names (``NAME``: the latest)."""
    _name, number = parse_ref(ref)
    if number is not None:
        return number
    if client_show.latest is None:  # a dataset always has a version; kept for the type
        raise NotFound(f"dataset '{client_show.name}' has no version")
    return client_show.latest.version


_UPLOAD_HEADERS = {"Content-Type": "application/octet-stream"}


class Datasets:
    """Datasets of the project (maintainers write, viewers read)."""

    def __init__(self, client: Client):
        self._c = client

    def _upload(self, path: str, params: dict[str, Any], content: bytes) -> httpx.Response:
        # A file body, not JSON: straight over the client's connection, same headers.
        c = self._c
        try:
            response = c._http.post(
                c.server + path,
                params=params,
                content=content,
                headers={**c._headers, **_UPLOAD_HEADERS},
            )
        except httpx.HTTPError as exc:
            raise connection_error(c.server, exc) from exc
        raise_for_error(response)
        return response

    def import_file(
        self,
        name: str,
        path: str | Path,
        *,
        format: FileFormat | None = None,
        description: str | None = None,
    ) -> DatasetVersionOut:
        """A new version of ``name`` from a JSONL, chat JSONL or CSV file."""
        content, filename = _file(path)
        return self.import_bytes(
            name, content, format=format, filename=filename, description=description
        )

    def import_bytes(
        self,
        name: str,
        content: bytes,
        *,
        format: FileFormat | None = None,
        filename: str | None = None,
        description: str | None = None,
    ) -> DatasetVersionOut:
        """A new version of ``name`` from a file's content; a bad line raises ``InvalidInput``."""
        url, params = upload_request(name, format, filename, description)
        response = self._upload(url, params, content)
        return DatasetVersionOut.model_validate(response.json())

    def from_traces(
        self,
        name: str,
        *,
        deployment: str | None = None,
        version: int | None = None,
        model: str | None = None,
        status: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        feedback: FeedbackKind | None = None,
        with_correction: bool = False,
        expected_from: ExpectedFrom = "correction",
        limit: int = 1_000,
        scrub: bool = True,
        description: str | None = None,
    ) -> DatasetVersionOut:
        """A new version of ``name`` from the traces the filter selects (PII scrubbed)."""
        fields = {
            "deployment": deployment,
            "version": version,
            "model": model,
            "status": status,
            "start": start,
            "end": end,
            "feedback": feedback,
            "with_correction": with_correction,
            "expected_from": expected_from,
            "limit": limit,
            "scrub": scrub,
            "description": description,
        }
        return self._c.run(from_traces_call(from_traces_body(name, fields)))

    def list(self) -> builtins.list[DatasetOut]:
        """Every dataset of the project with its latest version."""
        return self._c.collect(list_call())

    def show(self, name: str) -> DatasetOut:
        """A dataset with every version."""
        return self._c.run(show_call(name))

    def samples(self, ref: str, *, limit: int | None = None) -> builtins.list[SampleOut]:
        """The samples of ``NAME`` (latest) or ``NAME@N``, all or the first ``limit``."""
        name, _ = parse_ref(ref)
        number = _version_of(self.show(name), ref)
        out: builtins.list[SampleOut] = []
        cursor: str | None = None
        while limit is None or len(out) < limit:
            size = 500 if limit is None else min(500, limit - len(out))
            page = self._c.run(samples_call(name, number, size, cursor))
            out.extend(SampleOut.model_validate(item) for item in page["data"])
            cursor = page["next_cursor"]
            if not cursor:
                break
        return out

    def export(self, ref: str, *, format: ExportFormat = "jsonl") -> bytes:
        """``NAME`` (latest) or ``NAME@N`` as a JSONL or CSV file."""
        name, _ = parse_ref(ref)
        number = _version_of(self.show(name), ref)
        path = f"{PATH}/{name}/versions/{number}/export"
        return self._c.content(path, params={"format": format})

    def split(
        self,
        name: str,
        ratios: dict[str, float],
        *,
        seed: int = 0,
        stratify_by: str | None = None,
        version: int | None = None,
    ) -> builtins.list[DatasetVersionOut]:
        """New datasets ``NAME-PART``, one per ratio (``{"train": 0.8, "test": 0.2}``)."""
        body = SplitIn(ratios=ratios, seed=seed, stratify_by=stratify_by, version=version)
        return self._c.run(split_call(name, body))

    def dedupe(self, name: str, *, near: bool = False, version: int | None = None) -> DedupeOut:
        """A new version without duplicate inputs (``near``: also near-duplicates)."""
        return self._c.run(dedupe_call(name, DedupeIn(near=near, version=version)))

    def delete(self, name: str) -> None:
        """Delete a dataset; ``Conflict`` while an evaluation run uses it."""
        self._c.run(delete_call(name))


class AsyncDatasets:
    """Datasets of the project (maintainers write, viewers read), for asyncio."""

    def __init__(self, client: AsyncClient):
        self._c = client

    async def _upload(self, path: str, params: dict[str, Any], content: bytes) -> httpx.Response:
        # A file body, not JSON: straight over the client's connection, same headers.
        c = self._c
        try:
            response = await c._http.post(
                c.server + path,
                params=params,
                content=content,
                headers={**c._headers, **_UPLOAD_HEADERS},
            )
        except httpx.HTTPError as exc:
            raise connection_error(c.server, exc) from exc
        raise_for_error(response)
        return response

    async def import_file(
        self,
        name: str,
        path: str | Path,
        *,
        format: FileFormat | None = None,
        description: str | None = None,
    ) -> DatasetVersionOut:
        """A new version of ``name`` from a JSONL, chat JSONL or CSV file."""
        content, filename = _file(path)
        return await self.import_bytes(
            name, content, format=format, filename=filename, description=description
        )

    async def import_bytes(
        self,
        name: str,
        content: bytes,
        *,
        format: FileFormat | None = None,
        filename: str | None = None,
        description: str | None = None,
    ) -> DatasetVersionOut:
        """A new version of ``name`` from a file's content; a bad line raises ``InvalidInput``."""
        url, params = upload_request(name, format, filename, description)
        response = await self._upload(url, params, content)
        return DatasetVersionOut.model_validate(response.json())

    async def from_traces(
        self,
        name: str,
        *,
        deployment: str | None = None,
        version: int | None = None,
        model: str | None = None,
        status: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        feedback: FeedbackKind | None = None,
        with_correction: bool = False,
        expected_from: ExpectedFrom = "correction",
        limit: int = 1_000,
        scrub: bool = True,
        description: str | None = None,
    ) -> DatasetVersionOut:
        """A new version of ``name`` from the traces the filter selects (PII scrubbed)."""
        fields = {
            "deployment": deployment,
            "version": version,
            "model": model,
            "status": status,
            "start": start,
            "end": end,
            "feedback": feedback,
            "with_correction": with_correction,
            "expected_from": expected_from,
            "limit": limit,
            "scrub": scrub,
            "description": description,
        }
        return await self._c.run(from_traces_call(from_traces_body(name, fields)))

    async def list(self) -> builtins.list[DatasetOut]:
        """Every dataset of the project with its latest version."""
        return await self._c.collect(list_call())

    async def show(self, name: str) -> DatasetOut:
        """A dataset with every version."""
        return await self._c.run(show_call(name))

    async def samples(self, ref: str, *, limit: int | None = None) -> builtins.list[SampleOut]:
        """The samples of ``NAME`` (latest) or ``NAME@N``, all or the first ``limit``."""
        name, _ = parse_ref(ref)
        number = _version_of(await self.show(name), ref)
        out: builtins.list[SampleOut] = []
        cursor: str | None = None
        while limit is None or len(out) < limit:
            size = 500 if limit is None else min(500, limit - len(out))
            page = await self._c.run(samples_call(name, number, size, cursor))
            out.extend(SampleOut.model_validate(item) for item in page["data"])
            cursor = page["next_cursor"]
            if not cursor:
                break
        return out

    async def export(self, ref: str, *, format: ExportFormat = "jsonl") -> bytes:
        """``NAME`` (latest) or ``NAME@N`` as a JSONL or CSV file."""
        name, _ = parse_ref(ref)
        number = _version_of(await self.show(name), ref)
        path = f"{PATH}/{name}/versions/{number}/export"
        return await self._c.content(path, params={"format": format})

    async def split(
        self,
        name: str,
        ratios: dict[str, float],
        *,
        seed: int = 0,
        stratify_by: str | None = None,
        version: int | None = None,
    ) -> builtins.list[DatasetVersionOut]:
        """New datasets ``NAME-PART``, one per ratio (``{"train": 0.8, "test": 0.2}``)."""
        body = SplitIn(ratios=ratios, seed=seed, stratify_by=stratify_by, version=version)
        return await self._c.run(split_call(name, body))

    async def dedupe(
        self, name: str, *, near: bool = False, version: int | None = None
    ) -> DedupeOut:
        """A new version without duplicate inputs (``near``: also near-duplicates)."""
        return await self._c.run(dedupe_call(name, DedupeIn(near=near, version=version)))

    async def delete(self, name: str) -> None:
        """Delete a dataset; ``Conflict`` while an evaluation run uses it."""
        await self._c.run(delete_call(name))
