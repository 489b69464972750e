"""Turns two samples into the metrics of a drift report, each with its verdict and evidence."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from modelcycle.errors import MissingExtra
from modelcycle.monitor import drift_stats
from modelcycle.monitor.drift_data import Sample
from modelcycle.monitor.drift_embed import Embedder
from modelcycle.monitor.drift_schemas import METRICS, DriftCheck, DriftMetric, MetricName
from modelcycle.monitor.drift_text import is_refusal, language_of

EXAMPLES = 5
EXAMPLE_CHARS = 200

Progress = Callable[[float], None]


def _clip(text: str) -> str:
    return text if len(text) <= EXAMPLE_CHARS else text[: EXAMPLE_CHARS - 1] + "…"


class _Builder:
    """Metric results for one check, sharing its thresholds and sample-size rule."""

    def __init__(self, check: DriftCheck):
        self.check = check
        self.alpha = check.threshold("alpha")

    def too_few(self, name: str, test: str, cur_n: int, ref_n: int, what: str) -> DriftMetric:
        return DriftMetric(
            name=name,
            status="insufficient_data",
            drifted=False,
            test=test,
            statistic=None,
            p_value=None,
            threshold=self.check.threshold(name),
            current_n=cur_n,
            reference_n=ref_n,
            message=(
                f"insufficient data: {cur_n} current and {ref_n} reference {what}; "
                f"need {self.check.min_samples} on each side"
            ),
            evidence={},
        )

    def enough(self, cur_n: int, ref_n: int) -> bool:
        return min(cur_n, ref_n) >= self.check.min_samples

    def unavailable(self, name: str, test: str, message: str) -> DriftMetric:
        return DriftMetric(
            name=name,
            status="unavailable",
            drifted=False,
            test=test,
            statistic=None,
            p_value=None,
            threshold=self.check.threshold(name),
            current_n=0,
            reference_n=0,
            message=message,
            evidence={},
        )

    def verdict(
        self,
        name: str,
        test: str,
        result: drift_stats.TestResult,
        cur_n: int,
        ref_n: int,
        *,
        effect: str,
        drifted: bool | None = None,
        rule: str | None = None,
    ) -> DriftMetric:
        """Drift when significant at ``alpha`` and the effect reaches the threshold (by default)."""
        threshold = self.check.threshold(name)
        if drifted is None:
            significant = result.p_value is not None and result.p_value < self.alpha
            drifted = significant and result.statistic >= threshold
        p = f", p={result.p_value:.3g}" if result.p_value is not None else ""
        rule = rule or f"drift at >= {threshold:g} with p < {self.alpha:g}"
        return DriftMetric(
            name=name,
            status="drift" if drifted else "ok",
            drifted=drifted,
            test=test,
            statistic=round(result.statistic, 6),
            p_value=result.p_value,
            threshold=threshold,
            current_n=cur_n,
            reference_n=ref_n,
            message=f"{'drift' if drifted else 'no drift'}: {effect} {result.statistic:.3g}{p} "
            f"({rule})",
            evidence=result.evidence,
        )


def compute(
    check: DriftCheck,
    current: Sample,
    reference: Sample,
    embedder: Embedder,
    progress: Progress | None = None,
) -> list[DriftMetric]:
    """Every requested metric, in the order of ``METRICS``."""
    wanted = [name for name in METRICS if check.metrics is None or name in check.metrics]
    build = _Builder(check)
    results: dict[str, DriftMetric] = {}
    if {"embedding_classifier", "embedding_mmd"} & set(wanted):
        results.update(_embedding(build, wanted, current, reference, embedder))
    for index, name in enumerate(wanted):
        if name not in results:
            results[name] = _SIMPLE[name](build, current, reference)
        if progress is not None:
            progress((index + 1) / len(wanted))
    return [results[name] for name in wanted]


def _embedding(
    build: _Builder,
    wanted: Sequence[MetricName],
    current: Sample,
    reference: Sample,
    embedder: Embedder,
) -> dict[str, DriftMetric]:
    names = [n for n in wanted if n in ("embedding_classifier", "embedding_mmd")]
    tests = {
        "embedding_classifier": "domain classifier ROC AUC (logistic regression, 5-fold CV)",
        "embedding_mmd": "MMD² permutation test (RBF kernel)",
    }
    cur_n, ref_n = len(current.inputs), len(reference.inputs)
    if not build.enough(cur_n, ref_n):
        return {n: build.too_few(n, tests[n], cur_n, ref_n, "prompts") for n in names}
    try:
        vectors = embedder.encode([*reference.inputs, *current.inputs])
    except MissingExtra as exc:
        return {n: build.unavailable(n, tests[n], exc.message) for n in names}
    ref_vectors, cur_vectors = vectors[:ref_n], vectors[ref_n:]
    out: dict[str, DriftMetric] = {}
    if "embedding_classifier" in names:
        try:
            result, scores = drift_stats.classifier_auc(ref_vectors, cur_vectors)
        except MissingExtra as exc:
            out["embedding_classifier"] = build.unavailable(
                "embedding_classifier", tests["embedding_classifier"], exc.message
            )
        else:
            result.evidence["most_distinct_current"] = _distinct(current.inputs, scores)
            out["embedding_classifier"] = build.verdict(
                "embedding_classifier", tests["embedding_classifier"], result, cur_n, ref_n,
                effect="ROC AUC",
            )  # fmt: skip
    if "embedding_mmd" in names:
        result = drift_stats.mmd_test(ref_vectors, cur_vectors)
        threshold = build.check.threshold("embedding_mmd")
        # A pure test: its threshold is the p-value under which the samples differ.
        drifted = result.p_value is not None and result.p_value < threshold and result.statistic > 0
        out["embedding_mmd"] = build.verdict(
            "embedding_mmd", tests["embedding_mmd"], result, cur_n, ref_n,
            effect="MMD²", drifted=drifted, rule=f"drift at p < {threshold:g}",
        )  # fmt: skip
    return out


def _distinct(texts: Sequence[str], scores: NDArray[np.float64]) -> list[dict[str, Any]]:
    """The current prompts the classifier found least like the reference."""
    order = np.argsort(-scores)[:EXAMPLES]
    return [{"text": _clip(texts[i]), "score": round(float(scores[i]), 3)} for i in order]


def _lengths(name: str, build: _Builder, ref: Sequence[str], cur: Sequence[str]) -> DriftMetric:
    test = "KS test + PSI (characters)"
    if not build.enough(len(cur), len(ref)):
        what = "prompts" if name == "input_length" else "answers"
        return build.too_few(name, test, len(cur), len(ref), what)
    result = drift_stats.numeric_shift([len(t) for t in ref], [len(t) for t in cur])
    return build.verdict(name, test, result, len(cur), len(ref), effect="PSI")


def _input_length(build: _Builder, current: Sample, reference: Sample) -> DriftMetric:
    return _lengths("input_length", build, reference.inputs, current.inputs)


def _output_length(build: _Builder, current: Sample, reference: Sample) -> DriftMetric:
    return _lengths("output_length", build, reference.outputs, current.outputs)


def _language(build: _Builder, current: Sample, reference: Sample) -> DriftMetric:
    test = "chi-squared test + total variation distance (language mix)"
    cur_n, ref_n = len(current.inputs), len(reference.inputs)
    if not build.enough(cur_n, ref_n):
        return build.too_few("language", test, cur_n, ref_n, "prompts")
    result = drift_stats.category_shift(
        [language_of(t) for t in reference.inputs], [language_of(t) for t in current.inputs]
    )
    return build.verdict("language", test, result, cur_n, ref_n, effect="distance")


def _refusal_rate(build: _Builder, current: Sample, reference: Sample) -> DriftMetric:
    test = "two-proportion z-test (refusal phrases)"
    cur_n, ref_n = len(current.outputs), len(reference.outputs)
    if not build.enough(cur_n, ref_n):
        return build.too_few("refusal_rate", test, cur_n, ref_n, "answers")
    cur_refusals = [answer for answer in current.outputs if is_refusal(answer)]
    ref_hits = sum(1 for answer in reference.outputs if is_refusal(answer))
    result = drift_stats.rate_shift(ref_hits, ref_n, len(cur_refusals), cur_n)
    result.evidence["current_examples"] = [_clip(a) for a in cur_refusals[:EXAMPLES]]
    return build.verdict("refusal_rate", test, result, cur_n, ref_n, effect="rate change")


def _guard_rate(build: _Builder, current: Sample, reference: Sample) -> DriftMetric:
    test = "two-proportion z-test (guard flag, redact or block)"
    if current.spans is None or reference.spans is None:
        return build.unavailable(
            "guard_rate", test, "needs production windows on both sides (reference is texts)"
        )
    if current.guarded == 0 and reference.guarded == 0:
        return build.unavailable("guard_rate", test, "no guard decisions in either window")
    if not build.enough(current.spans, reference.spans):
        return build.too_few("guard_rate", test, current.spans, reference.spans, "requests")
    result = drift_stats.rate_shift(
        reference.guard_hits, reference.spans, current.guard_hits, current.spans
    )
    return build.verdict(
        "guard_rate", test, result, current.spans, reference.spans, effect="rate change"
    )


def _feedback_score(build: _Builder, current: Sample, reference: Sample) -> DriftMetric:
    test = "Mann-Whitney U test (feedback scores)"
    if current.feedback is None or reference.feedback is None:
        return build.unavailable(
            "feedback_score", test, "needs production windows on both sides (reference is texts)"
        )
    cur_n, ref_n = len(current.feedback), len(reference.feedback)
    if not build.enough(cur_n, ref_n):
        return build.too_few("feedback_score", test, cur_n, ref_n, "feedback scores")
    result = drift_stats.score_shift(reference.feedback, current.feedback)
    return build.verdict("feedback_score", test, result, cur_n, ref_n, effect="mean change")


_SIMPLE: dict[str, Callable[[_Builder, Sample, Sample], DriftMetric]] = {
    "input_length": _input_length,
    "output_length": _output_length,
    "language": _language,
    "refusal_rate": _refusal_rate,
    "guard_rate": _guard_rate,
    "feedback_score": _feedback_score,
}
