"""``modelcycle projects``: tenants (root admins create them)."""

from __future__ import annotations

from typing import Annotated

import typer

from modelcycle.cli.output import ApiKeyOption, JsonOption, ServerOption, emit, record, table
from modelcycle.client import Client
from modelcycle.client.transport import DEFAULT_SERVER

app = typer.Typer(help="Projects (tenants): create, list.", no_args_is_help=True)


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Lowercase name, unique.")],
    description: Annotated[str, typer.Option(help="What the project is for.")] = "",
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a project (root admins only)."""
    with Client(server, api_key) as client:
        project = client.projects.create(name, description)
    fields = {
        "id": project.id,
        "name": project.name,
        "description": project.description,
        "created at": project.created_at,
    }
    emit(project, as_json, lambda out: out.print(record(fields, title="Project created")))


@app.command("list")
def list_projects(
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the projects visible to the key."""
    with Client(server, api_key) as client:
        projects = client.projects.list()
    rows = [(p.id, p.name, p.description, p.created_at) for p in projects]
    emit(
        projects,
        as_json,
        lambda out: out.print(table(("id", "name", "description", "created at"), rows)),
    )
