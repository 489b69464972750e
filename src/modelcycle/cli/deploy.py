"""``modelcycle deploy``: deployments, canaries, promotion and rollback."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from modelcycle.cli.output import (
    ApiKeyOption,
    JsonOption,
    ServerOption,
    emit,
    ok,
    record,
    table,
)
from modelcycle.client import Client
from modelcycle.client.calls import KEEP, Keep
from modelcycle.client.transport import DEFAULT_SERVER
from modelcycle.deploy import Deployment, DeploymentConfig, Route
from modelcycle.errors import InvalidInput

app = typer.Typer(
    help="Deployments: create, update, promote, rollback, list, show, history, delete.",
    no_args_is_help=True,
)

DEFAULT_CANARY_WEIGHT = 10

NameArgument = Annotated[
    str, typer.Argument(help="Name of the deployment (the `model` clients send).")
]
CanaryOption = Annotated[
    str | None,
    typer.Option("--canary", help="A second target taking --canary-weight percent of traffic."),
]
CanaryWeightOption = Annotated[
    int | None,
    typer.Option(
        "--canary-weight",
        min=0,
        max=100,
        help=f"Percent of traffic for the canary (default {DEFAULT_CANARY_WEIGHT}).",
    ),
]
ShadowOption = Annotated[
    str | None,
    typer.Option("--shadow", help="A target that gets a copy of traffic; never answers clients."),
]
FallbackOption = Annotated[
    list[str] | None,
    typer.Option("--fallback", help="A target tried when the route fails (repeat, in order)."),
]
TimeoutOption = Annotated[
    float | None, typer.Option("--timeout", help="Seconds to wait for a backend.", min=0.001)
]
RetriesOption = Annotated[
    int | None, typer.Option("--retries", help="Extra attempts before the fallbacks.", min=0)
]


def _fields(deployment: Deployment) -> dict[str, object]:
    spec = deployment.spec
    return {
        "name": deployment.name,
        "revision": deployment.revision,
        "routes": ", ".join(f"{r.target} {r.weight}%" for r in spec.routes),
        "shadow": spec.shadow,
        "fallbacks": ", ".join(spec.fallbacks) or None,
        "timeout (s)": spec.timeout_s,
        "retries": spec.retries,
        "sticky": spec.sticky,
        "updated by": deployment.updated_by,
        "updated at": deployment.updated_at,
    }


def _show(deployment: Deployment, as_json: bool, message: str) -> None:
    def render(out: Console) -> None:
        ok(message)
        out.print(record(_fields(deployment)))

    emit(deployment, as_json, render)


def routes_for(primary: str, canary: str | None, weight: int | None) -> list[Route]:
    """The primary alone, or the primary and a canary taking ``weight`` percent."""
    if canary is None:
        if weight is not None:
            raise InvalidInput("--canary-weight needs --canary MODEL@REF")
        return [Route(target=primary, weight=100)]
    share = DEFAULT_CANARY_WEIGHT if weight is None else weight
    return [Route(target=primary, weight=100 - share), Route(target=canary, weight=share)]


def _changed_routes(
    current: DeploymentConfig,
    target: str | None,
    canary: str | None,
    weight: int | None,
    no_canary: bool,
) -> list[Route] | None:
    if target is None and canary is None and weight is None and not no_canary:
        return None
    primary = target or current.routes[0].target
    if no_canary:
        if canary is not None or weight is not None:
            raise InvalidInput("--no-canary cannot be combined with --canary or --canary-weight")
        return routes_for(primary, None, None)
    existing = current.routes[1] if len(current.routes) > 1 else None
    chosen = canary or (existing.target if existing else None)
    if weight is None and canary is None and existing is not None:
        weight = existing.weight
    return routes_for(primary, chosen, weight)


@app.command("create")
def create(
    name: NameArgument,
    target: Annotated[
        str, typer.Option("--target", help="The primary target: MODEL@VERSION or MODEL@ALIAS.")
    ],
    canary: CanaryOption = None,
    canary_weight: CanaryWeightOption = None,
    shadow: ShadowOption = None,
    fallback: FallbackOption = None,
    timeout: TimeoutOption = None,
    retries: RetriesOption = None,
    sticky: Annotated[
        bool, typer.Option("--sticky", help="Keep each `user` on one route.")
    ] = False,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a deployment routing to TARGET (and optionally a canary)."""
    routes = routes_for(target, canary, canary_weight)
    with Client(server, api_key) as client:
        created = client.deployments.create(
            name,
            routes,
            shadow=shadow,
            fallbacks=fallback or [],
            timeout_s=60.0 if timeout is None else timeout,
            retries=retries or 0,
            sticky=sticky,
        )
    _show(created, as_json, f"created deployment {created.name} (revision {created.revision})")


@app.command("update")
def update(
    name: NameArgument,
    target: Annotated[str | None, typer.Option("--target", help="A new primary target.")] = None,
    canary: CanaryOption = None,
    canary_weight: CanaryWeightOption = None,
    no_canary: Annotated[bool, typer.Option("--no-canary", help="Remove the canary.")] = False,
    shadow: ShadowOption = None,
    no_shadow: Annotated[bool, typer.Option("--no-shadow", help="Remove the shadow.")] = False,
    fallback: FallbackOption = None,
    no_fallbacks: Annotated[
        bool, typer.Option("--no-fallbacks", help="Remove every fallback.")
    ] = False,
    timeout: TimeoutOption = None,
    retries: RetriesOption = None,
    sticky: Annotated[
        bool | None, typer.Option("--sticky/--no-sticky", help="Keep each `user` on one route.")
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change some settings of a deployment; the others stay as they are (audited)."""
    if shadow is not None and no_shadow:
        raise InvalidInput("--shadow cannot be combined with --no-shadow")
    if fallback and no_fallbacks:
        raise InvalidInput("--fallback cannot be combined with --no-fallbacks")
    new_shadow: str | Keep | None = None if no_shadow else (shadow or KEEP)
    with Client(server, api_key) as client:
        current = client.deployments.get(name)
        routes = _changed_routes(current.spec, target, canary, canary_weight, no_canary)
        updated = client.deployments.update(
            name,
            routes=routes,
            shadow=new_shadow,
            fallbacks=[] if no_fallbacks else (fallback or None),
            timeout_s=timeout,
            retries=retries,
            sticky=sticky,
        )
    _show(updated, as_json, f"updated deployment {updated.name} (revision {updated.revision})")


@app.command("promote")
def promote(
    name: NameArgument,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Make the canary the only route, with all the traffic (audited)."""
    with Client(server, api_key) as client:
        promoted = client.deployments.promote(name)
    target = promoted.spec.routes[0].target
    _show(promoted, as_json, f"promoted {target}: it now serves all of {promoted.name}")


@app.command("rollback")
def rollback(
    name: NameArgument,
    to_revision: Annotated[
        int | None,
        typer.Option("--to-revision", min=1, help="Restore this revision instead of the last."),
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Restore the previous configuration of a deployment (as a new revision, audited)."""
    with Client(server, api_key) as client:
        restored = client.deployments.rollback(name, to_revision=to_revision)
    _show(restored, as_json, f"rolled back {restored.name} (now revision {restored.revision})")


@app.command("list")
def list_deployments(
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the deployments of the project."""
    with Client(server, api_key) as client:
        found = client.deployments.list()
    rows = [
        (
            d.name,
            d.revision,
            "\n".join(f"{r.target} {r.weight}%" for r in d.spec.routes),
            d.spec.shadow,
            ", ".join(d.spec.fallbacks) or None,
            d.updated_at,
        )
        for d in found
    ]
    columns = ("name", "revision", "routes", "shadow", "fallbacks", "updated at")
    emit(found, as_json, lambda out: out.print(table(columns, rows)))


@app.command("show")
def show(
    name: NameArgument,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a deployment and the configuration in force."""
    with Client(server, api_key) as client:
        found = client.deployments.get(name)
    emit(found, as_json, lambda out: out.print(record(_fields(found))))


@app.command("history")
def history(
    name: NameArgument,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """List every configuration the deployment has had, oldest first."""
    with Client(server, api_key) as client:
        revisions = client.deployments.revisions(name)
    rows = [
        (
            r.revision,
            r.action,
            ", ".join(f"{x.target} {x.weight}%" for x in r.spec.routes),
            r.actor,
            r.at,
        )
        for r in revisions
    ]
    columns = ("revision", "action", "routes", "actor", "at")
    emit(revisions, as_json, lambda out: out.print(table(columns, rows)))


@app.command("delete")
def delete(
    name: NameArgument,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete a deployment (clients calling it get 404 model_not_found)."""
    with Client(server, api_key) as client:
        client.deployments.delete(name)
    emit({"deleted": True, "name": name}, as_json, lambda _: ok(f"deleted deployment {name}"))
