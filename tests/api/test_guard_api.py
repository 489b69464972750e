"""``/api/v1/guard``: the check endpoint per the contract, policies, detectors, errors as JSON."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from api.conftest import ClientFactory
from modelcycle.services import Services
from modelcycle.testing import KeyPair, make_key, register
from modelcycle.types import Role

POLICY: dict[str, Any] = {
    "name": "support",
    "description": "no abuse, no politics",
    "input": [
        {"detector": "toxicity", "action": "redact", "types": ["INSULT", "PROFANITY"]},
        {"detector": "toxicity", "action": "block", "types": ["THREAT"]},
        {"detector": "topics", "action": "flag", "options": {"deny": {"POLITICS": ["election*"]}}},
    ],
    "output": [
        {"detector": "json_schema", "action": "block", "options": {"schema": {"type": "object"}}}
    ],
}


@pytest.fixture
def admin(client_for: ClientFactory, modelcycle_admin: KeyPair) -> httpx.AsyncClient:
    return client_for(modelcycle_admin.key)


async def create_policy(api: httpx.AsyncClient, body: dict[str, Any] = POLICY) -> dict[str, Any]:
    response = await api.post("/api/v1/guard/policies", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def assert_error(response: httpx.Response, status: int, *fragments: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    for fragment in fragments:
        assert fragment in error["message"]


async def test_check_answers_action_findings_and_redacted_text_per_the_contract(
    admin: httpx.AsyncClient,
) -> None:
    await create_policy(admin)
    text = "Elections again? This shit is making me sad, you moron."

    response = await admin.post(
        "/api/v1/guard/check", json={"text": text, "stage": "input", "policy": "support"}
    )

    assert response.status_code == 200
    body = response.json()
    assert body["action"] == "redact"
    assert body["policy"] == "support"
    assert body["redacted_text"] == "Elections again? This [PROFANITY] is making me sad, [INSULT]."
    findings = [(f["detector"], f["type"], f["action"]) for f in body["findings"]]
    assert findings == [
        ("topics", "TOPIC_POLITICS", "flag"),
        ("toxicity", "PROFANITY", "redact"),
        ("toxicity", "INSULT", "redact"),
    ]
    for finding in body["findings"]:
        assert set(finding) >= {"detector", "type", "start", "end", "score"}
        assert text[finding["start"] : finding["end"]]  # offsets into the text sent
    # Findings say where, never what: the matched words appear nowhere in them.
    assert "moron" not in json.dumps(body["findings"])


async def test_check_uses_the_deployment_s_policy_and_blocks(
    admin: httpx.AsyncClient, modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    await create_policy(admin)
    register(modelcycle_services, modelcycle_admin.principal, "m")
    created = await admin.post(
        "/api/v1/deployments",
        json={"name": "bot", "routes": [{"target": "m@1", "weight": 100}], "guard": "support"},
    )
    assert created.status_code == 201, created.text

    threat = await admin.post(
        "/api/v1/guard/check", json={"text": "I will kill you", "deployment": "bot"}
    )
    answer = await admin.post(
        "/api/v1/guard/check", json={"text": "not json", "deployment": "bot", "stage": "output"}
    )

    assert threat.json()["action"] == "block"
    assert [f["type"] for f in threat.json()["findings"]] == ["THREAT"]
    assert answer.json()["action"] == "block"
    assert [f["type"] for f in answer.json()["findings"]] == ["INVALID_JSON"]


async def test_an_app_key_may_check_but_not_read_or_change_policies(
    admin: httpx.AsyncClient, client_for: ClientFactory, modelcycle_services: Services
) -> None:
    await create_policy(admin)
    app = client_for(make_key(modelcycle_services, Role.APP).key)

    checked = await app.post("/api/v1/guard/check", json={"text": "hi", "policy": "support"})
    listed = await app.get("/api/v1/guard/policies")
    created = await app.post("/api/v1/guard/policies", json={**POLICY, "name": "mine"})

    assert checked.status_code == 200
    assert checked.json()["action"] == "allow"
    assert_error(listed, 403)
    assert_error(created, 403)


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"text": "hi", "deployment": "nope"}, 404, "deployment 'nope' not found"),
        ({"text": "hi", "policy": "nope"}, 404, "guard policy 'nope' not found"),
        ({"text": "hi", "policy": "support", "deployment": "bot"}, 400, "not both"),
        ({"text": "hi", "stage": "middle"}, 400, "stage"),
        ({"text": 5}, 400, "text"),
        ({"text": "hi", "colour": "red"}, 400, "colour"),
    ],
)
async def test_bad_check_requests_are_4xx_json_errors(
    admin: httpx.AsyncClient, body: dict[str, Any], status: int, fragment: str
) -> None:
    await create_policy(admin)

    response = await admin.post("/api/v1/guard/check", json=body)

    assert_error(response, status, fragment)


async def test_policy_crud_with_revisions_and_in_use_protection(
    admin: httpx.AsyncClient, modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    created = await create_policy(admin)
    spec = {"input": [{"detector": "max_size", "action": "block", "options": {"max_chars": 5}}]}
    updated = await admin.put("/api/v1/guard/policies/support?expected_revision=1", json=spec)
    stale = await admin.put("/api/v1/guard/policies/support?expected_revision=1", json=spec)
    shown = await admin.get("/api/v1/guard/policies/support")
    listed = await admin.get("/api/v1/guard/policies")
    register(modelcycle_services, modelcycle_admin.principal, "m")
    await admin.post(
        "/api/v1/deployments",
        json={"name": "bot", "routes": [{"target": "m@1", "weight": 100}], "guard": "support"},
    )
    in_use = await admin.delete("/api/v1/guard/policies/support")

    assert created["revision"] == 1
    assert updated.status_code == 200
    assert updated.json()["revision"] == 2
    assert_error(stale, 409, "at revision 2, not 1")
    assert shown.json()["spec"]["input"][0]["detector"] == "max_size"
    assert "support" in [p["name"] for p in listed.json()["data"]]
    assert_error(in_use, 409, "in use by deployment(s) bot")


async def test_a_policy_that_does_not_compile_is_a_400_naming_the_rule(
    admin: httpx.AsyncClient,
) -> None:
    unknown = await admin.post(
        "/api/v1/guard/policies",
        json={"name": "x", "input": [{"detector": "telepathy", "action": "block"}]},
    )
    bad_schema = await admin.post(
        "/api/v1/guard/policies",
        json={
            "name": "y",
            "output": [
                {"detector": "json_schema", "action": "block", "options": {"schema": {"type": 3}}}
            ],
        },
    )
    missing = await admin.delete("/api/v1/guard/policies/never")

    assert_error(unknown, 400, "input[0]: unknown detector 'telepathy'", "toxicity")
    assert_error(bad_schema, 400, "output[0].options: json_schema: not a valid JSON Schema")
    assert_error(missing, 404, "guard policy 'never' not found")


async def test_a_deployment_naming_an_unknown_policy_is_refused(
    admin: httpx.AsyncClient, modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    register(modelcycle_services, modelcycle_admin.principal, "m")

    response = await admin.post(
        "/api/v1/deployments",
        json={"name": "bot", "routes": [{"target": "m@1", "weight": 100}], "guard": "ghost"},
    )

    assert_error(response, 400, "unknown guard policy 'ghost'", "modelcycle guard policy set")


async def test_detectors_are_listed_with_what_they_find(admin: httpx.AsyncClient) -> None:
    response = await admin.get("/api/v1/guard/detectors")

    described = {d["name"]: d["description"] for d in response.json()}
    assert {"toxicity", "topics", "max_size", "json_schema"} <= set(described)
    assert "insults" in described["toxicity"]
