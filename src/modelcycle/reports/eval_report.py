"""The report of one evaluation run: its summary plus what only the per-sample results show.

:func:`build_eval_report` reads a run and its results into an :class:`EvalReport`:
score distributions per target and scorer, the per-sample paired differences
of each candidate against the baseline, and a side-by-side view of the first
:data:`MAX_REPORT_SAMPLES` samples, each flagged as a regression, an
improvement or an error. The JSON form is that model; the HTML page
(:mod:`modelcycle.reports.eval_report_html`) draws exactly the same data.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from modelcycle.evaluate.paired import TIE_TOLERANCE
from modelcycle.evaluate.schemas import EvalResult, EvalRun

MAX_REPORT_SAMPLES = 500
"""Samples shown side by side at most (the first, by position); the statistics use all."""
MAX_TEXT_CHARS = 10_000
"""Characters of one input, expected answer or output kept in the report."""
SCORE_BINS = 10
DIFFERENCE_BINS = 11
"""Odd, so that the middle bin is centred on 0 (no difference)."""

Verdict = Literal["better", "worse", "mixed", "same"]
Flag = Literal["regression", "improvement", "error"]
FLAGS: tuple[Flag, ...] = ("regression", "improvement", "error")
ScoreKindName = Literal["binary", "continuous", "measure"]


class Histogram(BaseModel):
    """Equal-width bins over ``[low, high]``: ``counts[i]`` values fell in bin ``i``."""

    low: float
    high: float
    counts: list[int]


class Distribution(BaseModel):
    """How one target's scores on one scorer spread (pass/fail counts when binary)."""

    target: str
    scorer: str
    kind: ScoreKindName
    n: int
    errors: int
    mean: float | None
    passed: int | None = None
    failed: int | None = None
    histogram: Histogram | None = None


class Differences(BaseModel):
    """Per-sample ``candidate - baseline`` on one scorer, over the samples both scored."""

    baseline: str
    candidate: str
    scorer: str
    kind: ScoreKindName
    higher_is_better: bool
    n: int
    mean: float | None
    better: int
    same: int
    worse: int
    histogram: Histogram | None


class Answer(BaseModel):
    """One target's answer to a sample, its scores, and how it fares against the baseline."""

    target: str
    output: str | None
    error: str | None
    scores: dict[str, float | None]
    score_errors: dict[str, str] = Field(default_factory=dict)
    latency_ms: float | None = None
    trace_id: str | None = None
    verdict: Verdict | None = None
    """Against the baseline on the non-measure scorers; ``None`` for the baseline itself."""


class SampleView(BaseModel):
    """One sample: its input, the expected answer and every target's answer."""

    sample_id: int
    position: int
    input: str
    expected: str | None
    answers: list[Answer]
    flags: list[Flag]


class EvalReport(BaseModel):
    """The whole report of one run (the JSON form; the HTML page shows the same)."""

    generated_at: datetime
    run: EvalRun
    baseline: str | None
    scorers: list[str]
    distributions: list[Distribution]
    differences: list[Differences]
    flag_counts: dict[str, int]
    """Samples flagged regression / improvement / error, over all samples."""
    samples_total: int
    samples: list[SampleView]
    """The first ``MAX_REPORT_SAMPLES`` by position."""


@dataclass(frozen=True, slots=True)
class _Direction:
    kind: ScoreKindName
    higher_is_better: bool


def clip(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters]"


def input_text(value: dict[str, Any]) -> str:
    """A sample's input as people read it: ``role: content`` lines, or the prompt."""
    messages = value.get("messages")
    if isinstance(messages, list):
        lines = []
        for message in messages:
            if isinstance(message, dict):
                content = message.get("content")
                text = content if isinstance(content, str) else repr(content)
                lines.append(f"{message.get('role', '?')}: {text}")
            else:
                lines.append(repr(message))
        return clip("\n".join(lines))
    prompt = value.get("prompt")
    if isinstance(prompt, str):
        return clip(prompt)
    return clip(repr(value))


def binned(values: Sequence[float], low: float, high: float, bins: int) -> Histogram:
    """Count ``values`` into ``bins`` equal bins over ``[low, high]`` (edges clamp inwards)."""
    counts = [0] * bins
    width = (high - low) or 1.0
    for value in values:
        index = int((value - low) / width * bins)
        counts[min(max(index, 0), bins - 1)] += 1
    return Histogram(low=low, high=high, counts=counts)


def baseline_of(run: EvalRun) -> str | None:
    """The target the others are compared with; ``None`` with a single target."""
    if len(run.targets) < 2:
        return None
    if run.summary is not None and run.summary.baseline:
        return run.summary.baseline
    return run.baseline or run.targets[0]


def _value(result: EvalResult, scorer: str) -> float | None:
    score = result.scores.get(scorer)
    if result.error or score is None or score.error is not None or score.value is None:
        return None
    return score.value if math.isfinite(score.value) else None


def _scorers(run: EvalRun, results: Sequence[EvalResult]) -> list[str]:
    """Scorer names in the run's order, then any others the results hold."""
    names = [spec.name for spec in run.scorers]
    if run.summary is not None:
        names += [a.scorer for t in run.summary.targets for a in t.aggregates]
    names += [name for result in results for name in result.scores]
    return list(dict.fromkeys(names))


def _directions(
    run: EvalRun, scorers: Iterable[str], results: Sequence[EvalResult]
) -> dict[str, _Direction]:
    """Each scorer's kind and direction: from the summary, else guessed from the values."""
    known: dict[str, _Direction] = {}
    if run.summary is not None:
        for target in run.summary.targets:
            for agg in target.aggregates:
                kind: ScoreKindName = "measure"
                if agg.kind in ("binary", "continuous"):
                    kind = "binary" if agg.kind == "binary" else "continuous"
                known.setdefault(agg.scorer, _Direction(kind, agg.higher_is_better))
    for scorer in scorers:
        if scorer in known:
            continue
        values = [v for r in results if (v := _value(r, scorer)) is not None]
        if values and all(v in (0.0, 1.0) for v in values):
            known[scorer] = _Direction("binary", True)
        elif all(0.0 <= v <= 1.0 for v in values):
            known[scorer] = _Direction("continuous", True)
        else:
            known[scorer] = _Direction("measure", False)
    return known


def _failed(result: EvalResult, scorer: str) -> bool:
    """Whether the target failed to answer, or the scorer failed on its answer."""
    score = result.scores.get(scorer)
    return bool(result.error) or (score is not None and score.error is not None)


def _compare(base: float, cand: float, higher_is_better: bool) -> int:
    """+1 when the candidate is better, -1 worse, 0 a tie."""
    difference = cand - base if higher_is_better else base - cand
    if abs(difference) <= TIE_TOLERANCE:
        return 0
    return 1 if difference > 0 else -1


def build_eval_report(
    run: EvalRun,
    results: Sequence[EvalResult],
    *,
    max_samples: int = MAX_REPORT_SAMPLES,
    now: datetime | None = None,
) -> EvalReport:
    """The report of ``run`` from all its ``results`` (any order)."""
    scorers = _scorers(run, results)
    directions = _directions(run, scorers, results)
    baseline = baseline_of(run)
    targets = list(dict.fromkeys([*run.targets, *(r.target for r in results)]))
    by_sample: dict[int, dict[str, EvalResult]] = {}
    positions: dict[int, int] = {}
    for result in results:
        by_sample.setdefault(result.sample_id, {})[result.target] = result
        positions[result.sample_id] = result.position
    order = sorted(by_sample, key=lambda sample_id: (positions[sample_id], sample_id))
    views = [
        _sample_view(by_sample[sample_id], targets, scorers, directions, baseline)
        for sample_id in order
    ]
    counts = {flag: sum(flag in view.flags for view in views) for flag in FLAGS}
    return EvalReport(
        generated_at=now or datetime.now(UTC),
        run=run,
        baseline=baseline,
        scorers=scorers,
        distributions=_distributions(results, targets, scorers, directions),
        differences=_differences(by_sample, targets, scorers, directions, baseline),
        flag_counts=counts,
        samples_total=len(views),
        samples=views[:max_samples],
    )


def eval_report_json(run: EvalRun, results: Sequence[EvalResult]) -> dict[str, Any]:
    """The report as JSON-ready data (what ``?format=json`` answers)."""
    return build_eval_report(run, results).model_dump(mode="json")


def _distributions(
    results: Sequence[EvalResult],
    targets: list[str],
    scorers: list[str],
    directions: dict[str, _Direction],
) -> list[Distribution]:
    found: list[Distribution] = []
    for scorer in scorers:
        kind = directions[scorer].kind
        per_target = {
            target: [
                v for r in results if r.target == target and (v := _value(r, scorer)) is not None
            ]
            for target in targets
        }
        top = max((max(v) for v in per_target.values() if v), default=1.0) or 1.0
        for target in targets:
            values = per_target[target]
            errors = sum(1 for r in results if r.target == target and _failed(r, scorer))
            mean = sum(values) / len(values) if values else None
            common = {"target": target, "scorer": scorer, "kind": kind, "n": len(values)}
            if kind == "binary":
                passed = sum(1 for v in values if v == 1.0)
                found.append(
                    Distribution(
                        **common,
                        errors=errors,
                        mean=mean,
                        passed=passed,
                        failed=len(values) - passed,
                    )
                )
            else:
                high = 1.0 if kind == "continuous" else top
                hist = binned(values, 0.0, high, SCORE_BINS) if values else None
                found.append(Distribution(**common, errors=errors, mean=mean, histogram=hist))
    return found


def _differences(
    by_sample: dict[int, dict[str, EvalResult]],
    targets: list[str],
    scorers: list[str],
    directions: dict[str, _Direction],
    baseline: str | None,
) -> list[Differences]:
    if baseline is None:
        return []
    found: list[Differences] = []
    for candidate in (t for t in targets if t != baseline):
        for scorer in scorers:
            direction = directions[scorer]
            pairs = [
                (b, c)
                for answers in by_sample.values()
                if baseline in answers and candidate in answers
                if (b := _value(answers[baseline], scorer)) is not None
                if (c := _value(answers[candidate], scorer)) is not None
            ]
            deltas = [c - b for b, c in pairs]
            outcome = [_compare(b, c, direction.higher_is_better) for b, c in pairs]
            if direction.kind == "binary":
                hist = binned(deltas, -1.5, 1.5, 3) if deltas else None
            else:
                reach = max((abs(d) for d in deltas), default=0.0) or 1.0
                hist = binned(deltas, -reach, reach, DIFFERENCE_BINS) if deltas else None
            found.append(
                Differences(
                    baseline=baseline,
                    candidate=candidate,
                    scorer=scorer,
                    kind=direction.kind,
                    higher_is_better=direction.higher_is_better,
                    n=len(deltas),
                    mean=sum(deltas) / len(deltas) if deltas else None,
                    better=outcome.count(1),
                    same=outcome.count(0),
                    worse=outcome.count(-1),
                    histogram=hist,
                )
            )
    return found


def _sample_view(
    answers: dict[str, EvalResult],
    targets: list[str],
    scorers: list[str],
    directions: dict[str, _Direction],
    baseline: str | None,
) -> SampleView:
    first = next(iter(answers.values()))
    base = answers.get(baseline) if baseline is not None else None
    shown: list[Answer] = []
    flags: set[Flag] = set()
    for target in targets:
        result = answers.get(target)
        if result is None:
            continue
        score_errors = {
            name: score.error for name, score in result.scores.items() if score.error is not None
        }
        if result.error or score_errors:
            flags.add("error")
        verdict = None
        if base is not None and target != baseline:
            verdict = _verdict(base, result, scorers, directions)
            if verdict in ("worse", "mixed"):
                flags.add("regression")
            if verdict in ("better", "mixed"):
                flags.add("improvement")
        shown.append(
            Answer(
                target=target,
                output=None if result.output is None else clip(result.output),
                error=result.error,
                scores={name: _value(result, name) for name in scorers if name in result.scores},
                score_errors=score_errors,
                latency_ms=result.latency_ms,
                trace_id=result.trace_id,
                verdict=verdict,
            )
        )
    return SampleView(
        sample_id=first.sample_id,
        position=first.position,
        input=input_text(first.input),
        expected=None if first.expected is None else clip(first.expected),
        answers=shown,
        flags=[flag for flag in FLAGS if flag in flags],
    )


def _verdict(
    base: EvalResult, cand: EvalResult, scorers: list[str], directions: dict[str, _Direction]
) -> Verdict | None:
    """Better, worse, mixed or the same on the quality scorers (latency and cost are noise here)."""
    outcomes = set()
    for scorer in scorers:
        direction = directions[scorer]
        if direction.kind == "measure":
            continue
        b, c = _value(base, scorer), _value(cand, scorer)
        if b is not None and c is not None:
            outcomes.add(_compare(b, c, direction.higher_is_better))
    if not outcomes:
        return None
    if 1 in outcomes and -1 in outcomes:
        return "mixed"
    if 1 in outcomes:
        return "better"
    return "worse" if -1 in outcomes else "same"
