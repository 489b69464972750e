"""Deployments: traffic split, shadow and fallbacks, promote and roll back, canary health.

Every change goes through ``services.deployments`` with the viewer's principal
(maintainers only, enforced there) and carries the revision the form was drawn
from, so two people editing at once cannot overwrite each other silently.
Promotion and rollback move traffic: each has a confirmation page first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from modelcycle.access import Principal, require
from modelcycle.deploy import Deployment, DeploymentConfig, Route, canary_of, parse_target
from modelcycle.errors import Conflict, InvalidInput, ModelcycleError
from modelcycle.monitor.trace_schemas import GroupBy, RollupQuery, RollupSeries
from modelcycle.services import Services
from modelcycle.types import Role
from modelcycle.ui.auth import FormChecked, ViewerDep
from modelcycle.ui.charts import Bar, Series, bar_chart, line_chart
from modelcycle.ui.render import renderer
from modelcycle.ui.routing import UiRoute
from modelcycle.ui.timerange import window

router = APIRouter(route_class=UiRoute)

DEPLOYMENTS_PER_PAGE = 50
REVISIONS_SHOWN = 20
_PERCENT = re.compile(r"[0-9]{1,3}")

TextField = Annotated[str | None, Form(max_length=2000)]


@dataclass(frozen=True, slots=True)
class VersionHealth:
    """One row of the canary-versus-baseline table."""

    label: str
    roles: list[str]
    series: RollupSeries


@dataclass(frozen=True, slots=True)
class Change:
    """One line of a confirmation page: a setting now and after."""

    setting: str
    now: str
    after: str

    @property
    def changed(self) -> bool:
        """Whether the action changes this setting."""
        return self.now != self.after


# -- reading -------------------------------------------------------------------------


def routes_text(config: DeploymentConfig) -> str:
    """``bot@1 90%, bot@2 10%``."""
    return ", ".join(f"{route.target} {route.weight}%" for route in config.routes)


def changes(before: DeploymentConfig, after: DeploymentConfig) -> list[Change]:
    """What a promotion or rollback changes, setting by setting."""

    def limits(config: DeploymentConfig) -> str:
        return ", ".join(
            f"{key}={value}"
            for key, value in config.limits.model_dump().items()
            if value is not None and key != "queue_timeout_s"
        )

    def show(config: DeploymentConfig) -> list[str]:
        return [
            routes_text(config),
            config.shadow or "none",
            ", ".join(config.fallbacks) or "none",
            f"{config.timeout_s:g} s, {config.retries} retries",
            config.guard or "none",
            limits(config) or "none",
            f"{config.cache.ttl_s:g} s" if config.cache.ttl_s else "off",
        ]

    names = ["Routes", "Shadow", "Fallbacks", "Timeout", "Guard policy", "Limits", "Cache"]
    return [
        Change(name, now, later)
        for name, now, later in zip(names, show(before), show(after), strict=True)
    ]


def route_roles(config: DeploymentConfig) -> list[tuple[str, str]]:
    """(target, role) for every target the deployment names."""
    roles = [("primary" if i == 0 else "canary", r.target) for i, r in enumerate(config.routes)]
    if config.shadow:
        roles.append(("shadow", config.shadow))
    roles.extend(("fallback", target) for target in config.fallbacks)
    return [(target, role) for role, target in roles]


def version_roles(
    services: Services, principal: Principal, config: DeploymentConfig
) -> dict[tuple[str, int], list[str]]:
    """Which roles each (model, version) plays now; aliases resolved through the registry."""
    out: dict[tuple[str, int], list[str]] = {}
    for target, role in route_roles(config):
        try:
            parsed = parse_target(target)
            number = parsed.version
            if number is None and parsed.alias is not None:
                number = services.aliases.get(principal, parsed.model, parsed.alias).version
        except ModelcycleError:
            continue  # an alias removed since: the table just shows no role
        if number is not None:
            out.setdefault((parsed.model, number), []).append(role)
    return out


def version_health(
    services: Services, principal: Principal, deployment: Deployment, range_key: str | None
) -> dict[str, Any]:
    """Per-version rollups of the deployment: two charts and a table."""
    chosen = window(range_key)
    rollups = services.traces.rollups(
        principal,
        RollupQuery(
            start=chosen.start,
            end=chosen.end,
            group_by=GroupBy.VERSION,
            deployment=deployment.name,
        ),
    )
    roles = version_roles(services, principal, deployment.spec)
    rows = [
        VersionHealth(
            label=f"{s.model}@{s.version}",
            roles=roles.get((s.model or "", s.version or 0), []),
            series=s,
        )
        for s in sorted(rollups.series, key=lambda s: (s.model or "", s.version or 0))
    ]
    charted = sorted(rows, key=lambda row: -row.series.summary.requests)[:6]
    return {
        "range": chosen.key,
        "health": rows,
        "error_chart": line_chart(
            [Series(r.label, r.series.points.time, r.series.points.error_rate) for r in charted],
            title="Error rate by version",
            unit="%",
        ),
        "latency_chart": line_chart(
            [
                Series(r.label, r.series.points.time, r.series.points.latency_p95_ms)
                for r in charted
            ],
            title="Latency p95 by version",
            unit=" ms",
        ),
    }


@router.get("/deployments")
def deployments_page(
    request: Request,
    viewer: ViewerDep,
    cursor: str | None = None,
    notice: str | None = None,
) -> Response:
    """Every deployment with its routes, shadow, fallbacks and revision."""
    page = viewer.services.deployments.list(
        viewer.principal, cursor=cursor, limit=DEPLOYMENTS_PER_PAGE
    )
    return renderer(request).page(
        request,
        "deployments.html",
        {
            "title": "Deployments",
            "deployments": page.items,
            "next_cursor": page.next_cursor,
            "notice": notice,
        },
    )


@router.get("/deployments/{name}")
def deployment_page(
    request: Request,
    viewer: ViewerDep,
    name: str,
    range: str | None = None,
    notice: str | None = None,
) -> Response:
    """One deployment: traffic split and its forms, canary versus baseline, history."""
    services, principal = viewer.services, viewer.principal
    deployment = services.deployments.get(principal, name)
    revisions = services.deployments.revisions(principal, name)[-REVISIONS_SHOWN:]
    spec = deployment.spec
    split = bar_chart(
        [Bar(route.target, route.weight / 100) for route in spec.routes],
        title="Traffic split",
        unit="%",
    )
    return renderer(request).page(
        request,
        "deployments_detail.html",
        {
            "title": f"Deployment {deployment.name}",
            "deployment": deployment,
            "spec": spec,
            "canary": spec.routes[1] if len(spec.routes) > 1 else None,
            "editable_split": len(spec.routes) <= 2,
            "split_chart": split,
            "revisions": list(reversed(revisions)),
            "notice": notice,
            **version_health(services, principal, deployment, range),
        },
    )


# -- changing ------------------------------------------------------------------------


def parse_percent(text: str) -> int:
    """A percentage typed in a form (``10`` or ``10%``); ``InvalidInput`` outside 0..100."""
    value = text.strip().removesuffix("%").strip()
    if not _PERCENT.fullmatch(value) or int(value) > 100:
        raise InvalidInput(
            f"the canary weight must be a whole percentage from 0 to 100, not {text!r}",
            param="canary_weight",
        )
    return int(value)


def split_routes(current: DeploymentConfig, target: str, weight: str) -> list[tuple[str, int]]:
    """Primary plus canary from the form; the primary keeps what the canary does not take.

    An empty target means no canary: clearing the field removes the current one.
    """
    primary = current.routes[0].target
    canary = target.strip()
    if not canary:
        if len(current.routes) == 1 and weight.strip() and parse_percent(weight) > 0:
            raise InvalidInput(
                "name the canary target (MODEL@VERSION) that should get this traffic",
                param="canary_target",
            )
        return [(primary, 100)]
    parse_target(canary, param="canary_target")  # a clear message before the schema's
    percent = parse_percent(weight) if weight.strip() else 0
    if percent == 100:
        raise InvalidInput(
            "the primary must keep some traffic: to send all of it to the canary, promote it",
            param="canary_weight",
        )
    return [(primary, 100 - percent), (canary, percent)]


def _validation_text(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def traffic_config(
    current: DeploymentConfig,
    *,
    canary_target: str | None,
    canary_weight: str | None,
    shadow: str | None,
    fallbacks: str | None,
) -> DeploymentConfig:
    """The configuration the traffic form describes; an empty field means none.

    The form edits a primary and one canary; a deployment with more routes keeps
    them (the form leaves the canary fields out for it).
    """
    routes = [(route.target, route.weight) for route in current.routes]
    if len(routes) <= 2:
        routes = split_routes(current, canary_target or "", canary_weight or "")
    elif canary_target or canary_weight:
        raise InvalidInput(
            f"this deployment has {len(routes)} routes; the form sets a primary and one "
            "canary: change the routes with: modelcycle deploy update",
            param="canary_weight",
        )
    values = current.model_dump(mode="json")
    values["routes"] = [{"target": target, "weight": weight} for target, weight in routes]
    values["shadow"] = (shadow or "").strip() or None
    values["fallbacks"] = [part.strip() for part in (fallbacks or "").split(",") if part.strip()]
    try:
        return DeploymentConfig.model_validate(values)
    except ValidationError as exc:
        raise InvalidInput(_validation_text(exc)) from None


def _back(name: str, notice: str) -> RedirectResponse:
    return RedirectResponse(f"/deployments/{name}?{urlencode({'notice': notice})}", 303)


def _unchanged_since(current: Deployment, revision: int) -> None:
    if current.revision != revision:
        raise Conflict(
            f"deployment '{current.name}' changed (revision {revision} → {current.revision}) "
            "since this page was drawn; review the change again"
        )


@router.post("/deployments/{name}/traffic", dependencies=[FormChecked])
def set_traffic(
    viewer: ViewerDep,
    name: str,
    revision: Annotated[int, Form(ge=1)],
    canary_target: TextField = None,
    canary_weight: TextField = None,
    shadow: TextField = None,
    fallbacks: TextField = None,
) -> Response:
    """Set the canary weight, the shadow and the fallbacks in one new revision."""
    services, principal = viewer.services, viewer.principal
    require(principal, Role.MAINTAINER)  # before reading the form: a viewer gets 403
    current = services.deployments.get(principal, name)
    _unchanged_since(current, revision)
    config = traffic_config(
        current.spec,
        canary_target=canary_target,
        canary_weight=canary_weight,
        shadow=shadow,
        fallbacks=fallbacks,
    )
    if config == current.spec:
        return _back(name, "Nothing changed.")
    updated = services.deployments.update(principal, name, config, expected_revision=revision)
    return _back(name, f"Traffic is now {routes_text(updated.spec)} (revision {updated.revision}).")


def _confirm_page(
    request: Request, deployment: Deployment, action: str, after: DeploymentConfig, **extra: Any
) -> Response:
    return renderer(request).page(
        request,
        "deployments_confirm.html",
        {
            "title": f"{action.capitalize()} {deployment.name}",
            "action": action,
            "deployment": deployment,
            "changes": changes(deployment.spec, after),
            **extra,
        },
    )


@router.get("/deployments/{name}/promote")
def confirm_promote(request: Request, viewer: ViewerDep, name: str) -> Response:
    """What promoting the canary will change, and the button that does it."""
    deployment = viewer.services.deployments.get(viewer.principal, name)
    canary = canary_of(deployment.spec)
    after = deployment.spec.model_copy(update={"routes": [Route(target=canary.target, weight=100)]})
    return _confirm_page(request, deployment, "promote", after, canary=canary)


@router.post("/deployments/{name}/promote", dependencies=[FormChecked])
def promote(viewer: ViewerDep, name: str, revision: Annotated[int, Form(ge=1)]) -> Response:
    """Send all traffic to the canary."""
    services, principal = viewer.services, viewer.principal
    require(principal, Role.MAINTAINER)  # before reading the form: a viewer gets 403
    _unchanged_since(services.deployments.get(principal, name), revision)
    done = services.deployments.promote(principal, name)
    return _back(name, f"Promoted: {routes_text(done.spec)} (revision {done.revision}).")


@router.get("/deployments/{name}/rollback")
def confirm_rollback(
    request: Request, viewer: ViewerDep, name: str, to: int | None = None
) -> Response:
    """What rolling back will restore (the previous revision, or ``?to=N``)."""
    services, principal = viewer.services, viewer.principal
    deployment = services.deployments.get(principal, name)
    wanted = deployment.revision - 1 if to is None else to
    earlier = {rev.revision: rev for rev in services.deployments.revisions(principal, name)}
    if wanted >= deployment.revision or wanted not in earlier:
        raise Conflict(
            f"deployment '{name}' is at revision {deployment.revision}; "
            + (
                "it has no earlier revision to roll back to"
                if deployment.revision == 1
                else f"roll back to one of 1..{deployment.revision - 1}"
            )
        )
    return _confirm_page(request, deployment, "rollback", earlier[wanted].spec, to_revision=wanted)


@router.post("/deployments/{name}/rollback", dependencies=[FormChecked])
def rollback(
    viewer: ViewerDep,
    name: str,
    revision: Annotated[int, Form(ge=1)],
    to: Annotated[int | None, Form(ge=1)] = None,
) -> Response:
    """Restore an earlier configuration as a new revision."""
    services, principal = viewer.services, viewer.principal
    require(principal, Role.MAINTAINER)  # before reading the form: a viewer gets 403
    _unchanged_since(services.deployments.get(principal, name), revision)
    done = services.deployments.rollback(principal, name, to_revision=to)
    return _back(name, f"Rolled back: {routes_text(done.spec)} (revision {done.revision}).")
