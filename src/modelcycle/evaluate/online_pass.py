"""One pass of online evaluation: score the sampled traces each enabled configuration has not.

For every enabled configuration, the pass reads the deployment's gateway spans
after the stored cursor ``(start_time, span_id)`` in bounded batches, keeps
the traces in the sample (``sha256(trace_id)`` read as a fraction in [0, 1)
below the rate, so every pass chooses the same traces), leaves out shadow
traffic, failed requests, traces stored without content and the judge's own
calls, and stores one ``online_scores`` row per (trace, scorer). The rows and
the cursor move in one transaction; the rows' ``(trace_id, scorer)`` key makes
a re-run a no-op.

A span is written when its request ends, so one that started earlier can
arrive after later ones. The pass therefore scores everything up to now but
moves the cursor only over spans that started ``settle_s`` ago or more; the
next pass reads the unsettled stretch again and skips what it already scored.
Model-based scorers (``llm_judge``) call their judge through the gateway as
the project's system principal (``evaluate.caller.calling``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import and_, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from modelcycle.access import Principal
from modelcycle.errors import ModelcycleError
from modelcycle.evaluate.caller import EVAL_RUN_MARKER, SyncCaller, TargetCaller, calling
from modelcycle.evaluate.scorers import Prompt, Scorer, ScorerRegistry, ScoringInput, score_batch
from modelcycle.gateway import Gateway
from modelcycle.jobs import JobContext
from modelcycle.store import Store
from modelcycle.store.tables import OnlineEvalConfigRow, OnlineScoreRow, ProjectRow, SpanRow, utcnow
from modelcycle.types import Role

log = logging.getLogger(__name__)

JOB_KIND = "eval.online"
JUDGE_MARKER = "modelcycle.online_eval"
"""Metadata on the judge's own gateway calls: their traces are never scored themselves."""
_GUARD_KEYS = ("guard.findings", "guard.ms")
_MAX_ERROR = 1000


def sampled(trace_id: str, rate: float) -> bool:
    """Whether a trace is in a ``rate`` sample: the same answer on every pass and process."""
    digest = hashlib.sha256(trace_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def prompt_of(stored: str | None) -> Prompt:
    """What the request asked, from a span's stored input (messages JSON or a prompt)."""
    if not stored:
        return ""
    try:
        data = orjson.loads(stored)
    except orjson.JSONDecodeError:  # cut to the span's size limit: keep the text
        return stored
    if isinstance(data, str):
        return data
    if isinstance(data, list) and all(isinstance(item, dict) for item in data):
        return data
    return stored


@dataclass(frozen=True, slots=True)
class _Config:
    id: int
    project_id: int
    project: str
    deployment: str
    rate: float
    scorers: list[dict[str, Any]]
    cursor: tuple[datetime, str]


@dataclass(slots=True)
class PassReport:
    """What a pass did, summed over configurations (the job's result)."""

    configs: int = 0
    spans_read: int = 0
    traces_scored: int = 0
    scores: int = 0
    score_errors: int = 0

    def as_dict(self) -> dict[str, object]:
        """The JSON result of the job."""
        return {
            "configs": self.configs,
            "spans_read": self.spans_read,
            "traces_scored": self.traces_scored,
            "scores": self.scores,
            "score_errors": self.score_errors,
        }


def _position(span: Any) -> tuple[datetime, str]:
    return span.start_time, span.span_id


def _cursor_of(row: OnlineEvalConfigRow) -> tuple[datetime, str]:
    cursor = row.cursor or {}
    start = cursor.get("start_time")
    at = datetime.fromisoformat(start) if start else row.created_at
    return at, str(cursor.get("span_id", ""))


class OnlineScoring:
    """Runs passes of online evaluation over every project's enabled configurations."""

    def __init__(
        self,
        store: Store,
        scorers: ScorerRegistry,
        gateway: Gateway,
        *,
        batch_size: int = 500,
        max_spans_per_config: int = 10_000,
        settle_s: float = 120.0,
    ):
        self._store = store
        self._scorers = scorers
        self._gateway = gateway
        self.batch_size = batch_size
        self.max_spans_per_config = max_spans_per_config
        """Spans read per configuration and pass: a busy deployment cannot hold up others."""
        self.settle_s = settle_s
        dialect = sqlite if store.is_sqlite else postgresql
        self._insert = dialect.insert(OnlineScoreRow).on_conflict_do_nothing(
            index_elements=["trace_id", "scorer"]
        )

    def handle_job(self, context: JobContext) -> dict[str, object]:
        """The ``eval.online`` job: one pass (runs in a worker thread, with its own loop)."""
        report = asyncio.run(self.score_pending(cancelled=lambda: context.cancelled))
        return report.as_dict()

    async def score_pending(
        self, *, now: datetime | None = None, cancelled: Callable[[], bool] | None = None
    ) -> PassReport:
        """Score what every enabled configuration has not scored yet, up to ``now``."""
        now = now or utcnow()
        report = PassReport()
        for config in self._configs():
            if cancelled is not None and cancelled():
                break
            report.configs += 1
            try:
                await self._score_config(config, now, report, cancelled)
            except ModelcycleError as exc:  # e.g. a scorer's plugin is gone: the others go on
                log.warning(
                    "online evaluation of %s (project %s) skipped: %s",
                    config.deployment,
                    config.project,
                    exc.message,
                )
        return report

    def _configs(self) -> list[_Config]:
        with self._store.read() as session:
            rows = session.execute(
                select(OnlineEvalConfigRow, ProjectRow.name)
                .join(ProjectRow, ProjectRow.id == OnlineEvalConfigRow.project_id)
                .where(OnlineEvalConfigRow.enabled.is_(True))
                .order_by(OnlineEvalConfigRow.id)
            ).all()
            return [
                _Config(
                    id=row.id,
                    project_id=row.project_id,
                    project=project,
                    deployment=row.deployment,
                    rate=row.sample_rate,
                    scorers=list(row.scorers),
                    cursor=_cursor_of(row),
                )
                for row, project in rows
            ]

    def _principal(self, config: _Config) -> Principal:
        """The platform acting in the configuration's project (the judge's calls)."""
        return Principal(
            key_id=0,
            key_name="online-eval",
            prefix="online-eval",
            project_id=config.project_id,
            project=config.project,
            role=Role.MAINTAINER,
            is_root=False,
            kind="system",
        )

    async def _score_config(
        self,
        config: _Config,
        now: datetime,
        report: PassReport,
        cancelled: Callable[[], bool] | None,
    ) -> None:
        scorers = [
            (str(spec["name"]), self._scorers.build(str(spec["name"]), spec.get("options")))
            for spec in config.scorers
        ]
        caller = TargetCaller(
            self._gateway, self._principal(config), metadata={JUDGE_MARKER: config.deployment}
        )
        settled = now - timedelta(seconds=self.settle_s)
        scan = config.cursor
        read = 0
        with calling(SyncCaller(caller, asyncio.get_running_loop())):
            while read < self.max_spans_per_config:
                if cancelled is not None and cancelled():
                    return
                spans = self._batch(config, scan, now)
                if not spans:
                    return
                read += len(spans)
                report.spans_read += len(spans)
                picked = [span for span in spans if self._eligible(span, config.rate)]
                rows = await self._scored(config, picked, scorers, report)
                settled_spans = [span for span in spans if span.start_time <= settled]
                cursor = _position(settled_spans[-1]) if settled_spans else None
                if not self._store_batch(config, rows, cursor):
                    return  # deleted or disabled meanwhile: nothing of this batch is kept
                scan = _position(spans[-1])
                if len(spans) < self.batch_size:
                    return

    def _batch(self, config: _Config, after: tuple[datetime, str], now: datetime) -> list[Any]:
        """The next spans after ``after``, without their text (most are not in the sample)."""
        at, span_id = after
        with self._store.read() as session:
            rows = session.execute(
                select(*_LIGHT, SpanRow.output.is_not(None).label("has_output"))
                .where(
                    SpanRow.project_id == config.project_id,
                    SpanRow.deployment == config.deployment,
                    SpanRow.source == "gateway",
                    SpanRow.kind == "llm",
                    SpanRow.start_time >= at,
                    or_(
                        SpanRow.start_time > at,
                        and_(SpanRow.start_time == at, SpanRow.span_id > span_id),
                    ),
                    SpanRow.start_time <= now,
                )
                .order_by(SpanRow.start_time, SpanRow.span_id)
                .limit(self.batch_size)
            ).all()
            return list(rows)

    def _full(self, ids: Sequence[int]) -> list[SpanRow]:
        """The spans ``ids`` with their text, in order."""
        with self._store.read() as session:
            rows = session.execute(
                select(SpanRow)
                .where(SpanRow.id.in_(ids))
                .order_by(SpanRow.start_time, SpanRow.span_id)
            ).scalars()
            found = list(rows)
            session.expunge_all()
            return found

    @staticmethod
    def _eligible(span: Any, rate: float) -> bool:
        if span.status != "ok" or span.route == "shadow" or not span.has_output:
            return False
        # Neither a judge's calls nor an evaluation run's are production traffic.
        if span.attributes and (
            JUDGE_MARKER in span.attributes or EVAL_RUN_MARKER in span.attributes
        ):
            return False
        return sampled(span.trace_id, rate)

    async def _scored(
        self,
        config: _Config,
        spans: Sequence[Any],
        scorers: Sequence[tuple[str, Scorer]],
        report: PassReport,
    ) -> list[dict[str, Any]]:
        """Score rows for each (span, scorer) not scored yet; one span per trace."""
        first: dict[str, Any] = {}
        for span in spans:
            first.setdefault(span.trace_id, span)
        if not first:
            return []
        done = self._already_scored(list(first))
        names = [name for name, _ in scorers]
        missing = [
            span.id
            for trace_id, span in first.items()
            if any((trace_id, name) not in done for name in names)
        ]
        unique = {span.trace_id: span for span in self._full(missing)} if missing else {}
        rows: list[dict[str, Any]] = []
        traces: set[str] = set()
        for name, scorer in scorers:
            todo = [span for trace_id, span in unique.items() if (trace_id, name) not in done]
            if not todo:
                continue
            samples = [_scoring_input(span) for span in todo]
            scores = await asyncio.to_thread(score_batch, scorer, samples)
            for span, score in zip(todo, scores, strict=True):
                traces.add(span.trace_id)
                report.scores += 1
                report.score_errors += score.error is not None
                rows.append(
                    {
                        "project_id": config.project_id,
                        "trace_id": span.trace_id,
                        "deployment": config.deployment,
                        "model": span.model,
                        "version": span.version,
                        "scorer": name,
                        "value": score.value,
                        "error": None if score.error is None else score.error[:_MAX_ERROR],
                        "trace_start": span.start_time,
                        "created_at": utcnow(),
                    }
                )
        report.traces_scored += len(traces)
        return rows

    def _already_scored(self, trace_ids: list[str]) -> set[tuple[str, str]]:
        with self._store.read() as session:
            found = session.execute(
                select(OnlineScoreRow.trace_id, OnlineScoreRow.scorer).where(
                    OnlineScoreRow.trace_id.in_(trace_ids)
                )
            ).all()
        return {(trace_id, scorer) for trace_id, scorer in found}

    def _store_batch(
        self,
        config: _Config,
        rows: Sequence[Mapping[str, Any]],
        cursor: tuple[datetime, str] | None,
    ) -> bool:
        """Insert the scores and move the cursor forward, together.

        ``False`` (nothing kept) when the configuration was deleted or disabled since.
        """
        with self._store.write() as session:
            row = self._locked(session, config.id)
            if row is None or not row.enabled:
                return False
            if rows:
                session.execute(self._insert, list(rows))
            if cursor is not None and cursor > _cursor_of(row):
                at, span_id = cursor
                row.cursor = {"start_time": at.isoformat(), "span_id": span_id}
        return True

    @staticmethod
    def _locked(session: Session, config_id: int) -> OnlineEvalConfigRow | None:
        return session.execute(
            select(OnlineEvalConfigRow).where(OnlineEvalConfigRow.id == config_id).with_for_update()
        ).scalar_one_or_none()


_LIGHT = (
    SpanRow.id,
    SpanRow.trace_id,
    SpanRow.span_id,
    SpanRow.start_time,
    SpanRow.status,
    SpanRow.route,
    SpanRow.attributes,
)
"""What a pass reads of every span to choose the ones to score."""


def _scoring_input(span: SpanRow) -> ScoringInput:
    metadata: dict[str, Any] = {
        key: value for key, value in (span.attributes or {}).items() if key not in _GUARD_KEYS
    }
    metadata.update({"trace_id": span.trace_id, "model": span.model, "version": span.version})
    return ScoringInput(
        output=span.output or "",
        input=prompt_of(span.input),
        metadata=metadata,
        latency_ms=span.duration_ms,
        cost=span.cost,
    )
