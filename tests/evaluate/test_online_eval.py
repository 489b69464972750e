"""Online evaluation scores a deterministic sample of real traces, once, on both databases.

What a user relies on: traffic sent through the gateway is sampled by trace id
(about the configured share, the very same traces on every pass, never twice),
failed requests and shadow copies are left out, the cursor moves on, a scorer
that needs a reference answer is refused, a model-based scorer can call a
model through the gateway without its own calls being scored, and an alert
rule on ``online_score:<scorer>`` fires when the answers go bad.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.harness import Env
from modelcycle.errors import InvalidInput, NotFound
from modelcycle.evaluate.caller import current_caller
from modelcycle.evaluate.online_schemas import OnlineEvalSet, parse_rate
from modelcycle.evaluate.scorers import Score, Scorer, ScoringInput
from modelcycle.jobs import JobState
from modelcycle.monitor.alert_rules import AlertRuleCreate
from modelcycle.services import build_worker
from modelcycle.store.tables import AlertRuleRow, OnlineScoreRow, SpanRow, utcnow
from monitor.recording import gateway, settings_for

LATER = timedelta(minutes=10)
"""Passes run as of this much after the traffic: every span has settled by then."""


@pytest.fixture
async def env(tmp_path: Path, modelcycle_database_url: str | None) -> AsyncIterator[Env]:
    async with gateway(settings_for(tmp_path, modelcycle_database_url)) as built:
        built.deploy("chat", (built.version("echo", "mock://echo"), 100))
        yield built


def in_sample(trace_id: str, rate: float) -> bool:
    """The documented rule, written out independently of the code under test."""
    return int(hashlib.sha256(trace_id.encode()).hexdigest()[:16], 16) / 2**64 < rate


def configure(env: Env, deployment: str = "chat", **body: Any) -> None:
    values = {"sample_rate": "50%", "scorers": [{"name": "json_valid"}], **body}
    env.services.online_eval.set(
        env.admin.principal, deployment, OnlineEvalSet.model_validate(values)
    )


async def send(env: Env, contents: list[str], *, deployment: str = "chat") -> None:
    http = env.http()
    for content in contents:
        body = {"model": deployment, "messages": [{"role": "user", "content": content}]}
        response = await http.post("/v1/chat/completions", json=body)
        assert response.status_code == 200, response.text
    env.services.recorder.flush()


def traces_of(env: Env, deployment: str = "chat") -> dict[str, SpanRow]:
    with env.services.store.read() as session:
        rows = session.execute(select(SpanRow).where(SpanRow.deployment == deployment)).scalars()
        return {row.trace_id: row for row in rows}


def scores(env: Env, scorer: str = "json_valid") -> dict[str, OnlineScoreRow]:
    with env.services.store.read() as session:
        rows = session.execute(
            select(OnlineScoreRow).where(OnlineScoreRow.scorer == scorer)
        ).scalars()
        return {row.trace_id: row for row in rows}


def score_count(env: Env) -> int:
    with env.services.store.read() as session:
        return int(session.execute(select(func.count(OnlineScoreRow.id))).scalar_one())


async def test_about_half_the_traces_are_scored_and_the_same_ones_on_every_pass(env: Env) -> None:
    configure(env, sample_rate="50%")
    await send(env, [f'{{"n": {i}}}' if i % 2 else f"plain answer {i}" for i in range(60)])
    traces = traces_of(env)
    expected = {trace_id for trace_id in traces if in_sample(trace_id, 0.5)}

    # Scored at once, though none has settled: the cursor stays where it was.
    first = await env.services.online_eval.scoring.score_pending()
    assert set(scores(env)) == expected
    assert 15 <= len(expected) <= 45, "a 50% sample of 60 traces"
    assert first.traces_scored == len(expected)
    before = env.services.online_eval.get(env.admin.principal, "chat").scored_until
    assert before is not None
    assert before < min(span.start_time for span in traces.values())

    # A later pass finds nothing new, writes no duplicate, and moves the cursor past them all.
    again = await env.services.online_eval.scoring.score_pending(now=utcnow() + LATER)
    assert again.scores == 0
    assert score_count(env) == len(expected)
    after = env.services.online_eval.get(env.admin.principal, "chat").scored_until
    assert after == max(span.start_time for span in traces.values())

    for trace_id, row in scores(env).items():
        span = traces[trace_id]
        assert row.value == (1.0 if span.output and span.output.startswith("{") else 0.0)
        assert (row.deployment, row.model, row.version) == ("chat", "echo", 1)
        assert row.trace_start == span.start_time

    # New traffic: only it is read, sampled by the same rule.
    await send(env, ['{"late": true}'] * 10)
    latest = await env.services.online_eval.scoring.score_pending(now=utcnow() + LATER)
    assert latest.spans_read == 10
    assert set(scores(env)) == {t for t in traces_of(env) if in_sample(t, 0.5)}


async def test_failed_and_shadow_requests_are_never_scored(env: Env) -> None:
    env.deploy(
        "mixed",
        (env.version("flaky", "mock://echo", fail_first=4), 100),
        shadow=env.version("echo", "mock://echo"),
    )
    configure(env, "mixed", sample_rate=1)
    http = env.http()
    body = {"model": "mixed", "messages": [{"role": "user", "content": '{"ok": 1}'}]}
    statuses = [(await http.post("/v1/chat/completions", json=body)).status_code for _ in range(10)]
    assert statuses.count(200) == 6
    for _ in range(200):  # shadow copies finish in the background
        if sum(e.route == "shadow" for e in env.finished.events) == 6:
            break
        await asyncio.sleep(0.01)
    env.services.recorder.flush()
    spans = traces_of(env, "mixed")
    assert {span.route for span in spans.values()} == {"primary", "shadow"}

    await env.services.online_eval.scoring.score_pending(now=utcnow() + LATER)

    answered = {t for t, span in spans.items() if span.status == "ok" and span.route == "primary"}
    assert len(answered) == 6
    assert set(scores(env)) == answered


async def test_a_scorer_that_needs_a_reference_or_an_unknown_deployment_is_refused(
    env: Env,
) -> None:
    with pytest.raises(InvalidInput, match="exact_match compares with an expected answer"):
        configure(env, scorers=[{"name": "json_valid"}, {"name": "exact_match"}])
    with pytest.raises(InvalidInput, match="unknown scorer 'nope'"):
        configure(env, scorers=[{"name": "nope"}])
    with pytest.raises(InvalidInput, match="json_valid is listed twice"):
        configure(env, scorers=[{"name": "json_valid"}, {"name": "json_valid"}])
    with pytest.raises(NotFound, match="deployment 'absent' not found"):
        configure(env, "absent")
    assert env.services.online_eval.list(env.admin.principal) == []


@pytest.mark.parametrize(
    ("given", "rate"), [("10%", 0.1), ("0.5%", 0.005), (0.25, 0.25), ("0.3", 0.3), (1, 1.0)]
)
def test_a_rate_is_a_fraction_or_a_percentage(given: object, rate: float) -> None:
    assert parse_rate(given) == pytest.approx(rate)


@pytest.mark.parametrize(
    ("given", "problem"),
    [(0, "more than 0"), (10, "more than 1"), ("150%", "more than 1"), ("half", "not a rate")],
)
def test_a_bad_rate_says_how_to_write_one(given: object, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_rate(given)


class EchoJudge(Scorer):
    """Asks the deployment under evaluation to repeat the answer: 1 when it does."""

    name = "echo_judge"
    kind = "binary"
    needs_reference = False
    higher_is_better = True

    def score(self, sample: ScoringInput) -> Score:
        caller = current_caller()
        if caller is None:
            return Score.failed("no caller")
        answer = caller.complete("chat", [{"role": "user", "content": sample.output}])
        return Score.of(1.0 if answer.output == sample.output else 0.0)


def _echo_judge(_options: Mapping[str, Any]) -> Scorer:
    return EchoJudge()


async def test_a_model_based_scorer_calls_through_the_gateway_and_its_calls_are_not_scored(
    env: Env,
) -> None:
    env.services.scorers.factories["echo_judge"] = _echo_judge
    configure(env, sample_rate=1, scorers=[{"name": "echo_judge"}])
    await send(env, ["first", "second", "third"])

    await env.services.online_eval.scoring.score_pending(now=utcnow() + LATER)
    env.services.recorder.flush()
    judged = scores(env, "echo_judge")
    assert [row.value for row in judged.values()] == [1.0, 1.0, 1.0]
    assert len(traces_of(env)) == 6, "the judge's three calls are traced on the deployment"

    await env.services.online_eval.scoring.score_pending(now=utcnow() + 2 * LATER)
    assert set(scores(env, "echo_judge")) == set(judged), "the judge's own traces are skipped"


async def test_an_alert_on_an_online_score_fires_when_answers_are_not_json(env: Env) -> None:
    configure(env, sample_rate=1)
    body = AlertRuleCreate.model_validate(
        {
            "name": "json-broken",
            "metric": "online_score:json_valid",
            "op": "<",
            "threshold": 0.9,
            "window_s": 600,
            "deployment": "chat",
            "min_requests": 5,
        }
    )
    env.services.alerts.create(env.admin.principal, body)
    await send(env, ['{"fine": true}'] * 5)
    await env.services.online_eval.scoring.score_pending()
    assert env.services.alerts.evaluate_all() == 0

    await send(env, ["not json at all"] * 5)
    await env.services.online_eval.scoring.score_pending()
    assert env.services.alerts.evaluate_all() == 1
    with env.services.store.read() as session:
        rule = session.execute(select(AlertRuleRow)).scalar_one()
    assert (rule.state, rule.last_value) == ("firing", 0.5)


async def test_a_rule_on_too_few_scores_stays_undecided(env: Env) -> None:
    body = AlertRuleCreate.model_validate(
        {
            "name": "json-broken",
            "metric": "online_score:json_valid",
            "op": "<",
            "threshold": 0.9,
            "min_requests": 3,
        }
    )
    env.services.alerts.create(env.admin.principal, body)
    configure(env, sample_rate=1)
    await send(env, ["not json"] * 2)
    await env.services.online_eval.scoring.score_pending()
    assert env.services.alerts.evaluate_all() == 0
    with env.services.store.read() as session:
        rule = session.execute(select(AlertRuleRow)).scalar_one()
    assert (rule.state, rule.last_value) == ("ok", None)


async def test_the_worker_runs_the_scheduled_pass(env: Env) -> None:
    configure(env, sample_rate=1)
    await send(env, ['{"a": 1}', "b"])
    worker = build_worker(env.services)

    while await asyncio.to_thread(worker.run_once):
        pass

    jobs = [
        job for job in env.services.jobs.list(project_id=None).items if job.kind == "eval.online"
    ]
    assert [job.state for job in jobs] == [JobState.SUCCEEDED]
    assert jobs[0].result is not None
    assert jobs[0].result["scores"] == 2
    assert sorted(row.value for row in scores(env).values()) == [0.0, 1.0]


async def test_a_disabled_or_deleted_configuration_scores_nothing(env: Env) -> None:
    configure(env, sample_rate=1, enabled=False)
    await send(env, ['{"a": 1}'])
    assert (await env.services.online_eval.scoring.score_pending()).configs == 0
    env.services.online_eval.delete(env.admin.principal, "chat")
    with pytest.raises(NotFound, match="no online evaluation"):
        env.services.online_eval.get(env.admin.principal, "chat")
    assert score_count(env) == 0


async def test_the_llm_judge_scores_production_answers_through_a_judge_deployment(
    env: Env,
) -> None:
    env.deploy("judge", (env.version("grader", "mock://script?reply=Score%3A%204"), 100))
    scorer = {"name": "llm_judge", "options": {"judge": "judge", "rubric": "helpfulness"}}
    configure(env, sample_rate=1, scorers=[scorer])
    await send(env, ["How do I reset my password?", "What are your opening hours?"])

    report = await env.services.online_eval.scoring.score_pending(now=utcnow() + LATER)
    env.services.recorder.flush()

    judged = scores(env, "llm_judge")
    assert report.score_errors == 0
    assert set(judged) == set(traces_of(env))
    assert {row.error for row in judged.values()} == {None}
    assert {row.value for row in judged.values()} == {0.75}, "4 on a 1..5 scale"
    assert len(traces_of(env, "judge")) >= 2, "the judge was called through the gateway"
