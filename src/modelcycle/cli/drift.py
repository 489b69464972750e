"""``modelcycle drift``: run drift checks, read reports, schedule recurring checks."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from modelcycle.cli.output import ApiKeyOption, JsonOption, ServerOption, emit, ok, record, table
from modelcycle.client import Client
from modelcycle.client.transport import DEFAULT_SERVER
from modelcycle.errors import InvalidInput
from modelcycle.monitor.drift_schemas import METRICS, DriftReport, DriftSchedule

app = typer.Typer(
    help="Drift: compare production with a reference; reports; recurring checks.",
    no_args_is_help=True,
)

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}

DeploymentOption = Annotated[
    str | None, typer.Option("--deployment", help="Only this deployment's traffic.")
]
WindowOption = Annotated[
    str, typer.Option("--window", help="Current window: the last 300, 30m, 1h, 7d...")
]
MetricOption = Annotated[
    list[str] | None,
    typer.Option("--metric", help=f"Only these metrics (repeat): {', '.join(METRICS)}."),
]
ThresholdOption = Annotated[
    list[str] | None,
    typer.Option(
        "--threshold", help="Override a threshold, NAME=VALUE (repeat), e.g. language=0.2."
    ),
]
ReferenceFileOption = Annotated[
    Path | None,
    typer.Option(
        "--reference-file",
        exists=True,
        dir_okay=False,
        help="Reference texts: one prompt per line, or JSON lines with 'input' (and 'output').",
    ),
]
ReferenceStartOption = Annotated[
    datetime | None,
    typer.Option("--reference-start", help="Reference window start (default: the window before)."),
]
ReferenceEndOption = Annotated[
    datetime | None, typer.Option("--reference-end", help="Reference window end.")
]
MinSamplesOption = Annotated[
    int | None, typer.Option("--min-samples", min=2, help="Fewer per side: insufficient data.")
]
MaxSamplesOption = Annotated[
    int | None, typer.Option("--max-samples", min=10, help="Rows sampled per side, at most.")
]


def parse_duration(text: str, option: str) -> int:
    """``300``, ``300s``, ``5m``, ``1h``, ``1d`` -> seconds."""
    match = _DURATION.match(text.lower())
    if match is None:
        raise InvalidInput(f"{option} {text!r} is not a duration; write e.g. 300, 5m, 1h or 1d")
    return int(match.group(1)) * _UNITS[match.group(2)]


def _thresholds(pairs: list[str]) -> dict[str, float] | None:
    found: dict[str, float] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        try:
            found[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise InvalidInput(f"--threshold {pair!r}: write it as NAME=NUMBER, e.g. language=0.2")
    return found or None


def _read_texts(path: Path) -> dict[str, Any]:
    inputs: list[str] = []
    outputs: list[str] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        if not line.lstrip().startswith("{"):
            inputs.append(line)
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{path}:{number}: not valid JSON: {exc.msg}") from None
        if not isinstance(row, dict) or not isinstance(row.get("input"), str):
            raise InvalidInput(f"{path}:{number}: a JSON line needs a string 'input'")
        inputs.append(row["input"])
        if isinstance(row.get("output"), str):
            outputs.append(row["output"])
    if not inputs:
        raise InvalidInput(f"{path}: no reference texts in the file")
    return {"kind": "texts", "inputs": inputs, "outputs": outputs or None}


def _reference(
    path: Path | None, start: datetime | None, end: datetime | None
) -> dict[str, Any] | None:
    if path is not None:
        if start or end:
            raise InvalidInput("give --reference-file or a reference window, not both")
        return _read_texts(path)
    if start or end:
        return {"kind": "window", "start": start, "end": end}
    return None


def _check_fields(
    deployment: str | None,
    window: str,
    metric: list[str] | None,
    threshold: list[str] | None,
    reference: dict[str, Any] | None,
    min_samples: int | None,
    max_samples: int | None,
) -> dict[str, Any]:
    return {
        "deployment": deployment,
        "window_s": parse_duration(window, "--window"),
        "reference": reference,
        "metrics": metric or None,
        "thresholds": _thresholds(threshold or []),
        "min_samples": min_samples,
        "max_samples": max_samples,
    }


def render_report(report: DriftReport, out: Console) -> None:
    """The report's header and one row per metric."""
    verdict = "DRIFT in " + ", ".join(report.drifted_metrics) if report.drifted else "no drift"
    out.print(
        record(
            {
                "report": report.id,
                "deployment": report.deployment or "(all)",
                "current": f"{report.current_start:%Y-%m-%d %H:%M} .. {report.current_end:%H:%M}",
                "reference": report.reference,
                "verdict": verdict,
            }
        )
    )
    rows = [
        (m.name, m.status, m.statistic, m.p_value, m.threshold, m.current_n, m.reference_n)
        for m in report.metrics
    ]
    columns = ("metric", "status", "statistic", "p-value", "threshold", "current", "reference")
    out.print(table(columns, rows))
    for metric in report.metrics:
        if metric.status in ("drift", "insufficient_data", "unavailable"):
            out.print(Text(f"  {metric.name}: {metric.message}"))


@app.command("run")
def run(
    deployment: DeploymentOption = None,
    window: WindowOption = "1h",
    metric: MetricOption = None,
    threshold: ThresholdOption = None,
    reference_file: ReferenceFileOption = None,
    reference_start: ReferenceStartOption = None,
    reference_end: ReferenceEndOption = None,
    min_samples: MinSamplesOption = None,
    max_samples: MaxSamplesOption = None,
    fail_on_drift: Annotated[
        bool, typer.Option("--fail-on-drift", help="Exit 2 when any metric drifted.")
    ] = False,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Compare the last --window of production with a reference, now, and store the report."""
    reference = _reference(reference_file, reference_start, reference_end)
    fields = _check_fields(
        deployment, window, metric, threshold, reference, min_samples, max_samples
    )
    with Client(server, api_key) as client:
        report = client.drift.check(**fields)
    emit(report, as_json, lambda out: render_report(report, out))
    if fail_on_drift and report.drifted:
        raise typer.Exit(2)


@app.command("list")
def list_reports(
    deployment: DeploymentOption = None,
    drifted: Annotated[
        bool | None, typer.Option("--drifted/--not-drifted", help="Only reports that drifted.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Reports shown.")] = 20,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Drift reports, newest first."""
    with Client(server, api_key) as client:
        reports = client.drift.reports(deployment=deployment, drifted=drifted, limit=limit)
    columns = ("id", "created", "deployment", "current window", "drifted metrics", "by")
    rows = [
        (
            r.id,
            r.created_at,
            r.deployment,
            f"{r.current_start:%Y-%m-%d %H:%M} .. {r.current_end:%H:%M}",
            ", ".join(r.drifted_metrics) or "none",
            r.created_by,
        )
        for r in reports
    ]
    emit(reports, as_json, lambda out: out.print(table(columns, rows)))


@app.command("show")
def show(
    report_id: Annotated[int, typer.Argument(min=1, help="The report's id.")],
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """One report: every metric's statistic, p-value and verdict (--json: evidence too)."""
    with Client(server, api_key) as client:
        report = client.drift.report(report_id)
    emit(report, as_json, lambda out: render_report(report, out))


@app.command("schedule")
def schedule(
    name: Annotated[str, typer.Argument(help="A name for the recurring check.")],
    every: Annotated[str, typer.Option("--every", help="How often: 15m, 1h, 1d...")],
    deployment: DeploymentOption = None,
    window: WindowOption = "1h",
    metric: MetricOption = None,
    threshold: ThresholdOption = None,
    reference_file: ReferenceFileOption = None,
    reference_start: ReferenceStartOption = None,
    reference_end: ReferenceEndOption = None,
    min_samples: MinSamplesOption = None,
    max_samples: MaxSamplesOption = None,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create or replace a check the server's worker runs every --every."""
    reference = _reference(reference_file, reference_start, reference_end)
    fields = _check_fields(
        deployment, window, metric, threshold, reference, min_samples, max_samples
    )
    interval = parse_duration(every, "--every")
    with Client(server, api_key) as client:
        created = client.drift.schedule(name, interval_s=interval, **fields)
    emit(created, as_json, lambda out: ok(f"drift check {name!r} runs every {every}"))


@app.command("schedules")
def schedules(
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Recurring drift checks of the project."""
    with Client(server, api_key) as client:
        found = client.drift.schedules()
    emit(found, as_json, lambda out: out.print(_schedules_table(found)))


def _schedules_table(found: list[DriftSchedule]) -> Any:
    columns = ("name", "every (s)", "deployment", "window (s)", "next run", "last job")
    rows = [
        (s.name, s.interval_s, s.check.deployment, s.check.window_s, s.next_run_at, s.last_job_id)
        for s in found
    ]
    return table(columns, rows)


@app.command("unschedule")
def unschedule(
    name: Annotated[str, typer.Argument(help="The recurring check's name.")],
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
) -> None:
    """Delete a recurring drift check (its reports stay)."""
    with Client(server, api_key) as client:
        client.drift.unschedule(name)
    ok(f"drift check {name!r} unscheduled")
