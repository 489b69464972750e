"""``modelcycle eval``: run evaluations, follow them, read their results, check quality gates.

``eval run`` and ``eval gates`` are made for CI: they exit 0 when every gate
holds, 1 when a gate fails (one ``gate failed: ...`` line per failure on
stderr) and 2 on bad input or a run that failed, so that a failing gate is
never confused with a broken pipeline. The other commands exit 1 on errors.
"""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Annotated, NoReturn, cast

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from modelcycle.cli.evals_render import render_gates, render_results, render_run, run_row
from modelcycle.cli.output import (
    ApiKeyOption,
    JsonOption,
    ServerOption,
    describe_validation,
    emit,
    table,
)
from modelcycle.client import Client
from modelcycle.client.evals import GateReport
from modelcycle.client.transport import DEFAULT_SERVER
from modelcycle.errors import InvalidInput, ModelcycleError
from modelcycle.evaluate.schemas import (
    EvalResult,
    EvalRun,
    GateVerdict,
    RunKind,
    RunStatus,
    ScorerSpec,
)

GATE_FAILED_EXIT = 1
"""``eval run`` / ``eval gates``: a gate failed."""
BAD_INPUT_EXIT = 2
"""``eval run`` / ``eval gates``: bad input, an error from the server, or a failed run."""
POLL_S = 0.5
"""How often a waiting ``eval run`` asks the server for progress."""

app = typer.Typer(
    help="Evaluate deployments and versions on a dataset; compare them; gate on the results.",
    no_args_is_help=True,
)

RunIdArgument = Annotated[int, typer.Argument(help="The run id (see: modelcycle eval list).")]
GateOption = Annotated[
    list[str] | None,
    typer.Option(
        "--gate",
        help="A quality gate, e.g. 'exact_match>=0.8' or "
        "'delta(rouge_l, baseline=NAME@production)>=0 p<0.05' (repeatable).",
        metavar="EXPR",
    ),
]


def parse_scorer(text: str) -> ScorerSpec:
    """``NAME`` or ``NAME:{json options}``, e.g. ``regex:{"pattern": "^[0-9]+$"}``."""
    name, colon, options = text.partition(":")
    name = name.strip()
    usage = 'write NAME or NAME:{"option": value}, e.g. regex:{"pattern": "^[0-9]+$"}'
    if not name:
        raise InvalidInput(f"--scorer {text!r} has no scorer name; {usage}")
    if not colon:
        return ScorerSpec(name=name)
    try:
        parsed = json.loads(options)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"--scorer {text!r}: the options are not valid JSON ({exc.msg} at column "
            f"{len(name) + 2 + exc.pos}); {usage}"
        ) from None
    if not isinstance(parsed, dict):
        raise InvalidInput(f"--scorer {text!r}: the options must be a JSON object; {usage}")
    return ScorerSpec(name=name, options=parsed)


def _exit_with(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    raise typer.Exit(code)


def _report_gate_failures(verdicts: list[GateVerdict]) -> bool:
    """Print one stderr line per failed gate; whether every gate held."""
    failed = [verdict for verdict in verdicts if not verdict.passed]
    for verdict in failed:
        typer.echo(
            f"gate failed: {verdict.gate}: {verdict.reason} (target {verdict.target})", err=True
        )
    return not failed


def _wait(client: Client, run: EvalRun, timeout_s: float | None, quiet: bool) -> EvalRun:
    """Wait for the run, with a progress bar on a terminal's stderr."""
    err = Console(stderr=True, highlight=False)
    if quiet or not err.is_terminal:
        return client.evals.wait(run.id, poll_s=POLL_S, timeout_s=timeout_s)
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task(f"eval run {run.id}: {run.status}", total=1.0)

        def show(current: EvalRun) -> None:
            description = f"eval run {current.id}: {current.status}"
            progress.update(task, completed=current.progress, description=description)

        return client.evals.wait(run.id, poll_s=POLL_S, timeout_s=timeout_s, on_progress=show)


def _write_report(client: Client, run_id: int, path: Path) -> None:
    content = client.evals.report(run_id, format="html")
    try:
        path.write_bytes(content)
    except OSError as exc:
        raise InvalidInput(f"cannot write the report to {path}: {exc.strerror}") from None


def _run_and_wait(
    client: Client,
    spec: dict[str, object],
    wait: bool,
    timeout_s: float | None,
    report: Path | None,
    as_json: bool,
) -> EvalRun:
    """Create the run and (unless told not to) follow it to its end."""
    run = client.evals.create(**spec)  # type: ignore[arg-type]
    if not wait:
        return run
    try:
        finished = _wait(client, run, timeout_s, quiet=as_json)
    except TimeoutError as exc:
        _exit_with(f"{exc}; follow it with: modelcycle eval show {run.id}", BAD_INPUT_EXIT)
    if finished.status == "succeeded" and report is not None:
        _write_report(client, finished.id, report)
    return finished


@app.command("run")
def run(
    dataset: Annotated[
        str, typer.Option("--dataset", help="NAME (latest version) or NAME@VERSION.", metavar="D")
    ],
    targets: Annotated[
        list[str],
        typer.Option(
            "--target",
            help="A deployment, or a version as NAME@VERSION / NAME@alias (repeatable).",
            metavar="T",
        ),
    ],
    scorers: Annotated[
        list[str] | None,
        typer.Option(
            "--scorer",
            help='A scorer: NAME or NAME:{json options}, e.g. regex:{"pattern":"^\\d+$"} '
            "(repeatable; default exact_match).",
            metavar="S",
        ),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option("--baseline", help="Compare the others with this target (default: first)."),
    ] = None,
    gates: GateOption = None,
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", help="Requests in flight at once.", min=1)
    ] = None,
    temperature: Annotated[
        float | None, typer.Option("--temperature", help="Sampling temperature.", min=0)
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option("--max-tokens", help="Longest answer, in tokens.", min=1)
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", help="Only the first N samples.", min=1)
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="A name for the run.")] = None,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Print the queued run and return at once.")
    ] = False,
    timeout_s: Annotated[
        float,
        typer.Option("--timeout", help="Stop waiting after this many seconds (0: never).", min=0),
    ] = 3600.0,
    report: Annotated[
        Path | None,
        typer.Option("--report", help="Write the HTML report to this file.", metavar="FILE"),
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Evaluate targets on a dataset; exit 1 when a gate fails, 2 on bad input or a failed run.

    Prints each target's mean score with its 95% interval, each candidate's
    paired comparison with the baseline, and each gate's verdict.
    """
    try:
        spec: dict[str, object] = {
            "dataset": dataset,
            "targets": targets,
            "scorers": [parse_scorer(s) for s in scorers or ["exact_match"]],
            "baseline": baseline,
            "gates": gates or [],
            "name": name,
            "concurrency": concurrency,
            "temperature": temperature,
            "max_tokens": max_tokens,
            "limit": limit,
        }
        with Client(server, api_key) as client:
            found = _run_and_wait(client, spec, not no_wait, timeout_s or None, report, as_json)
    except ModelcycleError as exc:
        _exit_with(exc.message, BAD_INPUT_EXIT)
    except ValidationError as exc:
        _exit_with(describe_validation(exc), BAD_INPUT_EXIT)
    emit(found, as_json, lambda out: render_run(found, out))
    if no_wait:
        return
    if found.status != "succeeded":
        _exit_with(f"eval run {found.id} {found.status}: {found.error or 'no reason given'}", 2)
    if report is not None:
        typer.echo(f"report written to {report}", err=True)
    if not _report_gate_failures(found.summary.gates if found.summary else []):
        raise typer.Exit(GATE_FAILED_EXIT)


class KindChoice(enum.StrEnum):
    """What a run evaluates."""

    EVAL = "eval"
    BIAS = "bias"
    REDTEAM = "redteam"


class StatusChoice(enum.StrEnum):
    """Where a run is."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


@app.command("list")
def list_runs(
    kind: Annotated[
        KindChoice | None, typer.Option("--kind", help="Only runs of this kind.")
    ] = None,
    status: Annotated[
        StatusChoice | None, typer.Option("--status", help="Only runs in this state.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many.", min=1)] = 50,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the project's evaluation runs, newest first."""
    found: list[EvalRun] = []
    cursor: str | None = None
    with Client(server, api_key) as client:
        while len(found) < limit:
            page = client.evals.list(
                kind=cast(RunKind | None, kind and kind.value),
                status=cast(RunStatus | None, status and status.value),
                limit=min(500, limit - len(found)),
                cursor=cursor,
            )
            found.extend(page.items)
            cursor = page.next_cursor
            if not cursor:
                break
    columns = ("id", "name", "kind", "dataset", "targets", "status", "progress", "gates", "created")
    emit(found, as_json, lambda out: out.print(table(columns, [run_row(r) for r in found])))


@app.command("show")
def show(
    run_id: RunIdArgument,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a run: its settings, state and, once finished, scores, comparisons and gates."""
    with Client(server, api_key) as client:
        found = client.evals.get(run_id)
    emit(found, as_json, lambda out: render_run(found, out))


@app.command("results")
def results(
    run_id: RunIdArgument,
    target: Annotated[
        str | None, typer.Option("--target", help="Only this target's answers.", metavar="T")
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", help="At most this many results.", min=1)
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Each target's answer to each sample, with its scores, in sample order."""
    with Client(server, api_key) as client:
        found: list[EvalResult] = []
        for result in client.evals.results(run_id, target=target):
            if limit is not None and len(found) >= limit:
                break
            found.append(result)
    emit(found, as_json, lambda out: render_results(found, out))


@app.command("cancel")
def cancel(
    run_id: RunIdArgument,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel a queued or running run (maintainers)."""
    with Client(server, api_key) as client:
        found = client.evals.cancel(run_id)
    emit(found, as_json, lambda out: out.print(Text(f"eval run {found.id} {found.status}")))


@app.command("gates")
def gates_command(
    run_id: RunIdArgument,
    gates: GateOption = None,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check gates against a finished run; exit 1 when one fails, 2 on bad input."""
    try:
        if not gates:
            raise InvalidInput("give at least one --gate EXPR, e.g. --gate 'exact_match>=0.8'")
        with Client(server, api_key) as client:
            found: GateReport = client.evals.gates(run_id, gates)
    except ModelcycleError as exc:
        _exit_with(exc.message, BAD_INPUT_EXIT)
    emit(found, as_json, lambda out: render_gates(found.gates, out))
    if not _report_gate_failures(found.gates):
        raise typer.Exit(GATE_FAILED_EXIT)
