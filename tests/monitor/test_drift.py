"""Drift checks on production windows: the right metrics flag real shifts, and only those.

Embeddings are left out here (``test_drift_embedding.py`` loads the real model):
these run on both databases in seconds.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest

from modelcycle import events
from modelcycle.errors import NotFound, PermissionDenied
from modelcycle.hookspecs import hookimpl
from modelcycle.jobs import JobState
from modelcycle.monitor.drift_schemas import (
    DriftCheck,
    DriftMetric,
    DriftReport,
    DriftScheduleCreate,
)
from modelcycle.services import Services, build_worker
from modelcycle.store.tables import FeedbackRow, utcnow
from modelcycle.testing import admin_of, make_key, make_project
from modelcycle.types import Role
from monitor.trace_factory import NOW, llm_span, trace_id

CHEAP = [
    "input_length",
    "output_length",
    "language",
    "refusal_rate",
    "guard_rate",
    "feedback_score",
]
TOPICS = ["France", "Python", "the moon", "Spain", "docker", "music", "Germany", "tea"]
ENGLISH = [
    "What is the capital of {}?",
    "How do I get started with {}?",
    "Can you tell me something about {}?",
    "Why do people like {}?",
]
FRENCH = [
    "Quelle est la meilleure façon de découvrir {} pour les débutants ?",
    "Pourquoi est-ce que tout le monde parle de {} en ce moment, et qu'en penses-tu ?",
    "Peux-tu m'expliquer en détail comment fonctionne {} et pourquoi c'est important ?",
]
CODE = [
    "def parse_{0}(text):\n    items = text.split(',')\n    return [x.strip() for x in items]\n",
    "function load{0}() {{\n  const data = fetch('/api/{0}');\n  return data.json();\n}}\n",
]
REFUSAL = "I'm sorry, but I can't help with that request."


@dataclass
class Window:
    """What one window of production holds."""

    prompts: list[str]
    answers: list[str]
    guard: list[str | None] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)


def english_window(rng: random.Random, n: int = 80) -> Window:
    prompts = [rng.choice(ENGLISH).format(rng.choice(TOPICS)) for _ in range(n)]
    answers = [f"{rng.choice(TOPICS)}." * rng.randint(1, 3) for _ in range(n)]
    guard = ["allow"] * n
    scores = [rng.choice([0.8, 0.9, 1.0]) for _ in range(n)]
    return Window(prompts, answers, guard, scores)


def shifted_window(rng: random.Random, n: int = 80) -> Window:
    """French and code instead of short English; long answers; refusals; guard hits; bad scores."""
    prompts = [
        rng.choice(FRENCH).format(rng.choice(TOPICS))
        if i % 2
        else rng.choice(CODE).format(rng.choice(["rows", "users", "items"]))
        for i in range(n)
    ]
    answers = [
        REFUSAL if i % 3 == 0 else "Voici une réponse détaillée. " * rng.randint(8, 20)
        for i in range(n)
    ]
    guard: list[str | None] = ["block" if i % 4 == 0 else "allow" for i in range(n)]
    scores = [rng.choice([0.0, 0.2, 0.4]) for _ in range(n)]
    return Window(prompts, answers, guard, scores)


def write_window(
    services: Services,
    project_id: int,
    window: Window,
    *,
    hours_ago: int,
    deployment: str = "chat",
    now: datetime = NOW,
) -> None:
    """Spans (and feedback) spread over the hour that began ``hours_ago`` before ``now``."""
    spans, feedback = [], []
    count = len(window.prompts)
    for index, (prompt, answer) in enumerate(zip(window.prompts, window.answers, strict=True)):
        # ``llm_span`` places spans relative to ``NOW``.
        ago = timedelta(hours=hours_ago) - timedelta(seconds=index * 3000 / count) - (now - NOW)
        trace = trace_id()
        spans.append(
            llm_span(
                project_id,
                trace=trace,
                ago=ago,
                deployment=deployment,
                input=json.dumps([{"role": "user", "content": prompt}]),
                output=answer,
                guard=window.guard[index] if window.guard else None,
            )
        )
        if index < len(window.scores):
            feedback.append(
                FeedbackRow(
                    project_id=project_id,
                    trace_id=trace,
                    deployment=deployment,
                    score=window.scores[index],
                    actor="test",
                    created_at=NOW - ago,
                )
            )
    services.recorder.writer.write(spans)
    with services.store.write() as session:
        session.add_all(feedback)


def check(**overrides: object) -> DriftCheck:
    """The last hour before ``NOW`` against the hour before it, cheap metrics only."""
    values: dict[str, object] = {"deployment": "chat", "end": NOW, "metrics": CHEAP}
    values.update(overrides)
    return DriftCheck.model_validate(values)


def by_name(report: DriftReport) -> dict[str, DriftMetric]:
    return {metric.name: metric for metric in report.metrics}


@pytest.fixture
def project_id(modelcycle_services: Services) -> int:
    return admin_of(modelcycle_services).principal.project_id


def test_a_shift_in_language_length_refusals_guard_and_feedback_is_flagged_on_each(
    modelcycle_services: Services, project_id: int
) -> None:
    rng = random.Random(7)
    write_window(modelcycle_services, project_id, english_window(rng), hours_ago=2)
    write_window(modelcycle_services, project_id, shifted_window(rng), hours_ago=1)

    report = modelcycle_services.drift.check(admin_of(modelcycle_services).principal, check())

    assert report.drifted
    assert report.drifted_metrics == CHEAP
    metrics = {m.name: m for m in report.metrics}
    language = metrics["language"]
    assert language.current_n == language.reference_n == 80
    assert language.evidence["reference_share"] == {"code": 0.0, "en": 1.0, "fr": 0.0}
    assert language.evidence["current_share"] == {"code": 0.5, "en": 0.0, "fr": 0.5}
    assert language.p_value is not None
    assert language.p_value < 1e-6
    refusals = metrics["refusal_rate"]
    assert refusals.evidence["reference_rate"] == 0.0
    assert refusals.evidence["current_rate"] == pytest.approx(27 / 80, abs=1e-3)
    assert refusals.evidence["current_examples"][0] == REFUSAL
    assert metrics["guard_rate"].evidence["current_hits"] == 20
    assert metrics["feedback_score"].evidence["current_mean"] < 0.5
    lengths = metrics["input_length"].evidence
    assert lengths["current_median"] > 2 * lengths["reference_median"]
    assert len(lengths["histogram"]["edges"]) >= 3
    assert report.reference["kind"] == "window"
    assert report.current_end == NOW


def test_two_samples_of_one_distribution_do_not_drift(
    modelcycle_services: Services, project_id: int
) -> None:
    rng = random.Random(11)
    write_window(modelcycle_services, project_id, english_window(rng, 120), hours_ago=2)
    write_window(modelcycle_services, project_id, english_window(rng, 120), hours_ago=1)

    report = modelcycle_services.drift.check(admin_of(modelcycle_services).principal, check())

    assert not report.drifted
    statuses = {m.name: m.status for m in report.metrics}
    assert statuses == dict.fromkeys(CHEAP, "ok")


def test_too_few_samples_is_insufficient_data_not_drift(
    modelcycle_services: Services, project_id: int
) -> None:
    rng = random.Random(3)
    write_window(modelcycle_services, project_id, english_window(rng, 10), hours_ago=2)
    write_window(modelcycle_services, project_id, shifted_window(rng, 10), hours_ago=1)

    report = modelcycle_services.drift.check(admin_of(modelcycle_services).principal, check())

    assert not report.drifted
    language = by_name(report)["language"]
    assert language.status == "insufficient_data"
    assert "need 30 on each side" in language.message


def test_thresholds_can_be_raised_per_metric(
    modelcycle_services: Services, project_id: int
) -> None:
    rng = random.Random(7)
    write_window(modelcycle_services, project_id, english_window(rng), hours_ago=2)
    write_window(modelcycle_services, project_id, shifted_window(rng), hours_ago=1)

    report = modelcycle_services.drift.check(
        admin_of(modelcycle_services).principal,
        check(metrics=["refusal_rate", "language"], thresholds={"refusal_rate": 0.5}),
    )

    assert report.drifted_metrics == ["language"]
    refusal = by_name(report)["refusal_rate"]
    assert refusal.threshold == 0.5


def test_other_deployments_and_shadow_calls_are_left_out(
    modelcycle_services: Services, project_id: int
) -> None:
    rng = random.Random(5)
    write_window(modelcycle_services, project_id, english_window(rng), hours_ago=2)
    write_window(modelcycle_services, project_id, english_window(rng), hours_ago=1)
    write_window(
        modelcycle_services, project_id, shifted_window(rng), hours_ago=1, deployment="other"
    )

    chat = modelcycle_services.drift.check(admin_of(modelcycle_services).principal, check())
    everything = modelcycle_services.drift.check(
        admin_of(modelcycle_services).principal, check(deployment=None, metrics=["language"])
    )

    assert not chat.drifted
    assert everything.drifted_metrics == ["language"]


def test_reference_texts_are_compared_with_a_production_window(
    modelcycle_services: Services, project_id: int
) -> None:
    rng = random.Random(9)
    write_window(modelcycle_services, project_id, shifted_window(rng), hours_ago=1)
    english = english_window(rng, 60)
    reference = {"kind": "texts", "inputs": english.prompts, "outputs": english.answers}

    report = modelcycle_services.drift.check(
        admin_of(modelcycle_services).principal, check(reference=reference)
    )

    metrics = by_name(report)
    assert report.reference == {"kind": "texts", "inputs": 60, "outputs": 60}
    assert {"language", "input_length", "output_length", "refusal_rate"} <= set(
        report.drifted_metrics
    )
    assert metrics["guard_rate"].status == "unavailable"
    assert metrics["feedback_score"].status == "unavailable"


@dataclass
class DriftEvents:
    seen: list[events.DriftDetected] = field(default_factory=list)

    @hookimpl
    def modelcycle_drift_detected(self, event: events.DriftDetected) -> None:
        self.seen.append(event)


def test_drift_emits_one_event_naming_the_drifted_metrics_and_is_audited(
    modelcycle_services: Services, project_id: int
) -> None:
    plugin = DriftEvents()
    modelcycle_services.bus.manager.register(plugin)
    rng = random.Random(7)
    write_window(modelcycle_services, project_id, english_window(rng), hours_ago=2)
    write_window(modelcycle_services, project_id, shifted_window(rng), hours_ago=1)
    admin = admin_of(modelcycle_services).principal

    quiet = modelcycle_services.drift.check(admin, check(end=NOW - timedelta(hours=1)))
    loud = modelcycle_services.drift.check(admin, check(metrics=["language", "guard_rate"]))

    assert not quiet.drifted
    assert [(e.report_id, e.metrics, e.deployment) for e in plugin.seen] == [
        (loud.id, ("language", "guard_rate"), "chat")
    ]
    assert plugin.seen[0].project == admin.project
    entries = modelcycle_services.audit.list(admin, action="drift.check").items
    assert [e.target for e in entries] == [f"drift-report:{quiet.id}", f"drift-report:{loud.id}"]


def test_reports_are_listed_newest_first_and_kept_to_their_project(
    modelcycle_services: Services, project_id: int
) -> None:
    admin = admin_of(modelcycle_services).principal
    first = modelcycle_services.drift.check(admin, check(metrics=["language"]))
    second = modelcycle_services.drift.check(admin, check(deployment="b", metrics=["language"]))
    other = make_key(modelcycle_services, Role.ADMIN, make_project(modelcycle_services)).principal
    viewer = make_key(modelcycle_services, Role.VIEWER).principal

    listed = modelcycle_services.drift.reports(viewer)
    only_b = modelcycle_services.drift.reports(viewer, deployment="b")

    assert [r.id for r in listed.items] == [second.id, first.id]
    assert [r.id for r in only_b.items] == [second.id]
    assert modelcycle_services.drift.reports(viewer, drifted=True).items == []
    assert modelcycle_services.drift.report(viewer, first.id).metrics == first.metrics
    assert modelcycle_services.drift.reports(other).items == []
    with pytest.raises(NotFound):
        modelcycle_services.drift.report(other, first.id)
    with pytest.raises(PermissionDenied):
        modelcycle_services.drift.check(viewer, check())


def test_a_scheduled_check_is_run_by_the_worker(
    modelcycle_services: Services, project_id: int
) -> None:
    # A scheduled check looks at the hour before the time it runs: put production there.
    rng, now = random.Random(7), utcnow()
    write_window(modelcycle_services, project_id, english_window(rng), hours_ago=2, now=now)
    write_window(modelcycle_services, project_id, shifted_window(rng), hours_ago=1, now=now)
    admin = admin_of(modelcycle_services).principal
    schedule = modelcycle_services.drift.schedule(
        admin,
        DriftScheduleCreate(
            name="hourly-chat",
            interval_s=3600,
            check=DriftCheck(deployment="chat", metrics=["language"]),
        ),
    )
    worker = build_worker(modelcycle_services)
    while worker.run_once():
        pass

    jobs = modelcycle_services.jobs.list(project_id=project_id, kind="drift.check").items
    assert schedule.name == "hourly-chat"
    assert [s.name for s in modelcycle_services.drift.schedules(admin)] == ["hourly-chat"]
    assert len(jobs) == 1
    assert jobs[0].state == JobState.SUCCEEDED
    assert jobs[0].result is not None
    report = modelcycle_services.drift.report(admin, jobs[0].result["report_id"])
    assert report.created_by == f"schedule:drift:{project_id}:hourly-chat"
    assert report.drifted_metrics == ["language"]
    assert jobs[0].result["drifted"] == ["language"]
    modelcycle_services.drift.unschedule(admin, "hourly-chat")
    assert modelcycle_services.drift.schedules(admin) == []
    with pytest.raises(NotFound):
        modelcycle_services.drift.unschedule(admin, "hourly-chat")
