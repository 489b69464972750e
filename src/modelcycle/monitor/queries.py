"""Reading traces: search, one trace in full, and the rollup series of dashboards.

A search lists *traces*: a trace matches when one of its spans matches every
filter, and is listed once, at its newest matching span; the row shows the
trace's root span (no parent, else its earliest span) with totals over all its
spans. Pages are ordered by that span's ``(start_time, id)``, newest first,
which is exactly the order of the ``(project_id, [deployment|user|session,]
start_time)`` indexes: the first page reads a few index entries backwards from
``end`` instead of sorting the range. See docs/design/monitoring.md.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, not_, or_, select
from sqlalchemy.orm import Session

from modelcycle.access import Principal, require
from modelcycle.errors import InvalidInput, NotFound
from modelcycle.monitor import rollups
from modelcycle.monitor.feedback import feedback_out
from modelcycle.monitor.rollup_cache import RollupBlocks
from modelcycle.monitor.spans import GUARD_FINDINGS
from modelcycle.monitor.trace_schemas import (
    RollupQuery,
    Rollups,
    Span,
    TimeRange,
    Trace,
    TraceFilter,
    TracePage,
    TraceSummary,
)
from modelcycle.store import Store
from modelcycle.store.tables import FeedbackRow, SpanRow
from modelcycle.types import Role

DEFAULT_WINDOW = timedelta(hours=24)
"""The time range of a query that names neither start nor end."""
PREVIEW_CHARS = 300
"""Characters of a root span's input and output shown in search results."""
LLM_KINDS = ("llm", "embedding")
"""Span kinds that are model calls (counted in rollups and in a trace's tokens and cost)."""
_MAX_BATCH = 5_000

Position = tuple[datetime, int]
"""Where a page ends: the ``(start_time, id)`` of the span its last trace was found at."""


def resolve_range(window: TimeRange, now: datetime | None = None) -> tuple[datetime, datetime]:
    """``(start, end)`` with the defaults filled in: end now, start 24 hours before end."""
    end = window.end or now or datetime.now(UTC)
    start = window.start or end - DEFAULT_WINDOW
    if end <= start:
        raise InvalidInput("end must be after start (start defaults to now)", param="end")
    return start, end


def encode_position(position: Position) -> str:
    """An opaque cursor resuming after ``position``."""
    at, span_key = position
    raw = f"t:{at.astimezone(UTC).isoformat()}|{span_key}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_position(cursor: str | None) -> Position | None:
    """The position a cursor resumes after; ``None`` for the first page."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, rest = raw.partition(":")
        when, _, number = rest.partition("|")
        at = datetime.fromisoformat(when)
        span_key = int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidInput(
            "cursor is not valid; pass the next_cursor of a previous page", param="cursor"
        ) from None
    if prefix != "t" or at.tzinfo is None or not 0 <= span_key < 2**63:
        raise InvalidInput(
            "cursor is not valid; pass the next_cursor of a previous page", param="cursor"
        )
    return at.astimezone(UTC), span_key


def _older_than(position: Position) -> ColumnElement[bool]:
    # The first conjunct bounds the index range scan; the second breaks ties.
    at, span_key = position
    return and_(SpanRow.start_time <= at, or_(SpanRow.start_time < at, SpanRow.id < span_key))


def _newer_than(position: Position) -> ColumnElement[bool]:
    at, span_key = position
    return and_(SpanRow.start_time >= at, or_(SpanRow.start_time > at, SpanRow.id > span_key))


class Traces:
    """Trace search, trace detail and rollups, scoped to the caller's project."""

    def __init__(self, store: Store):
        self._store = store
        self._rollups = RollupBlocks()

    # -- search ----------------------------------------------------------------------

    def search(
        self, principal: Principal, query: TraceFilter, *, now: datetime | None = None
    ) -> TracePage:
        """Traces matching ``query``, newest first, one page at a time."""
        require(principal, Role.VIEWER)
        start, end = resolve_range(query, now)
        position = decode_position(query.cursor)
        conditions = self._conditions(principal.project_id, query, start, end)
        with self._store.read() as session:
            found = self._page(session, conditions, position, query.limit)
            listed = list(found)[: query.limit]
            summaries = self._summaries(session, principal.project_id, listed)
        next_cursor = None
        if len(found) > query.limit:
            next_cursor = encode_position(found[listed[-1]])
        return TracePage(data=[summaries[trace_id] for trace_id in listed], next_cursor=next_cursor)

    def _conditions(
        self, project_id: int, query: TraceFilter, start: datetime, end: datetime
    ) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = [
            SpanRow.project_id == project_id,
            SpanRow.start_time >= start,
            SpanRow.start_time < end,
        ]
        equal: dict[str, Any] = {
            "deployment": query.deployment,
            "model": query.model,
            "version": query.version,
            "status": query.status,
            "route": query.route,
            "user_id": query.user_id,
            "session_id": query.session_id,
            "key_id": query.key_id,
            "guard": query.guard,
        }
        for column, value in equal.items():
            if value is not None:
                conditions.append(getattr(SpanRow, column) == value)
        if query.text is not None:
            conditions.append(self._contains(query.text))
        feedback = self._feedback_condition(project_id, query)
        if feedback is not None:
            conditions.append(feedback)
        return conditions

    def _contains(self, text: str) -> ColumnElement[bool]:
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        if self._store.is_sqlite:
            # SQLite's LIKE already ignores ASCII case; lower() would cost a copy per row.
            return or_(
                SpanRow.input.like(pattern, escape="\\"), SpanRow.output.like(pattern, escape="\\")
            )
        return or_(
            SpanRow.input.ilike(pattern, escape="\\"), SpanRow.output.ilike(pattern, escape="\\")
        )

    @staticmethod
    def _feedback_condition(project_id: int, query: TraceFilter) -> ColumnElement[bool] | None:
        judged: list[ColumnElement[bool]] = []
        if query.min_score is not None:
            judged.append(FeedbackRow.score >= query.min_score)
        if query.max_score is not None:
            judged.append(FeedbackRow.score <= query.max_score)
        if query.thumbs is not None:
            judged.append(FeedbackRow.thumbs == query.thumbs)
        if not judged and query.has_feedback is None:
            return None
        # A correlated EXISTS keeps the scan on the time index (newest first, stopping at
        # the page's end) and probes ix_feedback_project_trace per span; an IN list would
        # make SQLite fetch every judged trace of the range and sort them all.
        judged_here = exists().where(
            FeedbackRow.project_id == project_id,
            FeedbackRow.trace_id == SpanRow.trace_id,
            *judged,
        )
        return not_(judged_here) if query.has_feedback is False else judged_here

    def _page(
        self,
        session: Session,
        conditions: Sequence[ColumnElement[bool]],
        position: Position | None,
        limit: int,
    ) -> dict[str, Position]:
        """Up to ``limit + 1`` traces after ``position``, each at its newest matching span."""
        found: dict[str, Position] = {}
        listed_before: set[str] = set()
        resume = position
        batch = limit + 1
        while len(found) <= limit:
            query = select(SpanRow.trace_id, SpanRow.start_time, SpanRow.id).where(*conditions)
            if resume is not None:
                query = query.where(_older_than(resume))
            rows = session.execute(
                query.order_by(SpanRow.start_time.desc(), SpanRow.id.desc()).limit(batch)
            ).all()
            if position is not None:
                fresh = {row.trace_id for row in rows} - found.keys() - listed_before
                listed_before |= self._listed_before(session, conditions, position, fresh)
            for row in rows:
                if row.trace_id not in found and row.trace_id not in listed_before:
                    found[row.trace_id] = (row.start_time, row.id)
                    if len(found) > limit:
                        break
            if len(rows) < batch:
                break
            resume = (rows[-1].start_time, rows[-1].id)
            batch = min(batch * 2, _MAX_BATCH)  # many spans per trace: read further at once
        return found

    @staticmethod
    def _listed_before(
        session: Session,
        conditions: Sequence[ColumnElement[bool]],
        position: Position,
        trace_ids: set[str],
    ) -> set[str]:
        """Traces among ``trace_ids`` that an earlier page listed (a newer span matches)."""
        if not trace_ids:
            return set()
        rows = session.execute(
            select(SpanRow.trace_id)
            .where(SpanRow.trace_id.in_(trace_ids), *conditions, _newer_than(position))
            .distinct()
        ).scalars()
        return set(rows)

    def _summaries(
        self, session: Session, project_id: int, trace_ids: list[str]
    ) -> dict[str, TraceSummary]:
        if not trace_ids:
            return {}
        in_page = and_(SpanRow.project_id == project_id, SpanRow.trace_id.in_(trace_ids))
        is_llm = SpanRow.kind.in_(LLM_KINDS)
        totals = {
            row.trace_id: row
            for row in session.execute(
                select(
                    SpanRow.trace_id,
                    func.count().label("spans"),
                    func.max(SpanRow.end_time).label("end_time"),
                    func.sum(case((SpanRow.status == "error", 1), else_=0)).label("errors"),
                    func.sum(case((is_llm, SpanRow.input_tokens), else_=0)).label("input_tokens"),
                    func.sum(case((is_llm, SpanRow.output_tokens), else_=0)).label("output_tokens"),
                    func.sum(case((is_llm, SpanRow.cost), else_=None)).label("cost"),
                )
                .where(in_page)
                .group_by(SpanRow.trace_id)
            )
        }
        feedback = {
            row.trace_id: row
            for row in session.execute(
                select(
                    FeedbackRow.trace_id,
                    func.count().label("count"),
                    func.avg(FeedbackRow.score).label("score"),
                )
                .where(FeedbackRow.project_id == project_id, FeedbackRow.trace_id.in_(trace_ids))
                .group_by(FeedbackRow.trace_id)
            )
        }
        out: dict[str, TraceSummary] = {}
        for root in self._roots(session, in_page):
            total, judged = totals[root.trace_id], feedback.get(root.trace_id)
            out[root.trace_id] = TraceSummary(
                trace_id=root.trace_id,
                name=root.name,
                kind=root.kind,
                source=root.source,
                start_time=root.start_time,
                end_time=total.end_time,
                duration_ms=root.duration_ms,
                status="error" if total.errors else root.status,
                span_count=total.spans,
                error_count=total.errors,
                deployment=root.deployment,
                model=root.model,
                version=root.version,
                route=root.route,
                key_id=root.key_id,
                user_id=root.user_id,
                session_id=root.session_id,
                guard=root.guard,
                input_tokens=int(total.input_tokens or 0),
                output_tokens=int(total.output_tokens or 0),
                cost=None if total.cost is None else float(total.cost),
                input=root.input_preview,
                output=root.output_preview,
                feedback_count=judged.count if judged else 0,
                feedback_score=None if judged is None or judged.score is None else judged.score,
            )
        return out

    @staticmethod
    def _roots(session: Session, in_page: ColumnElement[bool]) -> Sequence[Any]:
        """Each trace's root span: the one without a parent, else the earliest."""
        rank = (
            func.row_number()
            .over(
                partition_by=SpanRow.trace_id,
                order_by=(
                    case((SpanRow.parent_span_id.is_(None), 0), else_=1),
                    SpanRow.start_time,
                    SpanRow.id,
                ),
            )
            .label("rank")
        )
        columns = [
            getattr(SpanRow, name)
            for name in (
                "trace_id",
                "name",
                "kind",
                "source",
                "start_time",
                "end_time",
                "duration_ms",
                "status",
                "deployment",
                "model",
                "version",
                "route",
                "key_id",
                "user_id",
                "session_id",
                "guard",
            )
        ]
        ranked = (
            select(
                *columns,
                func.substr(SpanRow.input, 1, PREVIEW_CHARS).label("input_preview"),
                func.substr(SpanRow.output, 1, PREVIEW_CHARS).label("output_preview"),
                rank,
            )
            .where(in_page)
            .subquery()
        )
        return session.execute(select(ranked).where(ranked.c.rank == 1)).all()

    # -- one trace -------------------------------------------------------------------

    def get(self, principal: Principal, trace_id: str) -> Trace:
        """Every span of a trace in tree order, and its feedback; 404 when unknown."""
        require(principal, Role.VIEWER)
        with self._store.read() as session:
            rows = (
                session.execute(
                    select(SpanRow)
                    .where(SpanRow.project_id == principal.project_id, SpanRow.trace_id == trace_id)
                    .order_by(SpanRow.start_time, SpanRow.id)
                )
                .scalars()
                .all()
            )
            if not rows:
                raise NotFound(f"trace '{trace_id}' not found; search with: modelcycle traces list")
            judged = (
                session.execute(
                    select(FeedbackRow)
                    .where(
                        FeedbackRow.project_id == principal.project_id,
                        FeedbackRow.trace_id == trace_id,
                    )
                    .order_by(FeedbackRow.created_at, FeedbackRow.id)
                )
                .scalars()
                .all()
            )
        return Trace(
            trace_id=trace_id,
            spans=tree_order(rows),
            feedback=[feedback_out(row) for row in judged],
        )

    def guard_findings(
        self, principal: Principal, trace_ids: Sequence[str]
    ) -> dict[str, list[dict[str, Any]]]:
        """The guard findings recorded on the spans of some traces (one indexed read).

        What a page listing a search's guarded traces shows without loading each
        trace: per trace id, the findings (detector, type, stage, action, score,
        where; never the text) of its spans the guard flagged, redacted or blocked.
        """
        require(principal, Role.VIEWER)
        found: dict[str, list[dict[str, Any]]] = {trace_id: [] for trace_id in trace_ids}
        if not found:
            return found
        with self._store.read() as session:
            rows = session.execute(
                select(SpanRow.trace_id, SpanRow.attributes)
                .where(
                    SpanRow.project_id == principal.project_id,
                    SpanRow.trace_id.in_(list(found)),
                    SpanRow.guard.in_(("flag", "redact", "block")),
                )
                .order_by(SpanRow.start_time, SpanRow.id)
            ).all()
        for row in rows:
            recorded = (row.attributes or {}).get(GUARD_FINDINGS)
            if isinstance(recorded, list):
                found[row.trace_id].extend(f for f in recorded if isinstance(f, dict))
        return found

    # -- rollups ---------------------------------------------------------------------

    def rollups(
        self, principal: Principal, query: RollupQuery, *, now: datetime | None = None
    ) -> Rollups:
        """Per-bucket series and totals of the project's model calls over a time range."""
        require(principal, Role.VIEWER)
        start, end = resolve_range(query, now)
        step = rollups.choose_step(start, end, query.step)
        with self._store.read() as session:
            return rollups.read(
                session, principal.project_id, query, start, end, step, self._rollups
            )


def span_out(row: SpanRow, depth: int = 0) -> Span:
    """The public shape of a span row."""
    values = {name: getattr(row, name) for name in Span.model_fields if name != "depth"}
    return Span(depth=depth, **values)


def tree_order(rows: Sequence[SpanRow]) -> list[Span]:
    """Spans depth-first, parents before children, siblings by start time.

    Spans whose parent is not in the trace (a gateway span under an application
    span that was never sent) are roots too.
    """
    present = {row.span_id for row in rows}
    children: dict[str | None, list[SpanRow]] = {}
    for row in rows:  # already ordered by start time
        parent = row.parent_span_id if row.parent_span_id in present else None
        children.setdefault(parent, []).append(row)
    out: list[Span] = []
    stack: list[tuple[SpanRow, int]] = [(row, 0) for row in reversed(children.get(None, []))]
    seen: set[str] = set()
    while stack:
        row, depth = stack.pop()
        if row.span_id in seen:  # a cycle in bad OTLP data must not loop forever
            continue
        seen.add(row.span_id)
        out.append(span_out(row, depth))
        stack.extend((child, depth + 1) for child in reversed(children.get(row.span_id, [])))
    # Spans only reachable through a cycle: keep them, flat, so none is hidden.
    out.extend(span_out(row) for row in rows if row.span_id not in seen)
    return out
