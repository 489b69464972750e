"""The model card's safety-evaluation section: the latest red-team and bias runs of a version.

A run counts for ``model@version`` when that version answered some of its
samples (each answer records the version that served it), whether the run
targeted ``NAME@V`` or a deployment serving it. For each kind the latest
finished run gives the headline numbers: red-team pass rates per category
with their 95% intervals, and how many bias comparisons were flagged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelcycle.evaluate.bias import report_of_run
from modelcycle.evaluate.builtin_sets import run_results
from modelcycle.evaluate.redteam import pass_rates
from modelcycle.evaluate.scorers import BuiltinScorers, ScorerRegistry
from modelcycle.hookspecs import hookimpl
from modelcycle.store import Store
from modelcycle.store.tables import EvalResultRow, EvalRunRow

MAX_FLAGGED_ROWS = 20
REDTEAM_COVERS = ["LLM01", "LLM02", "LLM05", "art15"]
"""Prompt injection, sensitive information disclosure, improper output handling; robustness."""
BIAS_COVERS = ["art15"]
"""Accuracy and robustness across the groups a system serves (Art. 15; cf. Art. 10(2)(f))."""


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def latest_runs(
    session: Session, project_id: int, model: str, version: int
) -> dict[str, tuple[EvalRunRow, list[str]]]:
    """Per kind (``redteam``, ``bias``): the latest finished run the version answered.

    With it, the run's targets that the version served.
    """
    rows = session.execute(
        select(EvalRunRow, EvalResultRow.target)
        .join(EvalResultRow, EvalResultRow.run_id == EvalRunRow.id)
        .where(
            EvalRunRow.project_id == project_id,
            EvalRunRow.kind.in_(("redteam", "bias")),
            EvalRunRow.status == "succeeded",
            EvalResultRow.model == model,
            EvalResultRow.version == version,
        )
        .distinct()
        .order_by(EvalRunRow.id.desc())
    ).all()
    found: dict[str, tuple[EvalRunRow, list[str]]] = {}
    for run, target in rows:
        chosen = found.get(run.kind)
        if chosen is None:
            found[run.kind] = (run, [target])
        elif chosen[0].id == run.id and target not in chosen[1]:
            chosen[1].append(target)
    return found


def redteam_markdown(session: Session, run: EvalRunRow, targets: list[str]) -> str:
    """The red-team run's pass rate per category, per target that served the version."""
    lines = [f"Red-team run {run.id} ({run.finished_at or run.created_at:%Y-%m-%d}):"]
    for target in sorted(targets):
        results, metadata = run_results(session, run, target)
        lines += [
            "",
            f"Target `{target}`:",
            "",
            "| Category | Pass rate | 95% CI | Passed / scored | Unscored |",
            "|---|---|---|---|---|",
        ]
        for rate in pass_rates(results, metadata):
            interval = f"{_pct(rate.low)} - {_pct(rate.high)}" if rate.low is not None else "-"
            lines.append(
                f"| {rate.category} | {_pct(rate.rate)} | {interval} | {rate.passed} / {rate.n} "
                f"| {rate.unscored} |"
            )
    return "\n".join(lines)


def bias_markdown(
    session: Session, run: EvalRunRow, targets: list[str], registry: ScorerRegistry
) -> str:
    """The bias run's flagged comparisons, per target that served the version."""
    lines = [f"Bias run {run.id} ({run.finished_at or run.created_at:%Y-%m-%d}):"]
    for target in sorted(targets):
        report = report_of_run(session, run, registry, target)
        lines += [
            "",
            f"Target `{target}`: {report.flagged} of {len(report.comparisons)} group comparisons "
            f"flagged (Holm-corrected p < {report.alpha:g}).",
        ]
        flagged = [c for c in report.comparisons if c.flagged][:MAX_FLAGGED_ROWS]
        if flagged:
            lines += [
                "",
                "| Attribute | Groups | Metric | Difference (b - a) | 95% CI | Adjusted p |",
                "|---|---|---|---|---|---|",
            ]
            for c in flagged:
                interval = (
                    f"{c.low:.3g} - {c.high:.3g}"
                    if c.low is not None and c.high is not None
                    else "-"
                )
                lines.append(
                    f"| {c.attribute} | {c.group_a} vs {c.group_b} | {c.metric} | "
                    f"{c.difference:.3g} | {interval} | {c.p_adjusted:.2g} |"
                )
    return "\n".join(lines)


class EvaluationSections:
    """Contributes the safety-evaluation sections to model reports (registered by services)."""

    def __init__(self, store: Store):
        self._store = store
        self._registry: ScorerRegistry | None = None

    def _scorers(self) -> ScorerRegistry:
        # The bias metrics are built-in scorers; stored scores are read first anyway.
        if self._registry is None:
            self._registry = ScorerRegistry(BuiltinScorers().modelcycle_register_scorers())
        return self._registry

    @hookimpl
    def modelcycle_model_report_sections(
        self, project_id: int, model: str, version: int
    ) -> list[Mapping[str, Any]]:
        """The latest red-team and bias runs ``model@version`` answered, with their numbers."""
        sections: list[Mapping[str, Any]] = []
        with self._store.read() as session:
            runs = latest_runs(session, project_id, model, version)
            if "redteam" in runs:
                run, targets = runs["redteam"]
                sections.append(
                    {
                        "title": "Red-team evaluation",
                        "markdown": redteam_markdown(session, run, targets),
                        "covers": REDTEAM_COVERS,
                    }
                )
            if "bias" in runs:
                run, targets = runs["bias"]
                sections.append(
                    {
                        "title": "Bias and fairness probes",
                        "markdown": bias_markdown(session, run, targets, self._scorers()),
                        "covers": BIAS_COVERS,
                    }
                )
        return sections
