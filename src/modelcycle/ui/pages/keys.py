"""API keys of the project (maintainers and admins): list, create, revoke and rotate.

A new secret is shown once, on the page that answers the form post: never in a
URL (it would land in history and logs) and never stored (only its hash is).
Revoking and rotating go through a confirmation page. The services bound what
a key may grant (``modelcycle.access.grants``): a maintainer posting the form
for an admin key gets the 403 page, whatever the form offered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from modelcycle.access import ApiKey, KeyCreate, KeyRotate
from modelcycle.errors import InvalidInput
from modelcycle.types import MAX_INT32, Role
from modelcycle.ui.auth import FormChecked, Viewer, ViewerDep
from modelcycle.ui.render import renderer
from modelcycle.ui.routing import UiRoute

router = APIRouter(route_class=UiRoute)

PAGE_SIZE = 50
"""Keys per page."""
GRACE_CHOICES: tuple[tuple[int, str], ...] = (
    (0, "none: the old key stops working now"),
    (3_600, "1 hour"),
    (86_400, "24 hours"),
    (7 * 86_400, "7 days"),
)
"""How long a rotated key keeps working, as the confirmation page offers it."""

KeyId = Annotated[int, Path(ge=1, le=MAX_INT32, description="Key id.")]
NoticeQuery = Annotated[str | None, Query(max_length=200)]


@dataclass(frozen=True, slots=True)
class KeyView:
    """A key of the table and its state now."""

    key: ApiKey
    state: str
    """``active``, ``expired`` or ``revoked``."""
    manageable: bool
    """Whether the viewer's role may revoke or rotate it."""


def key_state(key: ApiKey, now: datetime) -> str:
    """``revoked``, ``expired`` or ``active``."""
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    return "active"


def grantable_roles(viewer: Viewer) -> list[str]:
    """The roles the viewer's key may give a new key (the service checks again)."""
    return [str(role) for role in Role if viewer.principal.role.allows(role)]


def parse_deployments(text: str) -> list[str] | None:
    """Names separated by commas or spaces; ``None`` (every deployment) when empty."""
    names = [name for name in re.split(r"[\s,]+", text.strip()) if name]
    return names or None


def parse_expiry(text: str) -> datetime | None:
    """``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM`` in UTC (an explicit offset is kept)."""
    text = text.strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            "expiry must be a date (2027-01-31) or a date and time (2027-01-31T18:00), in UTC",
            param="expires",
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _validated(model: type[KeyCreate] | type[KeyRotate], body: dict[str, Any]) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None


@router.get("/keys")
def keys_page(
    request: Request,
    viewer: ViewerDep,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    notice: NoticeQuery = None,
) -> Response:
    """The project's keys, oldest first, and the form that creates one."""
    page = viewer.services.access.list_keys(
        viewer.principal, project=None, cursor=cursor or None, limit=PAGE_SIZE
    )
    now, role = datetime.now(UTC), viewer.principal.role
    rows = [KeyView(key, key_state(key, now), role.allows(key.role)) for key in page.items]
    return renderer(request).page(
        request,
        "keys.html",
        {
            "title": "API keys",
            "rows": rows,
            "next_cursor": page.next_cursor,
            "page_params": urlencode({}),
            "roles": grantable_roles(viewer),
            "notice": notice,
        },
    )


@router.post("/keys", dependencies=[FormChecked])
def create_key(
    request: Request,
    viewer: ViewerDep,
    name: Annotated[str, Form(min_length=1, max_length=100)],
    role: Annotated[str, Form(max_length=16)],
    deployments: Annotated[str, Form(max_length=7000)] = "",
    expires: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """Create a key and show its secret, this once."""
    body = _validated(
        KeyCreate,
        {
            "name": name.strip(),
            "role": role,
            "deployments": parse_deployments(deployments),
            "expires_at": parse_expiry(expires),
        },
    )
    created = viewer.services.access.create_key(viewer.principal, body)
    return renderer(request).page(
        request,
        "keys_secret.html",
        {"title": "Key created", "created": created, "previous": None},
        status_code=201,
    )


@router.get("/keys/{key_id}/confirm-revoke")
def confirm_revoke(request: Request, viewer: ViewerDep, key_id: KeyId) -> Response:
    """What revoking a key does, and the button that does it."""
    return _confirm(request, viewer, key_id, "revoke")


@router.get("/keys/{key_id}/confirm-rotate")
def confirm_rotate(request: Request, viewer: ViewerDep, key_id: KeyId) -> Response:
    """What rotating a key does, how long the old one may keep working, and the button."""
    return _confirm(request, viewer, key_id, "rotate")


def _confirm(request: Request, viewer: Viewer, key_id: int, action: str) -> Response:
    key = viewer.services.access.get_key(viewer.principal, key_id)
    return renderer(request).page(
        request,
        "keys_confirm.html",
        {
            "title": f"{action.capitalize()} key {key.prefix}",
            "action": action,
            "key": key,
            "state": key_state(key, datetime.now(UTC)),
            "own": key.id == viewer.principal.key_id,
            "grace_choices": GRACE_CHOICES,
        },
    )


@router.post("/keys/{key_id}/revoke", dependencies=[FormChecked])
def revoke_key(viewer: ViewerDep, key_id: KeyId) -> Response:
    """Revoke a key at once; back to the list with a notice."""
    revoked = viewer.services.access.revoke_key(viewer.principal, key_id)
    notice = f"Key {revoked.name} ({revoked.prefix}) is revoked: it no longer authenticates."
    return RedirectResponse("/keys?" + urlencode({"notice": notice}), 303)


@router.post("/keys/{key_id}/rotate", dependencies=[FormChecked])
def rotate_key(
    request: Request,
    viewer: ViewerDep,
    key_id: KeyId,
    grace_s: Annotated[int, Form(ge=0, le=MAX_INT32)] = 0,
) -> Response:
    """Replace a key by a new one; show the new secret, this once."""
    body = _validated(KeyRotate, {"grace_s": grace_s})
    rotated = viewer.services.access.rotate_key(viewer.principal, key_id, body)
    return renderer(request).page(
        request,
        "keys_secret.html",
        {"title": "Key rotated", "created": rotated, "previous": rotated.previous},
        status_code=201,
    )
