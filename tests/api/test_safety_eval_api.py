"""Safety evaluations through the API: start red-team and bias runs, read their reports,
and find them in the model card of the version that answered."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from evaluate.safety_backend import ScriptedKind
from modelcycle.api import create_app
from modelcycle.deploy import DeploymentSpec, Route
from modelcycle.services import Services, build_worker
from modelcycle.settings import Settings
from modelcycle.testing import KeyPair, admin_of, make_key, make_services, register
from modelcycle.types import Role


@pytest.fixture
def services(modelcycle_settings: Settings) -> Iterator[Services]:
    """``bot@1`` refuses anything about Morocco; deployment ``fair`` serves ``fair@1``."""
    built = make_services(modelcycle_settings, plugins=(ScriptedKind(),))
    admin = admin_of(built).principal
    register(built, admin, "bot", source="ray://x?refuse=Morocco&refuse=Marruecos", backend="ray")
    register(built, admin, "fair", source="ray://x", backend="ray")
    built.deployments.create(
        admin, DeploymentSpec(name="fair", routes=[Route(target="fair@1", weight=100)])
    )
    yield built
    built.close()


@pytest.fixture
def admin(services: Services) -> KeyPair:
    return admin_of(services)


@pytest.fixture
async def api(services: Services, admin: KeyPair) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(services)),
        base_url="http://modelcycle.test",
        headers={"Authorization": f"Bearer {admin.key}"},
        timeout=120,
    ) as client:
        yield client
    await services.gateway.aclose()


def run_jobs(services: Services) -> None:
    worker = build_worker(services, run_schedules=False)
    while worker.run_once():
        pass


async def start(api: httpx.AsyncClient, kind: str, target: str) -> dict[str, Any]:
    response = await api.post(f"/api/v1/evals/{kind}", json={"target": target})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_redteam_run_reports_the_pass_rate_per_category(
    api: httpx.AsyncClient, services: Services
) -> None:
    run = await start(api, "redteam", "bot@1")
    assert (run["kind"], run["dataset"], run["status"]) == (
        "redteam",
        "redteam-builtin@1",
        "queued",
    )
    run_jobs(services)

    report = (await api.get(f"/api/v1/evals/{run['id']}/redteam")).json()
    rates = {rate["category"]: rate for rate in report["categories"]}
    # The bot answers every attack with the same friendly text: it leaks nothing and refuses none.
    assert (rates["harmful"]["rate"], rates["jailbreak"]["rate"]) == (0.0, 0.0)
    assert (rates["pii_exfiltration"]["rate"], rates["prompt_injection"]["rate"]) == (1.0, 1.0)
    assert (rates["all"]["n"], rates["all"]["passed"]) == (160, 80)
    assert 0.4 < rates["all"]["low"] < 0.5 < rates["all"]["high"] < 0.6
    finished = (await api.get(f"/api/v1/evals/{run['id']}")).json()
    assert set(finished["summary"]["by_category"]) == set(rates) - {"all"}

    again = await start(api, "redteam", "fair")
    assert again["dataset"] == "redteam-builtin@1"  # the same content is not stored twice


async def test_a_bias_run_flags_the_group_the_target_refuses(
    api: httpx.AsyncClient, services: Services, admin: KeyPair
) -> None:
    run = await start(api, "bias", "bot@1")
    early = await api.get(f"/api/v1/evals/{run['id']}/bias")
    assert early.status_code == 409
    run_jobs(services)

    report = (await api.get(f"/api/v1/evals/{run['id']}/bias")).json()
    flagged = {
        (c["group_a"], c["group_b"], c["metric"]) for c in report["comparisons"] if c["flagged"]
    }
    assert ("morocco", "spain", "refusal") in flagged
    assert {c["attribute"] for c in report["comparisons"] if c["flagged"]} == {"nationality"}
    assert report["target"] == "bot@1"

    redteam = await start(api, "redteam", "bot@1")
    run_jobs(services)
    card = services.reports.gather(admin.principal, "bot", "1")
    titles = {section.title: section for section in card.evaluations}
    assert "Red-team evaluation" in titles
    assert f"Red-team run {redteam['id']}" in titles["Red-team evaluation"].markdown
    assert "| harmful | 0.0% |" in titles["Red-team evaluation"].markdown
    bias = titles["Bias and fairness probes"].markdown
    assert f"Bias run {run['id']}" in bias
    assert "morocco vs spain | refusal" in bias
    assert "LLM01" in titles["Red-team evaluation"].covers
    # The fair version answered none of these runs: its card holds no such section.
    other = services.reports.gather(admin.principal, "fair", "1")
    assert [s.title for s in other.evaluations if "Red-team" in s.title or "Bias" in s.title] == []


async def test_bad_targets_and_wrong_runs_are_clear_errors(
    api: httpx.AsyncClient, services: Services
) -> None:
    missing = await api.post("/api/v1/evals/redteam", json={"target": "nope"})
    assert missing.status_code == 404
    assert "nope" in missing.json()["error"]["message"]
    bad_version = await api.post("/api/v1/evals/bias", json={"target": "bot@9"})
    assert bad_version.status_code in (400, 404)
    empty = await api.post("/api/v1/evals/bias", json={"target": ""})
    assert empty.status_code == 400
    listed = (await api.get("/api/v1/datasets")).json()
    assert listed["data"] == []  # a refused request wrote nothing

    run = await start(api, "redteam", "fair")
    run_jobs(services)
    wrong = await api.get(f"/api/v1/evals/{run['id']}/bias")
    assert wrong.status_code == 400
    assert "redteam run" in wrong.json()["error"]["message"]
    absent = await api.get("/api/v1/evals/999999/redteam")
    assert absent.status_code == 404
    viewer = make_key(services, Role.VIEWER)
    refused = await api.post(
        "/api/v1/evals/redteam",
        json={"target": "fair"},
        headers={"Authorization": f"Bearer {viewer.key}"},
    )
    assert refused.status_code == 403
