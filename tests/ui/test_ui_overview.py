"""The overview: each deployment's health from its traces, alerts, recent changes."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta

from modelcycle.deploy.schemas import DeploymentSpec, Route
from modelcycle.monitor.spans import SpanRecord
from modelcycle.services import Services
from modelcycle.testing import KeyPair, make_key, register
from modelcycle.types import Role
from monitor.trace_factory import NOW, llm_span
from ui.conftest import page_client


def _row(html: str, deployment: str) -> str:
    pattern = rf'<th scope="row"><a href="/deployments/{deployment}">.*?</tr>'
    found = re.search(pattern, html, re.S)
    assert found, f"no row for {deployment}"
    return found.group(0)


def _recent(span: SpanRecord) -> SpanRecord:
    """trace_factory dates spans before its fixed NOW; the overview looks before real now."""
    shift = datetime.now(UTC) - NOW
    return dataclasses.replace(
        span, start_time=span.start_time + shift, end_time=span.end_time + shift
    )


def seed(services: Services, admin: KeyPair) -> None:
    """Three deployments: chat (90 fine calls), search (half failing), quiet (none)."""
    register(services, admin.principal, "bot")
    for name in ("chat", "search", "quiet"):
        spec = DeploymentSpec(name=name, routes=[Route(target="bot@1", weight=100)])
        services.deployments.create(admin.principal, spec)
    pid = admin.principal.project_id
    spans = [
        llm_span(pid, deployment="chat", latency_ms=200.0, ago=timedelta(minutes=1 + i % 50))
        for i in range(90)
    ]
    spans += [
        llm_span(
            pid,
            deployment="search",
            status="error" if i % 2 else "ok",
            ago=timedelta(minutes=1 + i),
        )
        for i in range(10)
    ]
    services.recorder.writer.write([_recent(span) for span in spans])


def test_the_overview_shows_each_deployments_health_from_its_traces(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    seed(modelcycle_services, modelcycle_admin)
    viewer = make_key(modelcycle_services, Role.VIEWER)
    page = page_client(modelcycle_services, viewer.key).get("/?range=6h")
    assert page.status_code == 200
    chat = _row(page.text, "chat")
    assert '<span class="badge ok">ok</span>' in chat
    assert '<td class="num">90</td>' in chat
    assert "0.0%" in chat
    search = _row(page.text, "search")
    assert '<span class="badge failing">failing</span>' in search
    assert "50.0%" in search
    quiet = _row(page.text, "quiet")
    assert '<span class="badge idle">idle</span>' in quiet
    # one line per busy deployment in the traffic chart, and the changes that made them
    assert page.text.count('class="line s') >= 2
    assert "revision 1: create" in page.text


def test_a_range_that_excludes_the_traffic_shows_every_deployment_idle(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    seed(modelcycle_services, modelcycle_admin)
    client = page_client(modelcycle_services, modelcycle_admin.key)
    # the spans are at most 51 minutes old: all of them are in the last hour
    assert '<span class="badge idle">' not in _row(client.get("/?range=1h").text, "chat")
    unknown = client.get("/?range=forever")  # a page falls back to its default range
    assert unknown.status_code == 200
    assert 'value="24h" selected' in unknown.text


def test_an_empty_project_gets_a_hint_not_an_error(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    page = page_client(modelcycle_services, modelcycle_admin.key).get("/")
    assert page.status_code == 200
    assert "No deployments yet" in page.text
    assert "No alert is firing." in page.text
