"""Every form the dashboard accepts is CSRF-checked and classified by who may post it.

The per-page tests post each maintainer form as a viewer with valid data and see
403 with nothing changed; this test makes sure no form escapes that list: a new
POST route fails here until it is classified (and so tested).
"""

from __future__ import annotations

import re

from fastapi.routing import APIRoute

from modelcycle.deploy.schemas import DeploymentSpec, Route
from modelcycle.services import Services
from modelcycle.testing import KeyPair, make_key, register
from modelcycle.types import Role
from modelcycle.ui.auth import checked_form
from modelcycle.ui.pages import PAGE_ROUTERS
from ui.conftest import page_client

POST_FORM = re.compile(r'<form\b[^>]*\bmethod="post"[^>]*\baction="([^"]+)"')

SIGN_IN = {"/login"}
"""No session yet: checked for origin only (a login CSRF needs the attacker's own key)."""
ANY_SIGNED_IN = {
    "/logout",
    "/guard/check",  # reads: a text through a policy, nothing stored
    "/playground",  # model calls: viewers and above may call models, as through /v1
    "/playground/stream",
    "/traces/{trace_id}/feedback",  # feedback needs the `app` role, like the API
}
"""Forms every signed-in key (viewer or above) may post."""
MAINTAINER_OR_ABOVE = {
    "/models/{name}/aliases",
    "/deployments/{name}/traffic",
    "/deployments/{name}/promote",
    "/deployments/{name}/rollback",
    "/evals",
    "/evals/{run_id}/cancel",
    "/tune",
    "/tune/{job_id}/cancel",
    "/monitoring/alerts",
    "/monitoring/alerts/evaluate",
    "/monitoring/alerts/{rule_id}/delete",
    "/playground/dataset",
    "/keys",
    "/keys/{key_id}/revoke",
    "/keys/{key_id}/rotate",
}
"""Forms whose services refuse viewers (a viewer posting them directly gets 403)."""


def _post_routes() -> list[APIRoute]:
    return [
        route
        for router in PAGE_ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute) and "POST" in route.methods
    ]


def test_every_form_is_classified_by_who_may_post_it() -> None:
    paths = {route.path for route in _post_routes()}
    assert paths == SIGN_IN | ANY_SIGNED_IN | MAINTAINER_OR_ABOVE


def test_every_form_but_sign_in_checks_the_csrf_token() -> None:
    for route in _post_routes():
        if route.path in SIGN_IN:
            continue
        checks = [dependency.call for dependency in route.dependant.dependencies]
        assert checked_form in checks, f"{route.path} does not check the CSRF token"


def _route_of(action: str) -> str | None:
    """The POST route a form's ``action`` goes to."""
    for route in _post_routes():
        if re.fullmatch(re.sub(r"\\{[^/]+\\}", "[^/]+", re.escape(route.path)), action):
            return route.path
    return None


def test_a_viewer_is_offered_no_maintainer_form(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    register(modelcycle_services, modelcycle_admin.principal, "bot")
    spec = DeploymentSpec(name="chat", routes=[Route(target="bot@1", weight=100)])
    modelcycle_services.deployments.create(modelcycle_admin.principal, spec)
    viewer = page_client(modelcycle_services, make_key(modelcycle_services, Role.VIEWER).key)
    admin = page_client(modelcycle_services, modelcycle_admin.key)
    pages = ("/", "/deployments", "/deployments/chat", "/models", "/models/bot", "/evals")
    pages += ("/tune", "/monitoring", "/playground", "/guard", "/traces")
    offered_to_admin: set[str] = set()
    for page in pages:
        for who, client in (("viewer", viewer), ("admin", admin)):
            html = client.get(page).text
            for action in POST_FORM.findall(html):
                route = _route_of(action)
                assert route is not None, f"{page} posts to {action}, which no route serves"
                if who == "viewer":
                    assert route not in MAINTAINER_OR_ABOVE, f"{page} offers {action} to a viewer"
                else:
                    offered_to_admin.add(route)
    # the check above looked at real forms: an admin is offered the maintainer ones
    assert {"/deployments/{name}/traffic", "/tune", "/monitoring/alerts"} <= (offered_to_admin)
