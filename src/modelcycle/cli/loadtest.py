"""``modelcycle loadtest``: drive a deployment through the gateway and measure it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from modelcycle.cli.output import ApiKeyOption, JsonOption, ServerOption, emit, record
from modelcycle.client.loadtest import (
    LoadTestConfig,
    LoadTestReport,
    Percentiles,
    read_prompts,
    run_loadtest,
)
from modelcycle.client.transport import DEFAULT_SERVER
from modelcycle.errors import InvalidInput


def _read_prompt_file(path: Path | None) -> list[list[dict[str, object]]]:
    if path is None:
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read --prompt-file {path}: {exc}") from exc
    prompts = read_prompts(text)
    if not prompts:
        raise InvalidInput(f"--prompt-file {path} holds no prompt (one per line)")
    return prompts


def _ms(found: Percentiles | None) -> str:
    if found is None:
        return "-"
    return f"{found.p50:.1f} / {found.p95:.1f} / {found.p99:.1f}  (max {found.max:.1f})"


def _fields(report: LoadTestReport) -> dict[str, object]:
    errors = ", ".join(f"{kind}: {count}" for kind, count in report.errors_by_kind.items())
    fields: dict[str, object] = {
        "deployment": report.deployment,
        "concurrency": report.concurrency,
        "duration": f"{report.duration_s:.1f} s",
        "requests": report.requests,
        "successes": report.successes,
        "errors": f"{report.errors} ({errors})" if errors else report.errors,
        "throughput": f"{report.throughput_rps:.1f} requests/s",
        "latency p50 / p95 / p99": f"{_ms(report.latency_ms)} ms",
    }
    if report.stream:
        fields["time to first token p50 / p95 / p99"] = f"{_ms(report.ttft_ms)} ms"
    fields["tokens/s"] = f"{report.tokens_per_s:.1f} (completion)"
    fields["tokens"] = f"{report.prompt_tokens} prompt, {report.completion_tokens} completion"
    return fields


def loadtest(
    deployment: Annotated[str, typer.Argument(help="The deployment to drive (its `model`).")],
    concurrency: Annotated[
        int, typer.Option(min=1, max=10_000, help="Requests in flight at any time.")
    ] = 1,
    duration: Annotated[
        float, typer.Option(min=0.1, max=86_400, help="Seconds to keep sending requests.")
    ] = 10.0,
    prompt_file: Annotated[
        Path | None,
        typer.Option(
            help="Prompts sent in turn, one per line (or JSON lines with `messages`).",
            show_default=False,
        ),
    ] = None,
    max_tokens: Annotated[
        int | None,
        typer.Option(min=1, help="max_tokens of each request [default: the deployment's]."),
    ] = None,
    stream: Annotated[
        bool, typer.Option("--stream", help="Stream answers and measure time to first token.")
    ] = False,
    timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds one request may take before it is an error.")
    ] = 60.0,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send requests to a deployment for a while; report throughput, latency and errors."""
    config = LoadTestConfig(
        deployment=deployment,
        concurrency=concurrency,
        duration_s=duration,
        prompts=_read_prompt_file(prompt_file),
        max_tokens=max_tokens,
        stream=stream,
        timeout_s=timeout,
    )
    report = asyncio.run(run_loadtest(config, server=server, api_key=api_key))

    def render(out: Console) -> None:
        out.print(record(_fields(report), title=f"load test of '{deployment}'"))

    emit(report, as_json, render)
