"""API keys never leak: not into logs, not into error bodies, only the one create response."""

from __future__ import annotations

import logging

import httpx
import pytest

from modelcycle.access.throttle import AuthThrottle
from modelcycle.services import Services
from modelcycle.testing import KeyPair


def near_miss(raw: str) -> str:
    """The same prefix with the secret's last character changed."""
    return raw[:-1] + ("A" if raw[-1] != "A" else "B")


async def failed_and_good_logins(app: object, secrets: list[str]) -> list[httpx.Response]:
    """Near misses of every key, each key itself, and a bad request with a near miss."""
    responses: list[httpx.Response] = []
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as anonymous:
        for raw in secrets:
            for presented in (near_miss(raw), raw + "0", raw.upper(), raw[:-5]):
                response = await anonymous.get(
                    "/api/v1/whoami", headers={"Authorization": f"Bearer {presented}"}
                )
                assert response.status_code == 401
                assert presented not in response.text
                responses.append(response)
            ok = await anonymous.get("/api/v1/whoami", headers={"Authorization": f"Bearer {raw}"})
            assert ok.status_code == 200
            responses.append(ok)
            responses.append(
                await anonymous.post(
                    "/api/v1/models/x/versions",
                    json={"source": raw, "backend": "nope"},
                    headers={"Authorization": f"Bearer {near_miss(raw)}"},
                )
            )
    return responses


async def revoke_all_but_bootstrap(api: httpx.AsyncClient) -> list[httpx.Response]:
    responses = []
    for key in (await api.get("/api/v1/keys")).json()["data"]:
        if key["name"] != "bootstrap-admin":
            revoked = await api.delete(f"/api/v1/keys/{key['id']}")
            assert revoked.status_code == 200
            responses.append(revoked)
    return responses


async def test_keys_never_appear_in_logs_or_other_responses(
    modelcycle_api: httpx.AsyncClient,
    modelcycle_admin: KeyPair,
    modelcycle_app: object,
    modelcycle_services: Services,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # 25 failed logins from one address: past the throttle (tests/api/test_auth_throttle.py).
    modelcycle_services.access.throttle = AuthThrottle(0, 60)
    caplog.set_level(logging.DEBUG)
    for name in ("sqlalchemy", "sqlalchemy.engine", "httpx", "modelcycle", "uvicorn"):
        caplog.set_level(logging.DEBUG, logger=name)
    created: list[str] = []
    for role in ("admin", "maintainer", "viewer", "app"):
        response = await modelcycle_api.post("/api/v1/keys", json={"name": role, "role": role})
        assert response.status_code == 201
        created.append(response.json()["key"])
    secrets = [*created, modelcycle_admin.key]

    responses = await failed_and_good_logins(modelcycle_app, secrets)
    responses += await revoke_all_but_bootstrap(modelcycle_api)
    for path in ("/api/v1/keys", "/api/v1/audit", "/api/v1/whoami", "/api/v1/audit/verify"):
        responses.append(await modelcycle_api.get(path))
    responses.append(await modelcycle_api.get("/api/v1/keys", params={"limit": 0}))

    loggers = {record.name.split(".")[0] for record in caplog.records}
    # SQL statements and their parameters were logged too, so the check covers them.
    assert "sqlalchemy" in loggers, "SQL was not logged; the test would prove little"
    logged = [caplog.text] + [
        f"{record.getMessage()} {record.args!r} {record.__dict__!r}" for record in caplog.records
    ]
    for raw in secrets:
        secret = raw.rsplit("_", 1)[1]
        assert not [text for text in logged if secret in text], "an API key was logged"
        leaked = [r.url for r in responses if secret in r.text or secret in str(r.headers)]
        assert not leaked, f"an API key was returned by {leaked}"
