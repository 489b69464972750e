"""Secrets are encrypted at rest, shown only as metadata, audited by name, scoped to a project.

Runs on SQLite and PostgreSQL (the ciphertext column is BLOB on one, BYTEA on the other).
"""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from modelcycle.access.secrets import KEY_FILE, SecretCipher, Secrets, generate_key
from modelcycle.errors import InvalidInput, NotFound, StoreError
from modelcycle.services import Services
from modelcycle.store.tables import AuditEntryRow, SecretRow
from modelcycle.testing import KeyPair, make_key, make_project
from modelcycle.types import Role

VALUE = "sk-live-7c1d2e3f4a5b6c7d8e9f0a1b"


def stored(services: Services) -> tuple[list[SecretRow], list[AuditEntryRow]]:
    with services.store.read() as session:
        return (
            list(session.execute(select(SecretRow)).scalars()),
            list(session.execute(select(AuditEntryRow)).scalars()),
        )


async def test_set_list_show_delete_through_the_api(
    modelcycle_api: httpx.AsyncClient, modelcycle_services: Services
) -> None:
    created = await modelcycle_api.put("/api/v1/secrets/openai-prod", json={"value": VALUE})
    replaced = await modelcycle_api.put("/api/v1/secrets/openai-prod", json={"value": VALUE + "x"})
    short = await modelcycle_api.put("/api/v1/secrets/short", json={"value": "abc"})
    listed = await modelcycle_api.get("/api/v1/secrets")
    shown = await modelcycle_api.get("/api/v1/secrets/openai-prod")
    deleted = await modelcycle_api.delete("/api/v1/secrets/short")
    gone = await modelcycle_api.get("/api/v1/secrets/short")
    again = await modelcycle_api.delete("/api/v1/secrets/short")

    assert created.status_code == replaced.status_code == short.status_code == 200
    assert set(created.json()) == {
        "name",
        "fingerprint",
        "created_by",
        "created_at",
        "updated_by",
        "updated_at",
    }
    assert created.json()["fingerprint"] == "…0a1b"
    assert replaced.json()["fingerprint"] == "…a1bx"
    assert replaced.json()["created_at"] == created.json()["created_at"]
    assert replaced.json()["updated_at"] > created.json()["updated_at"]
    assert short.json()["fingerprint"] == "…"  # short values show nothing of themselves
    assert [s["name"] for s in listed.json()] == ["openai-prod", "short"]
    assert shown.json()["name"] == "openai-prod"
    assert deleted.status_code == 204
    assert gone.status_code == again.status_code == 404
    assert "modelcycle secrets list" in gone.json()["error"]["message"]
    for response in (created, replaced, listed, shown):
        assert VALUE not in response.text
    rows, audit = stored(modelcycle_services)
    [row] = rows
    assert VALUE.encode() not in row.ciphertext
    assert VALUE[-10:].encode() not in row.ciphertext
    secret_entries = [e for e in audit if e.target.startswith("secret:")]
    assert [(e.action, e.target) for e in secret_entries] == [
        ("secret.create", "secret:openai-prod"),
        ("secret.update", "secret:openai-prod"),
        ("secret.create", "secret:short"),
        ("secret.delete", "secret:short"),
    ]
    for entry in secret_entries:
        assert VALUE not in f"{entry.before} {entry.after}"
        assert "abc" not in f"{entry.before} {entry.after}"


@pytest.mark.parametrize(
    ("path", "body", "fragment"),
    [
        ("/api/v1/secrets/x", {"value": "two\nlines"}, "line breaks"),
        ("/api/v1/secrets/x", {"value": ""}, "value"),
        ("/api/v1/secrets/x", {"value": "a" * 8193}, "value"),
        ("/api/v1/secrets/x", {"value": "sk-extra-field-value", "extra": 1}, "extra"),
        ("/api/v1/secrets/Upper", {"value": "sk-bad-name-value"}, "name"),
    ],
)
async def test_bad_secrets_are_400_without_repeating_the_value(
    modelcycle_api: httpx.AsyncClient, path: str, body: dict[str, object], fragment: str
) -> None:
    response = await modelcycle_api.put(path, json=body)

    assert response.status_code == 400
    assert fragment in response.json()["error"]["message"]
    if body["value"]:
        assert str(body["value"]) not in response.text


async def test_roles_and_projects(
    modelcycle_services: Services, modelcycle_admin: KeyPair, modelcycle_app: object
) -> None:
    services = modelcycle_services
    services.secrets.put(modelcycle_admin.principal, "mine", VALUE)
    team = make_project(services)
    keys = {role: make_key(services, role, team) for role in Role}
    transport = httpx.ASGITransport(app=modelcycle_app)  # type: ignore[arg-type]

    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:

        async def call(role: Role, method: str, path: str, **kw: object) -> int:
            auth = {"Authorization": f"Bearer {keys[role].key}"}
            return (await client.request(method, path, headers=auth, **kw)).status_code  # type: ignore[arg-type]

        put = {"json": {"value": "v-team"}}
        assert await call(Role.MAINTAINER, "PUT", "/api/v1/secrets/t", **put) == 403
        assert await call(Role.ADMIN, "PUT", "/api/v1/secrets/t", **put) == 200
        assert await call(Role.MAINTAINER, "GET", "/api/v1/secrets") == 200
        assert await call(Role.VIEWER, "GET", "/api/v1/secrets") == 403
        assert await call(Role.APP, "GET", "/api/v1/secrets/t") == 403
        assert await call(Role.MAINTAINER, "DELETE", "/api/v1/secrets/t") == 403
        assert await call(Role.ADMIN, "GET", "/api/v1/secrets/mine") == 404  # another project's
        assert await call(Role.ADMIN, "DELETE", "/api/v1/secrets/mine") == 404

    assert await services.secrets.reveal(keys[Role.ADMIN].principal.project_id, "t") == "v-team"
    with pytest.raises(NotFound):
        await services.secrets.reveal(keys[Role.ADMIN].principal.project_id, "mine")
    assert await services.secrets.reveal(modelcycle_admin.principal.project_id, "mine") == VALUE


def test_the_key_file_is_generated_once_and_private(tmp_path: Path) -> None:
    first = SecretCipher(None, tmp_path / "home")
    token = first.encrypt(VALUE)
    key_file = tmp_path / "home" / KEY_FILE
    written = key_file.read_text()

    second = SecretCipher(None, tmp_path / "home")  # a restarted process

    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert second.decrypt(token, "x") == VALUE
    assert key_file.read_text() == written
    assert first.key_id == second.key_id
    assert [p.name for p in key_file.parent.iterdir()] == [KEY_FILE]  # no leftovers


def test_a_configured_key_wins_and_several_keys_rotate(tmp_path: Path) -> None:
    old_key, new_key = generate_key(), "a passphrase of more than thirty-two characters"
    old = SecretCipher(SecretStr(old_key), tmp_path)
    token = old.encrypt(VALUE)

    rotated = SecretCipher(SecretStr(f"{new_key},{old_key}"), tmp_path)
    wrong = SecretCipher(SecretStr(generate_key()), tmp_path)

    assert not (tmp_path / KEY_FILE).exists()  # a configured key writes no file
    assert rotated.decrypt(token, "x") == VALUE
    assert rotated.key_id != old.key_id
    assert SecretCipher(SecretStr(new_key), tmp_path).decrypt(rotated.encrypt("v"), "x") == "v"
    with pytest.raises(StoreError, match="secret 'openai' cannot be decrypted") as failed:
        wrong.decrypt(token, "openai")
    assert VALUE not in failed.value.message


def test_a_short_key_is_refused_without_repeating_it(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="at least 32 characters") as failed:
        SecretCipher(SecretStr("too-short-key"), tmp_path).encrypt("v")

    assert "too-short-key" not in failed.value.message


async def test_a_change_through_another_process_is_seen_within_the_ttl(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    now = [0.0]
    cipher = SecretCipher(None, modelcycle_services.settings.home)
    here = Secrets(modelcycle_services.store, cipher, ttl_s=5, clock=lambda: now[0])
    there = Secrets(modelcycle_services.store, cipher)
    project = modelcycle_admin.principal.project_id
    there.put(modelcycle_admin.principal, "k", "one")

    assert await here.reveal(project, "k") == "one"
    there.put(modelcycle_admin.principal, "k", "two")
    assert await here.reveal(project, "k") == "one"  # cached, no database read
    now[0] = 5.1
    assert await here.reveal(project, "k") == "two"
