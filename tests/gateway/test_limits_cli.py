"""``modelcycle deploy create/update --rpm/--tpm/--key-rpm/--max-concurrency/--cache-ttl``."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from cli.runner import Cli
from e2e.live import LiveServer, serve
from gateway.harness import Env

pytestmark = pytest.mark.e2e


@pytest.fixture
def live(env: Env) -> Iterator[LiveServer]:
    with serve(env.services, env.admin.key) as server:
        yield server


def test_limits_cache_and_breaker_from_the_command_line(env: Env, live: LiveServer) -> None:
    cli = Cli(live.url, live.admin_key)
    env.version("bot")

    created = cli.json(
        "deploy", "create", "chat", "--target", "bot@1", "--rpm", "100", "--tpm", "5000",
        "--key-rpm", "1", "--max-concurrency", "4", "--queue-timeout", "2", "--cache-ttl", "30",
    )  # fmt: skip
    assert created["spec"]["limits"] == {
        "rpm": 100,
        "tpm": 5000,
        "key_rpm": 1,
        "key_tpm": None,
        "max_concurrency": 4,
        "queue_timeout_s": 2.0,
    }
    assert created["spec"]["cache"] == {"ttl_s": 30.0}

    shown = cli("deploy", "show", "chat")
    assert "rpm 100, tpm 5000, key rpm 1, max concurrency 4" in shown.stdout

    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": f"Bearer {env.app_key.key}"}
    with httpx.Client(base_url=live.url, headers=headers) as client:
        assert client.post("/v1/chat/completions", json=body).status_code == 200
        assert client.post("/v1/chat/completions", json=body).status_code == 429

        updated = cli.json(
            "deploy", "update", "chat", "--key-rpm", "0", "--tpm", "0", "--cache-ttl", "0",
            "--breaker-failures", "3", "--breaker-cooldown", "5",
        )  # fmt: skip
        # No restart: the next request sees the change.
        assert client.post("/v1/chat/completions", json=body).status_code == 200

    limits = updated["spec"]["limits"]
    assert (limits["rpm"], limits["tpm"], limits["key_rpm"]) == (100, None, None)
    assert limits["max_concurrency"] == 4  # untouched
    assert updated["spec"]["cache"] == {"ttl_s": 0.0}
    assert (updated["spec"]["breaker"]["failures"], updated["spec"]["breaker"]["cooldown_s"]) == (
        3,
        5.0,
    )
    history = cli.json("deploy", "history", "chat")
    assert [h["spec"]["limits"]["key_rpm"] for h in history] == [1, None]
    audit = cli.json("audit", "list", "--action", "deployment.update")
    assert audit[0]["after"]["spec"]["breaker"]["failures"] == 3

    refused = cli("deploy", "update", "chat", "--rpm", "-1")
    assert refused.exit_code != 0
