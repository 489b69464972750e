"""Templates: one autoescaping Jinja environment, the layout's context, security headers."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from modelcycle.types import Role
from modelcycle.version import __version__

TEMPLATE_DIR = Path(__file__).parent / "templates"

NAV: tuple[tuple[str, str], ...] = (
    ("/", "Overview"),
    ("/models", "Models"),
    ("/deployments", "Deployments"),
    ("/traces", "Traces"),
    ("/monitoring", "Monitoring"),
    ("/evals", "Evaluations"),
    ("/tune", "Tuning"),
    ("/guard", "Guardrails"),
    ("/playground", "Playground"),
    ("/audit", "Audit"),
    ("/keys", "Keys"),
)
"""The sections of the dashboard, in the order of the navigation bar."""

SECURITY_HEADERS = {
    # Pages run only our own script and style: no inline code, no other origin.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


MISSING = "\u2013"
"""What a table shows for a value there is none of (an en dash)."""


def _ms(value: float | None) -> str:
    if value is None:
        return MISSING
    return f"{value:,.0f} ms" if value >= 100 else f"{value:,.1f} ms"


def _pct(value: float | None, digits: int = 1) -> str:
    return MISSING if value is None else f"{value * 100:.{digits}f}%"


def _num(value: float | None, digits: int = 0) -> str:
    return MISSING if value is None else f"{value:,.{digits}f}"


def _rate(value: float | None) -> str:
    """Requests per second: three significant digits, so a quiet day is not ``0.00``."""
    if value is None:
        return MISSING
    return "0" if value == 0 else f"{value:.3g}"


def _money(value: float | None) -> str:
    if value is None:
        return MISSING
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def _when(value: datetime | None) -> str:
    if value is None:
        return MISSING
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _ago(value: datetime | None) -> str:
    if value is None:
        return MISSING
    seconds = (datetime.now(UTC) - value.astimezone(UTC)).total_seconds()
    for size, unit in ((86_400, "d"), (3_600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{max(seconds, 0):.0f} s ago"


def _can(viewer: Any, role: str) -> bool:
    return viewer is not None and bool(viewer.principal.role.allows(Role(role)))


class Renderer:
    """Renders a template inside the layout, for the signed-in viewer of the request."""

    def __init__(self, *, static_path: str):
        self.env = Environment(
            loader=FileSystemLoader(TEMPLATE_DIR),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(
            ms=_ms, pct=_pct, num=_num, rate=_rate, money=_money, when=_when, ago=_ago
        )
        self.env.globals.update(nav=NAV, static=static_path, version=__version__, can=_can)

    def page(
        self,
        request: Request,
        template: str,
        context: dict[str, Any],
        *,
        status_code: int = 200,
    ) -> HTMLResponse:
        """The page as an HTML response; ``Server-Timing`` tells how long it took to render."""
        started = time.perf_counter()
        viewer = getattr(request.state, "viewer", None)
        html = self.env.get_template(template).render(
            request=request,
            viewer=viewer,
            path=request.url.path,
            **context,
        )
        headers = dict(SECURITY_HEADERS)
        headers["Server-Timing"] = f"render;dur={(time.perf_counter() - started) * 1000:.1f}"
        return HTMLResponse(html, status_code=status_code, headers=headers)


def renderer(request: Request) -> Renderer:
    """The renderer the dashboard was installed with."""
    found: Renderer = request.app.state.ui_renderer
    return found
