"""Drift through the API, the CLI and the SDK: run, read, schedule; bad input is a 4xx."""

from __future__ import annotations

import json
import random
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from cli.runner import Cli
from e2e.live import LiveServer
from modelcycle import AsyncClient, Client
from modelcycle.errors import NotFound
from modelcycle.services import Services
from modelcycle.store.tables import AuditEntryRow, utcnow
from modelcycle.testing import KeyPair
from monitor.test_drift import NOW, english_window, shifted_window, write_window


def _production(services: Services, project_id: int, *, now: object = NOW) -> None:
    rng = random.Random(7)
    write_window(services, project_id, english_window(rng), hours_ago=2, now=now)  # type: ignore[arg-type]
    write_window(services, project_id, shifted_window(rng), hours_ago=1, now=now)  # type: ignore[arg-type]


def _audits(services: Services) -> int:
    with services.store.read() as session:
        return int(session.execute(select(func.count(AuditEntryRow.seq))).scalar_one())


async def test_a_check_is_run_stored_audited_and_listed(
    modelcycle_services: Services, modelcycle_api: httpx.AsyncClient, modelcycle_admin: KeyPair
) -> None:
    _production(modelcycle_services, modelcycle_admin.principal.project_id)
    before = _audits(modelcycle_services)

    created = await modelcycle_api.post(
        "/api/v1/drift/checks",
        json={"deployment": "chat", "end": NOW.isoformat(), "metrics": ["language", "guard_rate"]},
    )
    report = created.json()
    listed = await modelcycle_api.get("/api/v1/drift/reports", params={"drifted": "true"})
    other = await modelcycle_api.get("/api/v1/drift/reports", params={"deployment": "nope"})
    one = await modelcycle_api.get(f"/api/v1/drift/reports/{report['id']}")
    missing = await modelcycle_api.get("/api/v1/drift/reports/999999")

    assert created.status_code == 201, created.text
    assert report["drifted_metrics"] == ["language", "guard_rate"]
    assert report["metrics"][0]["evidence"]["current_share"]["fr"] == 0.5
    assert _audits(modelcycle_services) == before + 1
    assert [r["id"] for r in listed.json()["data"]] == [report["id"]]
    assert other.json()["data"] == []
    assert one.json() == report
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"metrics": ["vibes"]}, "metrics"),
        ({"thresholds": {"vibes": 0.1}}, "unknown thresholds"),
        ({"start": "2025-06-02T12:00:00Z", "end": "2025-06-02T11:00:00Z"}, "start must be"),
        ({"end": "2025-06-02T12:00:00"}, "timezone"),
        ({"reference": {"kind": "texts", "inputs": []}}, "inputs"),
        ({"reference": {"kind": "window", "start": "2025-06-02T10:00:00Z"}}, "both"),
        ({"reference": {"kind": "dataset", "name": "x"}}, "reference"),
        ({"window_s": 5}, "window_s"),
        ({"min_samples": 1}, "min_samples"),
        ({"colour": "blue"}, "colour"),
    ],
)
async def test_bad_checks_are_refused_with_the_error_shape_and_change_nothing(
    modelcycle_services: Services,
    modelcycle_api: httpx.AsyncClient,
    body: dict[str, object],
    fragment: str,
) -> None:
    before = _audits(modelcycle_services)

    response = await modelcycle_api.post("/api/v1/drift/checks", json=body)

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert fragment in json.dumps(error)
    assert _audits(modelcycle_services) == before
    assert (await modelcycle_api.get("/api/v1/drift/reports")).json()["data"] == []


async def test_schedules_are_created_replaced_listed_and_deleted(
    modelcycle_api: httpx.AsyncClient,
) -> None:
    body = {"name": "hourly", "interval_s": 3600, "check": {"deployment": "chat"}}
    created = await modelcycle_api.post("/api/v1/drift/schedules", json=body)
    replaced = await modelcycle_api.post(
        "/api/v1/drift/schedules", json={**body, "interval_s": 600}
    )
    fixed_window = await modelcycle_api.post(
        "/api/v1/drift/schedules",
        json={"name": "bad", "interval_s": 600, "check": {"end": "2025-06-02T12:00:00Z"}},
    )
    listed = await modelcycle_api.get("/api/v1/drift/schedules")
    deleted = await modelcycle_api.delete("/api/v1/drift/schedules/hourly")
    again = await modelcycle_api.delete("/api/v1/drift/schedules/hourly")

    assert created.status_code == replaced.status_code == 201
    assert [(s["name"], s["interval_s"]) for s in listed.json()] == [("hourly", 600)]
    assert listed.json()[0]["check"]["deployment"] == "chat"
    assert fixed_window.status_code == 400
    assert "window_s" in fixed_window.json()["error"]["message"]
    assert deleted.status_code == 204
    assert again.status_code == 404


def test_the_cli_runs_lists_shows_and_schedules_checks(
    live_server: LiveServer, tmp_path: Path
) -> None:
    services = live_server.services
    project_id = services.access.authenticate(live_server.admin_key).project_id
    _production(services, project_id, now=utcnow())
    cli = Cli(live_server.url, live_server.admin_key)
    reference = tmp_path / "reference.jsonl"
    english = english_window(random.Random(1), 40)
    reference.write_text(
        "\n".join(
            json.dumps({"input": p, "output": a})
            for p, a in zip(english.prompts, english.answers, strict=True)
        ),
        encoding="utf-8",
    )

    table = cli("drift", "run", "--deployment", "chat", "--metric", "language")
    as_json = cli.json(
        "drift", "run", "--deployment", "chat", "--reference-file", str(reference),
        "--metric", "language", "--metric", "refusal_rate", "--threshold", "refusal_rate=0.9",
    )  # fmt: skip
    gate = cli("drift", "run", "--deployment", "chat", "--metric", "language", "--fail-on-drift")
    listed = cli.json("drift", "list", "--deployment", "chat")
    shown = cli("drift", "show", str(as_json["id"]))
    scheduled = cli("drift", "schedule", "nightly", "--every", "1d", "--deployment", "chat")
    schedules = cli.json("drift", "schedules")
    removed = cli("drift", "unschedule", "nightly")

    assert table.exit_code == 0, table.output
    assert "DRIFT in language" in table.stdout
    assert "language" in table.stdout
    assert as_json["drifted_metrics"] == ["language"]
    assert as_json["reference"] == {"kind": "texts", "inputs": 40, "outputs": 40}
    assert gate.exit_code == 2
    assert len(listed) == 3
    assert shown.exit_code == 0
    assert "refus" in shown.stdout  # the table may fold the name on a narrow terminal
    assert f"report      {as_json['id']}" in shown.stdout
    assert scheduled.exit_code == 0
    assert "runs every 1d" in scheduled.stdout
    assert [(s["name"], s["interval_s"]) for s in schedules] == [("nightly", 86400)]
    assert removed.exit_code == 0
    cli.fails("drift", "run", "--window", "soon", naming=("--window",))
    cli.fails("drift", "run", "--threshold", "language", naming=("NAME=NUMBER",))
    cli.fails("drift", "show", "999999", naming=("not found",))
    cli.fails("drift", "unschedule", "nightly", naming=("nightly",))


def test_the_sdk_runs_and_schedules_checks(live_server: LiveServer) -> None:
    english = english_window(random.Random(2), 40)
    with Client(live_server.url, live_server.admin_key) as client:
        report = client.drift.check(
            deployment="chat",
            reference={"kind": "texts", "inputs": english.prompts},
            metrics=["language"],
        )
        schedule = client.drift.schedule("sdk", interval_s=600, metrics=["language"])
        names = [s.name for s in client.drift.schedules()]
        client.drift.unschedule("sdk")
        with pytest.raises(ValidationError):  # checked before anything is sent
            client.drift.check(metrics=["vibes"])
        with pytest.raises(NotFound):
            client.drift.report(999_999)
        reports = client.drift.reports()

    assert report.metrics[0].status == "insufficient_data"
    assert schedule.check.metrics == ["language"]
    assert names == ["sdk"]
    assert [r.id for r in reports] == [report.id]


async def test_the_async_sdk_matches(live_server: LiveServer) -> None:
    async with AsyncClient(live_server.url, live_server.admin_key) as client:
        report = await client.drift.check(metrics=["language"])
        again = await client.drift.report(report.id)
        reports = await client.drift.reports(drifted=False)

    assert again == report
    assert [r.id for r in reports] == [report.id]
