"""``modelcycle models``: what a user sees when registering and inspecting versions."""

from __future__ import annotations

import pytest

from cli.runner import Cli

pytestmark = pytest.mark.e2e


def register(cli: Cli, name: str, *extra: str) -> dict[str, object]:
    return cli.json(
        "models", "register", name, "--source", "mock://echo", "--backend", "mock", *extra
    )


def test_registered_model_is_listed(cli: Cli) -> None:
    version = register(cli, "chat", "--description", "first")

    models = cli.json("models", "list")

    assert version["version"] == 1
    assert [(m["name"], m["latest_version"]) for m in models] == [("chat", 1)]


def test_params_and_metadata_keep_their_json_types(cli: Cli) -> None:
    version = register(
        cli, "chat",
        "--param", "temperature=0.2",
        "--param", 'stop=["\\n"]',
        "--param", "system=Be brief.",
        "--param", "greeting=\"hi=there\"",
        "--meta", "owner=ml-team",
        "--meta", "tags=[\"a\", 1]",
    )  # fmt: skip

    params = cli.json("models", "show", "chat", "--version", "1")["params"]

    assert version["params"] == params
    assert params == {
        "temperature": 0.2,
        "stop": ["\n"],
        "system": "Be brief.",
        "greeting": "hi=there",
    }
    assert isinstance(params["temperature"], float)
    assert version["metadata"] == {"owner": "ml-team", "tags": ["a", 1]}


def test_tables_show_the_model_and_its_versions(cli: Cli) -> None:
    register(cli, "chat")
    register(cli, "chat", "--parent", "chat@1")
    assert cli("aliases", "set", "chat", "production", "2").exit_code == 0

    listed = cli("models", "list")
    shown = cli("models", "show", "chat")
    lineage = cli.json("models", "lineage", "chat", "2")

    assert listed.exit_code == shown.exit_code == 0
    assert "chat" in listed.stdout
    assert "production" in listed.stdout
    assert "Versions" in shown.stdout
    assert "mock://echo" in shown.stdout
    assert lineage["ancestors"] == [{"model": "chat", "version": 1}]


def test_archive_restore_and_delete_a_version(cli: Cli) -> None:
    register(cli, "chat")
    register(cli, "chat")

    archived = cli.json("models", "archive", "chat", "1")
    restored = cli.json("models", "restore", "chat", "1")
    deleted = cli("models", "delete-version", "chat", "2")
    remaining = cli.json("models", "show", "chat")["versions"]

    assert (archived["status"], restored["status"]) == ("archived", "active")
    assert deleted.exit_code == 0
    assert "deleted chat version 2" in deleted.stdout
    assert [v["version"] for v in remaining] == [1]


@pytest.mark.parametrize(
    ("extra", "naming"),
    [
        (("--param", "temperature"), ("--param", "key=value")),
        (("--param", "=0.2"), ("--param", "key=value")),
        (("--parent", "chat"), ("--parent", "MODEL@VERSION")),
        (("--parent", "chat@zero"), ("--parent", "MODEL@VERSION")),
    ],
)
def test_malformed_options_are_one_line_errors(
    cli: Cli, extra: tuple[str, ...], naming: tuple[str, ...]
) -> None:
    cli.fails(
        "models", "register", "chat", "--source", "mock://echo", "--backend", "mock", *extra,
        naming=naming,
    )  # fmt: skip


def test_unknown_backend_model_and_bad_name_are_one_line_errors(cli: Cli) -> None:
    cli.fails("models", "register", "chat", "--source", "x", "--backend", "gpu", naming=("mock",))
    cli.fails("models", "show", "missing", naming=("missing",))
    cli.fails("models", "show", "missing", "--json", naming=("missing",))
    cli.fails("models", "register", "Bad Name!", "--source", "x", "--backend", "mock")
