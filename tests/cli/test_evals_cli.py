"""``modelcycle eval``: runs against a live server and worker, with CI exit codes.

``good@1`` echoes each question (its expected answer) and ``bad@1`` always says
"nope", so a run comparing them has known scores and a clear regression.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import Result

from cli.runner import Cli
from e2e.live import LiveServer
from modelcycle.client import AsyncClient, Client
from modelcycle.evaluate.samples import SampleIn, write_version
from modelcycle.services import build_worker
from modelcycle.testing import register

pytestmark = pytest.mark.e2e

SAMPLES = 10
REGRESSION_GATE = "delta(exact_match)>=0 p<0.05"


@pytest.fixture
def setup(live_server: LiveServer) -> LiveServer:
    """Dataset ``qa`` (10 questions, each its own expected answer), versions good and bad."""
    services = live_server.services
    principal = services.access.authenticate(live_server.admin_key)
    samples = [
        SampleIn({"messages": [{"role": "user", "content": f"q{i}"}]}, expected=f"q{i}")
        for i in range(SAMPLES)
    ]
    with services.store.write() as session:
        write_version(session, principal.project_id, "qa", samples, source="test", actor="test")
    register(services, principal, "good", source="mock://echo")
    register(services, principal, "bad", source="mock://script?reply=nope")
    return live_server


@pytest.fixture
def worker(setup: LiveServer) -> Iterator[None]:
    """A worker thread executing the server's jobs, as ``modelcycle worker`` does."""
    running = build_worker(setup.services, run_schedules=False)
    running.poll_s = 0.05
    stop = threading.Event()
    thread = threading.Thread(target=running.run, args=(stop,), daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=30)


def one_error_line(result: Result, exit_code: int, *fragments: str) -> str:
    """``exit_code``, nothing on stdout, one ``error:`` line on stderr naming each fragment."""
    assert result.exit_code == exit_code, result.output
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ")
    for fragment in fragments:
        assert fragment in line, line
    return line


@pytest.mark.usefixtures("worker")
def test_a_run_whose_gates_hold_exits_0_and_prints_scores_with_intervals(cli: Cli) -> None:
    result = cli(
        "eval", "run", "--dataset", "qa", "--target", "good@1",
        "--scorer", "exact_match", "--scorer", 'regex:{"pattern": "^q[0-9]$"}',
        "--gate", "exact_match>=0.9", "--gate", "pass_rate(regex)>=90%", "--name", "smoke",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    out = result.stdout
    assert "eval run" in out
    assert "succeeded" in out
    assert "Scores on qa@1" in out
    assert "95% CI" in out
    assert "good@1" in out
    assert "regex" in out
    assert "PASS" in out
    assert "FAIL" not in out
    assert "exact_match>=0.9" in out


@pytest.mark.usefixtures("worker")
def test_a_regression_gate_exits_1_naming_the_gate_and_why(cli: Cli) -> None:
    result = cli(
        "eval", "run", "--dataset", "qa@1", "--target", "good@1", "--target", "bad@1",
        "--gate", REGRESSION_GATE,
    )  # fmt: skip

    assert result.exit_code == 1, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith(f"gate failed: {REGRESSION_GATE}: ")
    assert "exact_match" in line
    assert line.endswith("(target bad@1)")
    out = result.stdout
    assert "Compared with good@1" in out
    assert f"0/0/{SAMPLES}" in out  # wins/ties/losses of bad against good
    assert "-1" in out  # the difference
    assert "McNemar" in out or "mcnemar" in out
    assert "FAIL" in out


@pytest.mark.usefixtures("worker")
def test_run_json_is_the_finished_run_and_other_commands_read_it(cli: Cli) -> None:
    result = cli(
        "eval", "run", "--dataset", "qa", "--target", "good@1", "--target", "bad@1", "--json",
    )  # fmt: skip
    run = json.loads(result.stdout)
    run_id = str(run["id"])

    shown = cli.json("eval", "show", run_id)
    listed = cli.json("eval", "list")
    results = cli.json("eval", "results", run_id, "--target", "bad@1")
    first_three = cli.json("eval", "results", run_id, "--limit", "3")
    passing = cli("eval", "gates", run_id, "--gate", "exact_match>=0")
    failing = cli("eval", "gates", run_id, "--gate", REGRESSION_GATE, "--json")
    human = cli("eval", "show", run_id)

    assert result.exit_code == 0, result.output  # no gates: nothing can fail
    assert run["status"] == "succeeded"
    assert shown["summary"]["samples"] == SAMPLES
    assert listed[0]["id"] == run["id"]
    assert len(results) == SAMPLES
    assert {r["output"] for r in results} == {"nope"}
    assert [r["position"] for r in first_three] == [0, 0, 1]  # sample order, both targets
    assert passing.exit_code == 0, passing.output
    assert "PASS" in passing.stdout
    assert failing.exit_code == 1
    assert json.loads(failing.stdout)["passed"] is False
    assert failing.stderr.startswith(f"gate failed: {REGRESSION_GATE}: ")
    assert "Compared with good@1" in human.stdout


def test_no_wait_returns_the_queued_run_which_can_be_cancelled(cli: Cli, setup: LiveServer) -> None:
    queued = cli.json("eval", "run", "--dataset", "qa", "--target", "good@1", "--no-wait")

    cancelled = cli("eval", "cancel", str(queued["id"]))
    listed = cli.json("eval", "list", "--status", "cancelled")

    assert queued["status"] == "queued"
    assert cancelled.exit_code == 0, cancelled.output
    assert f"eval run {queued['id']} cancelled" in cancelled.stdout
    assert [r["id"] for r in listed] == [queued["id"]]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("--scorer", 'regex:{"pattern": '), ("--scorer", "not valid JSON", "NAME:{")),
        (("--scorer", "regex:[1]"), ("must be a JSON object",)),
        (("--scorer", "telepathy"), ("unknown scorer 'telepathy'",)),
        (("--gate", "exact_match>>1"), ("exact_match>>1",)),
        (("--dataset", "ghost"), ("dataset 'ghost' not found", "modelcycle datasets list")),
        (("--concurrency", "100"), ("concurrency",)),
    ],
)
def test_bad_input_is_one_error_line_and_exit_code_2(
    cli: Cli, setup: LiveServer, args: tuple[str, ...], fragments: tuple[str, ...]
) -> None:
    base = {"--dataset": "qa", "--target": "good@1"}
    given = dict(zip(args[::2], args[1::2], strict=True))
    merged = [part for option, value in {**base, **given}.items() for part in (option, value)]

    result = cli("eval", "run", *merged)

    one_error_line(result, 2, *fragments)


def test_gates_needs_a_gate_and_a_run_that_exists(cli: Cli, setup: LiveServer) -> None:
    one_error_line(cli("eval", "gates", "1"), 2, "--gate")
    one_error_line(cli("eval", "gates", "999", "--gate", "exact_match>=0"), 2, "999")
    cli.fails("eval", "show", "999", naming=("999",))


@pytest.mark.usefixtures("worker")
def test_report_writes_the_html_report_of_the_finished_run(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "eval.html"

    result = cli(
        "eval", "run", "--dataset", "qa", "--target", "good@1", "--target", "bad@1",
        "--name", "with-report", "--report", str(path),
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert f"report written to {path}" in result.stderr
    page = path.read_text(encoding="utf-8")
    assert page.lstrip().lower().startswith("<!doctype html")
    assert "with-report" in page
    assert "bad@1" in page


def test_the_client_fetches_the_report_as_json_or_html_bytes(cli: Cli, setup: LiveServer) -> None:
    worker = build_worker(setup.services, run_schedules=False)
    queued = cli.json("eval", "run", "--dataset", "qa", "--target", "good@1", "--no-wait")
    while worker.run_once():
        pass

    with Client(cli.url, cli.key) as client:
        as_json = client.evals.report(queued["id"], format="json")
        html = client.evals.report(queued["id"])

    assert isinstance(as_json, dict)
    assert str(queued["id"]) in json.dumps(as_json)
    assert html.startswith(b"<!")


@pytest.mark.usefixtures("worker")
def test_the_sdk_waits_with_progress_and_iterates_every_result(cli: Cli) -> None:
    seen: list[tuple[str, float]] = []
    with Client(cli.url, cli.key) as client:
        created = client.evals.create(
            "qa", ["good@1", "bad@1"], ["exact_match", {"name": "contains"}], name="sdk"
        )
        finished = client.evals.wait(
            created.id, poll_s=0.05, on_progress=lambda run: seen.append((run.status, run.progress))
        )
        results = list(client.evals.results(created.id, page_size=3))
        verdicts = client.evals.gates(created.id, ["exact_match>=0.5"])

    assert finished.status == "succeeded"
    assert seen[-1] == ("succeeded", 1.0)
    assert [progress for _, progress in seen] == sorted(progress for _, progress in seen)
    assert len(results) == 2 * SAMPLES
    assert [r.position for r in results] == sorted(r.position for r in results)
    assert verdicts.passed is False
    assert {(v.target, v.passed) for v in verdicts.gates} >= {("bad@1", False)}


@pytest.mark.usefixtures("worker")
async def test_the_async_sdk_mirrors_the_sync_one(cli: Cli) -> None:
    async with AsyncClient(cli.url, cli.key) as client:
        created = await client.evals.create("qa", ["good@1"], ["exact_match"])
        finished = await client.evals.wait(created.id, poll_s=0.05, timeout_s=60)
        results = [result async for result in client.evals.results(created.id, page_size=4)]
        page = await client.evals.list(status="succeeded", limit=1)
        report = await client.evals.report(created.id, format="json")

    assert finished.summary is not None
    assert finished.summary.targets[0].aggregates[0].estimate == 1.0
    assert [r.output for r in results] == [f"q{i}" for i in range(SAMPLES)]
    assert [run.id for run in page.items] == [created.id]
    assert isinstance(report, dict)


def test_wait_gives_up_after_its_timeout_and_the_run_goes_on(cli: Cli, setup: LiveServer) -> None:
    with Client(cli.url, cli.key) as client:
        created = client.evals.create("qa", ["good@1"], ["exact_match"])
        with pytest.raises(TimeoutError, match=f"eval run {created.id} is still queued"):
            client.evals.wait(created.id, poll_s=0.05, timeout_s=0.2)
        after = client.evals.get(created.id)

    assert after.status == "queued"


def test_run_without_a_worker_gives_up_waiting_with_exit_2(cli: Cli, setup: LiveServer) -> None:
    result = cli("eval", "run", "--dataset", "qa", "--target", "good@1", "--timeout", "0.3")

    line = one_error_line(result, 2, "is still queued", "modelcycle eval show")
    assert "keeps running" in line
