"""Feedback on traces and trace retention, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from modelcycle.errors import NotFound, PermissionDenied
from modelcycle.monitor.retention import purge_expired
from modelcycle.monitor.trace_schemas import FeedbackCreate, MonitorPolicyUpdate, RollupQuery
from modelcycle.services import Services
from modelcycle.store.tables import FeedbackRow, SpanRollupRow, SpanRow
from modelcycle.testing import KeyPair, make_key, make_project
from modelcycle.types import Role
from monitor.trace_factory import NOW, app_trace, audit_actions, count, llm_span, trace_id


def rollup_feedback(services: Services, who: KeyPair) -> dict[int | None, tuple[int, Any]]:
    """``{version: (feedback_count, feedback_score)}`` over the last day."""
    result = services.traces.rollups(who.principal, RollupQuery(group_by="version"), now=NOW)
    return {s.version: (s.summary.feedback_count, s.summary.feedback_score) for s in result.series}


def test_feedback_is_linked_to_the_version_that_answered_and_counted_in_its_rollup(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    pid = modelcycle_admin.principal.project_id
    primary = llm_span(pid)
    canary = llm_span(pid, version=2, route="canary")
    modelcycle_services.recorder.writer.write([primary, canary])
    app = make_key(modelcycle_services, Role.APP)  # applications relay their users' feedback

    down = modelcycle_services.feedback.add(
        app.principal,
        canary.trace_id,
        FeedbackCreate(
            thumbs=-1,
            label="wrong-answer",
            comment="It is Lyon.",
            correction="Paris.",
            user_id="end-user-1",
            attributes={"screen": "chat"},
        ),
    )
    modelcycle_services.feedback.add(
        modelcycle_admin.principal, canary.trace_id, FeedbackCreate(score=0.5)
    )
    modelcycle_services.feedback.add(
        modelcycle_admin.principal, primary.trace_id, FeedbackCreate(comment="no score")
    )

    assert (down.deployment, down.model, down.version) == ("chat", "chat-model", 2)
    assert (down.score, down.thumbs, down.span_id) == (0.0, -1, canary.span_id)
    assert (down.correction, down.user_id, down.attributes) == (
        "Paris.",
        "end-user-1",
        {"screen": "chat"},
    )
    assert down.actor == app.principal.actor
    # Only scored feedback counts in the mean; a comment alone is kept but not averaged.
    assert rollup_feedback(modelcycle_services, modelcycle_admin) == {
        1: (0, None),
        2: (2, 0.25),
    }
    listed = modelcycle_services.feedback.list(modelcycle_admin.principal, canary.trace_id)
    assert [(f.score, f.label) for f in listed] == [(0.0, "wrong-answer"), (0.5, None)]
    assert audit_actions(modelcycle_services).count("feedback.add") == 3


def test_feedback_on_an_application_trace_judges_its_last_model_call(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    pid = modelcycle_admin.principal.project_id
    spans = app_trace(pid)
    root, _retriever, first, last = spans
    shadow = llm_span(
        pid,
        trace=root.trace_id,
        parent_span_id=root.span_id,
        ago=timedelta(minutes=4),  # ends after the others, but its answer was never shown
        version=9,
        route="shadow",
    )
    modelcycle_services.recorder.writer.write([*spans, shadow])

    chosen = modelcycle_services.feedback.add(
        modelcycle_admin.principal, root.trace_id, FeedbackCreate(score=1.0)
    )
    named = modelcycle_services.feedback.add(
        modelcycle_admin.principal, root.trace_id, FeedbackCreate(score=0.0, span_id=first.span_id)
    )

    assert (chosen.span_id, chosen.version) == (last.span_id, last.version)
    assert (named.span_id, named.version) == (first.span_id, first.version)
    assert rollup_feedback(modelcycle_services, modelcycle_admin)[2] == (1, 1.0)
    assert rollup_feedback(modelcycle_services, modelcycle_admin)[1] == (1, 0.0)


def test_feedback_for_an_unknown_or_foreign_trace_is_404_and_stores_nothing(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    pid = modelcycle_admin.principal.project_id
    mine = llm_span(pid)
    modelcycle_services.recorder.writer.write([mine])
    outsider = make_key(modelcycle_services, Role.ADMIN, make_project(modelcycle_services))
    audited = len(audit_actions(modelcycle_services))

    with pytest.raises(NotFound, match="not found"):
        modelcycle_services.feedback.add(
            outsider.principal, mine.trace_id, FeedbackCreate(thumbs=1)
        )
    with pytest.raises(NotFound, match="not found"):
        modelcycle_services.feedback.add(
            modelcycle_admin.principal, trace_id(), FeedbackCreate(thumbs=1)
        )
    with pytest.raises(NotFound, match="not part of this trace"):
        modelcycle_services.feedback.add(
            modelcycle_admin.principal,
            mine.trace_id,
            FeedbackCreate(thumbs=1, span_id="0123456789abcdef"),
        )
    with pytest.raises(NotFound):
        modelcycle_services.feedback.list(outsider.principal, mine.trace_id)

    assert count(modelcycle_services, FeedbackRow) == 0
    assert len(audit_actions(modelcycle_services)) == audited
    assert rollup_feedback(modelcycle_services, modelcycle_admin) == {1: (0, None)}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"score": 1.0, "thumbs": 1}, "either score or thumbs"),
        ({}, "needs a score, thumbs, label, comment or correction"),
        ({"score": 1.5}, "less than or equal to 1"),
        ({"thumbs": 2}, "thumbs"),
        ({"comment": "bad\x00byte"}, "NUL"),
        ({"label": "x", "extra": 1}, "Extra inputs"),
        ({"label": "x", "attributes": {"n": float("nan")}}, "NaN"),
    ],
)
def test_bad_feedback_is_refused_before_anything_is_stored(
    body: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        FeedbackCreate.model_validate(body)


def test_retention_purges_old_traces_and_their_feedback_but_keeps_rollups(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    admin = modelcycle_admin.principal
    pid = admin.project_id
    old = llm_span(pid, ago=timedelta(days=10))
    recent = llm_span(pid, ago=timedelta(days=1))
    # A trace across the cut-off keeps its feedback while a span of it remains.
    straddling = llm_span(pid, ago=timedelta(days=7, minutes=1))
    straddling_late = llm_span(pid, trace=straddling.trace_id, ago=timedelta(days=6))
    other_project = make_key(modelcycle_services, Role.ADMIN, make_project(modelcycle_services))
    foreign_old = llm_span(other_project.principal.project_id, ago=timedelta(days=10))
    modelcycle_services.recorder.writer.write(
        [old, recent, straddling, straddling_late, foreign_old]
    )
    for span in (old, recent, straddling):
        modelcycle_services.feedback.add(admin, span.trace_id, FeedbackCreate(thumbs=1))
    rollups_before = count(modelcycle_services, SpanRollupRow)

    assert modelcycle_services.monitor_policies.get(admin).retention_days is None
    assert purge_expired(modelcycle_services.store, now=NOW) == 0  # no policy: kept forever
    policy = modelcycle_services.monitor_policies.set(admin, MonitorPolicyUpdate(retention_days=7))
    assert (policy.retention_days, policy.updated_by) == (7, admin.actor)

    assert purge_expired(modelcycle_services.store, now=NOW) == 2

    with modelcycle_services.store.read() as session:
        left = set(session.execute(select(SpanRow.span_id)).scalars())
        judged = set(session.execute(select(FeedbackRow.trace_id)).scalars())
    assert left == {recent.span_id, straddling_late.span_id, foreign_old.span_id}
    assert judged == {recent.trace_id, straddling.trace_id}
    assert count(modelcycle_services, SpanRollupRow) == rollups_before
    actions = audit_actions(modelcycle_services)
    assert actions[-2:] == ["monitor.policy.set", "monitor.purge"]
    assert purge_expired(modelcycle_services.store, now=NOW) == 0
    modelcycle_services.monitor_policies.set(admin, MonitorPolicyUpdate(retention_days=None))
    assert purge_expired(modelcycle_services.store, now=NOW + timedelta(days=365)) == 0


def test_only_admins_set_the_policy_and_viewers_read_it(modelcycle_services: Services) -> None:
    viewer = make_key(modelcycle_services, Role.VIEWER)
    maintainer = make_key(modelcycle_services, Role.MAINTAINER)
    with pytest.raises(PermissionDenied):
        modelcycle_services.monitor_policies.set(
            maintainer.principal, MonitorPolicyUpdate(retention_days=3)
        )
    assert modelcycle_services.monitor_policies.get(viewer.principal).retention_days is None
    with pytest.raises(ValidationError):
        MonitorPolicyUpdate(retention_days=0)
