"""``modelcycle keys`` and ``modelcycle whoami``: API keys and the caller."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console

from modelcycle.access import ApiKey
from modelcycle.access.keys import generate_key
from modelcycle.access.schemas import MAX_GRACE_S
from modelcycle.cli.drift import parse_duration
from modelcycle.cli.output import (
    ApiKeyOption,
    JsonOption,
    ServerOption,
    emit,
    parse_choice,
    record,
    table,
)
from modelcycle.client import Client
from modelcycle.client.transport import DEFAULT_SERVER
from modelcycle.errors import InvalidInput
from modelcycle.types import Role

app = typer.Typer(
    help="API keys: create, list, show, rotate, revoke, generate.", no_args_is_help=True
)

KeyIdArgument = Annotated[int, typer.Argument(help="Numeric id of the key (see: keys list).")]
ExpiresAtOption = Annotated[
    str | None,
    typer.Option(help="When the key stops working (ISO 8601 with offset).", metavar="ISO"),
]
ProjectOption = Annotated[
    str | None,
    typer.Option(help="Project of the key; the caller's own when omitted.", show_default=False),
]


def _fields(key: ApiKey) -> dict[str, object]:
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "role": key.role,
        "project": key.project,
        "deployments": _allowlist(key),
        "created by": key.created_by,
        "created at": key.created_at,
        "expires at": key.expires_at,
        "revoked at": key.revoked_at,
        "rotated from": key.rotated_from,
    }


def _allowlist(key: ApiKey) -> str:
    return "all" if key.deployments is None else ", ".join(key.deployments)


def _print_key(raw: str) -> None:
    # Plain echo: the secret must never be wrapped or styled by rich.
    typer.echo(f"\nkey: {raw}")
    typer.echo("  shown only now; it is stored as a hash and cannot be shown again.")


def _parse_expiry(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"--expires-at {value!r} is not an ISO 8601 time; e.g. 2030-01-31T00:00:00+00:00"
        ) from None


@app.command("create")
def create(
    name: Annotated[str, typer.Option(help="A label for people, e.g. ci-deployer.")],
    role: Annotated[str, typer.Option(help="admin, maintainer, viewer or app (inference only).")],
    project: ProjectOption = None,
    expires_at: ExpiresAtOption = None,
    deployment: Annotated[
        list[str] | None,
        typer.Option(
            "--deployment",
            help="A deployment the key may call (repeat); every one of the project when omitted.",
            show_default=False,
        ),
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create an API key; the key itself is printed only this once."""
    parsed_role = parse_choice(Role, role, "--role")
    expiry = _parse_expiry(expires_at)
    with Client(server, api_key) as client:
        created = client.keys.create(
            name, parsed_role, project=project, expires_at=expiry, deployments=deployment or None
        )

    def render(out: Console) -> None:
        out.print(record(_fields(created), title="API key created"))
        _print_key(created.key)

    emit(created, as_json, render)


@app.command("list")
def list_keys(
    project: Annotated[
        str | None,
        typer.Option(help="Project whose keys to list; the caller's own when omitted."),
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the API keys of a project (never their secrets)."""
    with Client(server, api_key) as client:
        keys = client.keys.list(project=project)
    columns = ("id", "name", "prefix", "role", "deployments", "expires at", "revoked at")
    rows = [
        (k.id, k.name, k.prefix, k.role, _allowlist(k), k.expires_at, k.revoked_at) for k in keys
    ]
    emit(keys, as_json, lambda out: out.print(table(columns, rows)))


@app.command("show")
def show(
    key_id: KeyIdArgument,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one API key."""
    with Client(server, api_key) as client:
        key = client.keys.get(key_id)
    emit(key, as_json, lambda out: out.print(record(_fields(key))))


@app.command("revoke")
def revoke(
    key_id: KeyIdArgument,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revoke an API key; it stops working at once."""
    with Client(server, api_key) as client:
        key = client.keys.revoke(key_id)
    emit(key, as_json, lambda out: out.print(record(_fields(key), title="API key revoked")))


@app.command("rotate")
def rotate(
    key_id: KeyIdArgument,
    grace: Annotated[
        str,
        typer.Option(
            help="How long the old key keeps working, e.g. 0, 30m, 1h, 7d (at most 7d).",
            metavar="DURATION",
        ),
    ] = "0",
    expires_at: Annotated[
        str | None,
        typer.Option(
            help="When the new key stops working (ISO 8601 with offset); the old key's expiry "
            "when omitted.",
            metavar="ISO",
        ),
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Replace a key by a new one (same name, role, deployments); printed only this once."""
    grace_s = parse_duration(grace, "--grace")
    if grace_s > MAX_GRACE_S:
        raise InvalidInput(f"--grace {grace!r} is longer than 7 days; write e.g. 1h or 7d")
    expiry = _parse_expiry(expires_at)
    with Client(server, api_key) as client:
        rotated = client.keys.rotate(key_id, grace_s=grace_s, expires_at=expiry)

    def render(out: Console) -> None:
        out.print(record(_fields(rotated), title="API key rotated"))
        old = rotated.previous
        if old.revoked_at is not None:
            typer.echo(f"\nold key {old.id} ({old.prefix}) is revoked.")
        else:
            typer.echo(f"\nold key {old.id} ({old.prefix}) keeps working until {old.expires_at}.")
        _print_key(rotated.key)

    emit(rotated, as_json, render)


@app.command("generate")
def generate() -> None:
    """Print a fresh, well-formed key (local), e.g. for MODELCYCLE_ADMIN_KEY."""
    key, _ = generate_key()
    typer.echo(key)


def whoami(
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the key in use: its name, role and project."""
    with Client(server, api_key) as client:
        me = client.whoami()
    fields = {
        "key id": me.key_id,
        "name": me.name,
        "prefix": me.prefix,
        "role": me.role,
        "project": me.project,
        "deployments": "all" if me.deployments is None else ", ".join(me.deployments),
        "root admin": me.is_root,
    }
    emit(me, as_json, lambda out: out.print(record(fields)))
