"""``modelcycle secrets``: the value comes from stdin or an environment variable, never argv."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner, Result

from e2e.live import LiveServer, serve
from modelcycle.access.secrets import SecretCipher
from modelcycle.cli.main import app
from modelcycle.services import Services
from modelcycle.testing import KeyPair

VALUE = "sk-cli-0011223344556677889900aa"


@pytest.fixture
def modelcycle_database_url() -> str | None:
    return None


@pytest.fixture
def live(modelcycle_services: Services, modelcycle_admin: KeyPair) -> Iterator[LiveServer]:
    with serve(modelcycle_services, modelcycle_admin.key) as server:
        yield server


def run(live: LiveServer, *args: str, stdin: str | None = None, **env: str) -> Result:
    environment = {"MODELCYCLE_SERVER": live.url, "MODELCYCLE_API_KEY": live.admin_key, **env}
    result = CliRunner().invoke(app, list(args), env=environment, input=stdin)
    assert VALUE not in result.output
    assert live.admin_key not in result.output
    return result


def test_set_list_and_delete(live: LiveServer, modelcycle_services: Services) -> None:
    piped = run(live, "secrets", "set", "openai-prod", "--json", stdin=VALUE + "\n")
    from_env = run(live, "secrets", "set", "other", "--from-env", "MY_KEY", MY_KEY=VALUE + "x")
    listed = run(live, "secrets", "list", "--json")
    table = run(live, "secrets", "list")
    deleted = run(live, "secrets", "delete", "other")

    assert piped.exit_code == 0, piped.output
    assert json.loads(piped.stdout)["fingerprint"] == "…00aa"
    assert from_env.exit_code == 0, from_env.output
    assert "…00aax" not in from_env.output  # four characters, no more
    assert "…0aax" in from_env.output
    assert [s["name"] for s in json.loads(listed.stdout)] == ["openai-prod", "other"]
    assert "openai-prod" in table.stdout
    assert deleted.exit_code == 0
    assert "secret other deleted" in deleted.stdout
    project = modelcycle_services.access.authenticate(live.admin_key).project_id
    assert asyncio.run(modelcycle_services.secrets.reveal(project, "openai-prod")) == VALUE


def test_errors_are_one_line(live: LiveServer) -> None:
    empty = run(live, "secrets", "set", "x", stdin="")
    unset = run(live, "secrets", "set", "x", "--from-env", "SURELY_NOT_SET_ANYWHERE")
    missing = run(live, "secrets", "delete", "never-set")

    for result, fragment in (
        (empty, "no value on standard input"),
        (unset, "SURELY_NOT_SET_ANYWHERE is not set"),
        (missing, "secret 'never-set' not found"),
    ):
        assert result.exit_code == 1
        assert result.stderr.startswith("error: ")
        assert fragment in result.stderr


def test_generate_key_prints_a_usable_key(live: LiveServer) -> None:
    result = run(live, "secrets", "generate-key")
    key = result.stdout.strip()

    assert result.exit_code == 0
    assert len(key) == 44
    cipher = SecretCipher(SecretStr(key), live.services.settings.home)
    assert cipher.decrypt(cipher.encrypt("v"), "x") == "v"
