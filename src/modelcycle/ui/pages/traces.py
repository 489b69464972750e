"""Traces: a filterable explorer, one trace as a span tree, and feedback on it.

The explorer maps its GET form onto ``TraceFilter`` (one indexed, paginated
search); a filter the search refuses is a 400 page naming the field. A trace
page reads one trace (its spans and feedback) and posts feedback through the
same service the API uses, so the roles it needs are the service's.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from modelcycle.errors import InvalidInput, NotFound
from modelcycle.monitor.feedback import answering_span, trace_not_found
from modelcycle.monitor.queries import LLM_KINDS
from modelcycle.monitor.spans import GUARD_FINDINGS, GUARD_MS
from modelcycle.monitor.trace_schemas import (
    TRACE_ID_PATTERN,
    FeedbackCreate,
    GuardOutcome,
    RouteKind,
    Span,
    SpanStatus,
    Trace,
    TraceFilter,
)
from modelcycle.ui.auth import FormChecked, ViewerDep
from modelcycle.ui.render import renderer
from modelcycle.ui.routing import UiRoute
from modelcycle.ui.timerange import window

router = APIRouter(route_class=UiRoute)

PAGE_SIZES = (10, 20, 50)
"""Rows per page the explorer offers; 50 at most keeps every page fast."""

FILTER_FIELDS: dict[str, str] = {
    "deployment": "deployment",
    "model": "model",
    "version": "version",
    "status": "status",
    "route": "route",
    "user": "user_id",
    "session": "session_id",
    "key": "key_id",
    "text": "text",
    "guard": "guard",
    "min_score": "min_score",
    "max_score": "max_score",
}
"""Explorer form field -> ``TraceFilter`` field (short names keep links readable)."""

FEEDBACK_CHOICES: dict[str, tuple[str, dict[str, Any]]] = {
    "": ("any", {}),
    "with": ("with feedback", {"has_feedback": True}),
    "without": ("without feedback", {"has_feedback": False}),
    "up": ("thumbs up", {"thumbs": 1}),
    "down": ("thumbs down", {"thumbs": -1}),
}
"""The explorer's feedback choices and the filter each one sets."""

THUMBS = {"": None, "up": 1, "down": -1}
"""Feedback form: the thumbs radio buttons."""

GUARD_SEVERITY = {None: 0, "allow": 1, "flag": 2, "redact": 3, "block": 4}
DEPTH_CLASSES = 6
"""``depth-0`` .. ``depth-5`` exist in app.css; deeper spans share the last indent."""
PREVIEW = 90
_CONTENT = re.compile(r'"content"\s*:\s*"((?:[^"\\]|\\.)*)')


# -- the explorer --------------------------------------------------------------------


def _given(request: Request, name: str) -> str | None:
    value = request.query_params.get(name, "").strip()
    return value or None


def validation_message(exc: ValidationError, names: dict[str, str] | None = None) -> str:
    """A readable ``field: problem`` list, with the form's names for the fields."""
    back = {target: name for name, target in (names or {}).items()}
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(back.get(str(part), str(part)) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def page_size(raw: str | None) -> int:
    """Rows per page; 400 unless one of ``PAGE_SIZES``."""
    if raw is None:
        return PAGE_SIZES[-1]
    if not raw.isdigit() or int(raw) not in PAGE_SIZES:
        raise InvalidInput(f"limit must be one of {', '.join(map(str, PAGE_SIZES))}")
    return int(raw)


def trace_filter(request: Request) -> tuple[TraceFilter, dict[str, str]]:
    """The search the query string asks for, and the query string's filters (for links)."""
    chosen: dict[str, str] = {}
    values: dict[str, Any] = {}
    for name, target in FILTER_FIELDS.items():
        given = _given(request, name)
        if given is not None:
            chosen[name] = values[target] = given
    feedback = _given(request, "feedback") or ""
    if feedback not in FEEDBACK_CHOICES:
        raise InvalidInput(
            f"feedback must be one of: {', '.join(k for k in FEEDBACK_CHOICES if k)}"
        )
    values.update(FEEDBACK_CHOICES[feedback][1])
    start, end = _given(request, "start"), _given(request, "end")
    if start is None and end is None:
        chosen_range = window(_given(request, "range"))
        values.update(start=chosen_range.start, end=chosen_range.end)
        chosen["range"] = chosen_range.key
    else:
        values.update(start=start, end=end)
        chosen.update({k: v for k, v in (("start", start), ("end", end)) if v is not None})
    limit = page_size(_given(request, "limit"))
    for name, value in (("feedback", feedback), ("limit", str(limit))):
        if value:
            chosen[name] = value
    values.update(limit=limit, cursor=_given(request, "cursor"))
    try:
        return TraceFilter.model_validate(values), chosen
    except ValidationError as exc:
        raise InvalidInput(validation_message(exc, FILTER_FIELDS)) from None


def preview(text: str | None, size: int = PREVIEW) -> str:
    """A short, readable start of a trace's input: the last message's text when it is chat."""
    if not text:
        return ""
    readable = text
    try:
        data = json.loads(text)
    except ValueError:
        # Previews are cut, so their JSON rarely parses: take the first message's text.
        found = _CONTENT.findall(text)
        readable = found[-1] if found else text
    else:
        if isinstance(data, str):
            readable = data
        elif isinstance(data, list) and data and isinstance(data[-1], dict):
            readable = str(data[-1].get("content", text))
    readable = " ".join(readable.split())
    return readable if len(readable) <= size else readable[: size - 1] + "…"


@router.get("/traces")
def traces_explorer(request: Request, viewer: ViewerDep) -> Response:
    """Traces of the project, newest first, narrowed by the filter form."""
    query, chosen = trace_filter(request)
    services, principal = viewer.services, viewer.principal
    found = services.traces.search(principal, query)
    deployments = [d.name for d in services.deployments.list(principal, limit=500).items]
    return renderer(request).page(
        request,
        "traces.html",
        {
            "title": "Traces",
            "rows": [(row, preview(row.input)) for row in found.data],
            "next_cursor": found.next_cursor,
            "params": urlencode(chosen),
            "filters": chosen,
            "filtered": bool(set(chosen) - {"range", "limit"}),
            "deployments": deployments,
            "statuses": [s.value for s in SpanStatus],
            "routes": [r.value for r in RouteKind],
            "guards": [g.value for g in GuardOutcome],
            "feedback_choices": [(k, label) for k, (label, _) in FEEDBACK_CHOICES.items()],
            "page_sizes": PAGE_SIZES,
            "first_page": query.cursor is None,
        },
    )


# -- one trace -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpanView:
    """A span as the tree shows it: indent, timeline bar, readable texts, guard findings."""

    span: Span
    depth_class: str
    offset_pct: float
    width_pct: float
    input: str
    output: str
    findings: list[dict[str, Any]]
    guard_ms: float | None
    attributes: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TraceView:
    """What the summary of a trace shows, computed from its spans."""

    root: Span
    answer: Span | None
    start: datetime
    end: datetime
    duration_ms: float
    status: str
    errors: list[Span]
    input_tokens: int
    output_tokens: int
    cost: float | None
    fallback: bool
    guard: str | None
    metadata: dict[str, Any]


def readable(text: str | None) -> str:
    """Chat messages as ``role: content`` paragraphs; other JSON pretty-printed."""
    if not text:
        return ""
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if isinstance(data, str):
        return data
    if isinstance(data, list) and all(isinstance(m, dict) and "role" in m for m in data):
        return "\n\n".join(f"{m['role']}: {_content(m.get('content'))}" for m in data)
    return json.dumps(data, indent=2, ensure_ascii=False)


def _content(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _own(attributes: dict[str, Any] | None) -> dict[str, Any]:
    """The caller's attributes: the guard's keys are shown as findings instead."""
    return {k: v for k, v in (attributes or {}).items() if k not in (GUARD_FINDINGS, GUARD_MS)}


def span_views(spans: list[Span], start: datetime, total_ms: float) -> list[SpanView]:
    """Each span with its place on the trace's timeline (percent of the whole)."""
    views = []
    for span in spans:
        attributes = span.attributes or {}
        offset = (span.start_time - start).total_seconds() * 1000
        offset_pct = min(max(offset / total_ms * 100, 0.0), 99.5)
        width_pct = min(max(span.duration_ms / total_ms * 100, 0.5), 100.0 - offset_pct)
        findings = attributes.get(GUARD_FINDINGS)
        views.append(
            SpanView(
                span=span,
                depth_class=f"depth-{min(span.depth, DEPTH_CLASSES - 1)}",
                offset_pct=round(offset_pct, 2),
                width_pct=round(width_pct, 2),
                input=readable(span.input),
                output=readable(span.output),
                findings=[f for f in findings if isinstance(f, dict)]
                if isinstance(findings, list)
                else [],
                guard_ms=attributes.get(GUARD_MS),
                attributes=_own(span.attributes),
            )
        )
    return views


def trace_view(trace: Trace) -> TraceView:
    """The summary of a trace: its root, the model call that answered, and totals."""
    spans = trace.spans
    root = spans[0]
    calls = [span for span in spans if span.kind in LLM_KINDS]
    start = min(span.start_time for span in spans)
    end = max(span.end_time for span in spans)
    costs = [span.cost for span in calls if span.cost is not None]
    errors = [span for span in spans if span.status == SpanStatus.ERROR]
    guard = max((span.guard for span in spans), key=lambda g: GUARD_SEVERITY.get(g, 0))
    return TraceView(
        root=root,
        answer=answering_span(spans, None),
        start=start,
        end=end,
        duration_ms=max((end - start).total_seconds() * 1000, root.duration_ms),
        status=SpanStatus.ERROR.value if errors else root.status,
        errors=errors,
        input_tokens=sum(span.input_tokens for span in calls),
        output_tokens=sum(span.output_tokens for span in calls),
        cost=sum(costs) if costs else None,
        fallback=any(span.route == RouteKind.FALLBACK for span in calls),
        guard=guard,
        metadata=_own(root.attributes),
    )


def checked_trace_id(trace_id: str) -> str:
    """404 for an id no trace can have (the same page as for an unknown trace)."""
    if re.fullmatch(TRACE_ID_PATTERN, trace_id) is None:
        raise trace_not_found(trace_id[:40])
    return trace_id


@router.get("/traces/{trace_id}")
def trace_page(
    request: Request, viewer: ViewerDep, trace_id: str, notice: str | None = None
) -> Response:
    """One trace: summary, span tree with timings and texts, guard findings, feedback."""
    trace = viewer.services.traces.get(viewer.principal, checked_trace_id(trace_id))
    view = trace_view(trace)
    total_ms = max((view.end - view.start).total_seconds() * 1000, 0.001)
    return renderer(request).page(
        request,
        "trace.html",
        {
            "title": f"Trace {trace.trace_id}",
            "trace": trace,
            "view": view,
            "spans": span_views(trace.spans, view.start, total_ms),
            "project": viewer.principal.project,
            "notice": notice,
        },
    )


def feedback_body(
    score: str, thumbs: str, label: str, comment: str, correction: str
) -> FeedbackCreate:
    """The feedback form as a ``FeedbackCreate``; 400 naming the field when it is wrong."""
    if thumbs not in THUMBS:
        raise InvalidInput("thumbs must be up, down or empty")
    number: float | None = None
    if score.strip():
        try:
            number = float(score)
        except ValueError:
            raise InvalidInput("score: must be a number from 0 to 1") from None
        if not math.isfinite(number):
            raise InvalidInput("score: must be a number from 0 to 1")
    values = {
        "score": number,
        "thumbs": THUMBS[thumbs],
        "label": label.strip() or None,
        "comment": comment.strip() or None,
        "correction": correction if correction.strip() else None,
    }
    try:
        return FeedbackCreate.model_validate(values)
    except ValidationError as exc:
        raise InvalidInput(validation_message(exc)) from None


FormText = Annotated[str, Form(max_length=70_000)]


@router.post("/traces/{trace_id}/feedback", dependencies=[FormChecked])
def add_feedback(
    viewer: ViewerDep,
    trace_id: str,
    score: FormText = "",
    thumbs: FormText = "",
    label: FormText = "",
    comment: FormText = "",
    correction: FormText = "",
) -> Response:
    """Store feedback on the trace as the signed-in key, then show the trace again."""
    body = feedback_body(score, thumbs, label, comment, correction)
    trace_id = checked_trace_id(trace_id)
    services = viewer.services
    try:
        services.feedback.add(viewer.principal, trace_id, body)
    except NotFound:
        # A trace can still be queued in this process's recorder: write it, then retry.
        services.recorder.flush(timeout_s=5.0)
        services.feedback.add(viewer.principal, trace_id, body)
    notice = quote("Feedback saved.")
    return RedirectResponse(f"/traces/{trace_id}?notice={notice}#feedback", 303)
