"""Commands that need no server: ``db``, ``keys generate``, client-side errors."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cli.runner import Cli, one_line_error
from modelcycle.access.keys import KEY_PATTERN
from modelcycle.cli.main import app
from modelcycle.cli.server import masked_database_url
from modelcycle.settings import Settings
from modelcycle.store import Store
from modelcycle.store.migrate import head_revision


def local_env(home: Path, database_url: str | None) -> dict[str, str | None]:
    return {
        "MODELCYCLE_HOME": str(home),
        "MODELCYCLE_DATABASE_URL": database_url,
        "MODELCYCLE_CONFIG": None,
    }


def test_db_upgrade_then_current_reports_the_head_revision(
    tmp_path: Path, modelcycle_database_url: str | None
) -> None:
    env = local_env(tmp_path / "home", modelcycle_database_url)
    runner = CliRunner()

    before = runner.invoke(app, ["db", "current", "--json"], env=env)
    upgraded = runner.invoke(app, ["db", "upgrade"], env=env)
    after = runner.invoke(app, ["db", "current", "--json"], env=env)
    table = runner.invoke(app, ["db", "current"], env=env)

    head = head_revision(Store("sqlite://"))
    assert before.exit_code == 0, before.output
    assert json.loads(before.stdout)["current"] is None
    assert upgraded.exit_code == 0, upgraded.output
    assert f"upgraded to {head}" in upgraded.stdout
    assert json.loads(after.stdout) | {"database": None} == {
        "database": None,
        "current": head,
        "head": head,
        "up_to_date": True,
    }
    assert "up to date" in table.stdout


def test_db_reads_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "modelcycle.yaml"
    config.write_text(f"home: {tmp_path / 'from-file'}\n", encoding="utf-8")
    env = local_env(tmp_path / "ignored", None) | {"MODELCYCLE_HOME": None}

    result = CliRunner().invoke(app, ["db", "upgrade", "--config", str(config)], env=env)
    from_env = CliRunner().invoke(
        app, ["db", "current"], env=env | {"MODELCYCLE_CONFIG": str(config)}
    )

    assert result.exit_code == 0, result.output
    assert (tmp_path / "from-file" / "modelcycle.db").exists()
    assert "up to date" in from_env.stdout


def test_db_with_an_unreadable_config_is_a_one_line_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["db", "current", "--config", str(tmp_path / "missing.yaml")])
    one_line_error(result, "missing.yaml")


def test_database_passwords_are_masked(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, database_url="postgresql+psycopg://app:s3cret@db/prod")

    assert masked_database_url(settings) == "postgresql+psycopg://app:***@db/prod"


def test_keys_generate_prints_a_well_formed_key() -> None:
    result = CliRunner().invoke(app, ["keys", "generate"])

    assert result.exit_code == 0
    assert KEY_PATTERN.match(result.stdout.strip())


def test_request_bodies_rejected_client_side_are_one_line_errors() -> None:
    result = CliRunner().invoke(
        app, ["projects", "create", "Not Valid", "--server", "http://127.0.0.1:1"]
    )
    one_line_error(result, "name", "pattern")


def test_unreachable_server_is_a_one_line_error(offline_cli: Cli) -> None:
    line = offline_cli.fails("models", "list", naming=("cannot reach modelcycle", "--server"))
    assert offline_cli.url in line


def test_malformed_server_url_is_a_one_line_error() -> None:
    result = CliRunner().invoke(app, ["models", "list", "--server", "http://[::1"])
    one_line_error(result, "invalid server URL", "--server")


def test_api_key_from_the_environment_is_not_shown_in_help() -> None:
    result = CliRunner().invoke(
        app, ["whoami", "--help"], env={"MODELCYCLE_API_KEY": "mc_secret1_" + "x" * 32}
    )

    assert "MODELCYCLE_API_KEY" in result.stdout
    assert "mc_secret1_" not in result.stdout


def test_no_arguments_shows_help() -> None:
    result = CliRunner().invoke(app, [])

    for group in ("up", "whoami", "db", "keys", "projects", "models", "aliases", "audit"):
        assert group in result.output
