"""``/api/v1/evals/online``: configurations (audited), score series per version, JSON errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from gateway.harness import Env
from modelcycle.store.tables import AuditEntryRow, SpanRow, utcnow
from monitor.recording import gateway, settings_for

ONLINE = "/api/v1/evals/online"


@pytest.fixture
async def env(tmp_path: Path, modelcycle_database_url: str | None) -> AsyncIterator[Env]:
    async with gateway(settings_for(tmp_path, modelcycle_database_url)) as built:
        # Two versions share the traffic: v1 answers JSON, v2 plain text.
        v1 = built.version("bot", "mock://script?reply=%7B%22ok%22%3A1%7D")
        v2 = built.version("bot", "mock://script?reply=plain")
        built.deploy("chat", (v1, 50), (v2, 50))
        yield built


@pytest.fixture
def admin(env: Env) -> httpx.AsyncClient:
    return env.http(env.admin.key)


def assert_error(response: httpx.Response, status: int, *fragments: str) -> None:
    assert response.status_code == status, response.text
    message = response.json()["error"]["message"]
    for fragment in fragments:
        assert fragment in message, message


def audit_actions(env: Env) -> list[tuple[str, str]]:
    with env.services.store.read() as session:
        rows = session.execute(
            select(AuditEntryRow.action, AuditEntryRow.target).where(
                AuditEntryRow.action.like("online_eval.%")
            )
        ).all()
    return [(action, target) for action, target in rows]


async def put(api: httpx.AsyncClient, body: dict[str, Any], name: str = "chat") -> httpx.Response:
    return await api.put(f"{ONLINE}/{name}", json=body)


async def test_a_configuration_is_set_listed_read_and_deleted_with_an_audit_trail(
    env: Env, admin: httpx.AsyncClient
) -> None:
    response = await put(admin, {"sample_rate": "10%", "scorers": [{"name": "json_valid"}]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["sample_rate"] == pytest.approx(0.1)
    assert body["scorers"] == [{"name": "json_valid", "options": {}}]
    assert body["enabled"] is True

    scorers = [{"name": "json_valid"}, {"name": "toxicity", "options": {"min_score": 0.5}}]
    replaced = await put(admin, {"sample_rate": 0.5, "scorers": scorers, "enabled": False})
    assert replaced.status_code == 200, replaced.text
    listed = (await admin.get(ONLINE)).json()
    assert [(c["deployment"], c["sample_rate"], c["enabled"]) for c in listed] == [
        ("chat", 0.5, False)
    ]
    assert [s["name"] for s in listed[0]["scorers"]] == ["json_valid", "toxicity"]
    assert (await admin.get(f"{ONLINE}/chat")).json() == listed[0]

    deleted = await admin.delete(f"{ONLINE}/chat")
    assert deleted.status_code == 204
    assert_error(await admin.get(f"{ONLINE}/chat"), 404, "no online evaluation")
    assert_error(await admin.delete(f"{ONLINE}/chat"), 404, "no online evaluation")
    assert audit_actions(env) == [
        ("online_eval.set", "online_eval:chat"),
        ("online_eval.set", "online_eval:chat"),
        ("online_eval.delete", "online_eval:chat"),
    ]


@pytest.mark.parametrize(
    ("body", "status", "fragments"),
    [
        (
            {"sample_rate": 0.1, "scorers": [{"name": "rouge_l"}]},
            400,
            ("rouge_l compares with an expected answer",),
        ),
        ({"sample_rate": 0.1, "scorers": [{"name": "no-such"}]}, 400, ("unknown scorer",)),
        ({"sample_rate": "150%", "scorers": [{"name": "json_valid"}]}, 400, ("more than 1",)),
        ({"sample_rate": 0, "scorers": [{"name": "json_valid"}]}, 400, ("more than 0",)),
        ({"sample_rate": 0.1, "scorers": []}, 400, ("scorers",)),
        (
            {"sample_rate": 0.1, "scorers": [{"name": "regex", "options": {"pattern": "("}}]},
            400,
            ("regex",),
        ),
    ],
)
async def test_bad_configurations_are_400s_naming_the_problem_and_store_nothing(
    env: Env, admin: httpx.AsyncClient, body: dict[str, Any], status: int, fragments: tuple[str]
) -> None:
    assert_error(await put(admin, body), status, *fragments)
    assert (await admin.get(ONLINE)).json() == []
    assert audit_actions(env) == []


async def test_an_unknown_deployment_is_a_404(admin: httpx.AsyncClient) -> None:
    body = {"sample_rate": 0.1, "scorers": [{"name": "json_valid"}]}
    assert_error(await put(admin, body, "absent"), 404, "deployment 'absent' not found")
    assert_error(await admin.get(f"{ONLINE}/absent/scores"), 404, "no online evaluation")


async def test_scores_come_back_per_scorer_and_version_in_buckets(
    env: Env, admin: httpx.AsyncClient
) -> None:
    body = {"sample_rate": 1, "scorers": [{"name": "json_valid"}, {"name": "refusal"}]}
    assert (await put(admin, body)).status_code == 200
    http = env.http()
    for i in range(30):
        chat = {"model": "chat", "messages": [{"role": "user", "content": f"q{i}"}]}
        assert (await http.post("/v1/chat/completions", json=chat)).status_code == 200
    env.services.recorder.flush()
    await env.services.online_eval.scoring.score_pending(now=utcnow() + timedelta(minutes=10))
    with env.services.store.read() as session:
        versions = list(session.execute(select(SpanRow.version)).scalars())

    response = await admin.get(f"{ONLINE}/chat/scores", params={"bucket_s": 60})

    assert response.status_code == 200, response.text
    result = response.json()
    assert result["bucket_s"] == 60
    series = {(s["scorer"], s["version"]): s for s in result["series"]}
    assert set(series) == {("json_valid", 1), ("json_valid", 2), ("refusal", 1), ("refusal", 2)}
    assert series["json_valid", 1]["mean"] == 1.0
    assert series["json_valid", 2]["mean"] == 0.0
    assert series["json_valid", 1]["count"] == versions.count(1)
    assert series["json_valid", 2]["count"] == versions.count(2)
    assert series["refusal", 1]["mean"] == 0.0
    for found in series.values():
        assert sum(point["count"] for point in found["points"]) == found["count"]
        for point in found["points"]:
            start = datetime.fromisoformat(point["start"])
            assert start.timestamp() % 60 == 0
            assert start <= datetime.now(UTC)

    only = await admin.get(f"{ONLINE}/chat/scores", params={"version": 2, "scorer": "json_valid"})
    assert [(s["scorer"], s["version"]) for s in only.json()["series"]] == [("json_valid", 2)]

    # The scores outlive the configuration.
    assert (await admin.delete(f"{ONLINE}/chat")).status_code == 204
    kept = await admin.get(f"{ONLINE}/chat/scores")
    assert len(kept.json()["series"]) == 4


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"bucket_s": 61}, "bucket_s"),
        (
            {"bucket_s": 60, "start": "2020-01-01T00:00:00Z", "end": "2021-01-01T00:00:00Z"},
            "buckets",
        ),
        ({"bucket": 60}, "bucket"),
        ({"start": "2024-01-02T00:00:00Z", "end": "2024-01-01T00:00:00Z"}, "end must be after"),
    ],
)
async def test_a_bad_scores_query_is_a_400(
    admin: httpx.AsyncClient, params: dict[str, Any], fragment: str
) -> None:
    body = {"sample_rate": 1, "scorers": [{"name": "json_valid"}]}
    assert (await put(admin, body)).status_code == 200
    assert_error(await admin.get(f"{ONLINE}/chat/scores", params=params), 400, fragment)
