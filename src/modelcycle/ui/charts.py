"""Server-drawn SVG charts: no charting script, nothing fetched, readable without JS.

A chart is an ``<svg role="img">`` with a title and a text summary for screen
readers; colours come from the stylesheet (classes ``s0`` .. ``s5``), so the
page's Content-Security-Policy needs no inline style.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

from markupsafe import Markup

WIDTH = 640
HEIGHT = 220
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 56, 12, 12, 40


Scale = Callable[[float], float]


@dataclass(frozen=True, slots=True)
class Series:
    """One line: a name for the legend and its points (``None`` leaves a gap)."""

    name: str
    times: Sequence[datetime]
    values: Sequence[float | None]


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar of a bar chart."""

    label: str
    value: float


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude: float = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _label(value: float, unit: str) -> str:
    if unit == "%":
        return f"{value * 100:.0f}%"
    if abs(value) >= 1000:
        return f"{value / 1000:.1f}k{unit}"
    if value == int(value):
        return f"{value:.0f}{unit}"
    return f"{value:.2f}{unit}"


def _time_label(moment: datetime, span_s: float) -> str:
    moment = moment.astimezone(UTC)
    return moment.strftime("%m-%d" if span_s > 3 * 86_400 else "%H:%M")


def _frame(title: str, height: int = HEIGHT, css: str = "chart") -> str:
    return (
        f'<svg class="{css}" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
    )


def _lines(index: int, one: Series, x: Scale, y: Scale) -> list[str]:
    """The polylines (and lone points) of one series, broken where values are missing."""
    css = f"s{index % 6}"
    segments: list[list[str]] = [[]]
    for t, v in zip(one.times, one.values, strict=False):
        if v is None:
            segments.append([])
        else:
            segments[-1].append(f"{x(t.timestamp()):.1f},{y(v):.1f}")
    parts = []
    for segment in segments:
        if len(segment) == 1:
            cx, cy = segment[0].split(",")
            parts.append(f'<circle class="dot {css}" cx="{cx}" cy="{cy}" r="2.5"/>')
        elif segment:
            parts.append(f'<polyline class="line {css}" points="{" ".join(segment)}"/>')
    parts.append(
        f'<rect class="key {css}" x="{PAD_LEFT + index * 150}" y="{HEIGHT - 14}" '
        f'width="10" height="10"/><text class="legend" x="{PAD_LEFT + index * 150 + 14}" '
        f'y="{HEIGHT - 5}">{escape(one.name[:22])}</text>'
    )
    return parts


def line_chart(
    series: Sequence[Series], *, title: str, unit: str = "", empty: str = "No data in this range."
) -> Markup:
    """A time-series chart of ``series`` on one shared axis."""
    points = [
        (t, v) for s in series for t, v in zip(s.times, s.values, strict=False) if v is not None
    ]
    if not points:
        return Markup('<p class="empty">{}</p>').format(empty)
    t0 = min(t for t, _ in points).timestamp()
    span = max(max(t for t, _ in points).timestamp() - t0, 1.0)
    top = _nice_max(max(v for _, v in points))
    plot_w, plot_h = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - PAD_TOP - PAD_BOTTOM

    def x(seconds: float) -> float:
        return PAD_LEFT + (seconds - t0) / span * plot_w

    def y(value: float) -> float:
        return PAD_TOP + plot_h - (value / top) * plot_h

    parts = [_frame(title)]
    for i in range(5):  # y grid and labels, then x labels
        value = top * i / 4
        parts.append(
            f'<line class="grid" x1="{PAD_LEFT}" x2="{WIDTH - PAD_RIGHT}" '
            f'y1="{y(value):.1f}" y2="{y(value):.1f}"/>'
            f'<text class="tick" x="{PAD_LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end">'
            f"{escape(_label(value, unit))}</text>"
        )
        seconds = t0 + span * i / 4
        anchor = ("start", "middle", "middle", "middle", "end")[i]  # the ends stay inside
        parts.append(
            f'<text class="tick" x="{x(seconds):.1f}" y="{HEIGHT - PAD_BOTTOM + 16}" '
            f'text-anchor="{anchor}">{_time_label(datetime.fromtimestamp(seconds, UTC), span)}'
            "</text>"
        )
    for index, one in enumerate(series):
        parts.extend(_lines(index, one, x, y))
    parts.append("</svg>")
    # Every piece of text in it went through escape(): the markup is ours.
    return Markup("".join(parts))  # noqa: S704


def bar_chart(bars: Sequence[Bar], *, title: str, unit: str = "") -> Markup:
    """Horizontal bars, one per label (counts by detector, scores by target)."""
    if not bars:
        return Markup('<p class="empty">Nothing to show.</p>')
    top = _nice_max(max(bar.value for bar in bars))
    row, label_w = 24, 160
    height = row * len(bars) + 8
    parts = [_frame(title, height, "chart bars")]
    for i, bar in enumerate(bars):
        width = max(bar.value / top, 0) * (WIDTH - label_w - 80)
        y = 4 + i * row
        parts.append(
            f'<text class="tick" x="{label_w - 6}" y="{y + 15}" text-anchor="end">'
            f"{escape(bar.label[:24])}</text>"
            f'<rect class="bar s{i % 6}" x="{label_w}" y="{y + 3}" width="{width:.1f}" '
            f'height="{row - 8}"/><text class="tick" x="{label_w + width + 6:.1f}" '
            f'y="{y + 15}">{escape(_label(bar.value, unit))}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text went through escape()


@dataclass(frozen=True, slots=True)
class StepSeries:
    """One line over training steps: a name for the legend and a value per step."""

    name: str
    steps: Sequence[int]
    values: Sequence[float | None]


def _step_points(one: StepSeries) -> list[tuple[int, float]]:
    return [(s, v) for s, v in zip(one.steps, one.values, strict=False) if v is not None]


def _step_axes(low: float, top: float, s0: int, s1: int, x_label: str, unit: str) -> list[str]:
    """Grid lines and labels of a step chart: y ``low``..``top``, x ``s0``..``s1``."""
    plot_w, plot_h = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - PAD_TOP - PAD_BOTTOM
    parts = []
    for i in range(5):
        value = low + (top - low) * i / 4
        y = PAD_TOP + plot_h - plot_h * i / 4
        parts.append(
            f'<line class="grid" x1="{PAD_LEFT}" x2="{WIDTH - PAD_RIGHT}" y1="{y:.1f}" '
            f'y2="{y:.1f}"/><text class="tick" x="{PAD_LEFT - 6}" y="{y + 4:.1f}" '
            f'text-anchor="end">{escape(_label(value, unit))}</text>'
        )
    ticks = sorted({round(s0 + (s1 - s0) * i / 4) for i in range(5)})
    for step in ticks:
        x = PAD_LEFT + (step - s0) / max(s1 - s0, 1) * plot_w
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{HEIGHT - PAD_BOTTOM + 16}" '
            f'text-anchor="middle">{step}</text>'
        )
    parts.append(
        f'<text class="tick" x="{WIDTH - PAD_RIGHT}" y="{HEIGHT - 5}" text-anchor="end">'
        f"{escape(x_label)}</text>"
    )
    return parts


def step_chart(
    series: Sequence[StepSeries],
    *,
    title: str,
    x_label: str = "step",
    unit: str = "",
    empty: str = "No points yet.",
) -> Markup:
    """A chart of ``series`` over training steps (loss curves): the x axis is a count, not time."""
    points = [point for one in series for point in _step_points(one)]
    if not points:
        return Markup('<p class="empty">{}</p>').format(empty)
    s0, s1 = min(s for s, _ in points), max(s for s, _ in points)
    smallest = min(v for _, v in points)
    low = -_nice_max(-smallest) if smallest < 0 else 0.0
    top = _nice_max(max(v for _, v in points))
    plot_w, plot_h = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - PAD_TOP - PAD_BOTTOM

    def xy(step: int, value: float) -> str:
        x = PAD_LEFT + (step - s0) / max(s1 - s0, 1) * plot_w
        y = PAD_TOP + plot_h - (value - low) / max(top - low, 1e-12) * plot_h
        return f"{x:.1f},{y:.1f}"

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>',
        *_step_axes(low, top, s0, s1, x_label, unit),
    ]
    for index, one in enumerate(series):
        css = f"s{index % 6}"
        coords = [xy(s, v) for s, v in _step_points(one)]
        if len(coords) == 1:
            cx, cy = coords[0].split(",")
            parts.append(f'<circle class="dot {css}" cx="{cx}" cy="{cy}" r="2.5"/>')
        elif coords:
            parts.append(f'<polyline class="line {css}" points="{" ".join(coords)}"/>')
        parts.append(
            f'<rect class="key {css}" x="{PAD_LEFT + index * 150}" y="{HEIGHT - 14}" '
            f'width="10" height="10"/><text class="legend" x="{PAD_LEFT + index * 150 + 14}" '
            f'y="{HEIGHT - 5}">{escape(one.name[:22])}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text put in above is escaped
