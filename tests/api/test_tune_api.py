"""``/api/v1/tune/jobs``: create (data checked first), list, read, events, checkpoints, cancel."""

from __future__ import annotations

from pathlib import Path

import httpx

from modelcycle.services import Services
from modelcycle.store.datasets import SampleIn, write_version
from modelcycle.testing import admin_of, make_key, make_project, register
from modelcycle.types import BackendKind, Role

JOBS = "/api/v1/tune/jobs"


def _base(services: Services, source: Path, project: str | None = None) -> None:
    """Version 1 of model ``base`` (kind transformers) on ``source``, and dataset ``qa``."""
    principal = (
        admin_of(services).principal
        if project is None
        else make_key(services, Role.ADMIN, project).principal
    )
    source.mkdir(exist_ok=True)
    register(services, principal, "base", source=str(source), backend=BackendKind.TRANSFORMERS)
    samples = [
        SampleIn({"messages": [{"role": "user", "content": f"question {i}"}]}, f"answer {i}")
        for i in range(3)
    ]
    samples.append(SampleIn({"prompt": "no answer here"}))
    with services.store.write() as session:
        write_version(session, principal.project_id, "qa", samples[:3], source="t", actor="t")
        write_version(session, principal.project_id, "qa", samples, source="t", actor="t")


async def test_create_read_follow_and_cancel_a_job(
    modelcycle_services: Services, modelcycle_api: httpx.AsyncClient, tmp_path: Path
) -> None:
    _base(modelcycle_services, tmp_path / "weights")
    body = {"base": "base@1", "dataset": "qa@1", "hyperparameters": {"epochs": 2, "lora_r": 4}}
    created = await modelcycle_api.post(JOBS, json=body)
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["status"] == "queued"
    assert (job["dataset"], job["base"], job["method"]) == ("qa@1", "base@1", "sft-lora")
    assert job["hyperparameters"]["lora_r"] == 4
    assert job["artifacts"]["examples_submitted"] == 3

    listed = (await modelcycle_api.get(JOBS)).json()
    assert [found["id"] for found in listed["data"]] == [job["id"]]
    shown = (await modelcycle_api.get(f"{JOBS}/{job['id']}")).json()
    assert shown["job_id"] == job["job_id"]
    events = (await modelcycle_api.get(f"{JOBS}/{job['id']}/events")).json()["data"]
    assert events[0]["message"].startswith("created by")
    assert (await modelcycle_api.get(f"{JOBS}/{job['id']}/checkpoints")).json() == []

    cancelled = await modelcycle_api.post(f"{JOBS}/{job['id']}/cancel")
    assert cancelled.json()["status"] == "cancelled"
    again = await modelcycle_api.post(f"{JOBS}/{job['id']}/cancel")
    assert again.status_code == 409
    assert "already cancelled" in again.json()["error"]["message"]


async def test_a_bad_sample_is_a_400_naming_it_and_nothing_is_queued(
    modelcycle_services: Services, modelcycle_api: httpx.AsyncClient, tmp_path: Path
) -> None:
    _base(modelcycle_services, tmp_path / "weights")
    refused = await modelcycle_api.post(JOBS, json={"base": "base@1", "dataset": "qa"})
    assert refused.status_code == 400
    message = refused.json()["error"]["message"]
    assert message.startswith("dataset qa@2, sample 3 (position from 0): ")
    assert "needs 'expected'" in message
    assert (await modelcycle_api.get(JOBS)).json()["data"] == []
    jobs = (await modelcycle_api.get("/api/v1/jobs", params={"kind": "tune.run"})).json()
    assert jobs["data"] == []


async def test_bad_requests_are_4xx_naming_the_problem(
    modelcycle_services: Services, modelcycle_api: httpx.AsyncClient, tmp_path: Path
) -> None:
    _base(modelcycle_services, tmp_path / "weights")
    register(modelcycle_services, admin_of(modelcycle_services).principal, "echo")
    cases = [
        ({"base": "echo@1", "dataset": "qa@1"}, 400, "backend 'mock', which cannot be tuned"),
        ({"base": "base@7", "dataset": "qa@1"}, 404, "has no version 7"),
        ({"base": "base@1", "dataset": "nope"}, 404, "dataset 'nope' not found"),
        ({"base": "base@1"}, 400, "exactly one of 'dataset' and 'training_file'"),
        (
            {
                "base": "base@1",
                "dataset": "qa@1",
                "method": "prompt-search",
                "hyperparameters": {"candidates": {"temperature": [9]}},
            },
            400,
            "temperature",
        ),
        ({"base": "base@1", "training_file": "file-abc"}, 404, "file file-abc not found"),
    ]
    for body, code, fragment in cases:
        response = await modelcycle_api.post(JOBS, json=body)
        assert response.status_code == code, (body, response.text)
        assert fragment in response.text, body
    assert (await modelcycle_api.get(f"{JOBS}/ftjob-{'0' * 24}")).status_code == 404
    assert (await modelcycle_api.get(f"{JOBS}/not-an-id")).status_code in (400, 422)


async def test_another_projects_job_is_a_404_like_a_missing_one(
    modelcycle_services: Services, modelcycle_api: httpx.AsyncClient, tmp_path: Path
) -> None:
    other = make_project(modelcycle_services, "other")
    _base(modelcycle_services, tmp_path / "weights", project=other)
    theirs_key = make_key(modelcycle_services, Role.MAINTAINER, other)
    created = await modelcycle_api.post(
        JOBS,
        json={"base": "base@1", "dataset": "qa@1"},
        headers={"Authorization": f"Bearer {theirs_key.key}"},
    )
    assert created.status_code == 201
    theirs = created.json()["id"]
    missing = f"ftjob-{'0' * 24}"
    for suffix in ("", "/events", "/checkpoints"):
        found = await modelcycle_api.get(f"{JOBS}/{theirs}{suffix}")
        absent = await modelcycle_api.get(f"{JOBS}/{missing}{suffix}")
        assert found.status_code == absent.status_code == 404
        assert found.json()["error"]["message"].replace(theirs, "X") == absent.json()["error"][
            "message"
        ].replace(missing, "X")
    assert (await modelcycle_api.post(f"{JOBS}/{theirs}/cancel")).status_code == 404
    assert (await modelcycle_api.get(JOBS)).json()["data"] == []
