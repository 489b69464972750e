"""How ``modelcycle eval`` shows runs, results and gate verdicts as rich tables."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.text import Text

from modelcycle.cli.output import compact_json, record, table
from modelcycle.evaluate.schemas import (
    Aggregate,
    Comparison,
    EvalResult,
    EvalRun,
    GateVerdict,
    RunSummary,
)
from modelcycle.evaluate.statistics import format_number

OUTPUT_CHARS = 80
"""Answers are cut to this many characters in the results table (``--json`` has them whole)."""


TINY = 1e-9
"""Interval ends this close to zero are float noise of the interval's arithmetic: shown as 0."""


def number(value: float | None) -> str:
    """Three significant digits, ``-`` for none."""
    if value is None:
        return "-"
    return format_number(0.0 if abs(value) < TINY else value)


def clip(text: str, limit: int) -> str:
    """``text`` on one line, cut at ``limit`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def interval(low: float | None, high: float | None) -> str:
    """``[low, high]``, or ``-`` when the interval is undefined (too few samples)."""
    if low is None or high is None:
        return "-"
    return f"[{number(low)}, {number(high)}]"


def p_value(value: float) -> str:
    """A p-value as people read them: ``<0.001`` below a thousandth."""
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def gates_cell(passed: bool | None) -> str:
    """``pass``, ``FAIL`` or ``-`` (no gates)."""
    return "-" if passed is None else ("pass" if passed else "FAIL")


def run_row(run: EvalRun) -> tuple[object, ...]:
    """One run in ``eval list``."""
    return (
        run.id,
        run.name,
        run.kind,
        run.dataset,
        ", ".join(run.targets),
        run.status,
        f"{run.progress:.0%}",
        gates_cell(run.gates_passed),
        run.created_at,
    )


def _aggregate_row(target: str, found: Aggregate) -> tuple[object, ...]:
    return (
        target,
        found.scorer,
        found.n,
        found.errors,
        number(found.estimate),
        interval(found.low, found.high),
    )


def _comparison_row(found: Comparison) -> tuple[object, ...]:
    effect = (
        "-"
        if found.effect_size is None
        else f"{found.effect_size_name} {number(found.effect_size)}"
    )
    return (
        found.candidate,
        found.scorer,
        f"{number(found.difference)} {interval(found.low, found.high)}",
        p_value(found.p_value),
        f"{found.wins}/{found.ties}/{found.losses}",
        effect,
        found.test.partition(" (")[0],  # the details in brackets are in --json
    )


def render_gates(verdicts: Sequence[GateVerdict], out: Console) -> None:
    """Each gate's verdict with its reason."""
    rows = [("PASS" if v.passed else "FAIL", v.gate, v.target, v.reason) for v in verdicts]
    out.print(table(("result", "gate", "target", "reason"), rows, title="Gates"))


def render_summary(summary: RunSummary, out: Console) -> None:
    """Aggregates with their 95% intervals, paired comparisons and gate verdicts."""
    aggregates = [
        _aggregate_row(target.target, found)
        for target in summary.targets
        for found in target.aggregates
    ]
    columns = ("target", "scorer", "n", "errors", "mean", "95% CI")
    out.print(table(columns, aggregates, title=f"Scores on {summary.dataset}"))
    failures = [(t.target, t.errors) for t in summary.targets if t.errors]
    for target, errors in failures:
        out.print(Text(f"{target}: {errors} of {summary.samples} samples got no answer"))
    if summary.comparisons:
        headers = ("candidate", "scorer", "difference [95% CI]", "p", "W/T/L", "effect", "test")
        rows = [_comparison_row(found) for found in summary.comparisons]
        out.print(table(headers, rows, title=f"Compared with {summary.baseline}"))
    if summary.gates:
        render_gates(summary.gates, out)


def render_run(run: EvalRun, out: Console) -> None:
    """A run's settings and state, then its summary once it has one."""
    fields = {
        "id": run.id,
        "name": run.name,
        "kind": run.kind,
        "status": run.status,
        "progress": f"{run.progress:.0%}",
        "dataset": run.dataset,
        "targets": ", ".join(run.targets),
        "baseline": run.baseline,
        "scorers": ", ".join(
            s.name + (f" {compact_json(s.options)}" if s.options else "") for s in run.scorers
        ),
        "gates": "; ".join(run.gates),
        "gates passed": gates_cell(run.gates_passed),
        "error": run.error,
        "created by": run.created_by,
        "created at": run.created_at,
        "finished at": run.finished_at,
    }
    out.print(record(fields, title=f"eval run {run.id}"))
    if run.summary is not None:
        render_summary(run.summary, out)


def render_results(results: Sequence[EvalResult], out: Console) -> None:
    """One row per (sample, target): the answer, its scores and how long it took."""
    rows = [
        (
            found.position,
            found.target,
            None if found.output is None else clip(found.output, OUTPUT_CHARS),
            found.error,
            " ".join(
                f"{name}={number(score.value) if score.error is None else 'error'}"
                for name, score in found.scores.items()
            ),
            number(found.latency_ms),
        )
        for found in results
    ]
    columns = ("#", "target", "output", "error", "scores", "latency ms")
    out.print(table(columns, rows))
