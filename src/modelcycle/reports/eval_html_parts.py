"""Formatting and table helpers shared by the sections of the evaluation report page.

Numbers are written one way everywhere: pass rates as percentages, other
scores to three significant digits, differences signed. Every text goes
through ``html.escape``.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from modelcycle.evaluate.schemas import EvalRun
from modelcycle.evaluate.statistics import format_number
from modelcycle.reports.render import STYLE

EVAL_STYLE = (
    STYLE
    + """
.scroll{overflow-x:auto;max-width:100%}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(240px,1fr));gap:.8rem 1.2rem}
figure{margin:.4rem 0}figcaption{font-size:.85rem;color:#424a53}
svg.chart{width:100%;height:auto;max-width:420px;display:block;font-size:10px;fill:#1d232b}
.chart rect.bar{fill:#0969da}.chart rect.diff{fill:#8250df}
.chart rect.pass,.chart rect.win{fill:#1a7f37}.chart rect.fail,.chart rect.loss{fill:#cf222e}
.chart rect.err{fill:#9a6700}.chart rect.tie,.chart rect.empty{fill:#afb8c1}
.chart line.axis{stroke:#57606a}.chart line.zero{stroke:#1d232b;stroke-dasharray:3 2}
.chart line.whisker{stroke:#0969da;stroke-width:2}.chart circle.dot{fill:#0969da}
td.pass{background:#dafbe1;font-weight:600}td.fail{background:#ffebe9;font-weight:600}
td.worse{background:#ffebe9}td.better{background:#dafbe1}td.mixed{background:#fff8c5}
.text{white-space:pre-wrap;overflow-wrap:anywhere;margin:0}
.error{color:#a40e26}.scores{font-size:.85rem;color:#424a53;margin-top:.3rem}
.verdict{font-size:.8rem;font-weight:600;text-transform:uppercase}
table.samples td{min-width:11rem}table.samples td.pos{min-width:0}
.filters{margin:.5rem 0}.filters label{margin-right:1rem;white-space:nowrap}
#show-regression:checked~.scroll tr.sample:not(.regression),
#show-improvement:checked~.scroll tr.sample:not(.improvement),
#show-error:checked~.scroll tr.sample:not(.error){display:none}
@media (max-width:600px){body{font-size:14px;margin:1rem auto}table.fields th{width:auto}}
"""
)

esc = html.escape


def value_text(kind: str, value: float | None) -> str:
    """A score as the report shows it: a percentage when pass/fail, else 3 significant digits."""
    if value is None:
        return "-"
    return f"{value:.1%}" if kind == "binary" else format_number(value)


def interval_text(kind: str, low: float | None, high: float | None) -> str:
    """``[low, high]``, or ``undefined`` when the data say nothing about spread."""
    if low is None or high is None:
        return "undefined"
    return f"[{value_text(kind, low)}, {value_text(kind, high)}]"


def difference_text(kind: str, value: float | None) -> str:
    """A signed difference: percentage points when pass/fail."""
    if value is None:
        return "-"
    if kind == "binary":
        return f"{value * 100:+.1f} pp"
    return ("+" if value > 0 else "") + format_number(value)


def p_text(value: float | None) -> str:
    """A p-value, small ones as a bound."""
    if value is None:
        return "-"
    return "<0.0001" if value < 1e-4 else f"{value:.3g}"


def duration_text(run: EvalRun) -> str:
    """How long the run took (the summary's, else from its timestamps)."""
    seconds: float | None = run.summary.duration_s if run.summary is not None else None
    if seconds is None and run.finished_at is not None:
        seconds = (run.finished_at - run.created_at).total_seconds()
    if seconds is None:
        return "-"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)} min {rest:.1f} s" if minutes else f"{rest:.1f} s"


def table(headers: Sequence[str], rows: Sequence[str], *, css: str = "", caption: str = "") -> str:
    """A table of ``rows`` (already HTML) under ``headers``; it scrolls sideways when narrow."""
    head = "".join(f'<th scope="col">{esc(h)}</th>' for h in headers)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    klass = f' class="{css}"' if css else ""
    return (
        f'<div class="scroll"><table{klass}>{cap}<thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def cells(*values: str) -> str:
    """A table row of plain-text cells."""
    return "<tr>" + "".join(f"<td>{esc(v)}</td>" for v in values) + "</tr>"


def empty(text: str) -> str:
    """A note standing in for missing content."""
    return f'<p class="empty">{esc(text)}</p>'
