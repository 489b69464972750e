"""Alert rules fire once, notify, stay quiet while the state holds and resolve — on both databases.

What a user relies on: real failing traffic through the gateway makes an error-rate
rule fire exactly once, with a signed webhook, an ``AlertFired`` event and a log
line; evaluating again changes nothing; recovered traffic resolves it (after one
more evaluation back within the threshold); a webhook that fails is recorded and
never holds up the state change; two workers evaluating at once notify once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.harness import Env
from modelcycle import events
from modelcycle.deploy import DeploymentConfig, Route
from modelcycle.hookspecs import hookimpl
from modelcycle.monitor.alert_rules import AlertRuleCreate, AlertRuleUpdate
from modelcycle.monitor.webhooks import SIGNATURE_HEADER, WebhookSender, verify_signature
from modelcycle.store.tables import AlertEventRow, AlertRuleRow, utcnow
from monitor.recording import gateway, settings_for
from monitor.webhook_receiver import Receiver, receiving, refused_url, shown_as

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "one two"}]}
SECRET = "whsec-0123456789abcdef"


class FiredEvents:
    """A plugin that keeps every ``AlertFired`` event."""

    def __init__(self) -> None:
        self.events: list[events.AlertFired] = []

    @hookimpl
    def modelcycle_alert_fired(self, event: events.AlertFired) -> None:
        self.events.append(event)


@pytest.fixture
async def env(tmp_path: Path, modelcycle_database_url: str | None) -> AsyncIterator[Env]:
    async with gateway(settings_for(tmp_path, modelcycle_database_url)) as built:
        built.deploy("chat", (built.version("bad", "mock://fail"), 100))
        built.version("good", "mock://echo")
        yield built


@pytest.fixture
def fired(env: Env) -> FiredEvents:
    plugin = FiredEvents()
    env.services.bus.manager.register(plugin)
    return plugin


async def traffic(env: Env, requests: int, *, succeed: bool) -> None:
    """Send chat requests through the gateway and wait until their spans are stored."""
    http = env.http()
    for _ in range(requests):
        response = await http.post("/v1/chat/completions", json=CHAT)
        assert (response.status_code == 200) is succeed, response.text
    env.services.recorder.flush()


def route_to(env: Env, target: str) -> None:
    config = DeploymentConfig(routes=[Route(target=target, weight=100)])
    env.services.deployments.update(env.admin.principal, "chat", config)


def error_rule(env: Env, *hooks: dict[str, object], **fields: object) -> int:
    body = AlertRuleCreate.model_validate(
        {
            "name": "chat-errors",
            "metric": "error_rate",
            "op": ">",
            "threshold": 0.5,
            "window_s": 300,
            "deployment": "chat",
            "min_requests": 3,
            "severity": "critical",
            "channels": [{"type": "log"}, *hooks],
            **fields,
        }
    )
    return env.services.alerts.create(env.admin.principal, body).id


def event_rows(env: Env) -> list[AlertEventRow]:
    with env.services.store.read() as session:
        return list(session.execute(select(AlertEventRow).order_by(AlertEventRow.id)).scalars())


async def test_failing_traffic_fires_once_and_recovered_traffic_resolves(
    env: Env, fired: FiredEvents, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="modelcycle.monitor.alerts")
    await traffic(env, 4, succeed=False)
    with receiving() as hook:
        rule_id = error_rule(env, {"type": "webhook", "url": hook.url, "secret": SECRET})
        start = utcnow()

        assert env.services.alerts.evaluate_all(now=start) == 1
        [delivery] = hook.received
        body = delivery.json
        assert body["state"] == "firing"
        assert (body["rule"], body["rule_id"], body["metric"], body["op"]) == (
            "chat-errors",
            rule_id,
            "error_rate",
            ">",
        )
        assert (body["value"], body["threshold"], body["severity"]) == (1.0, 0.5, "critical")
        assert (body["deployment"], body["window_s"], body["project"]) == ("chat", 300, "default")
        assert body["url"] == f"/api/v1/alerts/{rule_id}"
        assert datetime.fromisoformat(body["at"]) == start
        assert "4 of 4 requests failed" in body["message"]
        assert verify_signature(SECRET, delivery.headers[SIGNATURE_HEADER], delivery.raw)
        signature = delivery.headers[SIGNATURE_HEADER]
        assert not verify_signature("another-secret-entirely", signature, delivery.raw)
        assert [(e.rule, e.state, e.value) for e in fired.events] == [
            ("chat-errors", "firing", 1.0)
        ]
        assert any(
            r.levelno == logging.WARNING and "firing" in r.getMessage() for r in caplog.records
        )
        rule = env.services.alerts.get(env.admin.principal, rule_id)
        assert (rule.state, rule.last_value, rule.state_since) == ("firing", 1.0, start)

        # The state holds: no new event, no second notification.
        assert env.services.alerts.evaluate_all(now=start + timedelta(seconds=30)) == 0
        assert len(hook.received) == 1
        assert len(fired.events) == 1

        route_to(env, "good@1")
        await traffic(env, 12, succeed=True)  # 4 failures in 16 requests: 0.25, within 0.5
        # Back within the threshold once: still firing (hysteresis)...
        assert env.services.alerts.evaluate_all(now=start + timedelta(seconds=60)) == 0
        assert env.services.alerts.get(env.admin.principal, rule_id).state == "firing"
        # ...and resolved when the next evaluation agrees.
        assert env.services.alerts.evaluate_all(now=start + timedelta(seconds=90)) == 1
        assert [b["state"] for b in hook.bodies()] == ["firing", "resolved"]
        assert hook.bodies()[1]["value"] == 0.25
    assert [e.state for e in fired.events] == ["firing", "resolved"]
    assert any(r.levelno == logging.INFO and "resolved" in r.getMessage() for r in caplog.records)
    rows = event_rows(env)
    assert [(r.state, r.value) for r in rows] == [("firing", 1.0), ("resolved", 0.25)]
    for row in rows:
        webhook = next(d for d in row.deliveries if d["channel"] == "webhook")
        assert (webhook["ok"], webhook["attempts"], webhook["status_code"]) == (True, 1, 200)
        assert webhook["target"] == hook.shown
    assert env.services.alerts.get(env.admin.principal, rule_id).state == "ok"


async def test_no_data_keeps_the_state_and_records_no_value(env: Env, fired: FiredEvents) -> None:
    await traffic(env, 3, succeed=False)
    rule_id = error_rule(env)
    start = utcnow()
    assert env.services.alerts.evaluate_all(now=start) == 1
    # A day later nothing was sent: no decision, the rule stays firing, the value is unknown.
    later = start + timedelta(days=1)
    assert env.services.alerts.evaluate_all(now=later) == 0
    rule = env.services.alerts.get(env.admin.principal, rule_id)
    assert (rule.state, rule.last_value, rule.last_evaluated_at) == ("firing", None, later)
    assert [e.state for e in fired.events] == ["firing"]


async def test_failing_webhooks_are_recorded_and_never_hold_up_the_state_change(
    env: Env, fired: FiredEvents
) -> None:
    env.services.alerts.evaluator.sender = WebhookSender(
        timeout_s=0.3, allow_private=True, backoff_s=0.01
    )
    await traffic(env, 3, succeed=False)
    seen_during_delivery: list[tuple[str, bool | None]] = []

    def look_at_the_database() -> None:
        # Runs inside the slow delivery: the transition must be committed already.
        with env.services.store.read() as session:
            state = session.execute(select(AlertRuleRow.state)).scalar_one()
            event = session.execute(select(AlertEventRow)).scalar_one()
        webhook = next(d for d in event.deliveries if d.get("target") == slow.shown)
        seen_during_delivery.append((state, webhook["ok"]))

    with (
        receiving(Receiver(status=500)) as broken,
        receiving(Receiver(hold_s=5.0, on_request=look_at_the_database)) as slow,
        receiving() as working,
    ):
        refused = refused_url()
        rule_id = error_rule(
            env,
            *({"type": "webhook", "url": u} for u in (broken.url, refused, slow.url, working.url)),
        )
        assert env.services.alerts.evaluate_all() == 1

    assert seen_during_delivery[0] == ("firing", None)  # committed, delivery still pending
    assert len(broken.received) == 3
    assert len(slow.received) == 3
    assert len(working.received) == 1
    [event] = env.services.alerts.events(env.admin.principal, rule_id).items
    by_target = {d.target: d for d in event.deliveries if d.channel == "webhook"}
    urls = (broken.url, refused, slow.url, working.url)
    outcomes = [by_target[shown_as(url)] for url in urls]
    assert [(d.ok, d.attempts) for d in outcomes] == [(False, 3), (False, 3), (False, 3), (True, 1)]
    assert (outcomes[0].status_code, outcomes[0].error) == (500, "HTTP 500")
    assert outcomes[1].error is not None
    assert outcomes[1].error.startswith("connection failed")
    assert outcomes[2].error == "timed out after 0.3 s"
    assert env.services.alerts.get(env.admin.principal, rule_id).state == "firing"
    assert [e.state for e in fired.events] == ["firing"]


async def test_two_workers_evaluating_at_once_fire_and_notify_once(
    env: Env, fired: FiredEvents
) -> None:
    await traffic(env, 3, succeed=False)
    with receiving() as hook:
        error_rule(env, {"type": "webhook", "url": hook.url})
        barrier = threading.Barrier(2)
        transitions: list[int] = []
        now = utcnow()

        def worker() -> None:
            barrier.wait()
            transitions.append(env.services.alerts.evaluate_all(now=now))

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert sorted(transitions) == [0, 1]
        assert len(hook.received) == 1
    assert len(event_rows(env)) == 1
    assert len(fired.events) == 1


async def test_an_evaluation_older_than_the_last_one_changes_nothing(
    env: Env, fired: FiredEvents
) -> None:
    await traffic(env, 3, succeed=False)
    rule_id = error_rule(env)
    now = utcnow()
    env.services.alerts.evaluate_all(now=now)
    # A slow worker settling after a newer evaluation must not flip the state back.
    assert env.services.alerts.evaluate_all(now=now - timedelta(days=2)) == 0
    rule = env.services.alerts.get(env.admin.principal, rule_id)
    assert (rule.state, rule.last_evaluated_at) == ("firing", now)


async def test_a_disabled_rule_is_not_evaluated_and_forgets_its_state(
    env: Env, fired: FiredEvents
) -> None:
    await traffic(env, 3, succeed=False)
    rule_id = error_rule(env)
    now = utcnow()
    assert env.services.alerts.evaluate_all(now=now) == 1
    off = env.services.alerts.update(env.admin.principal, rule_id, AlertRuleUpdate(enabled=False))
    assert (off.enabled, off.state, off.last_value) == (False, "ok", None)
    assert env.services.alerts.evaluate_all(now=now + timedelta(seconds=30)) == 0
    on = env.services.alerts.update(env.admin.principal, rule_id, AlertRuleUpdate(enabled=True))
    assert on.state == "ok"
    # Enabled again with the failures still in the window: it fires anew.
    assert env.services.alerts.evaluate_all(now=now + timedelta(seconds=60)) == 1
    with env.services.store.read() as session:
        assert session.execute(select(func.count(AlertEventRow.id))).scalar_one() == 2
