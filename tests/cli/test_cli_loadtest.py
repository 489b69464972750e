"""``modelcycle loadtest``: a live server on the mock backend, driven from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cli.runner import Cli
from e2e.live import LiveServer
from modelcycle.client.loadtest import DEFAULT_PROMPT, percentiles, read_prompts
from modelcycle.deploy import DeploymentSpec, Route
from modelcycle.testing import register

pytestmark = pytest.mark.e2e


def deploy(live: LiveServer, name: str, source: str, **params: Any) -> None:
    services = live.services
    admin = services.access.authenticate(live.admin_key)
    version = register(services, admin, f"{name}-model", source=source, params=params)
    services.deployments.create(
        admin,
        DeploymentSpec(
            name=name, routes=[Route(target=f"{name}-model@{version.version}", weight=100)]
        ),
    )


def ordered(found: dict[str, float]) -> bool:
    return 0 < found["p50"] <= found["p95"] <= found["p99"] <= found["max"]


def test_a_run_reports_consistent_figures(cli: Cli, live_server: LiveServer) -> None:
    deploy(live_server, "chat", "mock://echo")

    report = cli.json("loadtest", "chat", "--concurrency", "4", "--duration", "1")

    assert report["requests"] > 0
    assert report["requests"] == report["successes"] + report["errors"]
    assert (report["errors"], report["errors_by_kind"]) == (0, {})
    assert ordered(report["latency_ms"])
    assert report["ttft_ms"] is None  # not streamed
    # The echo backend answers with the prompt: one token per word.
    words = len(DEFAULT_PROMPT.split())
    assert report["completion_tokens"] == words * report["requests"]
    assert report["tokens_per_s"] == pytest.approx(
        report["completion_tokens"] / report["duration_s"]
    )
    assert report["throughput_rps"] == pytest.approx(report["requests"] / report["duration_s"])
    assert report["duration_s"] >= 1.0


def test_streams_time_the_first_token_and_use_the_prompt_file(
    cli: Cli, live_server: LiveServer, tmp_path: Path
) -> None:
    deploy(live_server, "chat", "mock://echo", chunk_delay_ms=2)
    prompts = tmp_path / "prompts.txt"
    conversation = {"messages": [{"role": "user", "content": "a b c d e"}]}
    prompts.write_text(f"one two three four\n\n{json.dumps(conversation)}\n")

    report = cli.json(
        "loadtest", "chat", "--concurrency", "2", "--duration", "1", "--stream",
        "--prompt-file", str(prompts), "--max-tokens", "3",
    )  # fmt: skip

    assert report["requests"] == report["successes"] + report["errors"]
    assert report["errors"] == 0
    assert ordered(report["ttft_ms"])
    assert ordered(report["latency_ms"])
    # Each stream waits between its chunks: the first token comes before the last.
    for q in ("p50", "p95", "p99"):
        assert report["ttft_ms"][q] < report["latency_ms"][q]
    assert report["completion_tokens"] == 3 * report["requests"]  # --max-tokens was sent
    assert report["tokens_per_s"] > 0


def test_failures_are_counted_as_errors_never_as_successes(
    cli: Cli, live_server: LiveServer
) -> None:
    deploy(live_server, "down", "mock://fail")
    deploy(live_server, "cut", "mock://echo", fail_mid_stream=1)

    down = cli.json("loadtest", "down", "--concurrency", "2", "--duration", "0.5")
    cut = cli.json("loadtest", "cut", "--concurrency", "2", "--duration", "0.5", "--stream")

    assert down["requests"] > 0
    assert (down["successes"], down["errors"]) == (0, down["requests"])
    # 502 while the version is tried, 503 once the circuit breaker takes it out.
    assert set(down["errors_by_kind"]) <= {"502", "503"}
    assert sum(down["errors_by_kind"].values()) == down["requests"]
    assert (down["latency_ms"], down["tokens_per_s"]) == (None, 0)
    # A stream cut after its first chunk ends with an error event: an error here.
    assert cut["requests"] > 0
    assert (cut["successes"], cut["errors"]) == (0, cut["requests"])
    assert cut["errors_by_kind"].get("stream", 0) > 0
    assert set(cut["errors_by_kind"]) <= {"stream", "503"}


def test_the_table_names_every_figure(cli: Cli, live_server: LiveServer) -> None:
    deploy(live_server, "chat", "mock://echo")
    result = cli("loadtest", "chat", "--duration", "0.3", "--stream")
    assert result.exit_code == 0, result.output
    for label in ("requests/s", "latency p50 / p95 / p99", "time to first token", "tokens/s"):
        assert label in result.stdout


def test_bad_targets_and_files_are_one_line_errors(
    cli: Cli, offline_cli: Cli, live_server: LiveServer, tmp_path: Path
) -> None:
    cli.fails("loadtest", "nothing-here", "--duration", "0.2", naming=("nothing-here",))
    offline_cli.fails("loadtest", "chat", "--duration", "0.2", naming=("cannot reach",))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    deploy(live_server, "chat", "mock://echo")
    cli.fails("loadtest", "chat", "--prompt-file", str(empty), naming=("no prompt",))
    cli.fails("loadtest", "chat", "--prompt-file", str(tmp_path / "missing.txt"))


def test_prompt_lines_and_percentiles() -> None:
    assert read_prompts(
        'hi there\n{"messages": [{"role": "system", "content": "x"}]}\n{oops\n'
    ) == [
        [{"role": "user", "content": "hi there"}],
        [{"role": "system", "content": "x"}],
        [{"role": "user", "content": "{oops"}],
    ]
    found = percentiles([float(v) for v in range(1, 101)])
    assert found is not None
    assert (found.p50, found.p95, found.p99, found.max) == (50.0, 95.0, 99.0, 100.0)
    assert percentiles([]) is None
