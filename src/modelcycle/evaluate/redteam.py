"""The built-in red-team suite: attacks in four categories, English and Spanish.

160 prompts ship as package data (``redteam_data/*.jsonl``): prompt
injection, jailbreaks, PII exfiltration and harmful requests, 20 per category
and language. Each sample's metadata holds ``category``, ``language``,
``expect`` (``refuse``: the target must decline; ``no_leak``: nothing from
its context may appear in the answer) and, for injections, the ``forbidden``
canaries. A run of it (kind ``redteam``) scores every answer with
``redteam_safe``; the run summary's ``by_category`` holds the pass rate per
category with its 95% interval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel
from sqlalchemy.orm import Session

from modelcycle.access import Principal, require
from modelcycle.errors import InvalidInput
from modelcycle.evaluate.builtin_sets import (
    RunCreator,
    ensure_builtin,
    finished_run,
    read_jsonl,
    run_results,
    samples_of,
)
from modelcycle.evaluate.caller import is_guard_block
from modelcycle.evaluate.run_setup import check_targets
from modelcycle.evaluate.samples import SampleIn
from modelcycle.evaluate.schemas import EvalResult, EvalRun, EvalRunCreate, ScorerSpec
from modelcycle.evaluate.statistics import pass_rate_ci
from modelcycle.store import Store
from modelcycle.store.tables import DatasetVersionRow
from modelcycle.types import Role

DATASET = "redteam-builtin"
CATEGORIES = ("prompt_injection", "jailbreak", "pii_exfiltration", "harmful")
LANGUAGES = ("en", "es")
SCORER = "redteam_safe"


def redteam_samples() -> list[SampleIn]:
    """The shipped red-team prompts, in a fixed order (category file, then line)."""
    return samples_of(read_jsonl(__package__ or "modelcycle.evaluate", "redteam_data"))


def ensure_redteam_dataset(session: Session, project_id: int, actor: str) -> DatasetVersionRow:
    """The project's ``redteam-builtin`` version holding the shipped prompts (written if new)."""
    return ensure_builtin(
        session,
        project_id,
        actor,
        DATASET,
        redteam_samples(),
        description="modelcycle's built-in red-team prompts (injection, jailbreak, PII "
        "exfiltration, harmful requests; English and Spanish)",
    )


def blocked_is_pass(answer_error: str | None) -> bool:
    """Whether a failed answer is a guard's refusal, which counts as a pass in a red-team run.

    The caller stores a blocked request as the error ``"content_filter: ..."``
    with no output; a runner scoring red-team samples should record
    ``redteam_safe`` = 1 for it rather than leave the sample unscored.
    """
    return is_guard_block(answer_error)


def start_redteam(
    evals: RunCreator, store: Store, principal: Principal, target: str, *, concurrency: int = 4
) -> EvalRun:
    """Queue a red-team run (kind ``redteam``) of the built-in suite against ``target``."""
    require(principal, Role.MAINTAINER)
    with store.write() as session:
        # A bad target is refused before the built-in set is written.
        check_targets(session, principal, [target])
        version = ensure_redteam_dataset(session, principal.project_id, principal.actor)
        ref, version_id = f"{DATASET}@{version.version}", version.id
    body = EvalRunCreate(
        dataset=ref,
        targets=[target],
        scorers=[ScorerSpec(name=SCORER)],
        name=f"redteam {target}",
        concurrency=concurrency,
        temperature=0,
    )
    return evals.create(principal, body, kind="redteam", dataset_version_id=version_id)


class CategoryRate(BaseModel):
    """The pass rate of one category (or ``all``) with its 95% Wilson interval."""

    category: str
    n: int
    passed: int
    rate: float | None
    low: float | None
    high: float | None
    unscored: int
    """Answers that failed for another reason than a guard block (no verdict)."""


def pass_rates(
    results: Sequence[EvalResult], metadata: Mapping[int, Mapping[str, Any]]
) -> list[CategoryRate]:
    """``redteam_safe`` pass rates per category and overall; a guard's block counts as a pass."""
    verdicts: dict[str, list[float]] = {}
    unscored: dict[str, int] = {}
    for result in results:
        category = str((metadata.get(result.sample_id) or {}).get("category", "uncategorised"))
        score = result.scores.get(SCORER)
        if score is not None and score.value is not None:
            value: float | None = score.value
        elif result.output is None and blocked_is_pass(result.error):
            value = 1.0
        else:
            value = None
        for key in (category, "all"):
            if value is None:
                unscored[key] = unscored.get(key, 0) + 1
            else:
                verdicts.setdefault(key, []).append(value)
    rates = []
    for key in sorted(set(verdicts) | set(unscored), key=lambda k: (k == "all", k)):
        values = verdicts.get(key, [])
        interval = pass_rate_ci(values) if values else None
        rates.append(
            CategoryRate(
                category=key,
                n=len(values),
                passed=int(sum(values)),
                rate=interval.estimate if interval else None,
                low=interval.low if interval and interval.defined else None,
                high=interval.high if interval and interval.defined else None,
                unscored=unscored.get(key, 0),
            )
        )
    return rates


class RedteamReport(BaseModel):
    """The pass rates of one target in a red-team run."""

    run_id: int
    target: str
    categories: list[CategoryRate]
    """Per category, then ``all``."""


def redteam_report_for_run(
    store: Store, principal: Principal, run_id: int, *, target: str | None = None
) -> RedteamReport:
    """``GET /api/v1/evals/{run_id}/redteam``: pass rate per category of a finished run."""
    require(principal, Role.VIEWER)
    with store.read() as session:
        run = finished_run(session, principal, run_id, "redteam")
        chosen = target or run.targets[0]
        if chosen not in run.targets:
            raise InvalidInput(
                f"run {run_id} has no target {chosen!r}; its targets: {', '.join(run.targets)}",
                param="target",
            )
        results, metadata = run_results(session, run, chosen)
    return RedteamReport(run_id=run_id, target=chosen, categories=pass_rates(results, metadata))
