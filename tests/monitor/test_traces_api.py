"""The traces API over real gateway requests: search, show, feedback, rollups, policy, SDK."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.harness import Env
from modelcycle import AsyncClient, PermissionDenied
from modelcycle.testing import make_key
from modelcycle.types import Role
from monitor.recording import gateway, settings_for
from monitor.trace_factory import audit_actions

QUESTION = "What is the capital of France?"


def chat(content: str) -> dict[str, Any]:
    return {"model": "chat", "messages": [{"role": "user", "content": content}]}


async def traffic(env: Env) -> dict[str, str]:
    """Three requests (two served, one failed); returns their trace ids by name."""
    env.deploy("chat", (env.version("chat-model", "mock://echo"), 100))
    env.deploy("broken", (env.version("broken-model", "mock://echo", fail=True), 100))
    app = env.http()
    ada = await app.post(
        "/v1/chat/completions",
        json=chat(QUESTION),
        headers={
            "X-Modelcycle-User": "ada",
            "X-Modelcycle-Session": "s-1",
            "X-Modelcycle-Metadata": '{"ticket": 42}',
        },
    )
    bob = await app.post(
        "/v1/chat/completions", json=chat("Hello"), headers={"X-Modelcycle-User": "bob"}
    )
    failed = await app.post("/v1/chat/completions", json={**chat("Anyone?"), "model": "broken"})
    assert (ada.status_code, bob.status_code, failed.status_code) == (200, 200, 502)
    env.services.recorder.flush()
    found = (await env.http(env.admin.key).get("/api/v1/traces")).json()["data"]
    by_user = {row["user_id"]: row["trace_id"] for row in found}
    return {"ada": by_user["ada"], "bob": by_user["bob"], "failed": by_user[None]}


async def test_gateway_requests_are_searched_shown_rated_and_rolled_up(tmp_path: Path) -> None:
    async with gateway(settings_for(tmp_path)) as env:
        ids = await traffic(env)
        admin = env.http(env.admin.key)

        async def search(**params: Any) -> list[str]:
            response = await admin.get("/api/v1/traces", params=params)
            assert response.status_code == 200, response.text
            return [row["trace_id"] for row in response.json()["data"]]

        assert await search(user_id="ada") == [ids["ada"]]
        assert await search(session_id="s-1") == [ids["ada"]]
        assert await search(status="error") == [ids["failed"]]
        assert await search(deployment="chat", text="CAPITAL") == [ids["ada"]]
        assert set(await search(deployment="chat")) == {ids["ada"], ids["bob"]}
        key_id = env.app_key.principal.key_id
        assert set(await search(key_id=key_id)) == set(ids.values())
        assert await search(key_id=key_id, limit=1) == [ids["failed"]]  # the newest

        shown = (await admin.get(f"/api/v1/traces/{ids['ada']}")).json()
        [span] = shown["spans"]
        assert json.loads(span["input"]) == [{"role": "user", "content": QUESTION}]
        assert span["output"] == QUESTION  # the echo backend
        assert (span["deployment"], span["model"], span["version"], span["route"]) == (
            "chat",
            "chat-model",
            1,
            "primary",
        )
        assert (span["user_id"], span["session_id"], span["attributes"]) == (
            "ada",
            "s-1",
            {"ticket": 42},
        )
        assert (span["status"], span["status_code"], span["key_id"]) == (
            "ok",
            200,
            env.app_key.principal.key_id,
        )
        failed = (await admin.get(f"/api/v1/traces/{ids['failed']}")).json()["spans"][0]
        assert (failed["status"], failed["status_code"]) == ("error", 502)
        assert "mock backend failure" in failed["error_message"]

        # The application relays its user's thumbs-down and the right answer.
        sent = await env.http().post(
            f"/api/v1/traces/{ids['ada']}/feedback",
            json={"thumbs": -1, "correction": "Paris.", "user_id": "ada"},
        )
        assert sent.status_code == 201, sent.text
        assert (sent.json()["model"], sent.json()["version"], sent.json()["score"]) == (
            "chat-model",
            1,
            0.0,
        )
        listed = (await admin.get(f"/api/v1/traces/{ids['ada']}/feedback")).json()
        assert [(f["thumbs"], f["correction"]) for f in listed] == [(-1, "Paris.")]
        assert await search(has_feedback=True) == [ids["ada"]]
        assert await search(max_score=0.2) == [ids["ada"]]
        assert await search(thumbs=-1) == [ids["ada"]]
        assert await search(thumbs=1) == []

        rollups = (await admin.get("/api/v1/rollups", params={"group_by": "version"})).json()
        summaries = {
            (s["deployment"], s["model"], s["version"]): s["summary"] for s in rollups["series"]
        }
        chat_summary = summaries[("chat", "chat-model", 1)]
        assert (chat_summary["requests"], chat_summary["errors"]) == (2, 0)
        assert (chat_summary["feedback_count"], chat_summary["feedback_score"]) == (1, 0.0)
        assert chat_summary["input_tokens"] > 0
        broken = summaries[("broken", "broken-model", 1)]  # the version tried, which failed
        assert (broken["requests"], broken["errors"], broken["error_rate"]) == (1, 1, 1.0)
        assert rollups["summary"]["requests"] == 3
        assert sum(rollups["series"][0]["points"]["requests"]) == 1  # broken: one bucket


BAD_REQUESTS = {
    "end before start": (
        "GET",
        "/api/v1/traces",
        {"start": "2025-01-02T00:00:00Z", "end": "2025-01-01T00:00:00Z"},
        None,
        400,
    ),
    "start in the future": ("GET", "/api/v1/traces", {"start": "2199-01-01T00:00:00Z"}, None, 400),
    "bad cursor": ("GET", "/api/v1/traces", {"cursor": "garbage"}, None, 400),
    "unknown filter": ("GET", "/api/v1/traces", {"colour": "red"}, None, 400),
    "limit too big": ("GET", "/api/v1/traces", {"limit": 201}, None, 400),
    "unknown status": ("GET", "/api/v1/traces", {"status": "maybe"}, None, 400),
    "year 1": ("GET", "/api/v1/rollups", {"start": "0001-01-01T00:00:00"}, None, 400),
    "step not whole minutes": ("GET", "/api/v1/rollups", {"step": 61}, None, 400),
    "too many buckets": (
        "GET",
        "/api/v1/rollups",
        {"start": "2025-01-01T00:00:00Z", "end": "2025-03-01T00:00:00Z", "step": 60},
        None,
        400,
    ),
    "unknown group": ("GET", "/api/v1/rollups", {"group_by": "colour"}, None, 400),
    "empty feedback": ("POST", "/api/v1/traces/{trace}/feedback", None, {}, 400),
    "feedback score above 1": ("POST", "/api/v1/traces/{trace}/feedback", None, {"score": 2}, 400),
    "feedback for an unknown trace": (
        "POST",
        "/api/v1/traces/0123456789abcdef0123456789abcdef/feedback",
        None,
        {"thumbs": 1},
        404,
    ),
    "unknown trace": ("GET", "/api/v1/traces/0123456789abcdef0123456789abcdef", None, None, 404),
    "malformed trace id": ("GET", "/api/v1/traces/not valid!", None, None, 400),
    "retention of 0 days": ("PUT", "/api/v1/monitor/policy", None, {"retention_days": 0}, 400),
}


async def test_bad_requests_get_a_4xx_with_the_error_shape_and_change_nothing(
    tmp_path: Path,
) -> None:
    async with gateway(settings_for(tmp_path)) as env:
        env.deploy("chat", (env.version("chat-model", "mock://echo"), 100))
        await env.http().post("/v1/chat/completions", json=chat(QUESTION))
        env.services.recorder.flush()
        admin = env.http(env.admin.key)
        trace = (await admin.get("/api/v1/traces")).json()["data"][0]["trace_id"]
        audited = audit_actions(env.services)

        for case, (method, path, params, body, status) in BAD_REQUESTS.items():
            response = await admin.request(
                method, path.format(trace=trace), params=params, json=body
            )
            assert response.status_code == status, (case, response.text)
            error = response.json()["error"]
            assert set(error) == {"message", "type", "param", "code"}, case
            assert error["message"], case

        assert audit_actions(env.services) == audited
        feedback = (await admin.get(f"/api/v1/traces/{trace}/feedback")).json()
        assert feedback == []


async def test_the_async_sdk_reads_traces_rates_them_and_sets_retention(tmp_path: Path) -> None:
    async with gateway(settings_for(tmp_path)) as env:
        ids = await traffic(env)
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=env.app))
        env.clients.append(http)
        client = AsyncClient("http://modelcycle.test", env.admin.key, http_client=http)

        page = await client.traces.list(user_id="bob")
        trace = await client.traces.get(ids["bob"])
        added = await client.traces.add_feedback(ids["bob"], score=0.75, label="ok")
        listed = await client.traces.feedback(ids["bob"])
        rollups = await client.traces.rollups(group_by="none")
        before = await client.traces.policy()
        after = await client.traces.set_policy(retention_days=30)
        again = await client.traces.policy()

        assert [row.trace_id for row in page.data] == [ids["bob"]]
        assert page.next_cursor is None
        assert trace.spans[0].user_id == "bob"
        assert (added.score, added.label, added.version) == (0.75, "ok", 1)
        assert [f.id for f in listed] == [added.id]
        assert rollups.summary.requests == 3
        assert rollups.summary.feedback_score == 0.75
        assert sum(point.requests for point in rollups.series[0].points.rows()) == 3
        assert (before.retention_days, after.retention_days, again.retention_days) == (
            None,
            30,
            30,
        )
        assert "monitor.policy.set" in audit_actions(env.services)
        viewer = AsyncClient(
            "http://modelcycle.test",
            make_key(env.services, Role.VIEWER).key,
            http_client=http,
        )
        assert (await viewer.traces.list()).data
        with pytest.raises(PermissionDenied, match="role 'admin'"):
            await viewer.traces.set_policy(retention_days=1)
