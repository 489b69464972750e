"""Alerts: rules on rollup and drift metrics that fire, resolve and notify.

Creating, changing and deleting rules is audited in the same transaction;
``evaluate_all`` (the worker, on a schedule) and ``evaluate`` (a maintainer,
``POST /api/v1/alerts/evaluate``) run the rules through
``modelcycle.monitor.alert_evaluation``. See docs/alerts.md.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from modelcycle.access import Principal, require
from modelcycle.access.secrets import SecretCipher
from modelcycle.errors import Conflict, InvalidInput, NotFound
from modelcycle.monitor.alert_evaluation import Evaluator, event_out
from modelcycle.monitor.alert_rules import (
    DRIFT_PREFIX,
    AlertEvaluation,
    AlertEvent,
    AlertRule,
    AlertRuleCreate,
    AlertRuleUpdate,
    RuleState,
    WebhookChannel,
)
from modelcycle.monitor.webhooks import WebhookSender, channel_info, private_address, seal_channel
from modelcycle.plugins import EventBus
from modelcycle.settings import Settings
from modelcycle.store import Page, Store, audit, encode_cursor
from modelcycle.store.audit import AuditRecord
from modelcycle.store.pagination import check_limit, decode_cursor
from modelcycle.store.tables import AlertEventRow, AlertRuleRow, DeploymentRow, utcnow
from modelcycle.types import Role

_MEASURE_FIELDS = frozenset({"metric", "deployment", "version", "window_s", "min_requests"})
"""Fields that change what a rule measures: its last value no longer applies."""


@dataclass(frozen=True, slots=True)
class AlertOptions:
    """What the alert service takes from ``Settings``."""

    webhook_timeout_s: float = 5.0
    webhook_allow_private: bool = True
    webhook_tries: int = 3

    @classmethod
    def from_settings(cls, settings: Settings) -> AlertOptions:
        """The options of a server process."""
        return cls(
            webhook_timeout_s=settings.webhook_timeout_s,
            webhook_allow_private=settings.webhook_allow_private,
        )


def rule_out(row: AlertRuleRow) -> AlertRule:
    """The public shape of a rule row (webhook URLs as origins, no header values or secrets)."""
    return AlertRule(
        id=row.id,
        name=row.name,
        metric=row.metric,
        op=row.op,
        threshold=row.threshold,
        window_s=row.window_s,
        deployment=row.deployment,
        version=row.version,
        min_requests=row.min_requests,
        severity=row.severity,
        channels=[channel_info(channel) for channel in row.channels],
        enabled=row.enabled,
        state="firing" if row.state == "firing" else "ok",
        last_value=row.last_value,
        last_evaluated_at=row.last_evaluated_at,
        state_since=row.state_since,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _audited(row: AlertRuleRow) -> dict[str, Any]:
    """A rule as the audit log records it (channels as the API shows them)."""
    return {
        "name": row.name,
        "metric": row.metric,
        "op": row.op,
        "threshold": row.threshold,
        "window_s": row.window_s,
        "deployment": row.deployment,
        "version": row.version,
        "min_requests": row.min_requests,
        "severity": row.severity,
        "channels": [channel_info(c).model_dump(mode="json") for c in row.channels],
        "enabled": row.enabled,
    }


class Alerts:
    """Alert rules of one project at a time, and their evaluation."""

    def __init__(
        self,
        store: Store,
        bus: EventBus,
        cipher: SecretCipher,
        options: AlertOptions | None = None,
    ):
        self._store = store
        self._cipher = cipher
        self.options = options or AlertOptions()
        self.evaluator = Evaluator(
            store,
            bus,
            cipher,
            WebhookSender(
                timeout_s=self.options.webhook_timeout_s,
                allow_private=self.options.webhook_allow_private,
                tries=self.options.webhook_tries,
            ),
        )

    # -- evaluation ----------------------------------------------------------------------

    def evaluate_all(self, now: datetime | None = None) -> int:
        """Evaluate every enabled rule of every project; returns the number of transitions."""
        _, transitions = self.evaluator.run(None, now or utcnow())
        return len(transitions)

    def evaluate(self, principal: Principal, now: datetime | None = None) -> AlertEvaluation:
        """Evaluate the caller's project's rules now (audited); returns the transitions."""
        require(principal, Role.MAINTAINER)
        evaluated, transitions = self.evaluator.run(principal.project_id, now or utcnow())
        with self._store.write() as session:
            audit.append(
                session,
                AuditRecord(
                    actor=principal.actor,
                    action="alert.evaluate",
                    target="alerts",
                    project=principal.project,
                    after={
                        "evaluated": evaluated,
                        "transitions": [{"rule": t.rule, "state": t.state} for t in transitions],
                    },
                ),
            )
        return AlertEvaluation(evaluated=evaluated, transitions=transitions)

    # -- reads ---------------------------------------------------------------------------

    def get(self, principal: Principal, rule_id: int) -> AlertRule:
        """One rule of the caller's project."""
        require(principal, Role.VIEWER)
        with self._store.read() as session:
            return rule_out(self._find(session, principal.project_id, rule_id))

    def list(
        self,
        principal: Principal,
        *,
        name: str | None = None,
        state: RuleState | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page[AlertRule]:
        """Rules of the caller's project, oldest first; optionally one name or state."""
        require(principal, Role.VIEWER)
        after, limit = decode_cursor(cursor), check_limit(limit)
        query = select(AlertRuleRow).where(
            AlertRuleRow.project_id == principal.project_id, AlertRuleRow.id > after
        )
        if name is not None:
            query = query.where(AlertRuleRow.name == name)
        if state is not None:
            query = query.where(AlertRuleRow.state == state)
        with self._store.read() as session:
            rows = session.execute(query.order_by(AlertRuleRow.id).limit(limit + 1)).scalars().all()
        items = [rule_out(row) for row in rows[:limit]]
        return Page(items, encode_cursor(rows[limit - 1].id) if len(rows) > limit else None)

    def events(
        self, principal: Principal, rule_id: int, *, cursor: str | None = None, limit: int = 100
    ) -> Page[AlertEvent]:
        """A rule's transitions, newest first."""
        require(principal, Role.VIEWER)
        before, limit = decode_cursor(cursor), check_limit(limit)
        with self._store.read() as session:
            rule = self._find(session, principal.project_id, rule_id)
            query = select(AlertEventRow).where(AlertEventRow.rule_id == rule.id)
            if before:
                query = query.where(AlertEventRow.id < before)
            rows = (
                session.execute(query.order_by(AlertEventRow.id.desc()).limit(limit + 1))
                .scalars()
                .all()
            )
            items = [event_out(row, rule.name) for row in rows[:limit]]
        return Page(items, encode_cursor(rows[limit - 1].id) if len(rows) > limit else None)

    # -- mutations -----------------------------------------------------------------------

    def create(self, principal: Principal, body: AlertRuleCreate) -> AlertRule:
        """Create a rule (state ``ok``); the first evaluation decides whether it fires."""
        require(principal, Role.MAINTAINER)
        self._check_channels(body.channels, "channels")
        _check_drift_version(body.metric, body.version)
        channels = [seal_channel(self._cipher, channel) for channel in body.channels]
        with self._store.write() as session:
            self._check_deployment(session, principal.project_id, body.deployment)
            self._check_free(session, principal.project_id, body.name)
            now = utcnow()
            row = AlertRuleRow(
                project_id=principal.project_id,
                name=body.name,
                metric=body.metric,
                deployment=body.deployment,
                version=body.version,
                op=body.op,
                threshold=body.threshold,
                window_s=body.window_s,
                min_requests=body.min_requests,
                severity=body.severity,
                channels=channels,
                enabled=body.enabled,
                state="ok",
                state_since=now,
                created_by=principal.actor,
                created_at=now,
                updated_at=now,
            )
            try:
                with session.begin_nested():
                    session.add(row)
                    session.flush()
            except IntegrityError as exc:  # created concurrently (PostgreSQL)
                raise Conflict(f"alert rule '{body.name}' exists already") from exc
            self._audit(session, principal, "alert.create", row, before=None)
            return rule_out(row)

    def update(self, principal: Principal, rule_id: int, body: AlertRuleUpdate) -> AlertRule:
        """Change the fields given; disabling forgets the state (``ok`` when re-enabled)."""
        require(principal, Role.MAINTAINER)
        changes = {name: getattr(body, name) for name in body.model_fields_set}
        if "channels" in changes:
            self._check_channels(body.channels or [], "channels")
            changes["channels"] = [seal_channel(self._cipher, c) for c in body.channels or []]
        with self._store.write() as session:
            row = self._find(session, principal.project_id, rule_id, lock=True)
            before = _audited(row)
            _check_drift_version(
                changes.get("metric", row.metric), changes.get("version", row.version)
            )
            if "deployment" in changes:
                self._check_deployment(session, principal.project_id, changes["deployment"])
            for name, value in changes.items():
                setattr(row, name, value)
            now = utcnow()
            if changes.keys() & _MEASURE_FIELDS:
                row.last_value = None  # a value of what the rule no longer measures
            if changes.get("enabled") is False:
                row.state, row.last_value, row.state_since = "ok", None, now
            row.updated_at = now
            session.flush()
            self._audit(session, principal, "alert.update", row, before=before)
            return rule_out(row)

    def delete(self, principal: Principal, rule_id: int) -> None:
        """Delete a rule and its events (the audit log keeps the record)."""
        require(principal, Role.MAINTAINER)
        with self._store.write() as session:
            row = self._find(session, principal.project_id, rule_id, lock=True)
            before = _audited(row)
            session.execute(delete(AlertEventRow).where(AlertEventRow.rule_id == row.id))
            session.delete(row)
            audit.append(
                session,
                AuditRecord(
                    actor=principal.actor,
                    action="alert.delete",
                    target=f"alert:{before['name']}",
                    project=principal.project,
                    before=before,
                ),
            )

    # -- helpers -------------------------------------------------------------------------

    @staticmethod
    def _find(
        session: Session, project_id: int, rule_id: int, *, lock: bool = False
    ) -> AlertRuleRow:
        query = select(AlertRuleRow).where(
            AlertRuleRow.project_id == project_id, AlertRuleRow.id == rule_id
        )
        if lock:
            query = query.with_for_update()
        row = session.execute(query).scalar_one_or_none()
        if row is None:
            raise NotFound(
                f"alert rule {rule_id} not found; list them with: modelcycle alerts list",
                code="alert_not_found",
            )
        return row

    @staticmethod
    def _check_free(session: Session, project_id: int, name: str) -> None:
        taken = session.execute(
            select(AlertRuleRow.id).where(
                AlertRuleRow.project_id == project_id, AlertRuleRow.name == name
            )
        ).first()
        if taken:
            raise Conflict(
                f"alert rule '{name}' exists already (id {taken[0]}); change it with: "
                f"modelcycle alerts update {taken[0]}"
            )

    @staticmethod
    def _check_deployment(session: Session, project_id: int, name: str | None) -> None:
        if name is None:
            return
        found = session.execute(
            select(DeploymentRow.id).where(
                DeploymentRow.project_id == project_id, DeploymentRow.name == name
            )
        ).first()
        if not found:
            raise InvalidInput(
                f"deployment '{name}' not found in this project; list them with: "
                "modelcycle deploy list",
                param="deployment",
            )

    def _check_channels(self, channels: builtins.list[Any], param: str) -> None:
        if self.options.webhook_allow_private:
            return
        for index, channel in enumerate(channels):
            host = urlsplit(channel.url).hostname if isinstance(channel, WebhookChannel) else None
            if host is not None and private_address(host):
                raise InvalidInput(
                    f"{param}[{index}].url: webhooks to loopback and private addresses are "
                    "not allowed on this server (webhook_allow_private is off)",
                    param=f"{param}[{index}].url",
                )

    @staticmethod
    def _audit(
        session: Session,
        principal: Principal,
        action: str,
        row: AlertRuleRow,
        *,
        before: dict[str, Any] | None,
    ) -> None:
        audit.append(
            session,
            AuditRecord(
                actor=principal.actor,
                action=action,
                target=f"alert:{row.name}",
                project=principal.project,
                before=before,
                after=_audited(row),
            ),
        )


def _check_drift_version(metric: str, version: int | None) -> None:
    if metric.startswith(DRIFT_PREFIX) and version is not None:
        raise InvalidInput(
            "version: drift metrics are per deployment; leave version out", param="version"
        )
