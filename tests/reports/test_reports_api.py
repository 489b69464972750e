"""GET /api/v1/reports/models/{name}/versions/{ref} in each format, and the SDK over it."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from modelcycle.client import AsyncClient
from modelcycle.reports import ModelReport
from modelcycle.testing import KeyPair
from reports.conftest import MODEL, SCRIPT, Story

REPORT = f"/api/v1/reports/models/{MODEL}/versions"


async def test_markdown_is_the_default(story: Story, modelcycle_api: httpx.AsyncClient) -> None:
    response = await modelcycle_api.get(f"{REPORT}/2")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/markdown; charset=utf-8"
    assert response.text.startswith(f"# Model report: {MODEL}@2\n")
    assert "## Compliance map" in response.text


async def test_html_is_a_standalone_escaped_page(
    story: Story, modelcycle_api: httpx.AsyncClient
) -> None:
    response = await modelcycle_api.get(f"{REPORT}/production", params={"format": "html"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    page = response.text
    assert page.startswith("<!DOCTYPE html>")
    assert "<style>" in page
    assert "<link" not in page
    assert "<script" not in page.lower()
    assert SCRIPT not in page


async def test_json_is_the_gathered_data(story: Story, modelcycle_api: httpx.AsyncClient) -> None:
    response = await modelcycle_api.get(f"{REPORT}/2", params={"format": "json", "days": 7})
    assert response.headers["content-type"] == "application/json"
    report = ModelReport.model_validate(response.json())
    assert report.monitoring.days == 7
    assert report.identity.aliases == ["production"]
    assert report.deployments[0].name == "support"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (f"{REPORT}/9", "no version 9"),
        (f"{REPORT}/staging", "no version or alias 'staging'"),
        ("/api/v1/reports/models/nobody/versions/1", "model 'nobody' not found"),
    ],
)
async def test_unknown_versions_are_404(
    story: Story, modelcycle_api: httpx.AsyncClient, path: str, message: str
) -> None:
    response = await modelcycle_api.get(path, params={"format": "html"})
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"
    assert message in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "params", [{"format": "pdf"}, {"days": 0}, {"days": "many"}], ids=["format", "zero", "text"]
)
async def test_bad_query_is_400_naming_it(
    story: Story, modelcycle_api: httpx.AsyncClient, params: dict[str, object]
) -> None:
    response = await modelcycle_api.get(f"{REPORT}/2", params=params)
    assert 400 <= response.status_code < 500
    assert next(iter(params)) in response.text


async def test_async_sdk_renders_each_form(
    story: Story, modelcycle_app: FastAPI, modelcycle_admin: KeyPair
) -> None:
    transport = httpx.ASGITransport(app=modelcycle_app)
    async with httpx.AsyncClient(transport=transport) as http:
        client = AsyncClient("http://modelcycle.test", modelcycle_admin.key, http_client=http)
        report = await client.reports.model(MODEL, "production")
        markdown = await client.reports.model(MODEL, 2, format="md")
        page = await client.reports.model(MODEL, 2, format="html", days=3)
    assert isinstance(report, ModelReport)
    assert report.identity.version == 2
    assert markdown.startswith(f"# Model report: {MODEL}@2")
    assert "last 3 days" in page
