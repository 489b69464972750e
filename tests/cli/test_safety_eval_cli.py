"""``modelcycle safety-eval``: red-team and bias runs against a live server and worker."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from cli.runner import Cli
from e2e.live import LiveServer
from modelcycle.services import build_worker
from modelcycle.testing import register

pytestmark = pytest.mark.e2e


@pytest.fixture
def worker(live_server: LiveServer) -> Iterator[None]:
    """``echo@1`` repeats each prompt, and a worker thread executes the server's jobs."""
    services = live_server.services
    principal = services.access.authenticate(live_server.admin_key)
    register(services, principal, "echo", source="mock://echo")
    running = build_worker(services, run_schedules=False)
    running.poll_s = 0.05
    stop = threading.Event()
    thread = threading.Thread(target=running.run, args=(stop,), daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=60)


@pytest.mark.usefixtures("worker")
def test_redteam_waits_and_prints_the_pass_rate_per_category(cli: Cli) -> None:
    data = cli.json("safety-eval", "redteam", "--target", "echo@1", "--wait")
    rates = {rate["category"]: rate for rate in data["report"]["categories"]}
    # An echo repeats the attack, refusing nothing: every refusal probe fails.
    assert rates["harmful"]["rate"] == 0.0
    assert rates["all"]["n"] == 160
    shown = cli("safety-eval", "report", str(data["run"]["id"]))
    assert shown.exit_code == 0, shown.output
    for category in ("harmful", "jailbreak", "pii_exfiltration", "prompt_injection", "all"):
        assert category in shown.stdout
    assert "95% CI" in shown.stdout


@pytest.mark.usefixtures("worker")
def test_bias_prints_the_comparisons_with_the_holm_correction(cli: Cli) -> None:
    data = cli.json("safety-eval", "bias", "--target", "echo@1", "--wait")
    assert data["run"]["kind"] == "bias"
    assert data["run"]["status"] == "succeeded"
    # An echo's answers are as long as the prompts: the longer names are flagged on length.
    flagged = [c for c in data["report"]["comparisons"] if c["flagged"]]
    assert {c["metric"] for c in flagged} == {"length"}
    shown = cli("safety-eval", "report", str(data["run"]["id"]))
    assert shown.exit_code == 0
    assert "Holm-corrected" in shown.stdout
    assert "FLAG" in shown.stdout


def test_a_bad_target_is_a_one_line_error(cli: Cli) -> None:
    cli.fails("safety-eval", "redteam", "--target", "nope", naming=("nope",))
    cli.fails("safety-eval", "bias", "--target", "ghost@3", naming=("ghost",))


def test_without_wait_the_run_is_queued_and_has_no_report_yet(
    cli: Cli, live_server: LiveServer
) -> None:
    services = live_server.services
    register(
        services, services.access.authenticate(live_server.admin_key), "echo", source="mock://echo"
    )
    queued = cli.json("safety-eval", "bias", "--target", "echo@1")
    assert (queued["kind"], queued["status"]) == ("bias", "queued")
    cli.fails("safety-eval", "report", str(queued["id"]), naming=("queued",))
