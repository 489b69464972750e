"""The per-sample section of the evaluation report: every target's answer side by side.

The filter (all / regressions / improvements / errors) is radio buttons and
CSS only (see ``EVAL_STYLE``): the page runs no script.
"""

from __future__ import annotations

from modelcycle.evaluate.statistics import format_number
from modelcycle.reports.eval_html_parts import empty, esc, table
from modelcycle.reports.eval_report import Answer, EvalReport, SampleView

PREVIEW_CHARS = 240
"""Characters of a long text shown before the reader expands it."""

FILTERS = (
    ("all", "All"),
    ("regression", "Regressions"),
    ("improvement", "Improvements"),
    ("error", "Errors"),
)


def _text(text: str) -> str:
    if len(text) <= PREVIEW_CHARS:
        return f'<div class="text">{esc(text)}</div>'
    return (
        f"<details><summary>{esc(text[:PREVIEW_CHARS])}…</summary>"
        f'<div class="text">{esc(text)}</div></details>'
    )


def _score_text(answer: Answer, name: str, value: float | None) -> str:
    if name in answer.score_errors:
        return f"{name}: error"
    return f"{name}: {'-' if value is None else format_number(value)}"


def _answer_cell(answer: Answer) -> str:
    parts = []
    if answer.verdict is not None and answer.verdict != "same":
        parts.append(f'<div class="verdict">{esc(answer.verdict)}</div>')
    if answer.error:
        parts.append(f'<div class="error">error: {esc(answer.error)}</div>')
    if answer.output is not None:
        parts.append(_text(answer.output))
    scores = [_score_text(answer, name, value) for name, value in answer.scores.items()]
    if scores:
        parts.append(f'<div class="scores">{esc(" · ".join(scores))}</div>')
    for name, error in answer.score_errors.items():
        parts.append(f'<div class="error">{esc(name)}: {esc(error)}</div>')
    css = f' class="{answer.verdict}"' if answer.verdict in ("worse", "better", "mixed") else ""
    return f"<td{css}>{''.join(parts)}</td>"


def _sample_row(sample: SampleView, targets: list[str]) -> str:
    by_target = {a.target: a for a in sample.answers}
    cells = [
        f'<td class="pos">{sample.position}</td>',
        f"<td>{_text(sample.input)}</td>",
        f"<td>{_text(sample.expected) if sample.expected is not None else '-'}</td>",
    ]
    for target in targets:
        answer = by_target.get(target)
        cells.append(_answer_cell(answer) if answer is not None else "<td>not answered</td>")
    classes = " ".join(["sample", *sample.flags])
    return f'<tr class="{classes}">{"".join(cells)}</tr>'


def samples_section(report: EvalReport) -> str:
    """The first samples side by side, flagged against the baseline, with the filter."""
    targets = list(dict.fromkeys(a.target for s in report.samples for a in s.answers))
    out = ["<h2>Samples</h2>"]
    if not report.samples:
        return out[0] + empty("No results yet.")
    if len(report.samples) < report.samples_total:
        out.append(
            f"<p>Showing the first {len(report.samples)} of {report.samples_total} samples; "
            "the statistics above use all of them.</p>"
        )
    counts = dict(report.flag_counts, all=report.samples_total)
    radios = "".join(
        f'<input type="radio" name="show" id="show-{key}"{" checked" if key == "all" else ""}>'
        f'<label for="show-{key}">{name} ({counts.get(key, 0)})</label>'
        for key, name in FILTERS
    )
    heads = ["#", "Input", "Expected"] + [
        f"{t} (baseline)" if t == report.baseline else t for t in targets
    ]
    rows = [_sample_row(sample, targets) for sample in report.samples]
    out.append(
        '<div class="filters" role="group" aria-label="Filter samples">'
        f"{radios}"
        + table(heads, rows, css="samples", caption="Per-sample answers side by side")
        + "</div>"
    )
    return "".join(out)
