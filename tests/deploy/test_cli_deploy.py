"""``modelcycle deploy``: canary, promote, rollback and history from the command line."""

from __future__ import annotations

import pytest

from cli.runner import Cli
from e2e.live import LiveServer
from modelcycle.testing import make_key, register
from modelcycle.types import Role

pytestmark = pytest.mark.e2e


@pytest.fixture
def bot(live_server: LiveServer) -> str:
    services = live_server.services
    admin = services.access.authenticate(live_server.admin_key)
    for _ in range(3):
        register(services, admin, "bot")
    services.aliases.set(admin, "bot", "production", 1)
    return "bot"


def routes(deployment: dict[str, object]) -> list[tuple[str, int]]:
    spec = deployment["spec"]
    assert isinstance(spec, dict)
    return [(r["target"], r["weight"]) for r in spec["routes"]]


def test_canary_then_promote_then_rollback(cli: Cli, bot: str) -> None:
    created = cli.json(
        "deploy", "create", "chat", "--target", "bot@production",
        "--canary", "bot@2", "--canary-weight", "20", "--fallback", "bot@3",
    )  # fmt: skip
    assert routes(created) == [("bot@production", 80), ("bot@2", 20)]
    assert created["spec"]["fallbacks"] == ["bot@3"]

    heavier = cli.json("deploy", "update", "chat", "--canary-weight", "50", "--shadow", "bot@3")
    assert routes(heavier) == [("bot@production", 50), ("bot@2", 50)]
    assert heavier["spec"]["shadow"] == "bot@3"
    assert heavier["spec"]["fallbacks"] == ["bot@3"]  # untouched

    promoted = cli("deploy", "promote", "chat")
    assert promoted.exit_code == 0, promoted.output
    assert "promoted bot@2" in promoted.stdout
    assert routes(cli.json("deploy", "show", "chat")) == [("bot@2", 100)]

    rolled = cli.json("deploy", "rollback", "chat")
    assert routes(rolled) == [("bot@production", 50), ("bot@2", 50)]
    history = cli.json("deploy", "history", "chat")
    assert [h["action"] for h in history] == ["create", "update", "promote", "rollback"]
    table = cli("deploy", "list")
    assert "chat" in table.stdout
    assert "bot@production" in table.stdout
    assert "50%" in table.stdout
    audit = cli.json("audit", "list", "--action", "deployment.promote")
    assert [e["target"] for e in audit] == ["deployment:chat"]


def test_update_can_remove_the_canary_shadow_and_fallbacks(cli: Cli, bot: str) -> None:
    cli.json(
        "deploy", "create", "chat", "--target", "bot@1", "--canary", "bot@2",
        "--shadow", "bot@3", "--fallback", "bot@3", "--retries", "2", "--sticky",
    )  # fmt: skip
    plain = cli.json("deploy", "update", "chat", "--no-canary", "--no-shadow", "--no-fallbacks")
    assert routes(plain) == [("bot@1", 100)]
    assert plain["spec"]["shadow"] is None
    assert plain["spec"]["fallbacks"] == []
    assert plain["spec"]["retries"] == 2
    assert plain["spec"]["sticky"] is True


def test_errors_are_one_line_naming_the_problem(
    cli: Cli, live_server: LiveServer, bot: str
) -> None:
    cli.fails("deploy", "create", "chat", "--target", "bot@9", naming=("bot@9",))
    cli.fails("deploy", "create", "chat", "--target", "bot@1", "--canary-weight", "5",
              naming=("--canary",))  # fmt: skip
    cli.json("deploy", "create", "chat", "--target", "bot@1")
    cli.fails("deploy", "promote", "chat", naming=("no canary",))
    cli.fails("deploy", "rollback", "chat", naming=("no earlier revision",))
    cli.fails("deploy", "show", "nope", naming=("nope",))
    viewer = make_key(live_server.services, Role.VIEWER).key
    cli.fails("deploy", "delete", "chat", key=viewer, naming=("maintainer",))
    deleted = cli.json("deploy", "delete", "chat")
    assert deleted == {"deleted": True, "name": "chat"}
