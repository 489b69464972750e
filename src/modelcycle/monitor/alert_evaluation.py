"""Evaluating alert rules: measure, change state under a lock, then notify.

Each rule is measured in a read transaction, then its state is settled in a
short write transaction that locks the rule row (``FOR UPDATE`` on
PostgreSQL; SQLite's writers already hold the database lock with ``BEGIN
IMMEDIATE``). Whoever settles second sees the state the first one left, so
two workers evaluating at once never both fire. Only transitions are
recorded and notified:

* ``ok`` -> ``firing`` when the condition holds;
* ``firing`` -> ``resolved`` (state ``ok``) when the condition is false now
  *and* was false at the previous evaluation (hysteresis: one full evaluation
  back within the threshold, so a value wobbling around it does not flap);
* no data (too few requests, no drift report) keeps the state and is recorded
  as ``last_value = None``; an evaluation older than the rule's last one
  (a slow worker) changes nothing.

The transition and its event row commit first; then ``AlertFired`` is emitted,
the log line written and the webhooks called, outside any transaction, so a
slow webhook never holds a lock. Their outcomes are written to the event row
afterwards.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from modelcycle import events
from modelcycle.access.secrets import SecretCipher
from modelcycle.errors import ModelcycleError
from modelcycle.monitor.alert_metrics import Reading, Scope, measure
from modelcycle.monitor.alert_rules import AlertEvent, Delivery, compare, format_window
from modelcycle.monitor.webhooks import DeliveryResult, WebhookSender, unseal
from modelcycle.plugins import EventBus
from modelcycle.store import Store
from modelcycle.store.tables import AlertEventRow, AlertRuleRow, ProjectRow

log = logging.getLogger("modelcycle.monitor.alerts")

RESOLVE_GAP_S = 1.0
"""The previous (false) evaluation must be at least this much older to count as a full
one: two workers settling the same instant do not make a hysteresis of zero."""
MAX_PARALLEL_DELIVERIES = 8


@dataclass(frozen=True, slots=True)
class RuleSnapshot:
    """A rule as read before measuring; settling ignores it if the rule changed since."""

    id: int
    project_id: int
    name: str
    metric: str
    op: str
    threshold: float
    window_s: int
    deployment: str | None
    version: int | None
    min_requests: int
    severity: str
    channels: list[dict[str, Any]]
    updated_at: datetime

    @classmethod
    def of(cls, row: AlertRuleRow) -> RuleSnapshot:
        """The snapshot of a row."""
        return cls(
            id=row.id,
            project_id=row.project_id,
            name=row.name,
            metric=row.metric,
            op=row.op,
            threshold=row.threshold,
            window_s=row.window_s,
            deployment=row.deployment,
            version=row.version,
            min_requests=row.min_requests,
            severity=row.severity,
            channels=list(row.channels),
            updated_at=row.updated_at,
        )

    @property
    def scope(self) -> Scope:
        """What to measure."""
        return Scope(
            self.project_id,
            self.metric,
            self.deployment,
            self.version,
            self.window_s,
            self.min_requests,
        )


@dataclass(frozen=True, slots=True)
class Transition:
    """A committed state change waiting for its notifications."""

    event_id: int
    rule: RuleSnapshot
    state: str
    value: float
    message: str
    at: datetime
    project: str

    def payload(self) -> dict[str, Any]:
        """The webhook body."""
        rule = self.rule
        return {
            "id": self.event_id,
            "rule": rule.name,
            "rule_id": rule.id,
            "project": self.project,
            "state": self.state,
            "metric": rule.metric,
            "op": rule.op,
            "value": self.value,
            "threshold": rule.threshold,
            "severity": rule.severity,
            "deployment": rule.deployment,
            "version": rule.version,
            "window_s": rule.window_s,
            "at": self.at.isoformat(),
            "message": self.message,
            "url": f"/api/v1/alerts/{rule.id}",
            "events_url": f"/api/v1/alerts/{rule.id}/events",
        }


def message_for(rule: RuleSnapshot, state: str, value: float, reading: Reading) -> str:
    """One line saying what happened, for the log, the event and the webhook."""
    where = f" on deployment {rule.deployment}" if rule.deployment else ""
    if rule.version is not None:
        where += f" version {rule.version}"
    condition = f"{rule.op} {rule.threshold:g}" if state == "firing" else f"back within {rule.op}"
    if state == "resolved":
        condition += f" {rule.threshold:g}"
    return (
        f"{rule.name}: {rule.metric} is {value:.4g}, {condition}{where} over the last "
        f"{format_window(rule.window_s)} ({reading.basis})"
    )


class Evaluator:
    """Evaluates enabled rules and delivers their transitions."""

    def __init__(self, store: Store, bus: EventBus, cipher: SecretCipher, sender: WebhookSender):
        self._store = store
        self._bus = bus
        self._cipher = cipher
        self.sender = sender

    def run(self, project_id: int | None, now: datetime) -> tuple[int, list[AlertEvent]]:
        """Evaluate the enabled rules (of one project, or all); returns (rules, transitions)."""
        rules = self._enabled(project_id)
        projects = self._project_names({rule.project_id for rule in rules})
        transitions: list[Transition] = []
        for rule in rules:
            try:
                with self._store.read() as session:
                    reading = measure(session, rule.scope, now)
                found = self._settle(rule, reading, now, projects.get(rule.project_id, ""))
            except (SQLAlchemyError, ModelcycleError):
                log.exception("alert rule %s (id %d) could not be evaluated", rule.name, rule.id)
                continue
            if found is not None:
                transitions.append(found)
        for transition in transitions:
            self._announce(transition)
        outcomes = self._deliver(transitions)
        return len(rules), self._record(transitions, outcomes)

    # -- steps -------------------------------------------------------------------------

    def _enabled(self, project_id: int | None) -> list[RuleSnapshot]:
        query = select(AlertRuleRow).where(AlertRuleRow.enabled.is_(True))
        if project_id is not None:
            query = query.where(AlertRuleRow.project_id == project_id)
        with self._store.read() as session:
            rows = session.execute(query.order_by(AlertRuleRow.id)).scalars()
            return [RuleSnapshot.of(row) for row in rows]

    def _project_names(self, ids: set[int]) -> dict[int, str]:
        if not ids:
            return {}
        with self._store.read() as session:
            found = session.execute(
                select(ProjectRow.id, ProjectRow.name).where(ProjectRow.id.in_(ids))
            )
            return {row[0]: row[1] for row in found}

    def _settle(
        self, rule: RuleSnapshot, reading: Reading, now: datetime, project: str
    ) -> Transition | None:
        with self._store.write() as session:
            row = self._locked(session, rule.id)
            if row is None or not row.enabled or row.updated_at != rule.updated_at:
                return None  # deleted, disabled or edited since it was read
            if row.last_evaluated_at is not None and now < row.last_evaluated_at:
                return None  # a later evaluation has decided already
            previous, previous_at = row.last_value, row.last_evaluated_at
            row.last_value, row.last_evaluated_at = reading.value, now
            value = reading.value
            if value is None:
                return None
            holds = compare(value, rule.op, rule.threshold)
            if row.state == "ok" and holds:
                state = "firing"
            elif (
                row.state == "firing"
                and not holds
                and previous is not None
                and previous_at is not None
                and not compare(previous, rule.op, rule.threshold)
                and (now - previous_at).total_seconds() >= RESOLVE_GAP_S
            ):
                state = "resolved"
            else:
                return None
            row.state = "firing" if state == "firing" else "ok"
            row.state_since = now
            message = message_for(rule, state, value, reading)
            event = AlertEventRow(
                rule_id=rule.id,
                project_id=rule.project_id,
                state=state,
                value=value,
                threshold=rule.threshold,
                message=message,
                deliveries=[_pending(channel) for channel in rule.channels],
                at=now,
            )
            session.add(event)
            session.flush()
            return Transition(event.id, rule, state, value, message, now, project)

    def _locked(self, session: Session, rule_id: int) -> AlertRuleRow | None:
        query = select(AlertRuleRow).where(AlertRuleRow.id == rule_id)
        if not self._store.is_sqlite:
            query = query.with_for_update()
        return session.execute(query).scalar_one_or_none()

    def _announce(self, transition: Transition) -> None:
        level = logging.WARNING if transition.state == "firing" else logging.INFO
        log.log(level, "alert %s: %s", transition.state, transition.message)
        rule = transition.rule
        self._bus.emit(
            events.AlertFired(
                project=transition.project,
                rule=rule.name,
                metric=rule.metric,
                state=transition.state,
                severity=rule.severity,
                value=transition.value,
                threshold=rule.threshold,
                deployment=rule.deployment,
                at=transition.at,
            )
        )

    def _deliver(self, transitions: list[Transition]) -> dict[tuple[int, int], DeliveryResult]:
        jobs = [
            (transition, index, channel)
            for transition in transitions
            for index, channel in enumerate(transition.rule.channels)
            if channel.get("type") == "webhook"
        ]
        if not jobs:
            return {}
        with ThreadPoolExecutor(min(MAX_PARALLEL_DELIVERIES, len(jobs))) as pool:
            futures = {
                (transition.event_id, index): pool.submit(self._send, transition, index, channel)
                for transition, index, channel in jobs
            }
            return {key: future.result() for key, future in futures.items()}

    def _send(self, transition: Transition, index: int, channel: dict[str, Any]) -> DeliveryResult:
        try:
            target = unseal(self._cipher, channel, transition.rule.name)
        except ModelcycleError as exc:
            return DeliveryResult(ok=False, attempts=0, error=exc.message)
        body = orjson.dumps(transition.payload())
        try:
            result = self.sender.send(target, body, delivery_id=f"{transition.event_id}.{index}")
        except Exception as exc:  # the state has changed already: record, never lose the rest
            log.exception(
                "alert %s: webhook %s failed", transition.rule.name, channel.get("target")
            )
            return DeliveryResult(ok=False, attempts=1, error=f"{type(exc).__name__}")
        if not result.ok:
            log.warning(
                "alert %s: webhook %s failed after %d tries: %s",
                transition.rule.name,
                channel.get("target"),
                result.attempts,
                result.error,
            )
        return result

    def _record(
        self, transitions: list[Transition], outcomes: dict[tuple[int, int], DeliveryResult]
    ) -> list[AlertEvent]:
        if not transitions:
            return []
        out: list[AlertEvent] = []
        with self._store.write() as session:
            for transition in transitions:
                row = session.get(AlertEventRow, transition.event_id)
                if row is None:
                    continue  # the rule was deleted meanwhile (events cascade)
                deliveries = list(row.deliveries)
                for index, entry in enumerate(deliveries):
                    result = outcomes.get((transition.event_id, index))
                    if result is not None:
                        deliveries[index] = {
                            **entry,
                            "ok": result.ok,
                            "attempts": result.attempts,
                            "status_code": result.status_code,
                            "error": result.error,
                        }
                row.deliveries = deliveries
                out.append(event_out(row, transition.rule.name))
        return out


def _pending(channel: dict[str, Any]) -> dict[str, Any]:
    if channel.get("type") == "webhook":
        return {"channel": "webhook", "target": channel.get("target"), "ok": None, "attempts": 0}
    # The log line is written right after the commit; nothing can make it fail.
    return {"channel": "log", "ok": True, "attempts": 1}


def event_out(row: AlertEventRow, rule: str) -> AlertEvent:
    """The public shape of an event row."""
    return AlertEvent(
        id=row.id,
        rule_id=row.rule_id,
        rule=rule,
        state="firing" if row.state == "firing" else "resolved",
        value=row.value,
        threshold=row.threshold,
        message=row.message,
        deliveries=[Delivery.model_validate(entry) for entry in row.deliveries],
        at=row.at,
    )
