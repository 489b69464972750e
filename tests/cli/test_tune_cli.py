"""``modelcycle tune``: create and watch a job to its end, list, show, events, cancel, errors."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.runner import Cli
from e2e.live import LiveServer
from modelcycle.services import build_worker
from modelcycle.store.datasets import SampleIn, write_version
from modelcycle.testing import admin_of, register
from modelcycle.types import BackendKind

pytestmark = pytest.mark.e2e
pytest.importorskip("torch", reason="the [hf] extra is not installed")
pytest.importorskip("peft", reason="the [hf] extra is not installed")

WORDS = ["question", ":", "capital", "of", "?", "answer", "france", "paris", "italy", "rome"]


@pytest.fixture
def toy(live_server: LiveServer, tmp_path: Path) -> LiveServer:
    """Model ``toy`` (a tiny Llama, kind transformers) and dataset ``capitals`` (+ a bad one)."""
    from modelcycle.testing.tiny_lm import save_tiny_lm

    services = live_server.services
    principal = admin_of(services).principal
    source = save_tiny_lm(tmp_path / "tiny", WORDS, initializer_range=0.5, seed=3)
    params = {
        "prompt_format": "completion",
        "prompt_template": "<s> question : {prompt} ? answer :",
    }
    register(services, principal, "toy", source=str(source), backend=BackendKind.TRANSFORMERS,
             params=params)  # fmt: skip
    good = [
        SampleIn({"messages": [{"role": "user", "content": f"capital of {c}"}]}, capital)
        for c, capital in (("france", "paris"), ("italy", "rome"))
    ]
    with services.store.write() as session:
        write_version(session, principal.project_id, "capitals", good, source="t", actor="t")
        bad = [*good, SampleIn({"prompt": "capital of spain"})]
        write_version(session, principal.project_id, "broken", bad, source="t", actor="t")
    return live_server


@pytest.fixture
def worker(toy: LiveServer) -> Iterator[None]:
    """A worker serving the live server's queue while the test runs."""
    stop = threading.Event()
    running = build_worker(toy.services, run_schedules=False)
    running.poll_s = 0.1
    thread = threading.Thread(target=running.run, args=(stop,), daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(60)


@pytest.mark.usefixtures("worker")
def test_create_watch_show_list_and_events(cli: Cli) -> None:
    created = cli(
        "tune", "create", "--base", "toy@1", "--dataset", "capitals", "--epochs", "2",
        "--learning-rate", "0.02", "--lora-r", "4", "--suffix", "capitals", "--watch",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    assert "succeeded" in created.stdout
    assert "toy@2" in created.stdout
    assert "loss" in created.stderr  # the metric lines it followed (stderr is no terminal)

    [job] = cli.json("tune", "list")
    assert (job["status"], job["result_version"]) == ("succeeded", 2)
    assert job["hyperparameters"]["epochs"] == 2
    shown = cli("tune", "show", job["id"])
    assert shown.exit_code == 0
    for fragment in ("toy@2", "trained_on", "capitals@1", "produced_by", job["id"]):
        assert fragment in shown.stdout
    events = cli.json("tune", "events", job["id"])
    assert any(event["level"] == "metric" for event in events)
    assert any(event["message"].startswith("registered toy@2") for event in events)


def test_bad_input_is_one_line_naming_the_fix(toy: LiveServer, cli: Cli) -> None:
    cli.fails(
        "tune", "create", "--base", "toy@1", "--dataset", "broken",
        naming=("dataset broken@1, sample 2", "needs 'expected'"),
    )  # fmt: skip
    cli.fails("tune", "create", "--base", "toy", "--dataset", "capitals", naming=("NAME@VERSION",))
    cli.fails(
        "tune", "create", "--base", "toy@1", "--dataset", "capitals", "--method", "ppo",
        naming=("sft-lora, dpo",),
    )  # fmt: skip
    cli.fails("tune", "show", f"ftjob-{'0' * 24}", naming=("not found",))
    assert cli.json("tune", "list") == []


def test_cancel_a_queued_job(toy: LiveServer, cli: Cli) -> None:
    created = cli("tune", "create", "--base", "toy@1", "--dataset", "capitals")
    assert created.exit_code == 0
    assert "created ftjob-" in created.stdout
    [job] = cli.json("tune", "list")
    cancelled = cli("tune", "cancel", job["id"])
    assert cancelled.exit_code == 0
    assert f"{job['id']}: cancelled" in cancelled.stdout
    assert cli.json("tune", "show", job["id"])["job"]["status"] == "cancelled"


@pytest.mark.usefixtures("worker")
def test_prompt_search_from_the_cli_registers_the_winner(
    toy: LiveServer, cli: Cli, tmp_path: Path
) -> None:
    space = tmp_path / "space.json"
    space.write_text('{"system_prompts": [null, "be brief"], "temperature": [0.0]}')
    created = cli(
        "tune", "create", "--base", "toy@1", "--dataset", "capitals",
        "--method", "prompt-search", "--candidates", str(space), "--budget", "8", "--watch",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    assert "toy@2" in created.stdout
    [job] = cli.json("tune", "list")
    assert (job["method"], job["status"]) == ("prompt-search", "succeeded")
    assert job["metrics"]["calls"] <= 8
    # Same weights: the new version is the base's checkpoint with the winning params.
    shown = cli.json("models", "show", "toy")
    versions = {v["version"]: v for v in shown["versions"]}
    assert versions[2]["source"] == versions[1]["source"]
    assert versions[2]["params"]["temperature"] == 0.0

    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    cli.fails(
        "tune", "create", "--base", "toy@1", "--dataset", "capitals",
        "--method", "prompt-search", "--candidates", str(bad), naming=("expected a JSON object",),
    )  # fmt: skip
