"""A project with one model's whole story: lineage, deployments, guard, traffic, incidents."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from modelcycle.access import Principal
from modelcycle.deploy import DeploymentSpec
from modelcycle.guard import GuardPolicySpec, GuardRule
from modelcycle.guard.defaults import default_policy
from modelcycle.monitor import SpanRecord
from modelcycle.monitor.alert_rules import AlertRuleCreate
from modelcycle.monitor.drift_schemas import DriftCheck
from modelcycle.services import Services
from modelcycle.store.tables import AlertEventRow, GuardPolicyRow
from modelcycle.testing import KeyPair, register

MODEL = "support-bot"
SCRIPT = "<script>alert('pwned')</script>"
_ids = itertools.count(1)


@dataclass(frozen=True)
class Story:
    services: Services
    admin: Principal
    now: datetime


def put_policy(services: Services, admin: Principal, name: str, spec: GuardPolicySpec) -> None:
    """Store a guard policy row as the guard stage does (revision 1)."""
    with services.store.write() as session:
        session.add(
            GuardPolicyRow(
                project_id=admin.project_id,
                name=name,
                spec=spec.model_dump(mode="json"),
                revision=1,
                created_by="test",
                updated_by="test",
            )
        )


def span(admin: Principal, now: datetime, **fields: object) -> SpanRecord:
    n = next(_ids)
    start = now - timedelta(hours=1, seconds=n)
    values: dict[str, object] = {
        "project_id": admin.project_id,
        "trace_id": f"{n:032x}",
        "span_id": f"{n:016x}",
        "name": "chat.completions chat",
        "kind": "llm",
        "source": "gateway",
        "start_time": start,
        "end_time": start + timedelta(milliseconds=120),
        "duration_ms": 120.0,
        "status": "ok",
        "deployment": "support",
        "model": MODEL,
        "version": 2,
        "route": "canary",
        "input_tokens": 11,
        "output_tokens": 7,
        "guard": "allow",
    }
    values.update(fields)
    return SpanRecord(**values)  # type: ignore[arg-type]


def tell_story(services: Services, admin: Principal) -> Story:
    """support-bot@1 (base) <- @2 (production alias), deployed as a canary under a guard."""
    now = datetime.now(UTC)
    register(services, admin, MODEL, source="mock://base", metadata={"license": "Apache-2.0"})
    register(
        services,
        admin,
        MODEL,
        source="mock://tuned",
        params={"temperature": 0.1, "max_tokens": 256},
        parent={"model": MODEL, "version": 1},
        description="Tuned on support tickets.",
        metadata={
            "intended_use": "Answer customer questions about orders.",
            "limitations": "English only; no legal or medical advice.",
            "note": SCRIPT,
        },
    )
    services.aliases.set(admin, MODEL, "production", 2)
    put_policy(services, admin, "strict", default_policy())
    services.deployments.create(
        admin,
        DeploymentSpec.model_validate(
            {
                "name": "support",
                "routes": [
                    {"target": f"{MODEL}@1", "weight": 90},
                    {"target": f"{MODEL}@production", "weight": 10},
                ],
                "guard": "strict",
                "limits": {"rpm": 600},
            }
        ),
    )
    services.recorder.writer.write(
        [
            span(admin, now),
            span(admin, now, guard="redact"),
            span(admin, now, status="error", duration_ms=900.0),
            span(admin, now, version=None, route=None, guard="block", model=None),
            span(admin, now, version=1, route="primary"),
        ]
    )
    rule = services.alerts.create(
        admin,
        AlertRuleCreate(
            name="support-errors", metric="error_rate", op=">", threshold=0.2, deployment="support"
        ),
    )
    with services.store.write() as session:
        session.add(
            AlertEventRow(
                rule_id=rule.id,
                project_id=admin.project_id,
                state="firing",
                value=0.33,
                threshold=0.2,
                message="error_rate 0.33 > 0.2 on support",
                deliveries=[],
                at=now - timedelta(minutes=30),
            )
        )
    services.drift.run(
        admin.project_id, DriftCheck(deployment="support", metrics=["input_length"]), actor="ops"
    )
    return Story(services, admin, datetime.now(UTC))  # after every record above


@pytest.fixture
def story(modelcycle_services: Services, modelcycle_admin: KeyPair) -> Story:
    return tell_story(modelcycle_services, modelcycle_admin.principal)


def injection_rule(stage: str, action: str) -> GuardPolicySpec:
    rule = GuardRule(detector="injection", action=action)  # type: ignore[arg-type]
    return GuardPolicySpec(**{stage: [rule]})  # type: ignore[arg-type]
