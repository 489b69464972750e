"""Traces are stored with personal data and secrets redacted, unless a project keeps raw text.

What a user relies on: a prompt carrying an e-mail address, a Spanish DNI, a card
number or an API key is never written to the database as it was (gateway, OTLP
and SDK spans alike), even on a deployment with no guard policy; an admin may turn
raw text on for a project, and that change is on the audit record; what a guard
policy already redacted is stored unchanged; a detector failure withholds the
text instead of storing it raw.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select, update

from modelcycle.errors import ModelcycleError
from modelcycle.guard.builtin import BuiltinDetectors
from modelcycle.guard.engine import DetectorRegistry
from modelcycle.guard.schemas import GuardPolicySpec, GuardRule
from modelcycle.guard.storage import storage_redactor
from modelcycle.monitor import SpanRecord
from modelcycle.monitor.redaction import WITHHELD, SpanRedactor
from modelcycle.monitor.retention import MonitorPolicies
from modelcycle.monitor.trace_schemas import MonitorPolicyUpdate
from modelcycle.services import Services
from modelcycle.store.tables import AuditEntryRow, MonitorPolicyRow, SpanRow
from modelcycle.testing import KeyPair, make_key
from modelcycle.types import Role
from monitor.recording import gateway, settings_for

EMAIL = "maria.garcia@example.com"
DNI = "12345678Z"
CARD = "4111 1111 1111 1111"
API_KEY = "sk-proj-" + "Q7fJ2kLm9XwP4rT8vB1nZ6yH3cD5gA0e" + "Uq2Wx8Rt5Yk1Lp7Mn4Vb"
GITHUB_TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
PRIVATE = (EMAIL, DNI, CARD, API_KEY, GITHUB_TOKEN)
PROMPT = (
    f"Hola, soy Maria ({EMAIL}), DNI {DNI}. Pago con la tarjeta {CARD}. "
    f"Mi clave es {API_KEY} y el token {GITHUB_TOKEN}."
)


def stored_spans(services: Services) -> list[SpanRow]:
    services.recorder.flush()
    with services.store.read() as session:
        return list(session.execute(select(SpanRow).order_by(SpanRow.id)).scalars())


def assert_redacted(*texts: str | None) -> None:
    for text in texts:
        assert text is not None
        for value in PRIVATE:
            assert value not in text, f"{value!r} stored in {text!r}"
        assert "[EMAIL_ADDRESS]" in text


async def chat(env: Any, content: str) -> httpx.Response:
    response = await env.http().post(
        "/v1/chat/completions",
        json={"model": "chat", "messages": [{"role": "user", "content": content}]},
        headers={"X-Modelcycle-User": "maria"},
    )
    assert response.status_code == 200, response.text
    return response


# -- the gateway -------------------------------------------------------------------------


async def test_a_request_without_a_guard_policy_is_stored_redacted_both_ways(
    tmp_path: Path,
) -> None:
    async with gateway(settings_for(tmp_path)) as env:
        env.deploy("chat", (env.version("bot", "mock://echo"), 100))
        response = await chat(env, PROMPT)

        assert API_KEY in response.json()["choices"][0]["message"]["content"], (
            "storage redaction must not change what the caller receives"
        )
        [span] = stored_spans(env.services)
        assert_redacted(span.input, span.output)
        messages = orjson.loads(span.input or "")
        assert messages[0]["role"] == "user", "the stored messages are still valid JSON"
        assert span.user_id == "maria", "the user id is kept: erasure and export look it up"


async def test_a_project_that_keeps_raw_text_stores_the_prompt_as_sent(tmp_path: Path) -> None:
    async with gateway(settings_for(tmp_path)) as env:
        env.deploy("chat", (env.version("bot", "mock://echo"), 100))
        env.services.monitor_policies.set(
            env.admin.principal, MonitorPolicyUpdate(store_raw_text=True)
        )
        await chat(env, PROMPT)

        [span] = stored_spans(env.services)
        assert PROMPT in (span.input or "")
        assert span.output == PROMPT


async def test_text_a_guard_policy_already_redacted_is_stored_unchanged(tmp_path: Path) -> None:
    already = "Write to [EMAIL_ADDRESS] about card [CREDIT_CARD] and key [API_KEY]."
    async with gateway(settings_for(tmp_path)) as env:
        env.deploy("chat", (env.version("bot", "mock://echo"), 100))
        await chat(env, already)

        [span] = stored_spans(env.services)
        assert span.output == already
        assert orjson.loads(span.input or "")[0]["content"] == already


async def test_what_a_deployments_guard_policy_redacted_is_stored_as_the_model_saw_it(
    tmp_path: Path,
) -> None:
    spec = GuardPolicySpec(
        input=[GuardRule(detector="pii", action="redact")],
        output=[GuardRule(detector="pii", action="redact")],
    )
    async with gateway(settings_for(tmp_path)) as env:
        env.services.guard.ensure(env.admin.principal, "pii-only", spec)
        env.deploy("chat", (env.version("bot", "mock://echo"), 100), guard="pii-only")
        response = await chat(env, f"Mail {EMAIL} about card {CARD}")
        answered = response.json()["choices"][0]["message"]["content"]

        [span] = stored_spans(env.services)
        assert span.guard == "redact"
        assert "[EMAIL_ADDRESS]" in answered, "the guard redacted before the model"
        assert span.output == answered, "stored exactly as the guard left it"
        assert orjson.loads(span.input or "")[0]["content"] == answered


def test_the_storage_redactor_is_idempotent(modelcycle_services: Services) -> None:
    redactor = modelcycle_services.recorder.redactor
    assert redactor is not None
    once = redactor.text(PROMPT)
    assert once is not None
    assert_redacted(once)
    assert redactor.text(once) == once


# -- the switch --------------------------------------------------------------------------


async def test_turning_raw_text_on_needs_an_admin_and_is_audited(
    modelcycle_services: Services, modelcycle_api: httpx.AsyncClient
) -> None:
    maintainer = make_key(modelcycle_services, Role.MAINTAINER)
    refused = await modelcycle_api.put(
        "/api/v1/monitor/policy",
        json={"store_raw_text": True},
        headers={"Authorization": f"Bearer {maintainer.key}"},
    )
    assert refused.status_code == 403
    await modelcycle_api.put("/api/v1/monitor/policy", json={"retention_days": 30})

    turned = await modelcycle_api.put("/api/v1/monitor/policy", json={"store_raw_text": True})

    assert turned.status_code == 200, turned.text
    assert turned.json()["store_raw_text"] is True
    assert turned.json()["retention_days"] == 30, "a field left out keeps its value"
    shown = await modelcycle_api.get("/api/v1/monitor/policy")
    assert shown.json()["store_raw_text"] is True
    with modelcycle_services.store.read() as session:
        entry = session.execute(
            select(AuditEntryRow)
            .where(AuditEntryRow.action == "monitor.policy.set")
            .order_by(AuditEntryRow.seq.desc())
            .limit(1)
        ).scalar_one()
    assert entry.before == {"retention_days": 30, "store_raw_text": False}
    assert entry.after == {"retention_days": 30, "store_raw_text": True}


async def test_an_empty_policy_change_is_refused(modelcycle_api: httpx.AsyncClient) -> None:
    response = await modelcycle_api.put("/api/v1/monitor/policy", json={})
    assert response.status_code == 400
    assert "store_raw_text" in response.json()["error"]["message"]


def test_another_process_switching_raw_text_is_seen_within_the_ttl(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    now = [0.0]
    policies = MonitorPolicies(modelcycle_services.store, ttl_s=5.0, clock=lambda: now[0])
    admin = modelcycle_admin.principal
    project = admin.project_id
    assert policies.keeps_raw_text(project) is False
    modelcycle_services.monitor_policies.set(admin, MonitorPolicyUpdate(store_raw_text=True))
    assert policies.keeps_raw_text(project) is False, "answered from memory within the TTL"
    now[0] = 5.1
    assert policies.keeps_raw_text(project) is True
    assert modelcycle_services.monitor_policies.keeps_raw_text(project) is True
    with modelcycle_services.store.write() as session:  # as another process would
        session.execute(update(MonitorPolicyRow).values(store_raw_text=False))
    assert modelcycle_services.monitor_policies.keeps_raw_text(project) is True, "cached"
    modelcycle_services.monitor_policies.set(admin, MonitorPolicyUpdate(store_raw_text=True))
    modelcycle_services.monitor_policies.set(admin, MonitorPolicyUpdate(store_raw_text=False))
    assert modelcycle_services.monitor_policies.keeps_raw_text(project) is False, (
        "a change made in this process applies at once"
    )


# -- OTLP and SDK spans ------------------------------------------------------------------


def _attribute(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value}}


@pytest.fixture
async def api(modelcycle_services: Services) -> AsyncIterator[httpx.AsyncClient]:
    from modelcycle.api import create_app

    key = make_key(modelcycle_services, Role.APP)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(modelcycle_services)),
        base_url="http://modelcycle.test",
        headers={"Authorization": f"Bearer {key.key}"},
    ) as client:
        yield client


async def test_an_otlp_span_is_stored_redacted_attributes_included(
    modelcycle_services: Services, api: httpx.AsyncClient
) -> None:
    trace_id, span_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    now = time.time_ns()
    messages = orjson.dumps([{"role": "user", "content": PROMPT}]).decode()
    export = {
        "resourceSpans": [
            {
                "resource": {"attributes": [_attribute("service.name", "support-app")]},
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": span_id,
                                "name": "chat gpt-x",
                                "kind": 3,
                                "startTimeUnixNano": str(now - 1_000_000),
                                "endTimeUnixNano": str(now),
                                "attributes": [
                                    _attribute("gen_ai.operation.name", "chat"),
                                    _attribute("gen_ai.input.messages", messages),
                                    _attribute("gen_ai.completion.0.content", f"Ok {EMAIL}"),
                                    _attribute("app.ticket_note", f"customer card {CARD}"),
                                    _attribute("user.id", "maria"),
                                ],
                            }
                        ]
                    }
                ],
            }
        ]
    }

    response = await api.post(
        "/v1/traces", content=orjson.dumps(export), headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 200, response.text
    [span] = stored_spans(modelcycle_services)
    assert_redacted(span.input)
    assert span.output is not None
    assert EMAIL not in span.output
    assert span.attributes is not None
    assert CARD not in orjson.dumps(span.attributes).decode()
    assert span.attributes["service.name"] == "support-app", "plain attributes stay as they were"
    assert span.user_id == "maria"


def test_sdk_spans_given_to_the_recorder_are_redacted_before_any_exporter_sees_them(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    seen: list[str | None] = []
    recorder = modelcycle_services.recorder
    recorder.exporters.append(lambda spans: seen.extend(span.input for span in spans))
    now = datetime.now(UTC)
    recorder.submit(
        SpanRecord(
            project_id=modelcycle_admin.principal.project_id,
            trace_id=uuid.uuid4().hex,
            span_id=uuid.uuid4().hex[:16],
            name="answer",
            kind="chain",
            source="sdk",
            start_time=now,
            end_time=now,
            duration_ms=0.0,
            status="error",
            error_message=f"upstream refused: {PROMPT}",
            input=PROMPT,
        )
    )
    [span] = stored_spans(modelcycle_services)
    assert_redacted(span.input, span.error_message)
    assert seen == [span.input], "exporters (OTLP) get redacted text"


# -- failures are never stored raw -------------------------------------------------------


def _record(text: str) -> SpanRecord:
    now = datetime.now(UTC)
    return SpanRecord(
        project_id=7,
        trace_id="t" * 32,
        span_id="s" * 16,
        name="x",
        kind="llm",
        source="sdk",
        start_time=now,
        end_time=now,
        duration_ms=0.0,
        status="ok",
        input=text,
        attributes={"note": text, "count": 3},
    )


def test_a_failing_detector_withholds_the_text() -> None:
    def broken(_text: str) -> str:
        raise RuntimeError("detector crashed")

    span = _record("call me at " + EMAIL)
    redactor = SpanRedactor(broken, lambda _project: False)

    assert redactor.apply([span]) == 1
    assert span.input == WITHHELD
    assert span.attributes == {"note": WITHHELD, "count": 3}
    assert redactor.failures == 2


def test_an_unreadable_raw_text_switch_redacts() -> None:
    def unreadable(_project: int) -> bool:
        raise OSError("database gone")

    span = _record(EMAIL)
    SpanRedactor(lambda text: text.replace(EMAIL, "[EMAIL_ADDRESS]"), unreadable).apply([span])
    assert span.input == "[EMAIL_ADDRESS]"


def test_json_text_is_redacted_value_by_value_and_stays_json() -> None:
    text = orjson.dumps([{"role": "user", "content": f'say "{EMAIL}"'}]).decode()
    redactor = SpanRedactor(lambda t: t.replace(EMAIL, "[EMAIL_ADDRESS]"), lambda _p: False)
    out = redactor.text(text)
    assert orjson.loads(out or "") == [{"role": "user", "content": 'say "[EMAIL_ADDRESS]"'}]
    assert redactor.text('{"not json": ') == '{"not json": '


def test_a_server_without_the_pii_or_secrets_detector_refuses_to_start() -> None:
    with pytest.raises(ModelcycleError, match="pii, secrets"):
        storage_redactor(DetectorRegistry({}))


async def test_redaction_runs_on_the_writer_thread_not_the_request_path(tmp_path: Path) -> None:
    async with gateway(settings_for(tmp_path)) as env:
        env.deploy("chat", (env.version("bot", "mock://echo"), 100))
        redactor = env.services.recorder.redactor
        assert redactor is not None
        threads: set[str] = set()
        real = redactor._redact

        def watched(text: str) -> str:
            threads.add(threading.current_thread().name)
            return real(text)

        redactor._redact = watched
        await chat(env, PROMPT)
        [span] = stored_spans(env.services)

        assert_redacted(span.input)
        assert threads == {"modelcycle-trace-writer"}


def test_clean_json_text_takes_one_pass_and_escaped_text_is_read_value_by_value() -> None:
    calls: list[str] = []

    def counting(text: str) -> str:
        calls.append(text)
        return text.replace(EMAIL, "[EMAIL_ADDRESS]")

    redactor = SpanRedactor(counting, lambda _p: False)
    clean = orjson.dumps([{"role": "user", "content": "what is the capital of Spain?"}]).decode()
    assert redactor.text(clean) == clean
    assert calls == [clean]  # one pass over the whole text, no parse, no value by value

    # A value whose JSON form differs from its text (escapes) is read value by value,
    # where the real detectors see the text as sent: a private key's line breaks, say.
    real = storage_redactor(DetectorRegistry(BuiltinDetectors().modelcycle_guard_detectors()))
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq\n-----END RSA PRIVATE KEY-----"
    escaped = orjson.dumps([{"role": "user", "content": f"my key:\n{pem}"}]).decode()
    out = SpanRedactor(real, lambda _p: False).text(escaped)
    assert "MIIEowIBAAKCAQEA7bq" not in (out or "")
    assert orjson.loads(out or "")[0]["content"].startswith("my key:\n[")
