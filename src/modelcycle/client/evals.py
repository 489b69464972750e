"""``client.evals``: start evaluation runs, wait for them, read results, check gates, reports.

A run executes on the server's worker; ``create`` returns at once with the run
queued, and ``wait`` polls until it has succeeded, failed or been cancelled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, overload

import orjson
from pydantic import BaseModel

from modelcycle.client.calls import API, Call
from modelcycle.evaluate.schemas import (
    EvalResult,
    EvalRun,
    EvalRunCreate,
    GateVerdict,
    RunKind,
    RunStatus,
    ScorerSpec,
)
from modelcycle.store import Page

if TYPE_CHECKING:
    from modelcycle.client.asyncio import AsyncClient
    from modelcycle.client.sync import Client

TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
"""The states a run never leaves."""

ReportFormat = Literal["html", "json"]
ScorerArg = str | ScorerSpec | Mapping[str, Any]
"""A scorer: its name, a ``ScorerSpec``, or ``{"name": ..., "options": {...}}``."""
ProgressCallback = Callable[[EvalRun], object]


class GateReport(BaseModel):
    """Each gate's verdict on each candidate, and whether every one held."""

    gates: list[GateVerdict]
    passed: bool


def _run_path(run_id: int) -> str:
    return f"{API}/evals/{int(run_id)}"


def _scorer(value: ScorerArg) -> ScorerSpec:
    if isinstance(value, ScorerSpec):
        return value
    if isinstance(value, str):
        return ScorerSpec(name=value)
    return ScorerSpec.model_validate(dict(value))


def create_body(
    dataset: str,
    targets: Sequence[str],
    scorers: Sequence[ScorerArg],
    fields: Mapping[str, Any],
) -> EvalRunCreate:
    """The request, validated here so that a typo fails before any request is sent."""
    values = {key: value for key, value in fields.items() if value is not None}
    return EvalRunCreate.model_validate(
        {
            **values,
            "dataset": dataset,
            "targets": list(targets),
            "scorers": [_scorer(scorer) for scorer in scorers],
        }
    )


def create_call(body: EvalRunCreate) -> Call[EvalRun]:
    """``POST /api/v1/evals``."""
    json = body.model_dump(mode="json", exclude_unset=True)
    return Call("POST", f"{API}/evals", EvalRun.model_validate, json=json)


def get_call(run_id: int) -> Call[EvalRun]:
    """``GET /api/v1/evals/{run_id}``."""
    return Call("GET", _run_path(run_id), EvalRun.model_validate)


def _page(item: type[EvalRun] | type[EvalResult]) -> Callable[[Any], Page[Any]]:
    def parse(body: Any) -> Page[Any]:
        return Page(
            items=[item.model_validate(found) for found in body["data"]],
            next_cursor=body["next_cursor"],
        )

    return parse


def list_call(
    limit: int, cursor: str | None, kind: RunKind | None, status: RunStatus | None
) -> Call[Page[EvalRun]]:
    """``GET /api/v1/evals``: one page, newest first."""
    params = {"limit": limit, "cursor": cursor, "kind": kind, "status": status}
    return Call(
        "GET",
        f"{API}/evals",
        _page(EvalRun),
        params={key: value for key, value in params.items() if value is not None},
    )


def results_call(
    run_id: int, target: str | None, limit: int, cursor: str | None
) -> Call[Page[EvalResult]]:
    """``GET /api/v1/evals/{run_id}/results``: one page in sample order."""
    params = {"target": target, "limit": limit, "cursor": cursor}
    return Call(
        "GET",
        f"{_run_path(run_id)}/results",
        _page(EvalResult),
        params={key: value for key, value in params.items() if value is not None},
    )


def cancel_call(run_id: int) -> Call[EvalRun]:
    """``POST /api/v1/evals/{run_id}/cancel``."""
    return Call("POST", f"{_run_path(run_id)}/cancel", EvalRun.model_validate)


def gates_call(run_id: int, gates: Sequence[str]) -> Call[GateReport]:
    """``POST /api/v1/evals/{run_id}/gates``."""
    return Call(
        "POST",
        f"{_run_path(run_id)}/gates",
        GateReport.model_validate,
        json={"gates": list(gates)},
    )


def report_path(run_id: int) -> str:
    """``GET /api/v1/evals/{run_id}/report`` (``?format=html`` or ``json``)."""
    return f"{_run_path(run_id)}/report"


def _report_value(content: bytes, format: ReportFormat) -> bytes | dict[str, Any]:
    if format == "html":
        return content
    parsed: dict[str, Any] = orjson.loads(content)
    return parsed


def _check_wait(run_id: int, poll_s: float, timeout_s: float | None) -> float | None:
    if poll_s <= 0:
        raise ValueError("poll_s must be positive")
    return None if timeout_s is None else time.monotonic() + timeout_s


def _timed_out(run: EvalRun, deadline: float | None, timeout_s: float | None) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise TimeoutError(
            f"eval run {run.id} is still {run.status} ({run.progress:.0%}) after {timeout_s}s; "
            "it keeps running on the server"
        )


class Evals:
    """Evaluation runs of the project (maintainers start and cancel, viewers read)."""

    def __init__(self, client: Client):
        self._c = client

    def create(
        self,
        dataset: str,
        targets: Sequence[str],
        scorers: Sequence[ScorerArg],
        *,
        baseline: str | None = None,
        gates: Sequence[str] = (),
        name: str | None = None,
        concurrency: int | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        limit: int | None = None,
    ) -> EvalRun:
        """Queue a run of ``targets`` on ``dataset`` (``NAME`` or ``NAME@VERSION``).

        ``scorers``: names, or ``{"name": "regex", "options": {"pattern": "^[0-9]+$"}}``.
        ``gates``: e.g. ``["exact_match>=0.8"]``. Returns the queued run; see ``wait``.
        """
        fields = {
            "baseline": baseline,
            "gates": list(gates) or None,
            "name": name,
            "concurrency": concurrency,
            "temperature": temperature,
            "max_tokens": max_tokens,
            "seed": seed,
            "limit": limit,
        }
        return self._c.run(create_call(create_body(dataset, targets, scorers, fields)))

    def get(self, run_id: int) -> EvalRun:
        """One run: state, progress and, once finished, its summary."""
        return self._c.run(get_call(run_id))

    def list(
        self,
        *,
        kind: RunKind | None = None,
        status: RunStatus | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[EvalRun]:
        """One page of runs, newest first; pass its ``next_cursor`` for the next."""
        return self._c.run(list_call(limit, cursor, kind, status))

    def results(
        self, run_id: int, *, target: str | None = None, page_size: int = 100
    ) -> Iterator[EvalResult]:
        """Every result of a run in sample order (fetched a page at a time, as iterated)."""
        cursor: str | None = None
        while True:
            page = self._c.run(results_call(run_id, target, page_size, cursor))
            yield from page.items
            cursor = page.next_cursor
            if not cursor:
                return

    def cancel(self, run_id: int) -> EvalRun:
        """Cancel a queued or running run; ``Conflict`` when it has already finished."""
        return self._c.run(cancel_call(run_id))

    def gates(self, run_id: int, gates: Sequence[str]) -> GateReport:
        """Evaluate gates against a finished run's scores (the run is not changed)."""
        return self._c.run(gates_call(run_id, gates))

    @overload
    def report(self, run_id: int, format: Literal["html"] = "html") -> bytes: ...
    @overload
    def report(self, run_id: int, format: Literal["json"]) -> dict[str, Any]: ...
    def report(self, run_id: int, format: ReportFormat = "html") -> bytes | dict[str, Any]:
        """The run's report: the HTML page's bytes, or the JSON report as a dict."""
        content = self._c.content(report_path(run_id), params={"format": format})
        return _report_value(content, format)

    def wait(
        self,
        run_id: int,
        *,
        poll_s: float = 1.0,
        timeout_s: float | None = 3600.0,
        on_progress: ProgressCallback | None = None,
    ) -> EvalRun:
        """Poll until the run has ended; ``on_progress(run)`` sees every poll.

        ``TimeoutError`` after ``timeout_s`` (``None``: wait for ever); the run goes on.
        """
        deadline = _check_wait(run_id, poll_s, timeout_s)
        while True:
            run = self.get(run_id)
            if on_progress is not None:
                on_progress(run)
            if run.status in TERMINAL:
                return run
            _timed_out(run, deadline, timeout_s)
            time.sleep(poll_s)


class AsyncEvals:
    """Evaluation runs of the project (maintainers start and cancel, viewers read)."""

    def __init__(self, client: AsyncClient):
        self._c = client

    async def create(
        self,
        dataset: str,
        targets: Sequence[str],
        scorers: Sequence[ScorerArg],
        *,
        baseline: str | None = None,
        gates: Sequence[str] = (),
        name: str | None = None,
        concurrency: int | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        limit: int | None = None,
    ) -> EvalRun:
        """Queue a run of ``targets`` on ``dataset`` (``NAME`` or ``NAME@VERSION``)."""
        fields = {
            "baseline": baseline,
            "gates": list(gates) or None,
            "name": name,
            "concurrency": concurrency,
            "temperature": temperature,
            "max_tokens": max_tokens,
            "seed": seed,
            "limit": limit,
        }
        return await self._c.run(create_call(create_body(dataset, targets, scorers, fields)))

    async def get(self, run_id: int) -> EvalRun:
        """One run: state, progress and, once finished, its summary."""
        return await self._c.run(get_call(run_id))

    async def list(
        self,
        *,
        kind: RunKind | None = None,
        status: RunStatus | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[EvalRun]:
        """One page of runs, newest first; pass its ``next_cursor`` for the next."""
        return await self._c.run(list_call(limit, cursor, kind, status))

    async def results(
        self, run_id: int, *, target: str | None = None, page_size: int = 100
    ) -> AsyncIterator[EvalResult]:
        """Every result of a run in sample order (fetched a page at a time, as iterated)."""
        cursor: str | None = None
        while True:
            page = await self._c.run(results_call(run_id, target, page_size, cursor))
            for result in page.items:
                yield result
            cursor = page.next_cursor
            if not cursor:
                return

    async def cancel(self, run_id: int) -> EvalRun:
        """Cancel a queued or running run; ``Conflict`` when it has already finished."""
        return await self._c.run(cancel_call(run_id))

    async def gates(self, run_id: int, gates: Sequence[str]) -> GateReport:
        """Evaluate gates against a finished run's scores (the run is not changed)."""
        return await self._c.run(gates_call(run_id, gates))

    @overload
    async def report(self, run_id: int, format: Literal["html"] = "html") -> bytes: ...
    @overload
    async def report(self, run_id: int, format: Literal["json"]) -> dict[str, Any]: ...
    async def report(self, run_id: int, format: ReportFormat = "html") -> bytes | dict[str, Any]:
        """The run's report: the HTML page's bytes, or the JSON report as a dict."""
        content = await self._c.content(report_path(run_id), params={"format": format})
        return _report_value(content, format)

    async def wait(
        self,
        run_id: int,
        *,
        poll_s: float = 1.0,
        timeout_s: float | None = 3600.0,
        on_progress: ProgressCallback | None = None,
    ) -> EvalRun:
        """Poll until the run has ended; ``on_progress(run)`` sees every poll."""
        deadline = _check_wait(run_id, poll_s, timeout_s)
        while True:
            run = await self.get(run_id)
            if on_progress is not None:
                on_progress(run)
            if run.status in TERMINAL:
                return run
            _timed_out(run, deadline, timeout_s)
            await asyncio.sleep(poll_s)
