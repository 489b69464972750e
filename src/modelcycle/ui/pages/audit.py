"""Audit log (admins only): the hash chain's state, then entries newest first, filtered."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from modelcycle.ui.auth import ViewerDep
from modelcycle.ui.render import renderer
from modelcycle.ui.routing import UiRoute

router = APIRouter(route_class=UiRoute)

PAGE_SIZE = 50
"""Entries per page."""


@router.get("/audit")
def audit_page(
    request: Request,
    viewer: ViewerDep,
    action: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=100)] = None,
    target: Annotated[str | None, Query(max_length=300)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """Whether the chain is intact, and one page of entries (the service allows admins only)."""
    audit, principal = viewer.services.audit, viewer.principal
    # Verified first: a non-admin gets the 403 page before anything is read.
    verification = audit.verify(principal)
    action, actor, target = action or None, actor or None, target or None
    page = audit.list(
        principal,
        action=action,
        actor=actor,
        target=target,
        cursor=cursor or None,
        limit=PAGE_SIZE,
        newest_first=True,
    )
    filters = {"action": action, "actor": actor, "target": target}
    return renderer(request).page(
        request,
        "audit.html",
        {
            "title": "Audit log",
            "verification": verification,
            "entries": page.items,
            "next_cursor": page.next_cursor,
            "filters": {name: value or "" for name, value in filters.items()},
            "page_params": urlencode({k: v for k, v in filters.items() if v}),
            "filtered": any(filters.values()),
        },
    )
