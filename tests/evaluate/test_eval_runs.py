"""Evaluation runs end to end: targets answered through the gateway, scored, summarised, gated.

Real services on both databases; the targets are mock versions (``echo`` says
the prompt back, ``paris`` always answers "Paris"), so every score and every
statistic below is known in advance.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from modelcycle import events
from modelcycle.access import Principal
from modelcycle.deploy import DeploymentLimits, DeploymentSpec, Route
from modelcycle.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from modelcycle.evaluate.caller import current_caller
from modelcycle.evaluate.samples import SampleIn, write_version
from modelcycle.evaluate.schemas import EvalRun, EvalRunCreate, ScorerSpec
from modelcycle.evaluate.scorers import Score, Scorer, ScoringInput
from modelcycle.hookspecs import hookimpl
from modelcycle.jobs import JobState
from modelcycle.services import Services, build_worker
from modelcycle.settings import Settings
from modelcycle.store.tables import AuditEntryRow, EvalResultRow, EvalRunRow, JobRow
from modelcycle.testing import make_key, make_project, make_services, register
from modelcycle.types import Role

PARIS = "Paris"


class Events:
    """Collects the evaluation events the services emit."""

    def __init__(self) -> None:
        self.finished: list[events.EvalFinished] = []

    @hookimpl
    def modelcycle_eval_finished(self, event: events.EvalFinished) -> None:
        self.finished.append(event)


@dataclass
class Env:
    services: Services
    maintainer: Principal
    events: Events


@pytest.fixture
def env(modelcycle_settings: Settings) -> Iterator[Env]:
    seen = Events()
    services = make_services(modelcycle_settings, plugins=(seen,))
    maintainer = make_key(services, Role.MAINTAINER).principal
    admin = make_key(services, Role.ADMIN).principal
    register(services, admin, "echo", source="mock://echo")
    register(services, admin, "paris", source=f"mock://script?reply={PARIS}")
    services.deployments.create(
        admin, DeploymentSpec(name="echo-dep", routes=[Route(target="echo@1", weight=100)])
    )
    yield Env(services, maintainer, seen)
    asyncio.run(services.gateway.aclose())
    services.close()


def samples(count: int = 12) -> list[SampleIn]:
    """Every third prompt is "Paris" (echo gets it right); all expect "Paris"."""
    made = []
    for i in range(count):
        text = PARIS if i % 3 == 0 else f"city number {i}"
        body: dict[str, Any] = (
            {"messages": [{"role": "user", "content": text}]} if i % 2 else {"prompt": text}
        )
        made.append(SampleIn(body, PARIS, {"category": "capital" if i % 3 == 0 else "other"}))
    return made


def dataset(services: Services, project_id: int, name: str = "cities", count: int = 12) -> None:
    with services.store.write() as session:
        write_version(session, project_id, name, samples(count), source="import", actor="test")


def body(**overrides: Any) -> EvalRunCreate:
    values: dict[str, Any] = {
        "dataset": "cities",
        "targets": ["echo-dep", "paris@1"],
        "scorers": [ScorerSpec(name="exact_match"), ScorerSpec(name="rouge_l")],
    }
    values.update(overrides)
    return EvalRunCreate(**values)


def run(env: Env, created: EvalRun) -> EvalRun:
    asyncio.run(env.services.evals.execute(created.id))
    return env.services.evals.get(env.maintainer, created.id)


def count(services: Services, table: Any, *where: Any) -> int:
    with services.store.read() as session:
        return int(session.execute(select(func.count()).select_from(table).where(*where)).scalar())


# -- a whole run ----------------------------------------------------------------------------


def test_two_targets_are_answered_scored_compared_and_gated(env: Env) -> None:
    services = env.services
    dataset(services, env.maintainer.project_id)
    created = services.evals.create(
        env.maintainer,
        body(
            gates=[
                "exact_match>=0.9",
                "delta(exact_match, baseline=echo-dep)>=0.5 p<0.05",
                "delta(rouge_l)<=0",
            ]
        ),
    )
    assert created.status == "queued"
    assert created.dataset == "cities@1"
    assert created.baseline == "echo-dep"
    assert created.progress == 0.0

    finished = run(env, created)

    assert finished.status == "succeeded", finished.error
    assert finished.progress == 1.0
    assert finished.finished_at is not None
    summary = finished.summary
    assert summary is not None
    assert (summary.dataset, summary.samples, summary.baseline) == ("cities@1", 12, "echo-dep")
    echo, paris = summary.targets
    assert (echo.target, echo.samples, echo.errors) == ("echo-dep", 12, 0)
    exact = {t.target: t.aggregates[0] for t in summary.targets}
    # echo answers "Paris" to the 4 prompts that are "Paris"; paris answers it always.
    assert exact["echo-dep"].estimate == pytest.approx(4 / 12)
    assert exact["echo-dep"].method == "wilson"
    assert exact["echo-dep"].low is not None
    assert exact["echo-dep"].low < 4 / 12
    assert exact["echo-dep"].high is not None
    assert exact["echo-dep"].high > 4 / 12
    assert exact["paris@1"].estimate == 1.0
    rouge = paris.aggregates[1]
    assert (rouge.scorer, rouge.n, rouge.estimate) == ("rouge_l", 12, 1.0)
    assert echo.latency_ms_p50 is not None
    assert echo.tokens_out > 0

    by_scorer = {c.scorer: c for c in summary.comparisons}
    assert set(by_scorer) == {"exact_match", "rouge_l"}
    binary = by_scorer["exact_match"]
    assert (binary.baseline, binary.candidate, binary.kind) == ("echo-dep", "paris@1", "binary")
    assert (binary.wins, binary.losses, binary.ties) == (8, 0, 4)
    assert binary.p_value == pytest.approx(2 * 0.5**8)  # McNemar's exact test, 8 discordant
    assert by_scorer["rouge_l"].kind == "continuous"
    assert by_scorer["rouge_l"].p_value < 0.05

    verdicts = {v.gate: v for v in summary.gates}
    assert verdicts["mean(exact_match)>=0.9"].passed
    assert verdicts["mean(exact_match)>=0.9"].target == "paris@1"  # the baseline is not gated
    assert verdicts["delta(exact_match, baseline=echo-dep)>=0.5 p<0.05"].passed
    failed = verdicts["delta(rouge_l)<=0"]
    assert not failed.passed
    assert "needs <= 0" in failed.reason
    assert summary.gates_passed is False
    assert finished.gates_passed is False

    assert set(summary.by_category) == {"capital", "other"}
    assert summary.by_category["capital"]["echo-dep"].estimate == 1.0
    assert summary.by_category["other"]["echo-dep"].estimate == 0.0
    assert summary.by_category["other"]["paris@1"].n == 8

    [event] = env.events.finished
    assert (event.run_id, event.status, event.gates_passed) == (created.id, "succeeded", False)


def test_results_are_stored_per_sample_and_target_and_link_to_their_traces(env: Env) -> None:
    services = env.services
    dataset(services, env.maintainer.project_id)
    created = services.evals.create(env.maintainer, body())
    run(env, created)

    assert count(services, EvalResultRow, EvalResultRow.run_id == created.id) == 24
    first = services.evals.results(env.maintainer, created.id, limit=3)
    assert [(r.position, r.target) for r in first.items] == [
        (0, "echo-dep"),
        (0, "paris@1"),
        (1, "echo-dep"),
    ]
    rest = services.evals.results(env.maintainer, created.id, limit=100, cursor=first.next_cursor)
    assert rest.next_cursor is None
    every = [*first.items, *rest.items]
    assert len(every) == 24
    assert len({(r.sample_id, r.target) for r in every}) == 24
    one = every[2]
    assert one.input == {"messages": [{"role": "user", "content": "city number 1"}]}
    assert (one.expected, one.output) == (PARIS, "city number 1")
    assert one.scores["exact_match"].value == 0.0
    assert one.model == "echo"
    assert one.version == 1

    services.recorder.flush()
    for result in services.evals.results(env.maintainer, created.id, target="paris@1").items:
        assert result.trace_id
        trace = services.traces.get(env.maintainer, result.trace_id)
        [span] = trace.spans
        assert span.attributes is not None
        assert span.attributes["eval_run"] == created.id
        assert span.output == PARIS

    lineage = services.aliases.lineage(env.maintainer, "paris", 1)
    [edge] = [e for e in lineage.edges if e.relation == "evaluated_in"]
    assert (edge.target_kind, edge.target_ref) == ("eval_run", str(created.id))


def test_a_run_goes_through_the_worker_as_a_job(env: Env) -> None:
    services = env.services
    dataset(services, env.maintainer.project_id)
    created = services.evals.create(env.maintainer, body(gates=["exact_match>=0.9"]))
    assert created.job_id is not None
    with services.store.read() as session:
        [entry] = session.execute(
            select(AuditEntryRow).where(AuditEntryRow.action == "eval.create")
        ).scalars()
        assert entry.target == f"eval-run:{created.id}"

    assert build_worker(services, run_schedules=False).run_once()

    job = services.jobs.get(created.job_id)
    assert job.state == JobState.SUCCEEDED
    assert job.result == {"run_id": created.id, "status": "succeeded", "gates_passed": True}
    assert job.checkpoint is not None
    assert job.checkpoint["stored"] == 24
    assert services.evals.get(env.maintainer, created.id).gates_passed is True


def test_a_single_version_target_is_gated_on_its_own(env: Env) -> None:
    services = env.services
    dataset(services, env.maintainer.project_id)
    created = services.evals.create(
        env.maintainer,
        body(
            targets=["echo@1"],
            scorers=[ScorerSpec(name="exact_match")],
            gates=["accuracy(exact_match)>=0.5"],
        ),
    )
    finished = run(env, created)
    assert finished.summary is not None
    [verdict] = finished.summary.gates
    assert (verdict.target, verdict.passed) == ("echo@1", False)
    assert verdict.value == pytest.approx(4 / 12)
    assert finished.summary.comparisons == []


def test_failed_answers_carry_errors_and_stay_out_of_the_statistics(env: Env) -> None:
    services = env.services
    admin = make_key(services, Role.ADMIN).principal
    register(
        services, admin, "flaky", source=f"mock://script?reply={PARIS}", params={"fail_first": 3}
    )
    dataset(services, env.maintainer.project_id)
    created = services.evals.create(
        env.maintainer, body(targets=["echo-dep", "flaky@1"], concurrency=1)
    )
    finished = run(env, created)
    assert finished.status == "succeeded"
    assert finished.summary is not None
    flaky = finished.summary.targets[1]
    assert (flaky.samples, flaky.errors) == (12, 3)
    exact = flaky.aggregates[0]
    assert (exact.n, exact.errors, exact.estimate) == (9, 0, 1.0)
    failed = [
        r
        for r in services.evals.results(env.maintainer, created.id, target="flaky@1").items
        if r.error
    ]
    assert [r.position for r in failed] == [0, 1, 2]  # concurrency 1: the first three calls
    assert all(r.scores == {} and r.output is None for r in failed)
    assert "mock backend failure" in (failed[0].error or "")
    comparison = finished.summary.comparisons[0]
    assert comparison.n == 9  # only the samples both targets answered


def test_a_rate_limited_deployment_still_finishes(env: Env) -> None:
    services = env.services
    admin = make_key(services, Role.ADMIN).principal
    services.deployments.create(
        admin,
        DeploymentSpec(
            name="slow",
            routes=[Route(target="paris@1", weight=100)],
            limits=DeploymentLimits(rpm=60),
        ),
    )
    dataset(services, env.maintainer.project_id, count=62)
    created = services.evals.create(
        env.maintainer, body(targets=["slow"], scorers=[ScorerSpec(name="exact_match")])
    )
    finished = run(env, created)
    assert finished.summary is not None
    [slow] = finished.summary.targets
    # 60 in the first minute's burst, the last 2 after waiting as the 429 said.
    assert (slow.samples, slow.errors) == (62, 0)
    assert slow.aggregates[0].estimate == 1.0


# -- refused before anything is stored ----------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "error", "words"),
    [
        ({"scorers": [ScorerSpec(name="nope")]}, InvalidInput, "unknown scorer 'nope'"),
        (
            {"scorers": [ScorerSpec(name="regex", options={"pattern": "("})]},
            InvalidInput,
            "regex",
        ),
        ({"gates": ["exact_match >> 1"]}, InvalidInput, "invalid gate"),
        ({"gates": ["bleu>=0.2"]}, InvalidInput, "no scorer 'bleu'"),
        ({"gates": ["pass_rate(rouge_l)>=0.5"]}, InvalidInput, "write mean(rouge_l)"),
        ({"targets": ["paris@1"], "gates": ["delta(exact_match)>=0"]}, InvalidInput, "baseline"),
        ({"dataset": "missing"}, NotFound, "dataset 'missing' not found"),
        ({"dataset": "cities@7"}, NotFound, "no version 7"),
        ({"targets": ["ghost"]}, NotFound, "deployment 'ghost' not found"),
        ({"targets": ["paris@9"]}, InvalidInput, "has no version 9"),
        ({"targets": ["echo-dep", "echo-dep"]}, InvalidInput, "listed twice"),
        (
            {"scorers": [ScorerSpec(name="exact_match"), ScorerSpec(name="exact_match")]},
            InvalidInput,
            "listed twice",
        ),
    ],
)
def test_bad_requests_are_refused_and_store_nothing(
    env: Env, overrides: dict[str, Any], error: type[Exception], words: str
) -> None:
    dataset(env.services, env.maintainer.project_id)
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        env.services.evals.create(env.maintainer, body(**overrides))
    assert count(env.services, EvalRunRow) == 0
    assert count(env.services, JobRow, JobRow.kind == "eval.run") == 0


def test_a_delta_gate_baseline_is_added_as_a_target(env: Env) -> None:
    dataset(env.services, env.maintainer.project_id)
    created = env.services.evals.create(
        env.maintainer,
        body(targets=["paris@1"], gates=["delta(exact_match, baseline=echo-dep)>=0"]),
    )
    assert created.targets == ["paris@1", "echo-dep"]
    assert created.baseline == "paris@1"
    finished = run(env, created)
    assert finished.summary is not None
    [verdict] = finished.summary.gates
    assert (verdict.target, verdict.passed) == ("paris@1", True)


def test_projects_roles_and_cancelling(env: Env) -> None:
    services = env.services
    other = make_project(services)
    stranger = make_key(services, Role.MAINTAINER, other).principal
    dataset(services, stranger.project_id, name="theirs")
    dataset(services, env.maintainer.project_id)
    with pytest.raises(NotFound):  # another project's dataset is as good as missing
        services.evals.create(env.maintainer, body(dataset="theirs"))
    viewer = make_key(services, Role.VIEWER).principal
    with pytest.raises(PermissionDenied):
        services.evals.create(viewer, body())

    created = services.evals.create(env.maintainer, body())
    with pytest.raises(NotFound):
        services.evals.get(stranger, created.id)
    with pytest.raises(NotFound):
        services.evals.results(stranger, created.id)
    assert services.evals.get(viewer, created.id).id == created.id
    assert [r.id for r in services.evals.list(viewer).items] == [created.id]
    assert services.evals.list(stranger).items == []
    with pytest.raises(PermissionDenied):
        services.evals.cancel(viewer, created.id)

    cancelled = services.evals.cancel(env.maintainer, created.id)
    assert cancelled.status == "cancelled"
    assert created.job_id is not None
    assert services.jobs.get(created.job_id).state == JobState.CANCELLED
    assert count(services, AuditEntryRow, AuditEntryRow.action == "eval.cancel") == 1
    with pytest.raises(Conflict):
        services.evals.cancel(env.maintainer, created.id)
    with pytest.raises(Conflict):
        asyncio.run(services.evals.execute(created.id))
    assert [r.id for r in services.evals.list(viewer, status="cancelled").items] == [created.id]
    assert services.evals.list(viewer, status="succeeded").items == []


def test_gates_can_be_checked_again_on_a_finished_run(env: Env) -> None:
    services = env.services
    dataset(services, env.maintainer.project_id)
    created = services.evals.create(env.maintainer, body())
    with pytest.raises(Conflict):
        services.evals.check_gates(env.maintainer, created.id, ["exact_match>=0.5"])
    run(env, created)
    verdicts = services.evals.check_gates(
        env.maintainer, created.id, ["exact_match>=0.5", "delta(rouge_l, baseline=echo-dep)<0"]
    )
    assert [(v.target, v.passed) for v in verdicts] == [("paris@1", True), ("paris@1", False)]
    with pytest.raises(InvalidInput, match="not a target"):
        services.evals.check_gates(env.maintainer, created.id, ["delta(rouge_l, baseline=x@1)>0"])


def test_a_revoked_key_fails_the_run_with_a_clear_error(env: Env) -> None:
    services = env.services
    dataset(services, env.maintainer.project_id)
    starter = make_key(services, Role.MAINTAINER)
    created = services.evals.create(starter.principal, body())
    admin = make_key(services, Role.ADMIN).principal
    services.access.revoke_key(admin, starter.principal.key_id)
    with pytest.raises(PermissionDenied):
        asyncio.run(services.evals.execute(created.id))
    failed = services.evals.get(env.maintainer, created.id)
    assert failed.status == "failed"
    assert failed.error is not None
    assert "revoked" in failed.error
    assert [e.status for e in env.events.finished] == ["failed"]


class LongerThanBaseline:
    """A pairwise scorer: 1 when the answer is longer than the baseline's; asks echo@1 too."""

    name, kind, needs_reference, higher_is_better = "longer", "binary", False, True
    needs_baseline = True

    def score(self, sample: ScoringInput) -> Score:
        caller = current_caller()
        assert caller is not None  # the run's bridge, reachable from the scoring thread
        asked = caller.complete("echo@1", [{"role": "user", "content": "ping"}])
        baseline = sample.metadata["_baseline_output"]
        return Score.of(float(len(sample.output) > len(baseline)), asked=asked.output)

    def score_many(self, samples: Sequence[ScoringInput]) -> list[Score]:
        return [self.score(sample) for sample in samples]


class PairwisePlugin:
    @hookimpl
    def modelcycle_register_scorers(self) -> dict[str, Callable[..., Scorer]]:
        return {"longer": lambda options: LongerThanBaseline()}


def test_a_pairwise_scorer_reads_the_baseline_answer_and_can_call_models(
    modelcycle_settings: Settings,
) -> None:
    services = make_services(modelcycle_settings, plugins=(PairwisePlugin(),))
    try:
        admin = make_key(services, Role.ADMIN).principal
        register(services, admin, "echo", source="mock://echo")
        register(services, admin, "paris", source=f"mock://script?reply={PARIS}")
        dataset(services, admin.project_id)
        with pytest.raises(InvalidInput, match="needs a second target"):
            services.evals.create(
                admin, body(targets=["paris@1"], scorers=[ScorerSpec(name="longer")])
            )
        created = services.evals.create(
            admin, body(targets=["paris@1", "echo@1"], scorers=[ScorerSpec(name="longer")])
        )
        asyncio.run(services.evals.execute(created.id))
        finished = services.evals.get(admin, created.id)
        assert finished.summary is not None
        paris, echo = finished.summary.targets
        assert paris.aggregates[0].n == 0  # the baseline is not scored against itself
        # "city number i" (8 samples) is longer than "Paris"; "Paris" (4) is not.
        assert (echo.aggregates[0].n, echo.aggregates[0].estimate) == (12, 8 / 12)
        assert finished.summary.comparisons == []  # the scorer compares already
        results = services.evals.results(admin, created.id, target="echo@1").items
        assert {r.scores["longer"].details["asked"] for r in results} == {"ping"}
    finally:
        asyncio.run(services.gateway.aclose())
        services.close()
