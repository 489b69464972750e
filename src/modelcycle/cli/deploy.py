"""``modelcycle deploy``: deployments, canaries, promotion and rollback."""

from __future__ import annotations

from typing import Annotated, NamedTuple

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
from modelcycle.deploy import (
    BreakerPolicy,
    CachePolicy,
    Deployment,
    DeploymentConfig,
    DeploymentLimits,
    Route,
)
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
RpmOption = Annotated[
    int | None, typer.Option("--rpm", min=0, help="Requests/minute, all keys together (0: none).")
]
TpmOption = Annotated[
    int | None, typer.Option("--tpm", min=0, help="Tokens/minute, all keys together (0: none).")
]
KeyRpmOption = Annotated[
    int | None, typer.Option("--key-rpm", min=0, help="Requests/minute of each key (0: none).")
]
KeyTpmOption = Annotated[
    int | None, typer.Option("--key-tpm", min=0, help="Tokens/minute of each key (0: none).")
]
ConcurrencyOption = Annotated[
    int | None,
    typer.Option("--max-concurrency", min=0, help="Requests in flight per process (0: no limit)."),
]
QueueTimeoutOption = Annotated[
    float | None,
    typer.Option("--queue-timeout", min=0, help="Seconds a request waits for a free slot."),
]
CacheTtlOption = Annotated[
    float | None,
    typer.Option("--cache-ttl", min=0, help="Seconds cached answers live (0: cache off)."),
]
BreakerFailuresOption = Annotated[
    int | None,
    typer.Option(
        "--breaker-failures", min=0, help="Failures in a row that take a version out (0: never)."
    ),
]
GuardOption = Annotated[
    str | None,
    typer.Option("--guard", help="The guard policy its requests run (modelcycle guard policy)."),
]
BreakerCooldownOption = Annotated[
    float | None,
    typer.Option("--breaker-cooldown", min=0.001, help="Seconds a failing version stays out."),
]


class Policies(NamedTuple):
    """The limits, cache and breaker options resolved against a deployment (``None``: as is)."""

    limits: DeploymentLimits | None
    cache: CachePolicy | None
    breaker: BreakerPolicy | None


def policies_for(
    current: DeploymentConfig | None,
    rates: tuple[int | None, int | None, int | None, int | None],
    concurrency: tuple[int | None, float | None],
    cache_ttl: float | None,
    breaker: tuple[int | None, float | None],
) -> Policies:
    """Apply the options to ``current`` (a new deployment when ``None``); 0 removes a limit."""
    names = ("rpm", "tpm", "key_rpm", "key_tpm", "max_concurrency")
    limits: dict[str, object] = {
        name: value or None
        for name, value in zip(names, (*rates, concurrency[0]), strict=True)
        if value is not None
    }
    if concurrency[1] is not None:
        limits["queue_timeout_s"] = concurrency[1]
    failures, cooldown = breaker
    circuit = {"failures": failures, "cooldown_s": cooldown}
    circuit = {key: value for key, value in circuit.items() if value is not None}
    base_limits = current.limits if current else DeploymentLimits()
    base_breaker = current.breaker if current else BreakerPolicy()
    return Policies(
        DeploymentLimits.model_validate({**base_limits.model_dump(), **limits}) if limits else None,
        CachePolicy(ttl_s=cache_ttl) if cache_ttl is not None else None,
        BreakerPolicy.model_validate({**base_breaker.model_dump(), **circuit}) if circuit else None,
    )


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
        "limits": _limits_text(spec) or None,
        "cache (ttl s)": spec.cache.ttl_s or None,
        "breaker": f"{spec.breaker.failures} failures -> out {spec.breaker.cooldown_s:g} s"
        if spec.breaker.enabled
        else "off",
        "guard": spec.guard,
        "updated by": deployment.updated_by,
        "updated at": deployment.updated_at,
    }


def _limits_text(spec: DeploymentConfig) -> str:
    limits = spec.limits
    named = {
        "rpm": limits.rpm,
        "tpm": limits.tpm,
        "key rpm": limits.key_rpm,
        "key tpm": limits.key_tpm,
        "max concurrency": limits.max_concurrency,
    }
    return ", ".join(f"{name} {value}" for name, value in named.items() if value is not None)


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


def _changed_guard(guard: str | None, no_guard: bool) -> str | Keep | None:
    """The guard of ``deploy update``: a name, ``None`` (--no-guard) or ``KEEP``."""
    if guard is not None and no_guard:
        raise InvalidInput("--guard cannot be combined with --no-guard")
    return None if no_guard else (guard or KEEP)


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
    rpm: RpmOption = None,
    tpm: TpmOption = None,
    key_rpm: KeyRpmOption = None,
    key_tpm: KeyTpmOption = None,
    max_concurrency: ConcurrencyOption = None,
    queue_timeout: QueueTimeoutOption = None,
    cache_ttl: CacheTtlOption = None,
    breaker_failures: BreakerFailuresOption = None,
    breaker_cooldown: BreakerCooldownOption = None,
    guard: GuardOption = None,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a deployment routing to TARGET (and optionally a canary)."""
    routes = routes_for(target, canary, canary_weight)
    policies = policies_for(
        None,
        (rpm, tpm, key_rpm, key_tpm),
        (max_concurrency, queue_timeout),
        cache_ttl,
        (breaker_failures, breaker_cooldown),
    )
    with Client(server, api_key) as client:
        created = client.deployments.create(
            name,
            routes,
            shadow=shadow,
            fallbacks=fallback or [],
            timeout_s=60.0 if timeout is None else timeout,
            retries=retries or 0,
            sticky=sticky,
            limits=policies.limits,
            cache=policies.cache,
            breaker=policies.breaker,
            guard=guard,
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
    rpm: RpmOption = None,
    tpm: TpmOption = None,
    key_rpm: KeyRpmOption = None,
    key_tpm: KeyTpmOption = None,
    max_concurrency: ConcurrencyOption = None,
    queue_timeout: QueueTimeoutOption = None,
    cache_ttl: CacheTtlOption = None,
    breaker_failures: BreakerFailuresOption = None,
    breaker_cooldown: BreakerCooldownOption = None,
    guard: GuardOption = None,
    no_guard: Annotated[bool, typer.Option("--no-guard", help="Run no guard policy.")] = False,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change some settings of a deployment; the others stay as they are (audited)."""
    new_guard = _changed_guard(guard, no_guard)
    if shadow is not None and no_shadow:
        raise InvalidInput("--shadow cannot be combined with --no-shadow")
    if fallback and no_fallbacks:
        raise InvalidInput("--fallback cannot be combined with --no-fallbacks")
    new_shadow: str | Keep | None = None if no_shadow else (shadow or KEEP)
    with Client(server, api_key) as client:
        current = client.deployments.get(name)
        routes = _changed_routes(current.spec, target, canary, canary_weight, no_canary)
        policies = policies_for(
            current.spec,
            (rpm, tpm, key_rpm, key_tpm),
            (max_concurrency, queue_timeout),
            cache_ttl,
            (breaker_failures, breaker_cooldown),
        )
        updated = client.deployments.update(
            name,
            routes=routes,
            shadow=new_shadow,
            fallbacks=[] if no_fallbacks else (fallback or None),
            timeout_s=timeout,
            retries=retries,
            sticky=sticky,
            limits=policies.limits,
            cache=policies.cache,
            breaker=policies.breaker,
            guard=new_guard,
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
