"""``/api/v1/alerts`` and the SDK: rules in, transitions out, credentials never shown.

The store behind these is covered on both databases by ``test_alerts.py``; these
run on SQLite.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from modelcycle import AsyncClient
from modelcycle.api import create_app
from modelcycle.deploy import DeploymentSpec, Route
from modelcycle.monitor.webhooks import (
    SIGNATURE_HEADER,
    WebhookSender,
    WebhookTarget,
    verify_signature,
)
from modelcycle.monitor.writer import RollupDelta
from modelcycle.services import Services
from modelcycle.store.tables import utcnow
from modelcycle.testing import KeyPair, admin_of, make_services, make_settings, register
from monitor.webhook_receiver import receiving

SECRET = "whsec-api-0123456789abcdef"
TOKEN_IN_PATH = "T000-B000-pathtoken"
HEADER_VALUE = "Bearer hook-credential-42"


@pytest.fixture
def modelcycle_database_url() -> str | None:
    """SQLite only (see the module docstring)."""
    return None


@pytest.fixture
def chat(modelcycle_services: Services, modelcycle_admin: KeyPair) -> str:
    register(modelcycle_services, modelcycle_admin.principal, "bot")
    spec = DeploymentSpec(name="chat", routes=[Route(target="bot@1", weight=100)])
    modelcycle_services.deployments.create(modelcycle_admin.principal, spec)
    return "chat"


def idle_rule(url: str, **fields: Any) -> dict[str, Any]:
    """A rule that fires at once: no requests at all on ``chat`` ("traffic stopped")."""
    return {
        "name": "chat-idle",
        "metric": "requests",
        "op": "<",
        "threshold": 1,
        "window_s": 600,
        "deployment": "chat",
        "severity": "critical",
        "channels": [
            {"type": "log"},
            {
                "type": "webhook",
                "url": f"{url}/{TOKEN_IN_PATH}",
                "headers": {"Authorization": HEADER_VALUE},
                "secret": SECRET,
            },
        ],
        **fields,
    }


def credentials_in(text: str) -> list[str]:
    return [secret for secret in (SECRET, TOKEN_IN_PATH, HEADER_VALUE) if secret in text]


async def test_a_rule_fires_on_evaluate_and_its_credentials_are_never_shown(
    modelcycle_api: httpx.AsyncClient,
    modelcycle_services: Services,
    chat: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with receiving() as hook:
        created = await modelcycle_api.post("/api/v1/alerts", json=idle_rule(hook.url))
        assert created.status_code == 201, created.text
        rule = created.json()
        assert rule["state"] == "ok"
        assert rule["channels"] == [
            {"type": "log", "target": None, "headers": [], "signed": False},
            {
                "type": "webhook",
                "target": f"http://127.0.0.1:{hook.port}/…",
                "headers": ["Authorization"],
                "signed": True,
            },
        ]

        evaluated = await modelcycle_api.post("/api/v1/alerts/evaluate")
        assert evaluated.status_code == 200, evaluated.text
        result = evaluated.json()
        assert result["evaluated"] == 1
        [transition] = result["transitions"]
        assert (transition["rule"], transition["state"], transition["value"]) == (
            "chat-idle",
            "firing",
            0.0,
        )
        assert [(d["channel"], d["ok"]) for d in transition["deliveries"]] == [
            ("log", True),
            ("webhook", True),
        ]
        [delivery] = hook.received
        assert delivery.path == f"/hooks/alerts/{TOKEN_IN_PATH}"
        assert delivery.headers["Authorization"] == HEADER_VALUE
        assert verify_signature(SECRET, delivery.headers[SIGNATURE_HEADER], delivery.raw)
        assert delivery.json["url"] == f"/api/v1/alerts/{rule['id']}"

        again = (await modelcycle_api.post("/api/v1/alerts/evaluate")).json()
        assert again["transitions"] == []
        assert len(hook.received) == 1

    shown = await modelcycle_api.get(f"/api/v1/alerts/{rule['id']}")
    assert shown.json()["state"] == "firing"
    events = await modelcycle_api.get(f"/api/v1/alerts/{rule['id']}/events")
    assert [e["state"] for e in events.json()["data"]] == ["firing"]
    audit = await modelcycle_api.get("/api/v1/audit")
    actions = [entry["action"] for entry in audit.json()["data"]]
    assert actions[-3:] == ["alert.create", "alert.evaluate", "alert.evaluate"]
    texts = [
        created.text,
        evaluated.text,
        shown.text,
        events.text,
        audit.text,
        (await modelcycle_api.get("/api/v1/alerts")).text,
        caplog.text,
    ]
    assert [credentials_in(text) for text in texts] == [[]] * len(texts)


BAD_RULES: list[tuple[dict[str, Any], str]] = [
    ({"metric": "latency"}, "metric"),
    ({"metric": "drift."}, "metric"),
    ({"op": "!="}, "op"),
    ({"window_s": 59}, "window_s"),
    ({"window_s": 7 * 86400 + 1}, "window_s"),
    ({"severity": "panic"}, "severity"),
    ({"threshold": "high"}, "threshold"),
    ({"min_requests": 0}, "min_requests"),
    ({"deployment": "nowhere"}, "deployment"),
    ({"metric": "drift.any", "version": 2}, "version"),
    ({"channels": [{"type": "webhook", "url": "ftp://example.com/x"}]}, "channels.0.webhook.url"),
    ({"channels": [{"type": "webhook", "url": "not a url"}]}, "channels.0.webhook.url"),
    ({"channels": [{"type": "webhook", "url": "http://x", "secret": "short"}]}, "secret"),
    ({"channels": [{"type": "webhook", "url": "http://x", "headers": {"Host": "y"}}]}, "headers"),
    ({"channels": [{"type": "email"}]}, "channels.0"),
    ({"name": "Not A Name"}, "name"),
]


async def test_a_bad_rule_is_400_naming_the_field_and_stores_nothing(
    modelcycle_api: httpx.AsyncClient, chat: str
) -> None:
    answers = []
    for change, _ in BAD_RULES:
        response = await modelcycle_api.post("/api/v1/alerts", json=idle_rule("http://x") | change)
        error = response.json()["error"]
        answers.append((change, response.status_code, error["param"] or error["message"]))
    assert [
        (c, status, param in found)
        for (c, status, found), (_, param) in zip(answers, BAD_RULES, strict=True)
    ] == [(change, 400, True) for change, _ in BAD_RULES], answers
    listed = await modelcycle_api.get("/api/v1/alerts")
    assert listed.json()["data"] == []


async def test_private_webhook_addresses_are_refused_when_the_server_says_so(
    tmp_path: Path,
) -> None:
    services = make_services(make_settings(tmp_path / "home", webhook_allow_private=False))
    admin = admin_of(services)
    try:
        async with _api(create_app(services), admin.key) as api:
            for index, url in enumerate(
                [
                    "http://127.0.0.1:9/x",
                    "http://10.1.2.3/x",
                    "http://[::1]/x",
                    "http://localhost/x",
                ]
            ):
                body = {"name": f"r{index}", "metric": "requests", "op": "<", "threshold": 1}
                body["channels"] = [{"type": "log"}, {"type": "webhook", "url": url}]
                refused = await api.post("/api/v1/alerts", json=body)
                assert refused.status_code == 400, url
                assert refused.json()["error"]["param"] == "channels[1].url"
            body["channels"] = [{"type": "webhook", "url": "https://93.184.216.34/hook"}]
            assert (await api.post("/api/v1/alerts", json=body)).status_code == 201
    finally:
        services.close()
    # A host name resolving to a private address is refused when the delivery is made.
    with receiving() as hook:
        sender = WebhookSender(timeout_s=1.0, allow_private=False)
        target = WebhookTarget(url=hook.url.replace("127.0.0.1", "localhost"))
        result = sender.send(target, b"{}", delivery_id="1.0")
        assert (result.ok, result.attempts) == (False, 0)
        assert result.error is not None
        assert "private address" in result.error
        assert hook.received == []


async def test_update_disable_delete_and_conflicts(
    modelcycle_api: httpx.AsyncClient, modelcycle_services: Services, chat: str
) -> None:
    with receiving() as hook:
        rule = (await modelcycle_api.post("/api/v1/alerts", json=idle_rule(hook.url))).json()
        path = f"/api/v1/alerts/{rule['id']}"
        duplicate = await modelcycle_api.post("/api/v1/alerts", json=idle_rule(hook.url))
        assert duplicate.status_code == 409

        changed = await modelcycle_api.patch(
            path, json={"threshold": 5, "deployment": None, "channels": [{"type": "log"}]}
        )
        assert changed.status_code == 200, changed.text
        body = changed.json()
        assert (body["threshold"], body["deployment"]) == (5.0, None)
        assert [c["type"] for c in body["channels"]] == ["log"]
        assert (await modelcycle_api.patch(path, json={"threshold": None})).status_code == 400
        assert (await modelcycle_api.patch(path, json={"op": "~"})).status_code == 400

        await modelcycle_api.post("/api/v1/alerts/evaluate")
        assert (await modelcycle_api.get(path)).json()["state"] == "firing"
        assert hook.received == []  # the webhook channel was replaced by the log
        disabled = (await modelcycle_api.patch(path, json={"enabled": False})).json()
        assert (disabled["enabled"], disabled["state"]) == (False, "ok")
        firing = await modelcycle_api.get("/api/v1/alerts", params={"state": "firing"})
        assert firing.json()["data"] == []

    deleted = await modelcycle_api.delete(path)
    assert deleted.status_code == 204
    assert (await modelcycle_api.get(path)).status_code == 404
    assert (await modelcycle_api.get(path + "/events")).status_code == 404
    audit = (await modelcycle_api.get("/api/v1/audit", params={"target": "alert:"})).json()
    assert [e["action"] for e in audit["data"]] == [
        "alert.create",
        "alert.update",
        "alert.update",
        "alert.delete",
    ]
    assert audit["data"][1]["before"]["threshold"] == 1.0
    assert audit["data"][1]["after"]["threshold"] == 5.0


async def test_events_are_newest_first_and_paginate(
    modelcycle_api: httpx.AsyncClient,
    modelcycle_services: Services,
    modelcycle_admin: KeyPair,
    chat: str,
) -> None:
    body = idle_rule("http://x") | {"channels": [{"type": "log"}]}
    rule = (await modelcycle_api.post("/api/v1/alerts", json=body)).json()
    alerts, start = modelcycle_services.alerts, utcnow()
    alerts.evaluate_all(now=start)  # fires: no requests
    # Requests arrive: 'requests < 1' is false twice in a row, so it resolves.
    with modelcycle_services.store.write() as session:
        key = (1, start.replace(second=0, microsecond=0), "chat", "bot", 1, "primary")
        modelcycle_services.recorder.writer.fold(session, {key: RollupDelta(requests=3)})
    alerts.evaluate_all(now=start + timedelta(seconds=30))
    alerts.evaluate_all(now=start + timedelta(seconds=60))
    first = (await modelcycle_api.get(f"/api/v1/alerts/{rule['id']}/events?limit=1")).json()
    assert [e["state"] for e in first["data"]] == ["resolved"]
    assert first["data"][0]["value"] == 3.0
    params = {"limit": 1, "cursor": first["next_cursor"]}
    second = (await modelcycle_api.get(f"/api/v1/alerts/{rule['id']}/events", params=params)).json()
    assert [e["state"] for e in second["data"]] == ["firing"]
    assert second["next_cursor"] is None


async def test_the_async_sdk_manages_rules_by_name(
    modelcycle_app: FastAPI, modelcycle_admin: KeyPair, chat: str
) -> None:
    transport = httpx.AsyncClient(transport=httpx.ASGITransport(app=modelcycle_app))
    client = AsyncClient("http://modelcycle.test", modelcycle_admin.key, http_client=transport)
    with receiving() as hook:
        created = await client.alerts.create(
            "idle",
            metric="requests",
            op="<",
            threshold=1,
            deployment="chat",
            channels=[{"type": "webhook", "url": hook.url, "secret": SECRET}],
        )
        assert created.channels[0].signed
        result = await client.alerts.evaluate()
        assert [t.state for t in result.transitions] == ["firing"]
        assert verify_signature(
            SECRET, hook.received[0].headers[SIGNATURE_HEADER], hook.received[0].raw
        )
    assert (await client.alerts.get("idle")).state == "firing"
    assert [e.state for e in await client.alerts.events("idle")] == ["firing"]
    updated = await client.alerts.update("idle", threshold=2, enabled=False)
    assert (updated.threshold, updated.enabled, updated.deployment) == (2.0, False, "chat")
    assert [r.name for r in await client.alerts.list()] == ["idle"]
    await client.alerts.delete("idle")
    assert await client.alerts.list() == []
    await client.close()


def _api(app: FastAPI, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://modelcycle.test",
        headers={"Authorization": f"Bearer {key}"},
    )


def doc_blocks(language: str) -> list[str]:
    text = (Path(__file__).parents[2] / "docs" / "alerts.md").read_text(encoding="utf-8")
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


async def test_the_documented_payload_and_verification_match_a_real_delivery(
    modelcycle_api: httpx.AsyncClient, chat: str
) -> None:
    with receiving() as hook:
        await modelcycle_api.post("/api/v1/alerts", json=idle_rule(hook.url))
        await modelcycle_api.post("/api/v1/alerts/evaluate")
    [delivery] = hook.received
    documented = next(json.loads(b) for b in doc_blocks("json") if '"rule_id"' in b)
    assert sorted(documented) == sorted(delivery.json)
    [verifier] = [block for block in doc_blocks("python") if "def verify(" in block]
    namespace: dict[str, Any] = {}
    exec(verifier, namespace)  # the docs' code, as a reader would paste it
    header = delivery.headers[SIGNATURE_HEADER]
    assert namespace["verify"](SECRET, header, delivery.raw) is True
    assert namespace["verify"](SECRET, header, delivery.raw + b" ") is False
    assert namespace["verify"]("wrong-secret-0123456789", header, delivery.raw) is False
