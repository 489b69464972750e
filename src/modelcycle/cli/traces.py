"""``modelcycle traces`` and ``modelcycle feedback``: search and read traces, rate them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from modelcycle.cli.output import (
    ApiKeyOption,
    JsonOption,
    ServerOption,
    emit,
    fail,
    ok,
    record,
    table,
)
from modelcycle.client import Client
from modelcycle.client.transport import DEFAULT_SERVER
from modelcycle.errors import InvalidInput
from modelcycle.monitor.trace_schemas import (
    Feedback,
    GroupBy,
    Rollups,
    RollupSeries,
    RollupStats,
    Trace,
    TracePage,
)

app = typer.Typer(
    help="Traces of every request: list, show, stats, retention.", no_args_is_help=True
)
feedback_app = typer.Typer(
    help="Feedback on traces: add (score, thumbs, label, comment, correction), list.",
    no_args_is_help=True,
)

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}

SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since", help="How far back, e.g. 15m, 1h, 7d (default: 24h, or since --start)."
    ),
]
StartOption = Annotated[
    datetime | None, typer.Option("--start", help="Start time (UTC unless an offset is given).")
]
EndOption = Annotated[datetime | None, typer.Option("--end", help="End time (default now).")]
TraceIdArgument = Annotated[str, typer.Argument(help="Trace id.")]


def parse_duration(value: str, option: str) -> timedelta:
    """``90s``, ``15m``, ``1h``, ``7d``, ``2w`` as a ``timedelta``."""
    found = _DURATION.match(value.strip())
    if found is None or float(found.group(1)) <= 0:
        raise InvalidInput(f"{option} {value!r} is not a duration like 30s, 15m, 1h, 7d or 2w")
    return timedelta(seconds=float(found.group(1)) * _UNITS[found.group(2)])


def time_range(
    since: str | None, start: datetime | None, end: datetime | None
) -> tuple[datetime | None, datetime | None]:
    """``--since`` turned into a start time (before ``--end`` or now)."""
    if since is None:
        return start, end
    if start is not None:
        raise InvalidInput("give --since or --start, not both")
    return (end or datetime.now(UTC)) - parse_duration(since, "--since"), end


def _thumbs(value: str | None) -> Literal[1, -1] | None:
    if value is None:
        return None
    if value not in {"up", "down"}:
        fail(f"--thumbs {value!r} is not one of: up, down")
    return 1 if value == "up" else -1


def _version(model: str | None, version: int | None) -> str | None:
    return f"{model}@{version}" if model is not None and version is not None else model


def _ms(value: float | None) -> str | None:
    return None if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _score(value: float | None) -> str | None:
    return None if value is None else f"{value:.2f}"


def _one_line(text: str | None, limit: int = 60) -> str | None:
    if text is None:
        return None
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@app.command("list")
def list_traces(
    since: SinceOption = None,
    start: StartOption = None,
    end: EndOption = None,
    deployment: Annotated[str | None, typer.Option(help="Only this deployment.")] = None,
    model: Annotated[str | None, typer.Option(help="Only this registry model.")] = None,
    version: Annotated[int | None, typer.Option(help="Only this model version.")] = None,
    status: Annotated[str | None, typer.Option(help="ok, error or cancelled.")] = None,
    route: Annotated[str | None, typer.Option(help="primary, canary, fallback, shadow.")] = None,
    user: Annotated[str | None, typer.Option(help="Only this end user.")] = None,
    session: Annotated[str | None, typer.Option(help="Only this session.")] = None,
    key_id: Annotated[int | None, typer.Option(help="Only requests made with this key.")] = None,
    text: Annotated[
        str | None, typer.Option(help="Contained in the input or output (any case).")
    ] = None,
    guard: Annotated[str | None, typer.Option(help="allow, flag, redact or block.")] = None,
    has_feedback: Annotated[
        bool | None,
        typer.Option("--has-feedback/--no-feedback", help="Only traces with (or without) it."),
    ] = None,
    min_score: Annotated[float | None, typer.Option(help="Feedback score at least.")] = None,
    max_score: Annotated[float | None, typer.Option(help="Feedback score at most.")] = None,
    thumbs: Annotated[
        str | None, typer.Option(help="Only traces with this thumbs feedback: up or down.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="Traces per page.")] = 50,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page.")] = None,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """List traces, newest first; the footer gives the --cursor of the next page."""
    start, end = time_range(since, start, end)
    with Client(server, api_key) as client:
        page = client.traces.list(
            start=start,
            end=end,
            deployment=deployment,
            model=model,
            version=version,
            status=status,
            route=route,
            user_id=user,
            session_id=session,
            key_id=key_id,
            text=text,
            guard=guard,
            has_feedback=has_feedback,
            min_score=min_score,
            max_score=max_score,
            thumbs=_thumbs(thumbs),
            limit=limit,
            cursor=cursor,
        )
    emit(page, as_json, lambda out: _print_page(out, page))


def _unbroken_first_column(out: Table, width: int) -> Table:
    """Keep ids whole (they are copied into other commands); other columns fold instead."""
    out.columns[0].no_wrap = True
    out.columns[0].min_width = width
    return out


def _print_page(out: Console, page: TracePage) -> None:
    columns = ("trace", "time", "deployment", "status", "ms", "feedback", "input")
    rows = [
        (
            t.trace_id,
            t.start_time.astimezone(UTC).strftime("%m-%d %H:%M:%S"),
            f"{t.deployment} ({_version(t.model, t.version)})" if t.model else t.deployment,
            t.status,
            _ms(t.duration_ms),
            f"{t.feedback_count} ({_score(t.feedback_score)})" if t.feedback_count else None,
            _one_line(t.input),
        )
        for t in page.data
    ]
    width = max((len(t.trace_id) for t in page.data), default=5)
    out.print(_unbroken_first_column(table(columns, rows), width))
    if page.next_cursor:
        out.print(Text(f"more: --cursor {page.next_cursor}"))


@app.command("show")
def show(
    trace_id: TraceIdArgument,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a trace: its spans as a tree, the root's input and output, and its feedback."""
    with Client(server, api_key) as client:
        trace = client.traces.get(trace_id)
    emit(trace, as_json, lambda out: _print_trace(out, trace))


def _print_trace(out: Console, trace: Trace) -> None:
    columns = ("span", "kind", "status", "ms", "ttft ms", "version", "tokens", "cost")
    rows = [
        (
            "  " * span.depth + span.name,
            span.kind,
            span.status,
            _ms(span.duration_ms),
            _ms(span.ttft_ms),
            _version(span.model, span.version),
            f"{span.input_tokens}/{span.output_tokens}",
            span.cost,
        )
        for span in trace.spans
    ]
    width = min(40, max(2 * span.depth + len(span.name) for span in trace.spans))
    out.print(_unbroken_first_column(table(columns, rows, title=f"trace {trace.trace_id}"), width))
    for span in trace.spans:
        if span.error_message:
            out.print(Text(f"error in {span.name}: {span.error_message}"))
    root = trace.spans[0]
    details = {
        "deployment": root.deployment,
        "route": root.route,
        "user": root.user_id,
        "session": root.session_id,
        "guard": root.guard,
        "input": root.input,
        "output": root.output,
        "metadata": root.attributes,
    }
    out.print(record({k: v for k, v in details.items() if v is not None}))
    if trace.feedback:
        out.print(_feedback_table(trace.feedback))


def _feedback_table(items: list[Feedback]) -> Table:
    columns = ("id", "at", "version", "score", "thumbs", "label", "comment", "correction", "by")
    rows = [
        (
            f.id,
            f.created_at,
            _version(f.model, f.version),
            _score(f.score),
            {1: "up", -1: "down"}.get(f.thumbs or 0),
            f.label,
            _one_line(f.comment),
            _one_line(f.correction),
            f.user_id or f.actor,
        )
        for f in items
    ]
    return table(columns, rows, title="feedback")


@app.command("stats")
def stats(
    since: SinceOption = None,
    start: StartOption = None,
    end: EndOption = None,
    by: Annotated[
        str, typer.Option(help="Group by: deployment, version, route or none.")
    ] = "version",
    deployment: Annotated[str | None, typer.Option(help="Only this deployment.")] = None,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Requests, error rate, latency percentiles, tokens, cost and feedback per group."""
    start, end = time_range(since, start, end)
    if by not in {g.value for g in GroupBy}:
        fail(f"--by {by!r} is not one of: {', '.join(g.value for g in GroupBy)}")
    with Client(server, api_key) as client:
        result = client.traces.rollups(start=start, end=end, group_by=by, deployment=deployment)
    emit(result, as_json, lambda out: _print_stats(out, result))


def _group_label(series: RollupSeries) -> str:
    parts = [series.deployment, _version(series.model, series.version), series.route]
    return " ".join(part for part in parts if part) or "-"


def _print_stats(out: Console, result: Rollups) -> None:
    columns = (
        "group",
        "requests",
        "errors",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "ttft p50",
        "cost",
        "feedback",
    )

    def row(label: str, s: RollupStats) -> tuple[object, ...]:
        rate = None if s.error_rate is None else f"{s.errors} ({s.error_rate:.1%})"
        fb = f"{s.feedback_count} ({_score(s.feedback_score)})" if s.feedback_count else None
        return (
            label,
            s.requests,
            rate,
            _ms(s.latency_p50_ms),
            _ms(s.latency_p95_ms),
            _ms(s.latency_p99_ms),
            _ms(s.ttft_p50_ms),
            f"{s.cost:.4f}",
            fb,
        )

    rows = [row(_group_label(g), g.summary) for g in result.series]
    rows.append(row("all", result.summary))
    width = max(len(str(r[0])) for r in rows)
    span = f"{result.start:%Y-%m-%d %H:%M} .. {result.end:%Y-%m-%d %H:%M} UTC"
    out.print(_unbroken_first_column(table(columns, rows, title=f"model calls {span}"), width))


@app.command("retention")
def retention(
    days: Annotated[
        int | None, typer.Option("--days", min=1, max=36_500, help="Keep traces N days.")
    ] = None,
    forever: Annotated[bool, typer.Option("--forever", help="Keep traces forever.")] = False,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the project's trace retention, or set it with --days N or --forever (admins)."""
    if days is not None and forever:
        fail("give --days or --forever, not both")
    with Client(server, api_key) as client:
        if days is None and not forever:
            policy = client.traces.policy()
        else:
            policy = client.traces.set_policy(retention_days=days)
    kept = f"{policy.retention_days} days" if policy.retention_days else "forever"
    emit(policy, as_json, lambda out: out.print(Text(f"traces are kept {kept}")))


@feedback_app.command("add")
def add_feedback(
    trace_id: TraceIdArgument,
    score: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="From 0 (bad) to 1 (good).")
    ] = None,
    up: Annotated[bool, typer.Option("--up", help="Thumbs up (score 1).")] = False,
    down: Annotated[bool, typer.Option("--down", help="Thumbs down (score 0).")] = False,
    label: Annotated[str | None, typer.Option(help="A category, e.g. wrong-answer.")] = None,
    comment: Annotated[str | None, typer.Option(help="Free text.")] = None,
    correction: Annotated[
        str | None, typer.Option(help="The answer the model should have given.")
    ] = None,
    span: Annotated[str | None, typer.Option(help="The span judged (default: the answer).")] = None,
    user: Annotated[str | None, typer.Option(help="Who judged (your user id).")] = None,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Attach feedback to a trace; it is linked to the model version that answered."""
    if sum((score is not None, up, down)) > 1:
        fail("give one of --score, --up or --down")
    thumbs: Literal[1, -1] | None = 1 if up else -1 if down else None
    with Client(server, api_key) as client:
        created = client.traces.add_feedback(
            trace_id,
            score=score,
            thumbs=thumbs,
            label=label,
            comment=comment,
            correction=correction,
            span_id=span,
            user_id=user,
        )
    version = _version(created.model, created.version) or "no model call"
    emit(
        created, as_json, lambda _out: ok(f"feedback {created.id} added to {trace_id} ({version})")
    )


@feedback_app.command("list")
def list_feedback(
    trace_id: TraceIdArgument,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the feedback of a trace, oldest first."""
    with Client(server, api_key) as client:
        items = client.traces.feedback(trace_id)
    emit(items, as_json, lambda out: out.print(_feedback_table(items)))
