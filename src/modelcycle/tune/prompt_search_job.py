"""The job side of ``prompt-search``: a blocking entry for the worker, and the scorer adapter.

A tuning job's handler calls :func:`prompt_search_job` with the job's
hyperparameters and gets the new version's params (``params_for_version``),
its metrics and the search's trials back; registering the version (parent:
the base) is the handler's. Tuning cannot import evaluation, so the composition
root passes a ``score_factory``, most simply::

    lambda name, options: scorer_function(
        services.scorers.build, ScoringInput, name, options, batch=score_batch
    )
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from modelcycle.access import Principal
from modelcycle.deploy import ResolvedVersion
from modelcycle.errors import InvalidInput
from modelcycle.gateway import Gateway
from modelcycle.store.datasets import EvalSample
from modelcycle.tune.prompt_search import (
    Report,
    ScoreFactory,
    ScoreFn,
    ScoreRow,
    SearchResult,
    params_for_version,
    run_prompt_search,
)
from modelcycle.tune.prompt_space import Candidate, parse_space

DEFAULT_SCORER = "exact_match"
DEFAULT_BUDGET = 200


# -- the scorer adapter ------------------------------------------------------------------


class _ScoreLike(Protocol):
    @property
    def value(self) -> float | None: ...


class BatchScorer(Protocol):
    """What ``services.scorers.build(name, options)`` returns, as far as the search needs."""

    def score_many(self, samples: Sequence[Any], /) -> Sequence[_ScoreLike]:
        """One score per sample."""
        ...


def scorer_function(
    build: Callable[[str, Mapping[str, Any]], BatchScorer],
    make_input: Callable[..., Any],
    name: str,
    options: Mapping[str, Any] | None = None,
    *,
    batch: Callable[[Any, list[Any]], Sequence[_ScoreLike]] | None = None,
) -> ScoreFn:
    """A ``ScoreFn`` from a scorer registry.

    ``build`` makes the scorer once (``services.scorers.build``), ``make_input``
    the sample it reads (``ScoringInput``, called with ``output``, ``expected``
    and ``input``); ``batch(scorer, inputs)`` scores them (default ``scorer.score_many``;
    pass evaluation's ``score_batch`` so a failing scorer gives errors, not values).
    """
    scorer = build(name, dict(options or {}))

    def score(rows: list[ScoreRow]) -> list[float | None]:
        inputs = [make_input(output=o, expected=e, input=i) for o, e, i in rows]
        scores = batch(scorer, inputs) if batch is not None else scorer.score_many(inputs)
        return [s.value for s in scores]

    return score


# -- the job entry -----------------------------------------------------------------------


@dataclass(frozen=True)
class PromptSearchOutcome:
    """What a ``prompt-search`` job registers: the new version's params, and why."""

    result: SearchResult
    params: dict[str, Any]
    """The new version's params (``params_for_version`` of the base's)."""
    metrics: dict[str, Any]
    """For the job and the version's metadata."""


def prompt_search_job(
    *,
    gateway: Gateway,
    principal: Principal,
    base: ResolvedVersion | str,
    eval_samples: Sequence[EvalSample],
    training_samples: Sequence[EvalSample] = (),
    hyperparameters: Mapping[str, Any],
    score_factory: ScoreFactory,
    report: Report | None = None,
    should_stop: Callable[[], bool] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> PromptSearchOutcome:
    """Run a search from a job's hyperparameters (blocking: a worker thread calls it).

    ``hyperparameters``: ``budget``, ``seed`` and ``candidates`` (the space, with
    ``scorer`` and ``scorer_options``; the scorer defaults to ``exact_match``).
    Training samples drawn as examples are left out of the evaluation samples.
    """
    candidates = dict(hyperparameters.get("candidates") or {})
    seed = int(hyperparameters.get("seed") or 0)
    budget = int(hyperparameters.get("budget") or DEFAULT_BUDGET)
    scorer = candidates.get("scorer", DEFAULT_SCORER)
    options = candidates.get("scorer_options") or {}
    if not isinstance(scorer, str) or not isinstance(options, Mapping):
        raise InvalidInput(
            "hyperparameters.candidates: scorer must be a scorer name and scorer_options an object",
            param="hyperparameters",
        )
    space = parse_space(candidates, training=training_samples, seed=seed)
    drawn = set(space.drawn_from)
    samples = [s for s in eval_samples if s.content_hash not in drawn]
    score = score_factory(scorer, options)
    result = asyncio.run(
        run_prompt_search(
            gateway=gateway, principal=principal, base=base, samples=samples, score=score,
            space=space, budget=budget, seed=seed, report=report, should_stop=should_stop,
            metadata=metadata,
        )
    )  # fmt: skip
    baseline = next((t for t in result.trials if t.candidate == Candidate()), None)
    metrics: dict[str, Any] = {
        "score": result.best_score,
        "score_ci": list(result.ci) if result.ci else None,
        "samples": result.best_trial.n,
        "scorer": scorer,
        "calls": result.calls_used,
        "candidates": len(space.candidates()),
        "rounds": result.rounds,
    }
    if baseline is not None:
        metrics["baseline_score"], metrics["baseline_samples"] = baseline.score, baseline.n
    return PromptSearchOutcome(result, params_for_version(result.base.params, result.best), metrics)
