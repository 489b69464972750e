"""The upstream's credential: a reference (environment variable or encrypted secret), never a value.

It reaches the upstream as ``Authorization: Bearer ...`` and nowhere else: not in
logs (captured at DEBUG), API responses, audit entries or database rows, not even
when the upstream repeats it in an error message.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import httpx
import openai
import pytest
from sqlalchemy import select

from backends.openai_env import gateway_env, openai_version
from backends.openai_upstream import MockUpstream
from gateway.harness import Env
from modelcycle.deploy import DeploymentSpec, Route
from modelcycle.settings import Settings
from modelcycle.store.tables import AuditEntryRow, SecretRow
from modelcycle.testing import make_key, make_project, register
from modelcycle.types import BackendKind, Role

USER = [{"role": "user", "content": "hi"}]
ENV_KEY = "sk-env-9f8e7d6c5b4a39281706"
SECRET_KEY = "sk-secret-0a1b2c3d4e5f60718293"
ROTATED_KEY = "sk-rotated-5566778899aabbccddee"


@pytest.fixture
def modelcycle_database_url() -> str | None:
    """SQLite; the secrets store runs on both databases in tests/secrets."""
    return None


@pytest.fixture
def upstream() -> Iterator[MockUpstream]:
    with MockUpstream() as server:
        yield server


@pytest.fixture
async def env(modelcycle_settings: Settings) -> AsyncIterator[Env]:
    async with gateway_env(modelcycle_settings) as built:
        yield built


def everything_stored(env: Env) -> str:
    """Every audit entry and secret row, as text (ciphertexts decoded leniently)."""
    with env.services.store.read() as session:
        audit = session.execute(select(AuditEntryRow)).scalars().all()
        secrets = session.execute(select(SecretRow)).scalars().all()
        parts = [f"{a.action} {a.target} {a.before} {a.after}" for a in audit]
        parts += [f"{s.name} {s.fingerprint} {s.ciphertext.decode('latin1')}" for s in secrets]
    return "\n".join(parts)


async def test_an_environment_variable_credential_reaches_the_upstream_as_bearer(
    env: Env, upstream: MockUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPSTREAM_TEST_KEY", ENV_KEY)
    env.deploy(
        "chat", (openai_version(env, "remote", upstream, api_key_env="UPSTREAM_TEST_KEY"), 100)
    )
    client = env.openai()

    await client.chat.completions.create(model="chat", messages=USER)
    monkeypatch.setenv("UPSTREAM_TEST_KEY", ROTATED_KEY)
    await client.chat.completions.create(model="chat", messages=USER)

    first, second = upstream.requests
    assert first.headers["authorization"] == f"Bearer {ENV_KEY}"
    assert second.headers["authorization"] == f"Bearer {ROTATED_KEY}"  # read per call
    assert ENV_KEY not in everything_stored(env)


async def test_an_unset_variable_fails_naming_it(env: Env, upstream: MockUpstream) -> None:
    env.deploy(
        "chat", (openai_version(env, "remote", upstream, api_key_env="NOT_SET_ANYWHERE"), 100)
    )

    with pytest.raises(openai.APIStatusError) as failed:
        await env.openai().chat.completions.create(model="chat", messages=USER)

    assert failed.value.status_code == 502
    assert "NOT_SET_ANYWHERE" in failed.value.message
    assert upstream.requests == []


async def test_a_stored_secret_is_used_and_never_shown(
    env: Env, upstream: MockUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    admin = env.http(env.admin.key)
    responses: list[httpx.Response] = []
    responses.append(await admin.put("/api/v1/secrets/upstream", json={"value": SECRET_KEY}))
    version = openai_version(env, "remote", upstream, api_key_secret="upstream")
    env.deploy("chat", (version, 100))
    client = env.openai()

    answer = await client.chat.completions.create(model="chat", messages=USER)
    streamed = [
        c
        async for c in await client.chat.completions.create(
            model="chat", messages=USER, stream=True
        )
    ]
    upstream.then(("leak", 400))
    with pytest.raises(openai.BadRequestError) as leaked:
        await client.chat.completions.create(model="chat", messages=USER)
    responses.append(await admin.get("/api/v1/secrets"))
    responses.append(await admin.get("/api/v1/secrets/upstream"))
    responses.append(await admin.get("/api/v1/models/remote/versions/1"))
    responses.append(await admin.get("/api/v1/audit"))

    assert answer.choices[0].message.content
    assert streamed
    assert [r.headers["authorization"] for r in upstream.requests] == [f"Bearer {SECRET_KEY}"] * 3
    assert "upstream says 400 to Bearer ***" in leaked.value.message
    assert SECRET_KEY not in str(leaked.value.body)
    assert responses[0].status_code == 200
    assert responses[0].json()["fingerprint"] == "…8293"
    assert [s["name"] for s in responses[1].json()] == ["upstream"]
    audit = [e for e in responses[4].json()["data"] if e["target"] == "secret:upstream"]
    assert [e["action"] for e in audit] == ["secret.create"]
    for response in responses:
        assert response.status_code == 200, response.text
        assert SECRET_KEY not in response.text
        assert SECRET_KEY[-8:] not in response.text  # not even most of it
    assert SECRET_KEY not in caplog.text
    assert SECRET_KEY not in everything_stored(env)
    with env.services.store.read() as session:
        [row] = session.execute(select(SecretRow)).scalars().all()
    assert SECRET_KEY.encode() not in row.ciphertext


async def test_a_changed_secret_applies_to_the_next_request(
    env: Env, upstream: MockUpstream
) -> None:
    admin = env.http(env.admin.key)
    await admin.put("/api/v1/secrets/upstream", json={"value": SECRET_KEY})
    env.deploy("chat", (openai_version(env, "remote", upstream, api_key_secret="upstream"), 100))
    client = env.openai()

    await client.chat.completions.create(model="chat", messages=USER)
    await admin.put("/api/v1/secrets/upstream", json={"value": ROTATED_KEY})
    await client.chat.completions.create(model="chat", messages=USER)
    deleted = await admin.delete("/api/v1/secrets/upstream")
    with pytest.raises(openai.APIStatusError) as failed:
        await client.chat.completions.create(model="chat", messages=USER)

    assert deleted.status_code == 204
    assert [r.headers["authorization"] for r in upstream.requests] == [
        f"Bearer {SECRET_KEY}",
        f"Bearer {ROTATED_KEY}",
    ]
    assert failed.value.status_code == 502
    assert "api_key_secret 'upstream' does not exist in project 'default'" in failed.value.message
    assert "modelcycle secrets set upstream" in failed.value.message
    assert SECRET_KEY not in failed.value.message


async def test_a_secret_is_read_in_the_callers_project_only(
    env: Env, upstream: MockUpstream
) -> None:
    team = make_project(env.services, "team-b")
    team_admin = make_key(env.services, Role.ADMIN, team)
    team_app = make_key(env.services, Role.APP, team)
    env.services.secrets.put(env.admin.principal, "shared", SECRET_KEY)
    # The same upstream and params in both projects: one backend instance serves both.
    params = {"model": "upstream-model", "api_key_secret": "shared"}
    for admin in (env.admin, team_admin):
        register(
            env.services,
            admin.principal,
            "remote",
            source=upstream.url,
            backend=BackendKind.OPENAI,
            params=params,
        )
        env.services.deployments.create(
            admin.principal,
            DeploymentSpec(name="chat", routes=[Route(target="remote@1", weight=100)]),
        )

    with pytest.raises(openai.APIStatusError) as theirs:
        await env.openai(team_app.key).chat.completions.create(model="chat", messages=USER)
    env.services.secrets.put(team_admin.principal, "shared", ROTATED_KEY)
    await env.openai(team_app.key).chat.completions.create(model="chat", messages=USER)
    await env.openai().chat.completions.create(model="chat", messages=USER)

    assert "does not exist in project 'team-b'" in theirs.value.message
    assert [r.headers["authorization"] for r in upstream.requests] == [
        f"Bearer {ROTATED_KEY}",
        f"Bearer {SECRET_KEY}",
    ]


async def test_another_header_carries_the_bare_credential(
    env: Env, upstream: MockUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_TEST_KEY", ENV_KEY)
    version = openai_version(
        env,
        "azure",
        upstream,
        api_key_env="AZURE_TEST_KEY",
        api_key_header="api-key",
        headers={"OpenAI-Organization": "org-7"},
    )
    env.deploy("chat", (version, 100))

    await env.openai().chat.completions.create(model="chat", messages=USER)

    [sent] = upstream.requests
    assert sent.headers["api-key"] == ENV_KEY
    assert "authorization" not in sent.headers
    assert sent.headers["openai-organization"] == "org-7"


@pytest.mark.parametrize(
    ("source", "params", "expected"),
    [
        (None, {"model": "m", "api_key": ENV_KEY}, "params.api_key would store a credential"),
        (None, {"model": "m", "headers": {"Authorization": f"Bearer {ENV_KEY}"}}, "plain text"),
        (
            None,
            {"model": "m", "headers": {"X-Api-Key": ENV_KEY}},
            "use api_key_env or api_key_secret",
        ),
        (None, {"model": "m", "api_key_env": "MODELCYCLE_ADMIN_KEY"}, "MODELCYCLE_*"),
        (None, {"model": "m", "api_key_env": "A", "api_key_secret": "b"}, "not both"),
        (None, {"model": "m", "api_kye_env": "A"}, "params.api_kye_env: unknown parameter"),
        (f"http://user:{ENV_KEY}@127.0.0.1:9/v1", {"model": "m"}, "must not carry credentials"),
        (f"http://127.0.0.1:9/v1?api_key={ENV_KEY}", {"model": "m"}, "looks like a credential"),
        ("ftp://127.0.0.1/v1", {"model": "m"}, "the upstream's base URL"),
    ],
)
async def test_registration_refuses_plain_text_credentials_and_bad_versions(
    env: Env, upstream: MockUpstream, source: str | None, params: dict[str, object], expected: str
) -> None:
    api = env.http(env.admin.key)
    body = {"source": source or upstream.url, "backend": "openai", "params": params}

    response = await api.post("/api/v1/models/remote/versions", json=body)

    assert response.status_code == 400
    error = response.json()["error"]
    assert expected in error["message"]
    assert error["param"] == "params"
    assert ENV_KEY not in response.text
    assert (await api.get("/api/v1/models/remote")).status_code == 404  # nothing was stored
    assert ENV_KEY not in everything_stored(env)


async def test_a_plain_text_credential_is_refused_for_every_kind(env: Env) -> None:
    api = env.http(env.admin.key)
    body = {"source": "mock://echo", "backend": "mock", "params": {"nested": {"password": "pw"}}}

    response = await api.post("/api/v1/models/bot/versions", json=body)

    assert response.status_code == 400
    assert "params.nested.password would store a credential in plain text" in response.text
    assert "api_key_secret" in response.text
