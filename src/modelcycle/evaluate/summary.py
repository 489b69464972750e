"""A run's numbers from its stored results: aggregates, paired comparisons, categories, gates.

Everything here reads :class:`StoredResult` rows (what ``eval_results``
holds) and nothing else, so a summary computed after a resume is the same as
one computed in a single pass, and gates can be checked again later on a
finished run. A target's answer that failed is counted in
``TargetSummary.errors`` and carries no scores (so never enters a statistic),
except from scorers that judge a guard's refusal (``redteam_safe``: blocked is
resisted); a scorer that could not score a sample is counted in that
aggregate's ``errors``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelcycle.errors import InvalidInput
from modelcycle.evaluate.gates import Gate, evaluate_gate
from modelcycle.evaluate.paired import paired_comparison
from modelcycle.evaluate.schemas import (
    Aggregate,
    Comparison,
    GateVerdict,
    RunSummary,
    TargetSummary,
)
from modelcycle.evaluate.scorers.types import Scorer
from modelcycle.evaluate.statistics import mean_ci, pass_rate_ci

SEED = 0
"""Every bootstrap and permutation of a summary uses it: the same results, the same numbers."""


@dataclass(frozen=True, slots=True)
class StoredResult:
    """One stored answer as the statistics read it."""

    sample_id: int
    target: str
    error: str | None
    latency_ms: float | None
    tokens_out: int | None
    cost: float | None
    scores: Mapping[str, Mapping[str, Any]]
    """Scorer name -> ``{"value": float | None, "error": str | None, "details": {...}}``."""


@dataclass(frozen=True, slots=True)
class ScorerInfo:
    """What the statistics need to know about a scorer."""

    name: str
    kind: str
    higher_is_better: bool
    needs_baseline: bool = False

    @classmethod
    def of(cls, scorer: Scorer) -> ScorerInfo:
        """From a built scorer (pairwise judges say ``needs_baseline = True``)."""
        return cls(
            scorer.name,
            scorer.kind,
            scorer.higher_is_better,
            bool(getattr(scorer, "needs_baseline", False)),
        )


Values = dict[str, dict[str, dict[int, float]]]
"""target -> scorer -> sample id -> value (scored samples only)."""


def score_values(results: Sequence[StoredResult]) -> Values:
    """The scored values of every target and scorer, by sample."""
    values: Values = {}
    for result in results:
        per_scorer = values.setdefault(result.target, {})
        # A failed answer has no scores, except from scorers that judge a guard's
        # refusal (``scores_blocked``): those count like any other.
        for name, score in result.scores.items():
            value = score.get("value")
            if value is not None:
                per_scorer.setdefault(name, {})[result.sample_id] = float(value)
    return values


def paired(
    baseline: Mapping[int, float], candidate: Mapping[int, float]
) -> tuple[list[float], list[float]]:
    """Both targets' values on the samples both scored, in sample order."""
    shared = sorted(baseline.keys() & candidate.keys())
    return [baseline[i] for i in shared], [candidate[i] for i in shared]


def aggregate(info: ScorerInfo, values: Sequence[float], errors: int) -> Aggregate:
    """Mean with its 95% interval: Wilson for pass/fail scorers, BCa bootstrap otherwise."""
    interval = None
    if values:
        interval = pass_rate_ci(values) if info.kind == "binary" else mean_ci(values, seed=SEED)
    return Aggregate.of(info.name, info.kind, info.higher_is_better, errors, interval)


def _target_summary(
    target: str, results: Sequence[StoredResult], scorers: Sequence[ScorerInfo]
) -> TargetSummary:
    answered = [r for r in results if r.error is None]
    aggregates = []
    for info in scorers:
        values = [
            float(r.scores[info.name]["value"])
            for r in results
            if info.name in r.scores and r.scores[info.name].get("value") is not None
        ]
        errors = sum(
            1 for r in results if info.name in r.scores and r.scores[info.name].get("error")
        )
        aggregates.append(aggregate(info, values, errors))
    latencies = [r.latency_ms for r in answered if r.latency_ms is not None]
    costs = [r.cost for r in answered if r.cost is not None]
    return TargetSummary(
        target=target,
        samples=len(results),
        errors=len(results) - len(answered),
        aggregates=aggregates,
        latency_ms_p50=float(np.percentile(latencies, 50)) if latencies else None,
        latency_ms_p95=float(np.percentile(latencies, 95)) if latencies else None,
        tokens_out=sum(r.tokens_out or 0 for r in answered),
        cost=float(sum(costs)) if costs else None,
    )


def comparisons(
    targets: Sequence[str], baseline: str | None, scorers: Sequence[ScorerInfo], values: Values
) -> list[Comparison]:
    """Every candidate against the baseline on every scorer, over the samples both scored.

    Pairwise judges are skipped: their scores already compare with the
    baseline, which has none of its own.
    """
    if baseline is None:
        return []
    found = []
    base = values.get(baseline, {})
    for candidate in targets:
        if candidate == baseline:
            continue
        for info in scorers:
            if info.needs_baseline:
                continue
            base_values, cand_values = paired(
                base.get(info.name, {}), values.get(candidate, {}).get(info.name, {})
            )
            if not base_values:
                continue
            result = paired_comparison(
                base_values,
                cand_values,
                kind="binary" if info.kind == "binary" else "continuous",
                higher_is_better=info.higher_is_better,
                seed=SEED,
            )
            found.append(Comparison.of(baseline, candidate, info.name, result))
    return found


def by_category(
    targets: Sequence[str],
    scorers: Sequence[ScorerInfo],
    values: Values,
    errors: Mapping[tuple[str, int], int],
    categories: Mapping[int, str],
) -> dict[str, dict[str, Aggregate]]:
    """Per sample ``metadata.category``, per target: the aggregate of the run's first scorer.

    ``errors`` counts, by (target, sample), the scorer errors of the first scorer.
    """
    if not categories or not scorers:
        return {}
    primary = scorers[0]
    members: dict[str, set[int]] = {}
    for sample_id, category in categories.items():
        members.setdefault(category, set()).add(sample_id)
    out: dict[str, dict[str, Aggregate]] = {}
    for category in sorted(members):
        ids = members[category]
        out[category] = {}
        for target in targets:
            scored = values.get(target, {}).get(primary.name, {})
            chosen = [scored[i] for i in sorted(ids & scored.keys())]
            failed = sum(errors.get((target, i), 0) for i in ids)
            out[category][target] = aggregate(primary, chosen, failed)
    return out


def gate_verdicts(
    gates: Sequence[Gate], targets: Sequence[str], baseline: str | None, values: Values
) -> list[GateVerdict]:
    """Each gate against each candidate (every target but the baseline, or the only target).

    A delta gate compares each target but its own baseline (``baseline=`` or the
    run's) with that baseline over the samples both scored. A gate that cannot
    be computed (no scores) fails, with the reason.
    """
    verdicts = []
    for gate in gates:
        against = (gate.baseline or baseline) if gate.aggregate == "delta" else baseline
        candidates = [t for t in targets if t != against] or list(targets[:1])
        for candidate in candidates:
            mine = values.get(candidate, {}).get(gate.metric, {})
            try:
                if gate.aggregate == "delta":
                    if against is None:
                        raise InvalidInput(f"gate '{gate}' needs a baseline target")
                    theirs = values.get(against, {}).get(gate.metric, {})
                    base_values, cand_values = paired(theirs, mine)
                    result = evaluate_gate(
                        gate, {gate.metric: cand_values}, {gate.metric: base_values}, seed=SEED
                    )
                else:
                    ordered = [mine[i] for i in sorted(mine)]
                    result = evaluate_gate(gate, {gate.metric: ordered}, seed=SEED)
            except InvalidInput as exc:
                verdicts.append(
                    GateVerdict(gate=str(gate), target=candidate, passed=False, reason=exc.message)
                )
                continue
            verdicts.append(GateVerdict.of(candidate, result))
    return verdicts


def summarize(
    *,
    dataset: str,
    dataset_hash: str,
    samples: int,
    targets: Sequence[str],
    baseline: str | None,
    scorers: Sequence[ScorerInfo],
    gates: Sequence[Gate],
    results: Sequence[StoredResult],
    categories: Mapping[int, str],
    duration_s: float,
) -> RunSummary:
    """The summary of a run from its results (gates: none on a cancelled run)."""
    by_target: dict[str, list[StoredResult]] = {target: [] for target in targets}
    for result in results:
        by_target.setdefault(result.target, []).append(result)
    values = score_values(results)
    first = scorers[0].name if scorers else ""
    first_errors = {
        (r.target, r.sample_id): 1
        for r in results
        if first in r.scores and r.scores[first].get("error")
    }
    verdicts = gate_verdicts(gates, targets, baseline, values)
    return RunSummary(
        dataset=dataset,
        dataset_hash=dataset_hash,
        samples=samples,
        baseline=baseline,
        targets=[_target_summary(t, by_target[t], scorers) for t in targets],
        comparisons=comparisons(targets, baseline, scorers, values),
        gates=verdicts,
        gates_passed=all(v.passed for v in verdicts) if gates else None,
        duration_s=round(duration_s, 3),
        by_category=by_category(targets, scorers, values, first_errors, categories),
    )
