"""``modelcycle audit``: read and verify the hash-chained audit log (admins)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from modelcycle.access import AuditEntry
from modelcycle.cli.output import (
    ApiKeyOption,
    JsonOption,
    ServerOption,
    compact_json,
    emit,
    table,
)
from modelcycle.client import Client
from modelcycle.client.transport import DEFAULT_SERVER

app = typer.Typer(help="The audit log: list entries, verify the hash chain.", no_args_is_help=True)


@app.command("list")
def list_entries(
    action: Annotated[
        str | None, typer.Option(help="Only this action, e.g. alias.set or key.create.")
    ] = None,
    actor: Annotated[str | None, typer.Option(help="Only this actor, e.g. key:ab12cd34.")] = None,
    target: Annotated[
        str | None, typer.Option(help="Only targets starting with this, e.g. model:chat.")
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """List audit entries, oldest first."""
    with Client(server, api_key) as client:
        entries = client.audit.list(action=action, actor=actor, target=target)
    columns = ("seq", "at", "actor", "action", "target", "change")
    rows = [(e.seq, e.at, e.actor, e.action, e.target, change(e)) for e in entries]
    emit(entries, as_json, lambda out: out.print(table(columns, rows)))


def change(entry: AuditEntry) -> str:
    """A short summary of ``before`` -> ``after`` for tables (``--json`` has both in full)."""
    before, after = entry.before, entry.after
    if before is None or after is None:
        sign, state = ("+", after) if before is None else ("-", before)
        return f"{sign} {compact_json(state, 60)}" if state else "-"
    changed = [
        f"{key}: {compact_json(before.get(key), 20)} -> {compact_json(after.get(key), 20)}"
        for key in dict.fromkeys([*before, *after])
        if before.get(key) != after.get(key)
    ]
    return "; ".join(changed) or "-"


@app.command("verify")
def verify(
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check the hash chain; exits 1 and names the first bad entry when it is broken."""
    with Client(server, api_key) as client:
        result = client.audit.verify()
    if result.ok:
        message = f"OK: audit chain intact ({result.entries} entries)"
    else:
        message = (
            f"BROKEN: audit chain fails at entry {result.first_bad_seq}: {result.reason} "
            f"({result.entries} entries)"
        )
    emit(result, as_json, lambda out: out.print(Text(message)))
    if not result.ok:
        raise typer.Exit(1)
