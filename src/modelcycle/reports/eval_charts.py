"""Inline SVG charts of an evaluation report, drawn in Python: no script, no library, no URL.

Each chart is a ``role="img"`` element with an ``aria-label`` and a ``<title>``
saying in words what it shows; every bar carries its own ``<title>`` (the
browser's tooltip). Labels that come from users (target names) are escaped.
Sizes are in viewBox units; the page's CSS makes the charts fluid.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

from modelcycle.evaluate.statistics import format_number

WIDTH = 320
HEIGHT = 150
_PAD_LEFT, _PAD_RIGHT, _PAD_TOP, _PAD_BOTTOM = 30, 10, 10, 28


@dataclass(frozen=True, slots=True)
class Bins:
    """Equal-width bins over ``[low, high]`` and how many values fell in each."""

    low: float
    high: float
    counts: Sequence[int]

    def edges(self, index: int) -> tuple[float, float]:
        """The bounds of bin ``index``."""
        width = (self.high - self.low) / len(self.counts)
        return self.low + index * width, self.low + (index + 1) * width


@dataclass(frozen=True, slots=True)
class Part:
    """One segment of a stacked bar: a name, a count and its CSS class (its colour)."""

    name: str
    count: int
    css: str


@dataclass(frozen=True, slots=True)
class Point:
    """An estimate with its interval, on one row of an interval plot."""

    label: str
    estimate: float | None
    low: float | None
    high: float | None


def _svg(label: str, height: int, body: str, css: str = "chart") -> str:
    text = html.escape(label)
    return (
        f'<svg class="{css}" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{text}">'
        f"<title>{text}</title>{body}</svg>"
    )


def _n(value: float) -> str:
    """A coordinate, short."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def histogram(
    bins: Bins,
    label: str,
    *,
    zero_line: bool = False,
    css: str = "bar",
    bar_labels: Sequence[str] | None = None,
) -> str:
    """Bars of ``bins`` with the range under the axis; ``zero_line`` marks x = 0.

    ``bar_labels`` names each bar under its middle instead (for -1 / 0 / +1).
    """
    counts = list(bins.counts)
    top = max(counts, default=0) or 1
    inner_w = WIDTH - _PAD_LEFT - _PAD_RIGHT
    inner_h = HEIGHT - _PAD_TOP - _PAD_BOTTOM
    step = inner_w / max(len(counts), 1)
    parts: list[str] = []
    for index, count in enumerate(counts):
        height = inner_h * count / top
        x = _PAD_LEFT + index * step
        y = _PAD_TOP + inner_h - height
        low, high = bins.edges(index)
        tip = html.escape(f"{format_number(low)} to {format_number(high)}: {count}")
        parts.append(
            f'<rect class="{css}" x="{_n(x + 1)}" y="{_n(y)}" width="{_n(max(step - 2, 1))}" '
            f'height="{_n(height)}"><title>{tip}</title></rect>'
        )
    base = _PAD_TOP + inner_h
    parts.append(
        f'<line class="axis" x1="{_PAD_LEFT}" y1="{base}" x2="{WIDTH - _PAD_RIGHT}" y2="{base}"/>'
    )
    if zero_line and bins.low < 0 < bins.high:
        x = _PAD_LEFT + inner_w * (0 - bins.low) / (bins.high - bins.low)
        parts.append(f'<line class="zero" x1="{_n(x)}" y1="{_PAD_TOP}" x2="{_n(x)}" y2="{base}"/>')
    text_y = base + 16
    if bar_labels is not None:
        for index, name in enumerate(bar_labels):
            x = _PAD_LEFT + (index + 0.5) * step
            parts.append(
                f'<text x="{_n(x)}" y="{text_y}" text-anchor="middle">{html.escape(name)}</text>'
            )
        return _svg(label, HEIGHT, "".join(parts))
    parts.append(
        f'<text x="{_PAD_LEFT}" y="{text_y}">{html.escape(format_number(bins.low))}</text>'
    )
    parts.append(
        f'<text x="{WIDTH - _PAD_RIGHT}" y="{text_y}" text-anchor="end">'
        f"{html.escape(format_number(bins.high))}</text>"
    )
    parts.append(f'<text x="{_PAD_LEFT - 4}" y="{_PAD_TOP + 8}" text-anchor="end">{top}</text>')
    parts.append(f'<text x="{_PAD_LEFT - 4}" y="{base}" text-anchor="end">0</text>')
    return _svg(label, HEIGHT, "".join(parts))


def stacked_bar(parts: Sequence[Part], label: str) -> str:
    """One horizontal bar split into ``parts`` in proportion, with a legend under it."""
    total = sum(part.count for part in parts)
    height = 56
    inner_w = WIDTH - 2 * _PAD_RIGHT
    body: list[str] = []
    x = float(_PAD_RIGHT)
    for part in parts:
        if total == 0 or part.count == 0:
            continue
        width = inner_w * part.count / total
        tip = html.escape(f"{part.name}: {part.count} of {total}")
        body.append(
            f'<rect class="{part.css}" x="{_n(x)}" y="6" width="{_n(width)}" height="20">'
            f"<title>{tip}</title></rect>"
        )
        x += width
    if total == 0:
        body.append(f'<rect class="empty" x="{_PAD_RIGHT}" y="6" width="{inner_w}" height="20"/>')
    legend = "  ".join(f"{part.name} {part.count}" for part in parts)
    body.append(f'<text x="{_PAD_RIGHT}" y="46">{html.escape(legend)}</text>')
    return _svg(label, height, "".join(body), css="chart bar-chart")


def interval_plot(points: Sequence[Point], low: float, high: float, label: str) -> str:
    """One row per point: a dot at the estimate, whiskers to its interval, on a shared axis."""
    row = 24
    label_w = 110
    height = _PAD_TOP + row * max(len(points), 1) + 24
    span = (high - low) or 1.0
    inner_w = WIDTH - label_w - _PAD_RIGHT

    def x_of(value: float) -> float:
        return label_w + inner_w * (min(max(value, low), high) - low) / span

    body: list[str] = []
    for index, point in enumerate(points):
        y = _PAD_TOP + row * index + row / 2
        name = point.label if len(point.label) <= 16 else point.label[:15] + "…"
        body.append(
            f'<text x="{label_w - 6}" y="{_n(y + 4)}" text-anchor="end">{html.escape(name)}</text>'
        )
        if point.estimate is None:
            body.append(f'<text x="{label_w}" y="{_n(y + 4)}">no scores</text>')
            continue
        if point.low is not None and point.high is not None:
            body.append(
                f'<line class="whisker" x1="{_n(x_of(point.low))}" y1="{_n(y)}" '
                f'x2="{_n(x_of(point.high))}" y2="{_n(y)}"/>'
            )
            interval = f" [{format_number(point.low)}, {format_number(point.high)}]"
        else:
            interval = " (interval undefined)"
        tip = html.escape(f"{point.label}: {format_number(point.estimate)}{interval}")
        body.append(
            f'<circle class="dot" cx="{_n(x_of(point.estimate))}" cy="{_n(y)}" r="4">'
            f"<title>{tip}</title></circle>"
        )
    base = height - 20
    body.append(
        f'<line class="axis" x1="{label_w}" y1="{base}" x2="{WIDTH - _PAD_RIGHT}" y2="{base}"/>'
    )
    body.append(f'<text x="{label_w}" y="{base + 14}">{html.escape(format_number(low))}</text>')
    body.append(
        f'<text x="{WIDTH - _PAD_RIGHT}" y="{base + 14}" text-anchor="end">'
        f"{html.escape(format_number(high))}</text>"
    )
    return _svg(label, height, "".join(body))
