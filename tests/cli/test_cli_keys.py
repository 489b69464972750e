"""``modelcycle keys``, ``whoami`` and ``projects``: keys are shown once and can be revoked."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from cli.runner import Cli
from e2e.live import LiveServer
from modelcycle.access.keys import KEY_PATTERN
from modelcycle.cli.main import app

pytestmark = pytest.mark.e2e


def test_created_key_works_until_revoked(cli: Cli) -> None:
    created = cli("keys", "create", "--name", "ci", "--role", "viewer")
    key = re.search(r"^key: (\S+)$", created.stdout, re.MULTILINE)
    assert created.exit_code == 0, created.output
    assert key is not None
    assert "shown only now" in created.stdout

    me = cli.json("whoami", key=key.group(1))
    key_id = str(me["key_id"])
    listed = cli.json("keys", "list")
    revoked = cli.json("keys", "revoke", key_id)

    assert (me["name"], me["role"], me["project"]) == ("ci", "viewer", "default")
    assert key_id in {str(k["id"]) for k in listed}
    assert all("key" not in k for k in listed)
    assert revoked["revoked_at"] is not None
    cli.fails("whoami", key=key.group(1), naming=("revoked",))


def test_key_fields_in_json_and_tables(cli: Cli) -> None:
    created = cli.json("keys", "create", "--name", "bot", "--role", "app")
    shown = cli("keys", "show", str(created["id"]))
    table = cli("keys", "list")

    assert KEY_PATTERN.match(created["key"])
    assert created["prefix"] in shown.stdout
    assert created["key"] not in shown.stdout + table.stdout
    assert "bot" in table.stdout


def test_bad_role_expiry_and_unknown_key_are_one_line_errors(cli: Cli) -> None:
    cli.fails("keys", "create", "--name", "x", "--role", "boss", naming=("--role", "viewer"))
    cli.fails("keys", "create", "--name", "x", "--role", "app", "--expires-at", "soon")
    cli.fails("keys", "create", "--name", "", "--role", "app", naming=("name",))
    cli.fails("keys", "show", "9999", naming=("9999",))


def test_projects_create_and_list(cli: Cli) -> None:
    created = cli.json("projects", "create", "team-a", "--description", "Team A")
    listed = cli("projects", "list")

    assert created["name"] == "team-a"
    assert "team-a" in listed.stdout
    cli.fails("projects", "create", "team-a", naming=("team-a",))


def test_explicit_flags_beat_the_environment(live_server: LiveServer) -> None:
    result = CliRunner().invoke(
        app,
        ["whoami", "--server", live_server.url, "--api-key", live_server.admin_key],
        env={"MODELCYCLE_SERVER": "http://127.0.0.1:1", "MODELCYCLE_API_KEY": "wrong"},
    )

    assert result.exit_code == 0, result.output
    assert "bootstrap-admin" in result.stdout
    assert live_server.admin_key not in result.output


def test_wrong_key_is_a_one_line_error(cli: Cli) -> None:
    cli.fails("whoami", key="mc_aaaaaaaa_" + "a" * 32)


def test_rotate_prints_the_new_key_once_and_retires_the_old_one(cli: Cli) -> None:
    created = cli.json("keys", "create", "--name", "ci", "--role", "app", "--deployment", "alpha")
    rotated = cli("keys", "rotate", str(created["id"]), "--grace", "1h")
    new_key = re.search(r"^key: (\S+)$", rotated.stdout, re.MULTILINE)

    assert rotated.exit_code == 0, rotated.output
    assert new_key is not None
    assert "shown only now" in rotated.stdout
    assert f"old key {created['id']}" in rotated.stdout
    assert "keeps working until" in rotated.stdout
    me = cli.json("whoami", key=new_key.group(1))
    assert (me["name"], me["role"], me["deployments"]) == ("ci", "app", ["alpha"])
    assert cli.json("whoami", key=created["key"])["key_id"] == created["id"]  # within the grace
    assert "alpha" in cli("keys", "list").stdout

    final = cli.json("keys", "rotate", str(me["key_id"]))
    assert final["previous"]["revoked_at"] is not None
    assert final["rotated_from"] == me["key_id"]
    cli.fails("whoami", key=new_key.group(1), naming=("revoked",))
    cli.fails("keys", "rotate", str(created["id"]), naming=("already rotated",))


def test_rotate_refuses_a_bad_grace_in_one_line(cli: Cli) -> None:
    cli.fails("keys", "rotate", "1", "--grace", "8d", naming=("--grace", "7 days"))
    cli.fails("keys", "rotate", "1", "--grace", "soon", naming=("--grace",))
    cli.fails("keys", "rotate", "99999", naming=("99999",))
