"""Alerts: rules on rollup and drift metrics, their transitions, evaluation on demand."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from modelcycle.api.deps import CursorQuery, LimitQuery, PrincipalDep, ServicesDep
from modelcycle.api.pages import PageOut, page_out
from modelcycle.monitor.alert_rules import (
    AlertEvaluation,
    AlertEvent,
    AlertRule,
    AlertRuleCreate,
    AlertRuleUpdate,
    RuleState,
)
from modelcycle.types import MAX_INT32, NAME_PATTERN

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

RuleId = Annotated[int, Path(ge=1, le=MAX_INT32, description="Alert rule id.")]


@router.post("", response_model=AlertRule, status_code=status.HTTP_201_CREATED)
def create_alert(
    body: AlertRuleCreate, principal: PrincipalDep, services: ServicesDep
) -> AlertRule:
    """Create a rule; webhook URLs, headers and secrets are stored encrypted."""
    return services.alerts.create(principal, body)


@router.get("", response_model=PageOut[AlertRule])
def list_alerts(
    principal: PrincipalDep,
    services: ServicesDep,
    cursor: CursorQuery = None,
    limit: LimitQuery = 100,
    name: Annotated[str | None, Query(pattern=NAME_PATTERN, max_length=64)] = None,
    state: Annotated[RuleState | None, Query(description="Only rules in this state.")] = None,
) -> PageOut[AlertRule]:
    """Rules of the caller's project, oldest first."""
    return page_out(
        services.alerts.list(principal, name=name, state=state, cursor=cursor, limit=limit)
    )


@router.post("/evaluate", response_model=AlertEvaluation)
def evaluate_alerts(principal: PrincipalDep, services: ServicesDep) -> AlertEvaluation:
    """Evaluate the project's enabled rules now; returns the transitions and deliveries."""
    return services.alerts.evaluate(principal)


@router.get("/{rule_id}", response_model=AlertRule)
def get_alert(rule_id: RuleId, principal: PrincipalDep, services: ServicesDep) -> AlertRule:
    """One rule and its state."""
    return services.alerts.get(principal, rule_id)


@router.patch("/{rule_id}", response_model=AlertRule)
def update_alert(
    rule_id: RuleId, body: AlertRuleUpdate, principal: PrincipalDep, services: ServicesDep
) -> AlertRule:
    """Change the fields given (threshold, window, channels, enabled...)."""
    return services.alerts.update(principal, rule_id, body)


@router.delete("/{rule_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_alert(rule_id: RuleId, principal: PrincipalDep, services: ServicesDep) -> Response:
    """Delete a rule and its events."""
    services.alerts.delete(principal, rule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{rule_id}/events", response_model=PageOut[AlertEvent])
def alert_events(
    rule_id: RuleId,
    principal: PrincipalDep,
    services: ServicesDep,
    cursor: CursorQuery = None,
    limit: LimitQuery = 100,
) -> PageOut[AlertEvent]:
    """The rule's transitions (firing, resolved) and their deliveries, newest first."""
    return page_out(services.alerts.events(principal, rule_id, cursor=cursor, limit=limit))
