"""Evaluations: the project's runs, starting one, a run's report, cancelling a run.

The run page reuses the evaluation report (``modelcycle.reports.eval_report``):
its distributions, per-sample differences and regression flags, its number
formats and its SVG charts (which escape every label themselves), laid out in
the dashboard's own tables so that the page keeps the dashboard's CSP and style.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup
from pydantic import ValidationError

from modelcycle.access import require
from modelcycle.errors import InvalidInput, ModelcycleError
from modelcycle.evaluate.runner import needs_baseline
from modelcycle.evaluate.schemas import EvalResult, EvalRunCreate, ScorerSpec
from modelcycle.evaluate.scorers import ScorerRegistry
from modelcycle.evaluate.statistics import format_number
from modelcycle.reports.eval_charts import Point, interval_plot
from modelcycle.reports.eval_html_parts import (
    difference_text,
    duration_text,
    interval_text,
    p_text,
    value_text,
)
from modelcycle.reports.eval_report import (
    FLAGS,
    Answer,
    Differences,
    Distribution,
    EvalReport,
    SampleView,
    build_eval_report,
)
from modelcycle.reports.eval_report_html import (
    difference_caption,
    difference_svgs,
    distribution_svg,
    render_eval_report_html,
)
from modelcycle.store.pagination import MAX_LIMIT
from modelcycle.types import Role
from modelcycle.ui.auth import FormChecked, Viewer, ViewerDep
from modelcycle.ui.render import renderer
from modelcycle.ui.routing import UiRoute

router = APIRouter(route_class=UiRoute)

RUNS_PER_PAGE = 25
SAMPLES_PER_PAGE = 20
CHOICES_SHOWN = 100
"""Datasets and deployments the start form lists (the first, oldest first)."""
ACTIVE = ("queued", "running")
RUN_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
MAX_INT32 = 2**31 - 1
SPLIT = re.compile(r"[\s,]+")
SCORER_LINE = re.compile(r"^([A-Za-z0-9_.\-]+)\s*:?\s*(.*)$")
FORMATS = {
    "value_text": value_text,
    "interval_text": interval_text,
    "difference_text": difference_text,
    "p_text": p_text,
    "format_number": format_number,
    "duration_text": duration_text,
}
"""The report's number formats, for the templates: one way of writing a score everywhere."""

RunId = Annotated[int, Path(ge=1, le=MAX_INT32, description="Evaluation run id.")]
Status = Literal["queued", "running", "succeeded", "failed", "cancelled"]
Show = Literal["all", "regression", "improvement", "error"]
Notice = Annotated[str | None, Query(max_length=300)]


def _notice_url(path: str, notice: str) -> str:
    return f"{path}?{urlencode({'notice': notice})}"


# -- the list and the start form ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScorerChoice:
    """A scorer the start form offers as a checkbox (it builds without options)."""

    name: str
    kind: str
    needs_reference: bool
    higher_is_better: bool
    pairwise: bool


def scorer_choices(registry: ScorerRegistry) -> tuple[list[ScorerChoice], list[str]]:
    """Scorers usable as they are, and the names of those that need options (or an extra)."""
    choices: list[ScorerChoice] = []
    with_options: list[str] = []
    for name in registry.names():
        try:
            scorer = registry.build(name, {})
        except ModelcycleError:  # a required option is missing, or an optional dependency
            with_options.append(name)
            continue
        choices.append(
            ScorerChoice(
                name=name,
                kind=scorer.kind,
                needs_reference=scorer.needs_reference,
                higher_is_better=scorer.higher_is_better,
                pairwise=needs_baseline(scorer),
            )
        )
    return choices, with_options


def _start_form(viewer: Viewer) -> dict[str, Any]:
    """What the start form offers: datasets, deployments and scorers."""
    services, principal = viewer.services, viewer.principal
    choices, with_options = scorer_choices(services.scorers)
    return {
        "datasets": services.datasets.list(principal, limit=CHOICES_SHOWN).items,
        "deployments": services.deployments.list(principal, limit=CHOICES_SHOWN).items,
        "reference_scorers": [c for c in choices if c.needs_reference],
        "free_scorers": [c for c in choices if not c.needs_reference],
        "option_scorers": with_options,
    }


@router.get("/evals")
def runs_page(
    request: Request,
    viewer: ViewerDep,
    status: Annotated[Status | None, Query()] = None,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    notice: Notice = None,
) -> Response:
    """Evaluation runs, newest first, and (for maintainers) the form that starts one."""
    principal = viewer.principal
    page = viewer.services.evals.list(principal, limit=RUNS_PER_PAGE, cursor=cursor, status=status)
    maintainer = principal.role.allows(Role.MAINTAINER)
    context: dict[str, Any] = {
        "title": "Evaluations",
        "runs": page.items,
        "next_cursor": page.next_cursor,
        "params": urlencode({"status": status} if status else {}),
        "status": status,
        "statuses": RUN_STATUSES,
        "live": any(run.status in ACTIVE for run in page.items),
        "notice": notice,
        "form": _start_form(viewer) if maintainer else None,
    }
    return renderer(request).page(request, "evals.html", context)


# -- starting a run -------------------------------------------------------------------------


def dataset_reference(dataset: str, version: str) -> str:
    """``NAME`` (its latest version) or ``NAME@N`` from the form's two fields."""
    name, version = dataset.strip(), version.strip()
    if not name:
        raise InvalidInput("choose a dataset", param="dataset")
    if not version:
        return name
    if "@" in name:
        raise InvalidInput(
            "give the version in the dataset (NAME@N) or in the version field, not both",
            param="version",
        )
    if not version.isdigit() or int(version) < 1:
        raise InvalidInput(
            f"version must be a whole number from 1, not '{version}'", param="version"
        )
    return f"{name}@{int(version)}"


def target_list(chosen: list[str], others: str) -> list[str]:
    """The ticked deployments, then the typed targets, each once, in that order."""
    found = [t.strip() for t in chosen] + SPLIT.split(others)
    targets = list(dict.fromkeys(t for t in found if t))
    if not targets:
        raise InvalidInput(
            "choose at least one target: a deployment, or a version as NAME@VERSION",
            param="targets",
        )
    return targets


def scorer_line(line: str) -> ScorerSpec:
    """``NAME`` or ``NAME {json options}``, e.g. ``regex {"pattern": "^[0-9]+$"}``."""
    usage = 'write NAME {"option": value}, e.g. regex {"pattern": "^[0-9]+$"}'
    match = SCORER_LINE.match(line)
    if match is None:
        raise InvalidInput(
            f"scorer line '{line[:80]}' has no scorer name; {usage}", param="scorers"
        )
    name, rest = match.groups()
    options: object = {}
    if rest:
        try:
            options = json.loads(rest)
        except json.JSONDecodeError as exc:
            raise InvalidInput(
                f"scorer {name}: the options are not valid JSON ({exc.msg}); {usage}",
                param="scorers",
            ) from None
    if not isinstance(options, dict):
        raise InvalidInput(f"scorer {name}: the options must be a JSON object; {usage}")
    return ScorerSpec(name=name, options=options)


def scorer_specs(chosen: list[str], lines: str) -> list[ScorerSpec]:
    """The ticked scorers, then those written with options (which win over a tick)."""
    written = [scorer_line(line.strip()) for line in lines.splitlines() if line.strip()]
    named = {spec.name for spec in written}
    ticked = [ScorerSpec(name=name) for name in dict.fromkeys(chosen) if name not in named]
    specs = ticked + written
    if not specs:
        raise InvalidInput("choose at least one scorer", param="scorers")
    return specs


def sample_limit(text: str) -> int | None:
    """The form's "only the first N samples" (empty: all)."""
    text = text.strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise InvalidInput(f"the sample limit must be a whole number from 1, not '{text}'")
    return int(text)


def run_request(**fields: Any) -> EvalRunCreate:
    """The API's request body from the parsed form; its validation errors as a 400."""
    try:
        return EvalRunCreate(**fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error.get("loc", ()))
        raise InvalidInput(f"{where}: {error.get('msg', 'invalid')}", param=where) from None


@router.post("/evals", dependencies=[FormChecked])
def start_run(
    viewer: ViewerDep,
    dataset: Annotated[str, Form(max_length=100)],
    version: Annotated[str, Form(max_length=12)] = "",
    targets: Annotated[list[str] | None, Form()] = None,
    other_targets: Annotated[str, Form(max_length=2000)] = "",
    baseline: Annotated[str, Form(max_length=200)] = "",
    scorers: Annotated[list[str] | None, Form()] = None,
    scorer_options: Annotated[str, Form(max_length=20_000)] = "",
    gates: Annotated[str, Form(max_length=8_000)] = "",
    name: Annotated[str, Form(max_length=100)] = "",
    limit: Annotated[str, Form(max_length=12)] = "",
) -> Response:
    """Start a run from the form (maintainer+), then show it."""
    principal = viewer.principal
    require(principal, Role.MAINTAINER)  # before parsing: a viewer learns 403, not a typo
    body = run_request(
        dataset=dataset_reference(dataset, version),
        targets=target_list(targets or [], other_targets),
        scorers=scorer_specs(scorers or [], scorer_options),
        baseline=baseline.strip() or None,
        gates=[gate.strip() for gate in gates.splitlines() if gate.strip()],
        name=name.strip() or None,
        limit=sample_limit(limit),
    )
    run = viewer.services.evals.create(principal, body)
    return RedirectResponse(
        _notice_url(f"/evals/{run.id}", f"Run {run.id} queued on {run.dataset}."), 303
    )


# -- one run --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Figure:
    """A chart (SVG escaped by ``eval_charts``) with its caption."""

    chart: Markup
    caption: str


@dataclass(frozen=True, slots=True)
class SampleRow:
    """One sample and each target's answer, in the order of the run's targets."""

    sample: SampleView
    answers: list[Answer | None]


def all_results(viewer: Viewer, run_id: int) -> list[EvalResult]:
    """Every stored result of the run, page by page (the distributions need all of them)."""
    found: list[EvalResult] = []
    cursor: str | None = None
    while True:
        page = viewer.services.evals.results(
            viewer.principal, run_id, limit=MAX_LIMIT, cursor=cursor
        )
        found.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return found


def trusted_svg(chart: str) -> Markup:
    """A chart of ``reports.eval_charts``: it escapes every label it draws (see its docstring)."""
    return Markup(chart)  # noqa: S704 - eval_charts passes all text through html.escape


def interval_figures(report: EvalReport) -> list[Figure]:
    """Per scorer: each target's mean (pass rate) with its 95% interval."""
    summary = report.run.summary
    aggregates = {
        (t.target, a.scorer): a for t in (summary.targets if summary else []) for a in t.aggregates
    }
    figures = []
    for scorer in report.scorers:
        dists = [d for d in report.distributions if d.scorer == scorer]
        if not dists:
            continue
        points = []
        for dist in dists:
            agg = aggregates.get((dist.target, scorer))
            found = (agg.estimate, agg.low, agg.high) if agg else (dist.mean, None, None)
            points.append(Point(dist.target, *found))
        top = 1.0
        if dists[0].kind == "measure":
            ends = [v for p in points for v in (p.high, p.estimate) if v is not None]
            top = max(ends, default=1.0) or 1.0
        label = f"Mean {scorer} per target with 95% intervals"
        figures.append(Figure(trusted_svg(interval_plot(points, 0.0, top, label)), label))
    return figures


def distribution_figure(dist: Distribution) -> Figure:
    """How one target's scores on one scorer spread: pass/fail, or a histogram."""
    caption = f"{dist.scorer} scores of {dist.target}: n={dist.n}, "
    caption += f"mean {value_text(dist.kind, dist.mean)}"
    if dist.errors:
        caption += f", {dist.errors} errors"
    return Figure(trusted_svg(distribution_svg(dist)), caption)


def difference_figure(report: EvalReport, diff: Differences) -> Figure:
    """Wins, ties and losses of a candidate, and the histogram of its per-sample differences."""
    comparisons = report.run.summary.comparisons if report.run.summary else []
    found = next(
        (c for c in comparisons if (c.candidate, c.scorer) == (diff.candidate, diff.scorer)), None
    )
    bar, hist = difference_svgs(diff, found)
    return Figure(trusted_svg(bar + (hist or "")), difference_caption(diff))


def report_context(report: EvalReport, show: str, page: int) -> dict[str, Any]:
    """The report's sections, and one page of its samples filtered by ``show``."""
    samples = [s for s in report.samples if show == "all" or show in s.flags]
    pages = max(1, math.ceil(len(samples) / SAMPLES_PER_PAGE))
    if page > pages:
        raise InvalidInput(f"page {page} is past the last page ({pages})", param="page")
    targets = list(
        dict.fromkeys([*report.run.targets, *(a.target for s in report.samples for a in s.answers)])
    )
    start = (page - 1) * SAMPLES_PER_PAGE
    rows = []
    for sample in samples[start : start + SAMPLES_PER_PAGE]:
        by_target = {answer.target: answer for answer in sample.answers}
        rows.append(SampleRow(sample, [by_target.get(target) for target in targets]))
    return {
        "report": report,
        "interval_figures": interval_figures(report),
        "distribution_figures": [distribution_figure(d) for d in report.distributions],
        "difference_figures": [difference_figure(report, d) for d in report.differences if d.n],
        "sample_targets": targets,
        "sample_rows": rows,
        "show": show,
        "shows": [("all", "All", report.samples_total)]
        + [(flag, f"{flag.capitalize()}s", report.flag_counts.get(flag, 0)) for flag in FLAGS],
        "page": page,
        "pages": pages,
        "shown_total": len(samples),
    }


@router.get("/evals/{run_id}")
def run_page(
    request: Request,
    viewer: ViewerDep,
    run_id: RunId,
    show: Annotated[Show, Query()] = "all",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    notice: Notice = None,
) -> Response:
    """A run: live progress while it runs, then gates, aggregates, comparisons and samples."""
    run = viewer.services.evals.get(viewer.principal, run_id)
    active = run.status in ACTIVE
    context: dict[str, Any] = {
        "title": f"Evaluation run {run.id}",
        "run": run,
        "active": active,
        "notice": notice,
        **FORMATS,
    }
    # The live region's poll only swaps the status box: it needs no report.
    polled = request.headers.get("x-requested-with") == "fetch"
    if not active and not polled:
        results = all_results(viewer, run.id)
        report = build_eval_report(run, results, max_samples=max(len(results), 1))
        context.update(report_context(report, show, page))
    return renderer(request).page(request, "evals_run.html", context)


@router.get("/evals/{run_id}/report")
def report_file(viewer: ViewerDep, run_id: RunId) -> Response:
    """The run's standalone HTML report, to save and share (the API's, for a session)."""
    run = viewer.services.evals.get(viewer.principal, run_id)
    report = build_eval_report(run, all_results(viewer, run.id))
    return Response(
        render_eval_report_html(report),
        media_type="text/html; charset=utf-8",
        headers={
            # The report's own policy: its inline style, nothing loaded, nothing run.
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": f'attachment; filename="eval-{run.id}.html"',
        },
    )


# -- cancelling -----------------------------------------------------------------------------


@router.get("/evals/{run_id}/confirm-cancel")
def confirm_cancel(request: Request, viewer: ViewerDep, run_id: RunId) -> Response:
    """What cancelling the run does, and the button that does it."""
    run = viewer.services.evals.get(viewer.principal, run_id)
    context = {
        "title": f"Cancel evaluation run {run.id}",
        "run": run,
        "active": run.status in ACTIVE,
    }
    return renderer(request).page(request, "evals_cancel.html", context)


@router.post("/evals/{run_id}/cancel", dependencies=[FormChecked])
def cancel_run(viewer: ViewerDep, run_id: RunId) -> Response:
    """Cancel a queued or running run (maintainer+); what it stored stays."""
    run = viewer.services.evals.cancel(viewer.principal, run_id)
    notice = f"Run {run.id} cancelled; the answers it stored are kept."
    return RedirectResponse(_notice_url(f"/evals/{run.id}", notice), 303)
