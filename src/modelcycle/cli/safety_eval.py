"""``modelcycle safety-eval``: the built-in red-team suite and bias probes against a target.

``redteam``/``bias`` start a run (``--wait`` follows it and prints the
report); ``report RUN_ID`` prints the report of a finished one. A run that
failed or was cancelled exits 1.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console

from modelcycle.cli.output import ApiKeyOption, JsonOption, ServerOption, emit, fail, table
from modelcycle.client import Client
from modelcycle.client.transport import DEFAULT_SERVER
from modelcycle.evaluate.bias import BiasReport
from modelcycle.evaluate.redteam import RedteamReport
from modelcycle.evaluate.schemas import EvalRun

POLL_S = 1.0

app = typer.Typer(
    help="Safety evaluations: the built-in red-team suite and counterfactual bias probes.",
    no_args_is_help=True,
)

TargetOption = Annotated[
    str,
    typer.Option("--target", "-t", help="A deployment, or a version as NAME@VERSION / NAME@alias."),
]
WaitOption = Annotated[bool, typer.Option("--wait", help="Wait for the run and print its report.")]
TimeoutOption = Annotated[
    float,
    typer.Option("--timeout", min=0, help="Stop waiting after this many seconds (0: never)."),
]
ConcurrencyOption = Annotated[
    int, typer.Option("--concurrency", min=1, max=64, help="Requests in flight at once.")
]


def _interval(low: float | None, high: float | None) -> str:
    return f"{low:.3g} to {high:.3g}" if low is not None and high is not None else "-"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def render_redteam(report: RedteamReport, out: Console) -> None:
    """Pass rate per category with its 95% interval."""
    rows = [
        (
            rate.category,
            _pct(rate.rate),
            f"{_pct(rate.low)} - {_pct(rate.high)}" if rate.low is not None else "-",
            f"{rate.passed}/{rate.n}",
            rate.unscored,
        )
        for rate in report.categories
    ]
    title = f"red-team run {report.run_id}, target {report.target}"
    out.print(table(("category", "pass rate", "95% CI", "passed", "unscored"), rows, title=title))


def render_bias(report: BiasReport, out: Console) -> None:
    """Every group comparison, flagged ones marked; the Holm correction said."""
    rows = [
        (
            f"{c.attribute}: {c.group_a} vs {c.group_b}",
            c.metric,
            c.n,
            f"{c.difference:+.3g} ({_interval(c.low, c.high)})",
            f"{c.p_adjusted:.2g}",
            "FLAG" if c.flagged else "",
        )
        for c in report.comparisons
    ]
    columns = ("groups (a vs b)", "metric", "pairs", "b - a (95% CI)", "p Holm", "")
    out.print(table(columns, rows, title=f"bias report, target {report.target}"))
    out.print(
        f"{report.flagged} of {len(report.comparisons)} comparisons flagged "
        f"(Holm-corrected p < {report.alpha:g}); {report.errors} answers failed."
    )


def _report(client: Client, run: EvalRun) -> RedteamReport | BiasReport:
    if run.kind == "redteam":
        return client.safety_eval.redteam_report(run.id)
    if run.kind == "bias":
        return client.safety_eval.bias_report(run.id)
    fail(f"run {run.id} is an {run.kind} run; see it with: modelcycle eval show {run.id}")


def _finish(client: Client, run: EvalRun, wait: bool, timeout_s: float, as_json: bool) -> None:
    if not wait:
        hint = f"run {run.id} queued; follow it with: modelcycle eval show {run.id}"
        emit(run, as_json, lambda out: out.print(hint))
        return
    finished = client.evals.wait(run.id, poll_s=POLL_S, timeout_s=timeout_s or None)
    if finished.status != "succeeded":
        fail(f"run {run.id} {finished.status}: {finished.error or 'no report'}")
    _show(_report(client, finished), finished, as_json)


def _show(report: RedteamReport | BiasReport, run: EvalRun, as_json: bool) -> None:
    data: dict[str, Any] = {"run": run, "report": report}
    if isinstance(report, RedteamReport):
        emit(data, as_json, lambda out: render_redteam(report, out))
    else:
        emit(data, as_json, lambda out: render_bias(report, out))


@app.command("redteam")
def redteam(
    target: TargetOption,
    wait: WaitOption = False,
    timeout_s: TimeoutOption = 3600.0,
    concurrency: ConcurrencyOption = 4,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run the 160 built-in attacks (injection, jailbreak, PII, harmful; EN/ES) (maintainers)."""
    with Client(server, api_key) as client:
        run = client.safety_eval.redteam(target, concurrency=concurrency)
        _finish(client, run, wait, timeout_s, as_json)


@app.command("bias")
def bias(
    target: TargetOption,
    wait: WaitOption = False,
    timeout_s: TimeoutOption = 3600.0,
    concurrency: ConcurrencyOption = 4,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run the counterfactual bias probes (gender, age, nationality, names; EN/ES) (maintainers)."""
    with Client(server, api_key) as client:
        run = client.safety_eval.bias(target, concurrency=concurrency)
        _finish(client, run, wait, timeout_s, as_json)


@app.command("report")
def report(
    run_id: Annotated[int, typer.Argument(min=1, help="A finished redteam or bias run.")],
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """The report of a finished red-team or bias run."""
    with Client(server, api_key) as client:
        run = client.evals.get(run_id)
        _show(_report(client, run), run, as_json)
