"""``modelcycle alerts``: a rule created, fired, listed, disabled and deleted from the shell."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cli.runner import Cli
from e2e.live import LiveServer, serve
from modelcycle.deploy import DeploymentSpec, Route
from modelcycle.monitor.webhooks import SIGNATURE_HEADER, verify_signature
from modelcycle.services import Services
from modelcycle.testing import KeyPair, register
from monitor.webhook_receiver import receiving

pytestmark = pytest.mark.e2e

SECRET = "whsec-cli-0123456789abcdef"
HEADER_VALUE = "Bearer cli-hook-credential"


@pytest.fixture
def modelcycle_database_url() -> str | None:
    """SQLite: the store is covered on both databases by test_alerts.py."""
    return None


@pytest.fixture
def live_server(modelcycle_services: Services, modelcycle_admin: KeyPair) -> Iterator[LiveServer]:
    register(modelcycle_services, modelcycle_admin.principal, "bot")
    spec = DeploymentSpec(name="chat", routes=[Route(target="bot@1", weight=100)])
    modelcycle_services.deployments.create(modelcycle_admin.principal, spec)
    with serve(modelcycle_services, modelcycle_admin.key) as server:
        yield server


@pytest.fixture
def cli(live_server: LiveServer) -> Cli:
    return Cli(live_server.url, live_server.admin_key)


def test_create_evaluate_inspect_disable_delete(cli: Cli) -> None:
    outputs: list[str] = []
    with receiving() as hook:
        created = cli(
            "alerts", "create", "chat-idle", "--metric", "requests", "--op", "<",
            "--threshold", "1", "--window", "10m", "--severity", "critical",
            "--deployment", "chat", "--webhook", hook.url, "--webhook-secret", SECRET,
            "--header", f"Authorization: {HEADER_VALUE}",
        )  # fmt: skip
        assert created.exit_code == 0, created.output
        assert "created alert rule chat-idle" in created.stdout
        assert "requests < 1 over 10m" in created.stdout
        outputs.append(created.output)

        [rule] = cli.json("alerts", "list")
        assert (rule["name"], rule["window_s"], rule["state"]) == ("chat-idle", 600, "ok")
        assert [(c["type"], c["signed"], c["headers"]) for c in rule["channels"]] == [
            ("log", False, []),
            ("webhook", True, ["Authorization"]),
        ]

        evaluated = cli("alerts", "evaluate")
        assert evaluated.exit_code == 0, evaluated.output
        assert "evaluated 1 rules: 1 changed state" in evaluated.stdout
        assert "firing" in evaluated.stdout
        outputs.append(evaluated.output)
        [delivery] = hook.received
        assert delivery.headers["Authorization"] == HEADER_VALUE
        assert verify_signature(SECRET, delivery.headers[SIGNATURE_HEADER], delivery.raw)

    assert [r["name"] for r in cli.json("alerts", "list", "--firing")] == ["chat-idle"]
    shown = cli("alerts", "show", "chat-idle")
    assert shown.exit_code == 0, shown.output
    assert "firing" in shown.stdout
    outputs.append(shown.output)
    [event] = cli.json("alerts", "events", "chat-idle")
    assert (event["state"], event["value"]) == ("firing", 0.0)
    assert [(d["channel"], d["ok"]) for d in event["deliveries"]] == [
        ("log", True),
        ("webhook", True),
    ]
    listed = cli("alerts", "events", str(rule["id"]))
    assert "ok" in listed.stdout
    outputs.append(listed.output)

    disabled = cli.json("alerts", "update", "chat-idle", "--disable", "--threshold", "5")
    assert (disabled["enabled"], disabled["state"], disabled["threshold"]) == (False, "ok", 5.0)
    assert cli.json("alerts", "list", "--firing") == []

    deleted = cli("alerts", "delete", "chat-idle")
    assert deleted.exit_code == 0, deleted.output
    assert "deleted alert rule chat-idle" in deleted.stdout
    cli.fails("alerts", "show", "chat-idle", naming=("alert rule 'chat-idle' not found",))
    for output in outputs:
        assert SECRET not in output
        assert HEADER_VALUE not in output


def test_bad_rules_fail_on_one_line_naming_the_problem(cli: Cli) -> None:
    create = ("alerts", "create", "r", "--op", ">", "--threshold", "1")
    cli.fails(*create, "--metric", "latency", naming=("metric", "unknown metric 'latency'"))
    cli.fails(*create, "--metric", "requests", "--window", "5 minutes", naming=("--window",))
    cli.fails(*create, "--metric", "requests", "--window", "30s", naming=("window_s",))
    cli.fails(*create, "--metric", "requests", "--deployment", "nowhere", naming=("nowhere",))
    cli.fails(*create, "--metric", "requests", "--webhook", "ftp://example.com/x", naming=("url",))
    cli.fails(*create, "--metric", "requests", "--header", "X-A: b", naming=("--webhook",))
    assert cli.json("alerts", "list") == []
