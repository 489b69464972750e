"""Online evaluation: score a sample of each deployment's production traces, continuously.

A deployment's configuration names a sample rate and reference-free scorers
(production traces have no expected answer). The worker's ``eval.online`` job
(``modelcycle.evaluate.online_pass``) scores the sampled traces that arrived
since its last pass and stores one row per (trace, scorer); this module keeps
the configurations (audited) and reads the scores back as series per scorer
and model version. Alert rules read the same rows (metric
``online_score:<scorer>``, in ``modelcycle.monitor.alert_metrics``).
See docs/online-evaluation.md.
"""

from __future__ import annotations

import builtins
import math
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, cast, extract, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from modelcycle.access import Principal, require
from modelcycle.errors import Conflict, InvalidInput, NotFound
from modelcycle.evaluate.online_pass import OnlineScoring
from modelcycle.evaluate.online_schemas import (
    ONLINE_SCORER_NAME,
    OnlineEvalConfig,
    OnlineEvalSet,
    OnlineScorePoint,
    OnlineScoreQuery,
    OnlineScores,
    OnlineScoreSeries,
)
from modelcycle.evaluate.schemas import ScorerSpec
from modelcycle.evaluate.scorers import ScorerRegistry
from modelcycle.gateway import Gateway
from modelcycle.monitor import rollups
from modelcycle.monitor.queries import resolve_range
from modelcycle.store import Store, audit
from modelcycle.store.audit import AuditRecord
from modelcycle.store.tables import DeploymentRow, OnlineEvalConfigRow, OnlineScoreRow, utcnow
from modelcycle.types import Role


def config_out(row: OnlineEvalConfigRow) -> OnlineEvalConfig:
    """The public shape of a stored configuration."""
    cursor = row.cursor or {}
    scored_until = cursor.get("start_time")
    return OnlineEvalConfig(
        deployment=row.deployment,
        sample_rate=row.sample_rate,
        scorers=[ScorerSpec.model_validate(spec) for spec in row.scorers],
        enabled=row.enabled,
        scored_until=datetime.fromisoformat(scored_until) if scored_until else None,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )


def _not_configured(deployment: str) -> NotFound:
    return NotFound(
        f"deployment '{deployment}' has no online evaluation; "
        "set one with: modelcycle online-eval set"
    )


def _snapshot(row: OnlineEvalConfigRow) -> dict[str, Any]:
    return {"sample_rate": row.sample_rate, "scorers": row.scorers, "enabled": row.enabled}


class OnlineEvaluation:
    """Online evaluation configurations of every project, and the scores they produced."""

    def __init__(self, store: Store, scorers: ScorerRegistry, gateway: Gateway):
        self._store = store
        self._scorers = scorers
        self.scoring = OnlineScoring(store, scorers, gateway)
        """The scoring passes (the ``eval.online`` job runs ``scoring.handle_job``)."""

    # -- configurations ------------------------------------------------------------------

    def check_scorers(self, specs: builtins.list[ScorerSpec]) -> None:
        """Every scorer builds and needs no reference answer; else a 400 naming it."""
        seen: set[str] = set()
        for spec in specs:
            if spec.name in seen:
                raise InvalidInput(
                    f"scorer {spec.name} is listed twice; give each scorer once", param="scorers"
                )
            seen.add(spec.name)
            if not ONLINE_SCORER_NAME.match(spec.name):
                raise InvalidInput(
                    f"scorer name {spec.name[:64]!r} is not usable online: at most 51 lowercase "
                    "letters, digits, '_', '.' or '-'",
                    param="scorers",
                )
            scorer = self._scorers.build(spec.name, spec.options)
            if scorer.needs_reference:
                raise InvalidInput(
                    f"scorer {spec.name} compares with an expected answer, which production "
                    "traces do not have; use reference-free scorers such as json_valid, "
                    "toxicity, pii_leak, refusal or llm_judge",
                    param="scorers",
                )

    def set(self, principal: Principal, deployment: str, body: OnlineEvalSet) -> OnlineEvalConfig:
        """Create or replace a deployment's configuration (maintainers); audited.

        A new configuration scores the traces that start from now on; a replaced one
        keeps its place, so changing the scorers never rescores old traffic.
        """
        require(principal, Role.MAINTAINER)
        self.check_scorers(body.scorers)
        scorers = [spec.model_dump(mode="json") for spec in body.scorers]
        try:
            with self._store.write() as session:
                self._deployment_exists(session, principal.project_id, deployment)
                row = self._find(session, principal.project_id, deployment)
                before = None if row is None else _snapshot(row)
                now = utcnow()
                if row is None:
                    row = OnlineEvalConfigRow(
                        project_id=principal.project_id,
                        deployment=deployment,
                        cursor={"start_time": now.isoformat(), "span_id": ""},
                        created_by=principal.actor,
                        created_at=now,
                    )
                    session.add(row)
                row.sample_rate = body.sample_rate
                row.scorers = scorers
                row.enabled = body.enabled
                row.updated_by = principal.actor
                row.updated_at = now
                session.flush()
                self._audit(session, principal, "set", deployment, before, _snapshot(row))
                return config_out(row)
        except IntegrityError:
            raise Conflict(
                f"the online evaluation of '{deployment}' was changed at the same time; retry"
            ) from None

    def get(self, principal: Principal, deployment: str) -> OnlineEvalConfig:
        """One deployment's configuration; 404 when it has none."""
        require(principal, Role.VIEWER)
        with self._store.read() as session:
            row = self._find(session, principal.project_id, deployment)
            if row is None:
                raise _not_configured(deployment)
            return config_out(row)

    def list(self, principal: Principal) -> builtins.list[OnlineEvalConfig]:
        """Every configuration of the caller's project, by deployment name."""
        require(principal, Role.VIEWER)
        with self._store.read() as session:
            rows = session.execute(
                select(OnlineEvalConfigRow)
                .where(OnlineEvalConfigRow.project_id == principal.project_id)
                .order_by(OnlineEvalConfigRow.deployment)
            ).scalars()
            return [config_out(row) for row in rows]

    def delete(self, principal: Principal, deployment: str) -> None:
        """Stop scoring a deployment (maintainers); its scores stay. Audited."""
        require(principal, Role.MAINTAINER)
        with self._store.write() as session:
            row = self._find(session, principal.project_id, deployment)
            if row is None:
                raise _not_configured(deployment)
            before = _snapshot(row)
            session.delete(row)
            self._audit(session, principal, "delete", deployment, before, None)

    @staticmethod
    def _find(session: Session, project_id: int, deployment: str) -> OnlineEvalConfigRow | None:
        return session.execute(
            select(OnlineEvalConfigRow).where(
                OnlineEvalConfigRow.project_id == project_id,
                OnlineEvalConfigRow.deployment == deployment,
            )
        ).scalar_one_or_none()

    @staticmethod
    def _deployment_exists(session: Session, project_id: int, deployment: str) -> None:
        found = session.execute(
            select(DeploymentRow.id).where(
                DeploymentRow.project_id == project_id, DeploymentRow.name == deployment
            )
        ).first()
        if found is None:
            raise NotFound(
                f"deployment '{deployment}' not found; list them with: modelcycle deploy list"
            )

    @staticmethod
    def _audit(
        session: Session,
        principal: Principal,
        action: str,
        deployment: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> None:
        audit.append(
            session,
            AuditRecord(
                actor=principal.actor,
                action=f"online_eval.{action}",
                target=f"online_eval:{deployment}",
                project=principal.project,
                before=before,
                after=after,
            ),
        )

    # -- scores ----------------------------------------------------------------------------

    def scores(
        self,
        principal: Principal,
        deployment: str,
        query: OnlineScoreQuery,
        *,
        now: datetime | None = None,
    ) -> OnlineScores:
        """Count, errors and mean of each scorer per model version and time bucket.

        Scores are bucketed by the start of the trace they judge, so they line up
        with the traffic in the monitoring rollups. A deployment without a
        configuration but with scores from an earlier one still answers; one with
        neither is a 404.
        """
        require(principal, Role.VIEWER)
        start, end = resolve_range(query, now)
        bucket_s = _bucket(start, end, query.bucket_s)
        with self._store.read() as session:
            self._deployment_known(session, principal.project_id, deployment)
            rows = self._bucketed(session, principal.project_id, deployment, query, start, end)
        return OnlineScores(
            deployment=deployment,
            start=start,
            end=end,
            bucket_s=bucket_s,
            series=_series(rows, bucket_s),
        )

    def _deployment_known(self, session: Session, project_id: int, deployment: str) -> None:
        if self._find(session, project_id, deployment) is not None:
            return
        scored = session.execute(
            select(OnlineScoreRow.id)
            .where(OnlineScoreRow.project_id == project_id, OnlineScoreRow.deployment == deployment)
            .limit(1)
        ).first()
        if scored is None:
            raise _not_configured(deployment)

    def _bucketed(
        self,
        session: Session,
        project_id: int,
        deployment: str,
        query: OnlineScoreQuery,
        start: datetime,
        end: datetime,
    ) -> builtins.list[Any]:
        bucket_s = _bucket(start, end, query.bucket_s)
        bucket = (_epoch_s(self._store.is_sqlite) / bucket_s).label("bucket")
        conditions: builtins.list[Any] = [
            OnlineScoreRow.project_id == project_id,
            OnlineScoreRow.deployment == deployment,
            OnlineScoreRow.trace_start >= start,
            OnlineScoreRow.trace_start < end,
        ]
        if query.version is not None:
            conditions.append(OnlineScoreRow.version == query.version)
        if query.scorer is not None:
            conditions.append(OnlineScoreRow.scorer == query.scorer)
        keys = (OnlineScoreRow.scorer, OnlineScoreRow.model, OnlineScoreRow.version, bucket)
        return builtins.list(
            session.execute(
                select(
                    *keys,
                    func.count(OnlineScoreRow.value).label("count"),
                    func.count().label("total"),
                    func.avg(OnlineScoreRow.value).label("mean"),
                )
                .where(*conditions)
                .group_by(*keys)
            ).all()
        )


def _epoch_s(sqlite: bool) -> Any:
    """Whole seconds since the epoch of ``trace_start``, as an integer SQL expression."""
    if sqlite:  # stored as naive UTC text
        return cast(func.strftime("%s", OnlineScoreRow.trace_start), BigInteger)
    return cast(func.floor(extract("epoch", OnlineScoreRow.trace_start)), BigInteger)


def _bucket(start: datetime, end: datetime, bucket_s: int | None) -> int:
    """The bucket width: ``bucket_s`` if it gives at most ``MAX_BUCKETS``, else automatic."""
    seconds = (end - start).total_seconds()
    if bucket_s is None:
        return next(
            (s for s in rollups.AUTO_STEPS if seconds / s <= rollups.AUTO_BUCKETS),
            rollups.AUTO_STEPS[-1],
        )
    buckets = math.ceil(seconds / bucket_s)
    if buckets > rollups.MAX_BUCKETS:
        raise InvalidInput(
            f"bucket_s {bucket_s} gives {buckets} buckets over this range (at most "
            f"{rollups.MAX_BUCKETS}); use a larger bucket_s or a shorter range",
            param="bucket_s",
        )
    return bucket_s


def _series(rows: builtins.list[Any], bucket_s: int) -> builtins.list[OnlineScoreSeries]:
    grouped: dict[tuple[str, str | None, int | None], builtins.list[Any]] = {}
    for row in rows:
        grouped.setdefault((row.scorer, row.model, row.version), []).append(row)
    out: builtins.list[OnlineScoreSeries] = []
    for (scorer, model, version), found in sorted(grouped.items(), key=_series_key):
        points = [
            OnlineScorePoint(
                start=datetime.fromtimestamp(int(row.bucket) * bucket_s, UTC),
                count=int(row.count),
                errors=int(row.total) - int(row.count),
                mean=None if row.mean is None else float(row.mean),
            )
            for row in sorted(found, key=lambda row: int(row.bucket))
        ]
        count = sum(point.count for point in points)
        total = sum(point.count * (point.mean or 0.0) for point in points)
        out.append(
            OnlineScoreSeries(
                scorer=scorer,
                model=model,
                version=version,
                count=count,
                errors=sum(point.errors for point in points),
                mean=total / count if count else None,
                points=points,
            )
        )
    return out


def _series_key(item: tuple[tuple[str, str | None, int | None], Any]) -> tuple[str, str, int]:
    (scorer, model, version), _ = item
    return scorer, model or "", version or 0
