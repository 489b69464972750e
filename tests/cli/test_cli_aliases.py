"""``modelcycle aliases`` and ``modelcycle audit``: moves are visible and audited."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from cli.runner import Cli
from e2e.live import LiveServer
from modelcycle.store.tables import AuditEntryRow

pytestmark = pytest.mark.e2e


def register(cli: Cli, name: str) -> None:
    cli.json("models", "register", name, "--source", "mock://echo", "--backend", "mock")


def test_alias_moves_show_in_the_audit_log_with_before_and_after(cli: Cli) -> None:
    register(cli, "chat")
    register(cli, "chat")

    first = cli("aliases", "set", "chat", "production", "1")
    cli.json("aliases", "set", "chat", "production", "2")
    entries = cli.json("audit", "list", "--action", "alias.set")

    assert first.exit_code == 0
    assert "chat:production now points at version 1" in first.stdout
    assert [(e["target"], e["before"], e["after"]) for e in entries] == [
        ("model:chat/alias:production", None, {"version": 1}),
        ("model:chat/alias:production", {"version": 1}, {"version": 2}),
    ]


def test_list_show_history_and_delete(cli: Cli) -> None:
    register(cli, "chat")
    cli.json("aliases", "set", "chat", "staging", "1")

    listed = cli.json("aliases", "list", "chat")
    shown = cli.json("aliases", "show", "chat", "staging")
    deleted = cli("aliases", "delete", "chat", "staging")
    history = cli.json("aliases", "history", "chat", "--alias", "staging")
    table = cli("aliases", "history", "chat")

    assert [(a["alias"], a["version"]) for a in listed] == [("staging", 1)]
    assert shown["version"] == 1
    assert deleted.exit_code == 0
    assert [(m["from_version"], m["to_version"]) for m in history] == [(None, 1), (1, None)]
    assert "staging" in table.stdout
    cli.fails("aliases", "show", "chat", "staging", naming=("staging",))


def test_audit_verify_passes_then_names_a_tampered_entry(cli: Cli, live_server: LiveServer) -> None:
    register(cli, "chat")
    cli.json("aliases", "set", "chat", "production", "1")
    intact = cli("audit", "verify")
    entries = cli.json("audit", "list", "--action", "alias.set")
    seq = entries[0]["seq"]

    with live_server.services.store.write_engine.begin() as conn:
        conn.execute(
            update(AuditEntryRow).where(AuditEntryRow.seq == seq).values(after={"version": 99})
        )
    broken = cli("audit", "verify")
    as_json = cli("audit", "verify", "--json")

    assert intact.exit_code == 0
    assert "OK" in intact.stdout
    assert broken.exit_code == 1
    assert f"entry {seq}" in broken.stdout
    assert as_json.exit_code == 1
    assert '"first_bad_seq": ' + str(seq) in as_json.stdout
