"""The standalone HTML page of an evaluation report.

One file: the stylesheet is embedded, the charts are inline SVG drawn in
Python, and nothing is loaded (the page's Content-Security-Policy forbids it).
The per-sample filter is pure CSS (radio buttons), so the page runs no script.
All recorded text (names, inputs, outputs, reasons) goes through ``html.escape``.
"""

from __future__ import annotations

from collections.abc import Sequence

from modelcycle.evaluate.schemas import Aggregate, Comparison, EvalResult, EvalRun, RunSummary
from modelcycle.evaluate.statistics import format_number
from modelcycle.reports.document import when
from modelcycle.reports.eval_charts import Bins, Part, Point, histogram, interval_plot, stacked_bar
from modelcycle.reports.eval_html_parts import (
    EVAL_STYLE,
    cells,
    difference_text,
    duration_text,
    empty,
    esc,
    interval_text,
    p_text,
    table,
    value_text,
)
from modelcycle.reports.eval_report import (
    MAX_REPORT_SAMPLES,
    Differences,
    Distribution,
    EvalReport,
    build_eval_report,
)
from modelcycle.reports.eval_report_samples import samples_section


def render_eval_html(
    run: EvalRun, results: Sequence[EvalResult], *, max_samples: int = MAX_REPORT_SAMPLES
) -> str:
    """The report of ``run`` from all its ``results``, as one self-contained HTML page."""
    return render_eval_report_html(build_eval_report(run, results, max_samples=max_samples))


def render_eval_report_html(report: EvalReport) -> str:
    """The report as one self-contained HTML page."""
    run = report.run
    title = f"Evaluation report: {run.name or f'run {run.id}'}"
    sections = [
        f"<h1>{esc(title)}</h1>",
        _header(report),
        _gates(run),
        _results(run.summary),
        _distributions(report),
        _comparisons(report),
        _categories(run.summary),
        samples_section(report),
    ]
    body = "\n".join(section for section in sections if section)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">\n"
        f"<title>{esc(title)}</title>\n<style>{EVAL_STYLE}</style>\n</head>\n<body>\n"
        f"{body}\n</body>\n</html>\n"
    )


def _header(report: EvalReport) -> str:
    run = report.run
    summary = run.summary
    gates = {None: "no gates", True: "passed", False: "FAILED"}[run.gates_passed]
    pairs = [
        ("Run", str(run.id)),
        ("Name", run.name or "-"),
        ("Kind", run.kind),
        ("Status", run.status),
        ("Dataset", summary.dataset if summary else run.dataset),
        ("Dataset hash", summary.dataset_hash if summary else "-"),
        ("Samples", str(summary.samples if summary else report.samples_total)),
        ("Targets", ", ".join(run.targets)),
        ("Baseline", report.baseline or "-"),
        ("Scorers", ", ".join(report.scorers) or "-"),
        ("Gates", gates),
        ("Created by", run.created_by),
        ("Created", when(run.created_at)),
        ("Finished", when(run.finished_at)),
        ("Duration", duration_text(run)),
        ("Report generated", when(report.generated_at)),
    ]
    if run.error:
        pairs.append(("Error", run.error))
    rows = "".join(f'<tr><th scope="row">{esc(k)}</th><td>{esc(v)}</td></tr>' for k, v in pairs)
    note = ""
    if summary is None:
        note = empty(
            f"The run is {run.status} and has no summary yet: aggregates, comparisons and gates "
            "appear once it finishes. Distributions and samples below come from the results so far."
        )
    return f'<div class="scroll"><table class="fields"><tbody>{rows}</tbody></table></div>{note}'


def _gates(run: EvalRun) -> str:
    verdicts = run.summary.gates if run.summary is not None else []
    if not verdicts:
        return "<h2>Gates</h2>" + empty("No gates." if not run.gates else "Not evaluated yet.")
    rows = [
        f"<tr><td>{esc(v.gate)}</td><td>{esc(v.target)}</td>"
        f'<td class="{"pass" if v.passed else "fail"}">{"PASS" if v.passed else "FAIL"}</td>'
        f"<td>{esc(format_number(v.value) if v.value is not None else '-')}</td>"
        f"<td>{esc(p_text(v.p_value))}</td><td>{esc(v.reason)}</td></tr>"
        for v in verdicts
    ]
    return "<h2>Gates</h2>" + table(
        ("Gate", "Target", "Verdict", "Value", "p-value", "Reason"), rows
    )


def _aggregatecells(agg: Aggregate) -> tuple[str, str]:
    return value_text(agg.kind, agg.estimate), interval_text(agg.kind, agg.low, agg.high)


def _results(summary: RunSummary | None) -> str:
    if summary is None:
        return ""
    rows = []
    for target in summary.targets:
        for agg in target.aggregates:
            estimate, interval = _aggregatecells(agg)
            direction = "higher is better" if agg.higher_is_better else "lower is better"
            rows.append(
                cells(
                    target.target,
                    agg.scorer,
                    estimate,
                    interval,
                    str(agg.n),
                    str(agg.errors),
                    f"{agg.kind}, {direction}",
                )
            )
    money = [
        cells(
            t.target,
            str(t.samples),
            str(t.errors),
            "-" if t.latency_ms_p50 is None else f"{t.latency_ms_p50:.0f} ms",
            "-" if t.latency_ms_p95 is None else f"{t.latency_ms_p95:.0f} ms",
            str(t.tokens_out),
            "-" if t.cost is None else f"{t.cost:.4f}",
        )
        for t in summary.targets
    ]
    return (
        "<h2>Results</h2>"
        + table(("Target", "Scorer", "Estimate", "95% CI", "n", "Errors", "Scorer kind"), rows)
        + "<h3>Targets</h3>"
        + table(
            ("Target", "Samples", "Errors", "Latency p50", "Latency p95", "Tokens out", "Cost"),
            money,
        )
    )


def distribution_svg(dist: Distribution) -> str:
    """How one target's scores on one scorer spread: pass/fail bars or a histogram ("": none)."""
    label = f"{dist.scorer} scores of {dist.target}"
    if dist.kind == "binary":
        parts = [
            Part("pass", dist.passed or 0, "pass"),
            Part("fail", dist.failed or 0, "fail"),
            Part("errors", dist.errors, "err"),
        ]
        return stacked_bar(parts, f"{label}: {dist.passed} pass, {dist.failed} fail")
    if dist.histogram is not None:
        h = dist.histogram
        return histogram(Bins(h.low, h.high, h.counts), f"Histogram of the {label}")
    return ""


def difference_svgs(diff: Differences, comparison: Comparison | None) -> tuple[str, str | None]:
    """A candidate's wins/ties/losses bar, and the histogram of its per-sample differences."""
    who = f"{diff.candidate} vs {diff.baseline} on {diff.scorer}"
    if comparison is not None:
        wins, ties, losses = comparison.wins, comparison.ties, comparison.losses
    else:
        wins, ties, losses = diff.better, diff.same, diff.worse
    bar = stacked_bar(
        [Part("wins", wins, "win"), Part("ties", ties, "tie"), Part("losses", losses, "loss")],
        f"{who}: {wins} wins, {ties} ties, {losses} losses",
    )
    if diff.histogram is None:
        return bar, None
    h = diff.histogram
    return bar, histogram(
        Bins(h.low, h.high, h.counts),
        f"Histogram of the per-sample differences ({diff.candidate} minus {diff.baseline}) "
        f"on {diff.scorer}",
        zero_line=diff.kind != "binary",
        css="diff",
        bar_labels=("-1", "0", "+1") if diff.kind == "binary" else None,
    )


def difference_caption(diff: Differences) -> str:
    """What a difference figure shows, in words."""
    direction = "higher" if diff.higher_is_better else "lower"
    return (
        f"{diff.candidate} vs {diff.baseline} on {diff.scorer}: n={diff.n}, mean difference "
        f"{difference_text(diff.kind, diff.mean)} (candidate minus baseline; {direction} is better)"
    )


def _distribution_chart(dist: Distribution) -> str:
    chart = distribution_svg(dist) or empty("No scores.")
    caption = f"{dist.target}: n={dist.n}, mean {value_text(dist.kind, dist.mean)}"
    if dist.errors:
        caption += f", {dist.errors} errors"
    return f"<figure>{chart}<figcaption>{esc(caption)}</figcaption></figure>"


def _distributions(report: EvalReport) -> str:
    if not report.distributions:
        return "<h2>Score distributions</h2>" + empty("No scores recorded.")
    summary = report.run.summary
    aggregates = {
        (t.target, a.scorer): a for t in (summary.targets if summary else []) for a in t.aggregates
    }
    out = ["<h2>Score distributions</h2>"]
    for scorer in report.scorers:
        dists = [d for d in report.distributions if d.scorer == scorer]
        if not dists:
            continue
        kind = dists[0].kind
        points = []
        for d in dists:
            agg = aggregates.get((d.target, scorer))
            if agg is not None:
                points.append(Point(d.target, agg.estimate, agg.low, agg.high))
            else:
                points.append(Point(d.target, d.mean, None, None))
        top = 1.0
        if kind == "measure":
            ends = [v for p in points for v in (p.high, p.estimate) if v is not None]
            top = max(ends, default=1.0) or 1.0
        plot = interval_plot(points, 0.0, top, f"Mean {scorer} per target with 95% intervals")
        figures = "".join(_distribution_chart(d) for d in dists)
        out.append(
            f"<h3>{esc(scorer)} <small>({esc(kind)})</small></h3>"
            f"<figure>{plot}<figcaption>Means (pass rates) with 95% confidence intervals."
            f'</figcaption></figure><div class="grid">{figures}</div>'
        )
    return "".join(out)


def _comparison_row(c: Comparison) -> str:
    effect = (
        "-" if c.effect_size is None else f"{c.effect_size_name} {format_number(c.effect_size)}"
    )
    return cells(
        c.candidate,
        c.scorer,
        value_text(c.kind, c.baseline_mean),
        value_text(c.kind, c.candidate_mean),
        difference_text(c.kind, c.difference),
        "undefined"
        if c.low is None or c.high is None
        else f"[{difference_text(c.kind, c.low)}, {difference_text(c.kind, c.high)}]",
        p_text(c.p_value),
        c.test,
        effect,
        f"{c.superiority:.2f}",
        f"{c.wins} / {c.ties} / {c.losses}",
    )


def _difference_figure(diff: Differences, comparison: Comparison | None) -> str:
    bar, hist = difference_svgs(diff, comparison)
    shown = hist if hist is not None else empty("No sample was scored by both.")
    return f"<figure>{bar}{shown}<figcaption>{esc(difference_caption(diff))}</figcaption></figure>"


def _comparisons(report: EvalReport) -> str:
    if report.baseline is None:
        return ""
    summary = report.run.summary
    comparisons = summary.comparisons if summary is not None else []
    out = [f"<h2>Comparisons with the baseline {esc(report.baseline)}</h2>"]
    if comparisons:
        out.append(
            table(
                (
                    "Candidate",
                    "Scorer",
                    "Baseline mean",
                    "Candidate mean",
                    "Difference",
                    "95% CI",
                    "p-value",
                    "Test",
                    "Effect size",
                    "P(better)",
                    "Wins / ties / losses",
                ),
                [_comparison_row(c) for c in comparisons],
            )
        )
    else:
        out.append(empty("No paired comparison in the summary."))
    found = {(c.candidate, c.scorer): c for c in comparisons}
    figures = [
        _difference_figure(d, found.get((d.candidate, d.scorer)))
        for d in report.differences
        if d.n or (d.candidate, d.scorer) in found
    ]
    if figures:
        out.append(
            "<h3>Per-sample differences</h3>" + f'<div class="grid">{"".join(figures)}</div>'
        )
    return "".join(out)


def _categories(summary: RunSummary | None) -> str:
    if summary is None or not summary.by_category:
        return ""
    targets = list(dict.fromkeys(t for per in summary.by_category.values() for t in per))
    rows = []
    for category, per in sorted(summary.by_category.items()):
        cells = [f"<td>{esc(category)}</td>"]
        for target in targets:
            agg = per.get(target)
            if agg is None:
                cells.append("<td>-</td>")
                continue
            estimate, interval = _aggregatecells(agg)
            cells.append(f"<td>{esc(f'{estimate} {interval} (n={agg.n})')}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return "<h2>By category</h2>" + table(("Category", *targets), rows)
