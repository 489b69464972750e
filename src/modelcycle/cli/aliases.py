"""``modelcycle aliases``: movable pointers to model versions."""

from __future__ import annotations

from typing import Annotated

import typer

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
from modelcycle.client.transport import DEFAULT_SERVER
from modelcycle.registry import Alias

app = typer.Typer(help="Aliases: set, list, show, delete, history.", no_args_is_help=True)

ModelArgument = Annotated[str, typer.Argument(help="Name of the model.")]
AliasArgument = Annotated[str, typer.Argument(help="Name of the alias, e.g. production.")]


def _fields(alias: Alias) -> dict[str, object]:
    return {
        "model": alias.model,
        "alias": alias.alias,
        "version": alias.version,
        "updated at": alias.updated_at,
    }


@app.command("set")
def set_alias(
    model: ModelArgument,
    alias: AliasArgument,
    version: Annotated[int, typer.Argument(help="Version the alias should point at.")],
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Point an alias at a version (created if new; the move is audited)."""
    with Client(server, api_key) as client:
        moved = client.aliases.set(model, alias, version)
    emit(
        moved,
        as_json,
        lambda _: ok(f"{moved.model}:{moved.alias} now points at version {moved.version}"),
    )


@app.command("list")
def list_aliases(
    model: ModelArgument,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the aliases of a model."""
    with Client(server, api_key) as client:
        aliases = client.aliases.list(model)
    rows = [(a.alias, a.version, a.updated_at) for a in aliases]
    emit(aliases, as_json, lambda out: out.print(table(("alias", "version", "updated at"), rows)))


@app.command("show")
def show(
    model: ModelArgument,
    alias: AliasArgument,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show where an alias points."""
    with Client(server, api_key) as client:
        found = client.aliases.get(model, alias)
    emit(found, as_json, lambda out: out.print(record(_fields(found))))


@app.command("delete")
def delete(
    model: ModelArgument,
    alias: AliasArgument,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Remove an alias (the move is audited)."""
    with Client(server, api_key) as client:
        client.aliases.delete(model, alias)
    result = {"deleted": True, "model": model, "alias": alias}
    emit(result, as_json, lambda _: ok(f"deleted alias {alias} of {model}"))


@app.command("history")
def history(
    model: ModelArgument,
    alias: Annotated[
        str | None, typer.Option("--alias", help="Only the moves of this alias.")
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """List alias moves of a model, oldest first."""
    with Client(server, api_key) as client:
        moves = client.aliases.history(model, alias)
    columns = ("at", "alias", "from", "to", "actor")
    rows = [(m.at, m.alias, m.from_version, m.to_version, m.actor) for m in moves]
    emit(moves, as_json, lambda out: out.print(table(columns, rows)))
