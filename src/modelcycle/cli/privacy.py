"""``modelcycle privacy``: erase or export an end user's data; switch raw-text storage."""

from __future__ import annotations

import enum
import json
import os
from pathlib import Path
from typing import Annotated

import typer
from pydantic_core import to_jsonable_python
from rich.text import Text

from modelcycle.cli.output import ApiKeyOption, JsonOption, ServerOption, emit, fail
from modelcycle.client import Client
from modelcycle.client.transport import DEFAULT_SERVER
from modelcycle.monitor.privacy_schemas import Erasure
from modelcycle.monitor.trace_schemas import MonitorPolicy

app = typer.Typer(
    help="End users' data: erase, export; raw-text storage of traces.", no_args_is_help=True
)

UserOption = Annotated[
    str, typer.Option("--user", help="The end user's id, as the application sent it.")
]


class Switch(enum.StrEnum):
    """``on`` or ``off``."""

    ON = "on"
    OFF = "off"


def _counts(erasure: Erasure) -> str:
    return ", ".join(f"{count} {kind}" for kind, count in erasure.counts.items())


@app.command("erase")
def erase(
    user: UserOption,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count what would be erased.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete an end user's traces, feedback and derived data (admins); prints counts."""
    with Client(server, api_key) as client:
        if not dry_run and not yes:
            preview = client.privacy.erase(user, dry_run=True)
            typer.echo(f"this erases {_counts(preview)} of user {user!r}", err=True)
            try:
                confirmed = typer.confirm("erase them? this cannot be undone", err=True)
            except typer.Abort:
                confirmed = False
            if not confirmed:
                fail("nothing erased (not confirmed); pass --yes to erase without asking")
        erasure = client.privacy.erase(user, dry_run=dry_run)
    verb = "would erase" if erasure.dry_run else "erased"
    line = f"{verb} {_counts(erasure)} (audited as user {erasure.user_hash[:16]})"
    if erasure.failed:
        line += f"; failed: {', '.join(erasure.failed)} (run again to finish)"
    emit(erasure, as_json, lambda out: out.print(Text(line), soft_wrap=True))
    if erasure.failed:
        raise typer.Exit(1)


@app.command("export")
def export(
    user: UserOption,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Write the JSON here (created private, mode 0600).", metavar="FILE"
        ),
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
) -> None:
    """Everything held about an end user as JSON (admins): to stdout, or --out FILE."""
    with Client(server, api_key) as client:
        found = client.privacy.export(user)
    text = json.dumps(to_jsonable_python(found), indent=2, ensure_ascii=False) + "\n"
    if out is None:
        typer.echo(text, nl=False)
        return
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror}")
    # Plain echo: a long path must stay on one line for scripts.
    typer.echo(f"wrote {len(found.traces)} traces and {len(found.feedback)} more feedback to {out}")


@app.command("raw-text")
def raw_text(
    switch: Annotated[
        Switch | None,
        typer.Argument(help="on: store prompts and answers unredacted; off: redact (default)."),
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show whether traces keep raw text, or switch it with on|off (admins; audited)."""
    with Client(server, api_key) as client:
        policy: MonitorPolicy = (
            client.traces.policy()
            if switch is None
            else client.privacy.set_raw_text(switch is Switch.ON)
        )
    state = (
        "traces are stored raw (personal data and secrets included)"
        if policy.store_raw_text
        else "traces are stored with personal data and secrets redacted"
    )
    emit(policy, as_json, lambda out: out.print(Text(state)))
