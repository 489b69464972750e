"""The jobs API and SDK: list, read, follow events, cancel; projects see only their own."""

from __future__ import annotations

import httpx
import pytest

from e2e.live import LiveServer
from modelcycle import AsyncClient, Client
from modelcycle.errors import Conflict, NotFound
from modelcycle.jobs import JobState
from modelcycle.services import Services
from modelcycle.testing import KeyPair, make_key, make_project
from modelcycle.types import Role


def _job(services: Services, project_id: int | None, kind: str = "demo.work") -> int:
    return services.jobs.enqueue(kind, {"note": "n"}, project_id=project_id, actor="test").id


async def test_a_project_lists_its_jobs_and_the_root_project_also_the_platforms(
    modelcycle_services: Services, modelcycle_api: httpx.AsyncClient, modelcycle_admin: KeyPair
) -> None:
    mine = _job(modelcycle_services, modelcycle_admin.principal.project_id)
    platform = _job(modelcycle_services, None, kind="platform.work")
    other = make_key(modelcycle_services, Role.VIEWER, make_project(modelcycle_services, "team"))
    theirs = _job(modelcycle_services, other.principal.project_id)

    root_view = await modelcycle_api.get("/api/v1/jobs", params={"limit": 500})
    team_view = await modelcycle_api.get(
        "/api/v1/jobs", headers={"Authorization": f"Bearer {other.key}"}
    )
    filtered = await modelcycle_api.get("/api/v1/jobs", params={"kind": "demo.work"})

    root_ids = [job["id"] for job in root_view.json()["data"]]
    assert mine in root_ids
    assert platform in root_ids
    assert theirs not in root_ids
    assert [job["id"] for job in team_view.json()["data"]] == [theirs]
    assert [job["id"] for job in filtered.json()["data"]] == [mine]
    hidden = await modelcycle_api.get(f"/api/v1/jobs/{theirs}")
    missing = await modelcycle_api.get("/api/v1/jobs/999999")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error"]["message"].replace(str(theirs), "N") == missing.json()["error"][
        "message"
    ].replace("999999", "N")


async def test_events_are_followed_page_by_page(
    modelcycle_services: Services, modelcycle_api: httpx.AsyncClient, modelcycle_admin: KeyPair
) -> None:
    job_id = _job(modelcycle_services, modelcycle_admin.principal.project_id)
    for n in range(4):
        modelcycle_services.jobs.log(job_id, f"line {n}")

    first = (await modelcycle_api.get(f"/api/v1/jobs/{job_id}/events", params={"limit": 3})).json()
    rest = (
        await modelcycle_api.get(
            f"/api/v1/jobs/{job_id}/events", params={"limit": 3, "cursor": first["next_cursor"]}
        )
    ).json()

    messages = [e["message"] for e in first["data"] + rest["data"]]
    assert messages == ["created by test (queued)", "line 0", "line 1", "line 2", "line 3"]
    assert rest["next_cursor"] is None


async def test_cancel_is_answered_with_the_cancelled_job_then_a_conflict(
    modelcycle_services: Services, modelcycle_api: httpx.AsyncClient, modelcycle_admin: KeyPair
) -> None:
    job_id = _job(modelcycle_services, modelcycle_admin.principal.project_id)

    first = await modelcycle_api.post(f"/api/v1/jobs/{job_id}/cancel")
    second = await modelcycle_api.post(f"/api/v1/jobs/{job_id}/cancel")

    assert first.status_code == 200
    assert first.json()["state"] == "cancelled"
    assert second.status_code == 409
    assert second.json()["error"]["type"] == "conflict_error"
    assert "already cancelled" in second.json()["error"]["message"]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/jobs", {"state": "sleeping"}),
        ("/api/v1/jobs", {"limit": 0}),
        ("/api/v1/jobs", {"cursor": "not-a-cursor"}),
        ("/api/v1/jobs/0", {}),
        ("/api/v1/jobs/abc/events", {}),
    ],
)
async def test_bad_queries_are_client_errors_with_the_error_shape(
    modelcycle_api: httpx.AsyncClient, path: str, params: dict[str, object]
) -> None:
    response = await modelcycle_api.get(path, params=params)

    assert 400 <= response.status_code < 500
    assert set(response.json()["error"]) >= {"message", "type", "param", "code"}


def test_the_sdk_reads_follows_and_cancels_jobs(live_server: LiveServer) -> None:
    services = live_server.services
    project_id = services.access.authenticate(live_server.admin_key).project_id
    job_id = services.jobs.enqueue("demo.work", {}, project_id=project_id, actor="test").id
    services.jobs.log(job_id, "hello")

    with Client(live_server.url, live_server.admin_key) as client:
        listed = client.jobs.list(kind="demo.work")
        events = client.jobs.events(job_id)
        later = client.jobs.events(job_id, after_id=events[0].id)
        cancelled = client.jobs.cancel(job_id)
        waited = client.jobs.wait(job_id, timeout_s=5)
        with pytest.raises(Conflict):
            client.jobs.cancel(job_id)
        with pytest.raises(NotFound):
            client.jobs.get(999_999)

    assert [job.id for job in listed] == [job_id]
    assert [e.message for e in later] == ["hello"]
    assert cancelled.state == JobState.CANCELLED
    assert waited.state == JobState.CANCELLED


async def test_the_async_sdk_matches(live_server: LiveServer) -> None:
    services = live_server.services
    project_id = services.access.authenticate(live_server.admin_key).project_id
    job_id = services.jobs.enqueue("demo.work", {}, project_id=project_id, actor="test").id

    async with AsyncClient(live_server.url, live_server.admin_key) as client:
        job = await client.jobs.get(job_id)
        cancelled = await client.jobs.cancel(job_id)
        done = await client.jobs.wait(job_id, timeout_s=5)

    assert job.state == JobState.QUEUED
    assert cancelled.state == done.state == JobState.CANCELLED
