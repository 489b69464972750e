"""``client.reports``: model cards and deployment records, and evaluation run reports.

The server sends the report as JSON; Markdown and HTML are rendered here by the
same renderer the server uses, so every form holds exactly the same data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, overload
from urllib.parse import quote

from modelcycle.client.calls import API, Call
from modelcycle.reports import (
    DEFAULT_DAYS,
    EvalReport,
    ModelReport,
    ReportFormat,
    render_eval_report_html,
    render_html,
    render_markdown,
)

if TYPE_CHECKING:
    from modelcycle.client.asyncio import AsyncClient
    from modelcycle.client.sync import Client


def model_report_call(name: str, version: int | str, days: int) -> Call[ModelReport]:
    """``GET /api/v1/reports/models/{name}/versions/{version}?format=json``."""
    path = f"{API}/reports/models/{quote(name, safe='')}/versions/{quote(str(version), safe='')}"
    return Call("GET", path, ModelReport.model_validate, params={"format": "json", "days": days})


def eval_report_call(run_id: int) -> Call[EvalReport]:
    """``GET /api/v1/evals/{run_id}/report?format=json``."""
    path = f"{API}/evals/{int(run_id)}/report"
    return Call("GET", path, EvalReport.model_validate, params={"format": "json"})


def eval_as_format(report: EvalReport, form: Literal["html", "json"]) -> EvalReport | str:
    """The evaluation report itself for ``json``, else its standalone HTML page."""
    return render_eval_report_html(report) if form == "html" else report


def as_format(report: ModelReport, form: ReportFormat) -> ModelReport | str:
    """The report itself for ``json``, else its Markdown or HTML text."""
    if form == "md":
        return render_markdown(report)
    if form == "html":
        return render_html(report)
    return report


class Reports:
    """Model and evaluation reports of the key's project."""

    def __init__(self, client: Client):
        self._client = client

    @overload
    def model(
        self,
        name: str,
        version: int | str,
        *,
        format: Literal["json"] = "json",
        days: int = DEFAULT_DAYS,
    ) -> ModelReport: ...
    @overload
    def model(
        self,
        name: str,
        version: int | str,
        *,
        format: Literal["md", "html"],
        days: int = DEFAULT_DAYS,
    ) -> str: ...
    @overload
    def model(
        self,
        name: str,
        version: int | str,
        *,
        format: ReportFormat,
        days: int = DEFAULT_DAYS,
    ) -> ModelReport | str: ...
    def model(
        self,
        name: str,
        version: int | str,
        *,
        format: ReportFormat = "json",
        days: int = DEFAULT_DAYS,
    ) -> ModelReport | str:
        """The report of ``name@version`` (a number or an alias) over the last ``days``."""
        return as_format(self._client.run(model_report_call(name, version, days)), format)

    @overload
    def eval(self, run_id: int, *, format: Literal["json"] = "json") -> EvalReport: ...
    @overload
    def eval(self, run_id: int, *, format: Literal["html"]) -> str: ...
    def eval(self, run_id: int, *, format: Literal["html", "json"] = "json") -> EvalReport | str:
        """The report of evaluation run ``run_id``: the data, or its standalone HTML page."""
        return eval_as_format(self._client.run(eval_report_call(run_id)), format)


class AsyncReports:
    """Model and evaluation reports of the key's project (asyncio)."""

    def __init__(self, client: AsyncClient):
        self._client = client

    @overload
    async def model(
        self,
        name: str,
        version: int | str,
        *,
        format: Literal["json"] = "json",
        days: int = DEFAULT_DAYS,
    ) -> ModelReport: ...
    @overload
    async def model(
        self,
        name: str,
        version: int | str,
        *,
        format: Literal["md", "html"],
        days: int = DEFAULT_DAYS,
    ) -> str: ...
    @overload
    async def model(
        self,
        name: str,
        version: int | str,
        *,
        format: ReportFormat,
        days: int = DEFAULT_DAYS,
    ) -> ModelReport | str: ...
    async def model(
        self,
        name: str,
        version: int | str,
        *,
        format: ReportFormat = "json",
        days: int = DEFAULT_DAYS,
    ) -> ModelReport | str:
        """The report of ``name@version`` (a number or an alias) over the last ``days``."""
        report = await self._client.run(model_report_call(name, version, days))
        return as_format(report, format)

    @overload
    async def eval(self, run_id: int, *, format: Literal["json"] = "json") -> EvalReport: ...
    @overload
    async def eval(self, run_id: int, *, format: Literal["html"]) -> str: ...
    async def eval(
        self, run_id: int, *, format: Literal["html", "json"] = "json"
    ) -> EvalReport | str:
        """The report of evaluation run ``run_id``: the data, or its standalone HTML page."""
        return eval_as_format(await self._client.run(eval_report_call(run_id)), format)
