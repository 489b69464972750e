"""``/api/v1/evals``: start a run, let the worker execute it, read it, its results and gates.

Two mock versions answer the same questions: ``good`` echoes the question (the
expected answer), ``bad`` always says "nope", so every number below is known.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from api.conftest import ClientFactory
from modelcycle.access import Principal
from modelcycle.evaluate.samples import SampleIn, write_version
from modelcycle.services import Services, build_worker
from modelcycle.testing import KeyPair, make_key, register
from modelcycle.types import Role

SAMPLES = 10
QUESTIONS = [f"question {i}" for i in range(SAMPLES)]
REGRESSION_GATE = "delta(exact_match)>=0 p<0.05"


def write_dataset(services: Services, principal: Principal, name: str = "qa") -> None:
    """A dataset whose expected answer is each question itself."""
    samples = [
        SampleIn({"messages": [{"role": "user", "content": q}]}, expected=q) for q in QUESTIONS
    ]
    with services.store.write() as session:
        write_version(
            session, principal.project_id, name, samples, source="test", actor=principal.key_name
        )


@pytest.fixture
def admin(
    client_for: ClientFactory, modelcycle_services: Services, modelcycle_admin: KeyPair
) -> httpx.AsyncClient:
    principal = modelcycle_admin.principal
    write_dataset(modelcycle_services, principal)
    register(modelcycle_services, principal, "good", source="mock://echo")
    register(modelcycle_services, principal, "bad", source="mock://script?reply=nope")
    return client_for(modelcycle_admin.key)


def run_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "dataset": "qa",
        "targets": ["good@1", "bad@1"],
        "scorers": [{"name": "exact_match"}],
        "gates": [REGRESSION_GATE],
    }
    body.update(overrides)
    return body


async def create_run(api: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    response = await api.post("/api/v1/evals", json=run_body(**overrides))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def run_worker(services: Services) -> None:
    """Run every queued job, as ``modelcycle worker`` would (off the event loop)."""

    def drain() -> None:
        worker = build_worker(services, run_schedules=False)
        while worker.run_once():
            pass

    await asyncio.to_thread(drain)


async def finished_run(api: httpx.AsyncClient, services: Services, **overrides: Any) -> int:
    created = await create_run(api, **overrides)
    await run_worker(services)
    run_id: int = created["id"]
    return run_id


def assert_error(response: httpx.Response, status: int, *fragments: str) -> None:
    assert response.status_code == status, response.text
    message = response.json()["error"]["message"]
    for fragment in fragments:
        assert fragment in message


async def test_a_run_is_queued_then_executed_by_the_worker_with_a_paired_comparison(
    admin: httpx.AsyncClient, modelcycle_services: Services
) -> None:
    created = await create_run(admin, name="nightly")

    await run_worker(modelcycle_services)
    response = await admin.get(f"/api/v1/evals/{created['id']}")

    assert created["status"] == "queued"
    assert created["job_id"] is not None
    assert created["dataset"] == "qa@1"
    assert (created["name"], created["kind"]) == ("nightly", "eval")
    assert response.status_code == 200
    run = response.json()
    assert run["status"] == "succeeded", run["error"]
    assert run["progress"] == 1.0
    summary = run["summary"]
    assert summary["samples"] == SAMPLES
    assert summary["baseline"] == "good@1"
    means = {t["target"]: t["aggregates"][0]["estimate"] for t in summary["targets"]}
    assert means == {"good@1": 1.0, "bad@1": 0.0}
    good = next(t for t in summary["targets"] if t["target"] == "good@1")["aggregates"][0]
    assert good["n"] == SAMPLES
    assert good["low"] is not None
    assert good["low"] < 1.0 <= good["high"]
    [comparison] = summary["comparisons"]
    assert (comparison["candidate"], comparison["difference"]) == ("bad@1", -1.0)
    assert (comparison["wins"], comparison["ties"], comparison["losses"]) == (0, 0, SAMPLES)
    assert comparison["p_value"] < 0.01
    [verdict] = summary["gates"]
    assert (verdict["gate"], verdict["target"], verdict["passed"]) == (
        REGRESSION_GATE,
        "bad@1",
        False,
    )
    assert run["gates_passed"] is False
    assert summary["gates_passed"] is False


async def test_results_are_paged_in_sample_order_and_filtered_by_target(
    admin: httpx.AsyncClient, modelcycle_services: Services
) -> None:
    run_id = await finished_run(admin, modelcycle_services)

    first = await admin.get(
        f"/api/v1/evals/{run_id}/results", params={"target": "bad@1", "limit": 4}
    )
    seen = list(first.json()["data"])
    cursor = first.json()["next_cursor"]
    while cursor:
        page = await admin.get(
            f"/api/v1/evals/{run_id}/results",
            params={"target": "bad@1", "limit": 4, "cursor": cursor},
        )
        seen.extend(page.json()["data"])
        cursor = page.json()["next_cursor"]
    everything = await admin.get(f"/api/v1/evals/{run_id}/results", params={"limit": 500})

    assert first.status_code == 200
    assert len(first.json()["data"]) == 4
    assert [r["position"] for r in seen] == list(range(SAMPLES))
    assert {r["target"] for r in seen} == {"bad@1"}
    assert {r["output"] for r in seen} == {"nope"}
    assert {r["scores"]["exact_match"]["value"] for r in seen} == {0.0}
    assert seen[3]["expected"] == QUESTIONS[3]
    assert seen[3]["input"]["messages"][0]["content"] == QUESTIONS[3]
    assert len(everything.json()["data"]) == 2 * SAMPLES


async def test_runs_are_listed_newest_first_and_filtered_by_status(
    admin: httpx.AsyncClient, modelcycle_services: Services
) -> None:
    done = await finished_run(admin, modelcycle_services)
    queued = (await create_run(admin))["id"]

    everything = await admin.get("/api/v1/evals")
    succeeded = await admin.get("/api/v1/evals", params={"status": "succeeded"})
    one = await admin.get("/api/v1/evals", params={"limit": 1})
    second = await admin.get(
        "/api/v1/evals", params={"limit": 1, "cursor": one.json()["next_cursor"]}
    )
    redteam = await admin.get("/api/v1/evals", params={"kind": "redteam"})
    bad_status = await admin.get("/api/v1/evals", params={"status": "sleeping"})

    assert [r["id"] for r in everything.json()["data"]] == [queued, done]
    assert [r["id"] for r in succeeded.json()["data"]] == [done]
    assert [r["id"] for r in one.json()["data"]] == [queued]
    assert [r["id"] for r in second.json()["data"]] == [done]
    assert redteam.json() == {"data": [], "next_cursor": None}
    assert_error(bad_status, 400, "status")


async def test_gates_are_checked_against_a_finished_run_without_changing_it(
    admin: httpx.AsyncClient, modelcycle_services: Services
) -> None:
    run_id = await finished_run(admin, modelcycle_services, gates=[])

    passing = await admin.post(
        f"/api/v1/evals/{run_id}/gates",
        json={"gates": ["delta(exact_match)>=-1", "pass_rate(exact_match)>=0%"]},
    )
    failing = await admin.post(f"/api/v1/evals/{run_id}/gates", json={"gates": [REGRESSION_GATE]})
    malformed = await admin.post(f"/api/v1/evals/{run_id}/gates", json={"gates": ["exact_match>"]})
    unknown_metric = await admin.post(
        f"/api/v1/evals/{run_id}/gates", json={"gates": ["rouge_l>=0.5"]}
    )
    empty = await admin.post(f"/api/v1/evals/{run_id}/gates", json={"gates": []})
    after = await admin.get(f"/api/v1/evals/{run_id}")

    assert passing.status_code == 200, passing.text
    assert passing.json()["passed"] is True
    assert all(v["passed"] for v in passing.json()["gates"])
    assert failing.status_code == 200
    assert failing.json()["passed"] is False
    [verdict] = [v for v in failing.json()["gates"] if not v["passed"]]
    assert verdict["target"] == "bad@1"
    assert verdict["p_value"] < 0.05
    assert "exact_match" in verdict["reason"]
    assert_error(malformed, 400, "exact_match>")
    assert_error(unknown_metric, 400, "rouge_l")
    assert_error(empty, 400, "gates")
    assert after.json()["gates"] == []
    assert after.json()["gates_passed"] is None


async def test_a_queued_run_is_cancelled_and_the_worker_leaves_it_so(
    admin: httpx.AsyncClient, modelcycle_services: Services
) -> None:
    created = await create_run(admin)

    cancelled = await admin.post(f"/api/v1/evals/{created['id']}/cancel")
    await run_worker(modelcycle_services)
    after = await admin.get(f"/api/v1/evals/{created['id']}")
    results = await admin.get(f"/api/v1/evals/{created['id']}/results")
    again = await admin.post(f"/api/v1/evals/{created['id']}/cancel")

    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert after.json()["status"] == "cancelled"
    assert after.json()["summary"] is None
    assert results.json()["data"] == []
    assert_error(again, 409, "already cancelled")


@pytest.mark.parametrize(
    ("overrides", "status", "fragments"),
    [
        ({"scorers": [{"name": "telepathy"}]}, 400, ("unknown scorer 'telepathy'", "exact_match")),
        ({"scorers": [{"name": "regex", "options": {"pattern": "("}}]}, 400, ("regex",)),
        ({"gates": ["exact_match>>0.8"]}, 400, ("exact_match>>0.8",)),
        ({"dataset": "ghost"}, 404, ("dataset 'ghost' not found",)),
        ({"dataset": "qa@7"}, 404, ("dataset 'qa' has no version 7",)),
        ({"dataset": "qa@x"}, 400, ("qa@x", "NAME@VERSION")),
        ({"targets": []}, 400, ("targets",)),
        ({"scorers": []}, 400, ("scorers",)),
        ({"concurrency": 0}, 400, ("concurrency",)),
        ({"colour": "red"}, 400, ("colour",)),
    ],
)
async def test_bad_requests_are_4xx_json_errors_and_create_nothing(
    admin: httpx.AsyncClient,
    overrides: dict[str, Any],
    status: int,
    fragments: tuple[str, ...],
) -> None:
    response = await admin.post("/api/v1/evals", json=run_body(**overrides))
    listed = await admin.get("/api/v1/evals")

    assert_error(response, status, *fragments)
    assert listed.json()["data"] == []


async def test_missing_runs_and_word_paths_are_404s_not_validation_errors(
    admin: httpx.AsyncClient,
) -> None:
    missing = await admin.get("/api/v1/evals/4242")
    missing_results = await admin.get("/api/v1/evals/4242/results")
    # Sub-paths named by words (online evaluation, reports) never reach the run routes.
    word = await admin.get("/api/v1/evals/nightly")
    word_cancel = await admin.post("/api/v1/evals/online/cancel")

    assert_error(missing, 404, "4242")
    assert_error(missing_results, 404, "4242")
    assert word.status_code == 404
    assert word_cancel.status_code in (404, 405)


async def test_a_viewer_reads_runs_but_may_not_start_or_cancel_them(
    admin: httpx.AsyncClient, client_for: ClientFactory, modelcycle_services: Services
) -> None:
    run_id = await finished_run(admin, modelcycle_services)
    viewer = client_for(make_key(modelcycle_services, Role.VIEWER).key)

    shown = await viewer.get(f"/api/v1/evals/{run_id}")
    gates = await viewer.post(f"/api/v1/evals/{run_id}/gates", json={"gates": ["exact_match>=0"]})
    created = await viewer.post("/api/v1/evals", json=run_body())
    cancelled = await viewer.post(f"/api/v1/evals/{run_id}/cancel")

    assert shown.json()["status"] == "succeeded"
    assert gates.json()["passed"] is True
    assert_error(created, 403)
    assert_error(cancelled, 403)


async def test_the_openapi_document_describes_every_route_with_its_model(
    admin: httpx.AsyncClient,
) -> None:
    paths = (await admin.get("/openapi.json")).json()["paths"]

    def schema(path: str, method: str, status: str = "200") -> str:
        content = paths[path][method]["responses"][status]["content"]["application/json"]
        return str(content["schema"])

    assert "EvalRun" in schema("/api/v1/evals", "post", "201")
    assert "EvalRunCreate" in str(paths["/api/v1/evals"]["post"]["requestBody"])
    assert "PageOut_EvalRun_" in schema("/api/v1/evals", "get")
    assert "EvalRun" in schema("/api/v1/evals/{run_id}", "get")
    assert "PageOut_EvalResult_" in schema("/api/v1/evals/{run_id}/results", "get")
    assert "EvalRun" in schema("/api/v1/evals/{run_id}/cancel", "post")
    assert "GateReport" in schema("/api/v1/evals/{run_id}/gates", "post")
