"""Mount the dashboard's pages and assets on the API app."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from modelcycle.access.ui_sessions import UiSessions
from modelcycle.services import Services
from modelcycle.ui.pages import PAGE_ROUTERS
from modelcycle.ui.render import Renderer

STATIC_DIR = Path(__file__).parent / "static"
STATIC_PATH = "/ui/static"


def install_dashboard(app: FastAPI, services: Services) -> None:
    """Serve the dashboard at ``/`` (pages) and ``/ui/static`` (CSS, JS: no CDN)."""
    app.state.ui_sessions = UiSessions(services.store, services.access)
    app.state.ui_renderer = Renderer(static_path=STATIC_PATH)
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="ui-static")
    for router in PAGE_ROUTERS:
        app.include_router(router, include_in_schema=False)
