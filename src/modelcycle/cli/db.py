"""``modelcycle db``: database migrations on this machine's settings."""

from __future__ import annotations

import typer
from rich.console import Console

from modelcycle.cli.output import JsonOption, emit, record
from modelcycle.cli.server import ConfigOption, local_services, masked_database_url
from modelcycle.services import Services
from modelcycle.settings import load_settings
from modelcycle.store.migrate import current_revision, head_revision, upgrade

app = typer.Typer(
    help="Database migrations (runs locally, no server needed).", no_args_is_help=True
)


@app.command("upgrade")
def upgrade_command(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Apply every pending migration."""
    settings = load_settings(config)
    services = local_services(settings)
    try:
        upgrade(services.store)
        status = _status(services)
    finally:
        services.close()
    database = masked_database_url(settings)

    def render(out: Console) -> None:
        out.print(f"database {database} upgraded to {status['current']}", markup=False)

    emit({"database": database, **status}, as_json, render)


@app.command("current")
def current_command(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Show the migration the database is at and the newest one shipped."""
    settings = load_settings(config)
    services = local_services(settings)
    try:
        status = _status(services)
    finally:
        services.close()
    database = masked_database_url(settings)

    def render(out: Console) -> None:
        note = "up to date" if status["up_to_date"] else "pending; run: modelcycle db upgrade"
        out.print(
            record(
                {
                    "database": database,
                    "current": status["current"] or "none",
                    "head": status["head"],
                    "status": note,
                }
            )
        )

    emit({"database": database, **status}, as_json, render)


def _status(services: Services) -> dict[str, object]:
    current, head = current_revision(services.store), head_revision(services.store)
    return {"current": current, "head": head, "up_to_date": current == head}
