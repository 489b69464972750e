"""``modelcycle models``: models, their versions and lineage."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console

from modelcycle.cli.output import (
    ApiKeyOption,
    JsonOption,
    ServerOption,
    emit,
    ok,
    parse_choice,
    record,
    table,
)
from modelcycle.client import Client
from modelcycle.client.transport import DEFAULT_SERVER
from modelcycle.errors import InvalidInput
from modelcycle.registry import Model, ModelVersion, VersionRef
from modelcycle.types import BackendKind

app = typer.Typer(
    help="Models and versions: register, list, show, archive, lineage.", no_args_is_help=True
)

NameArgument = Annotated[str, typer.Argument(help="Name of the model.")]
VersionArgument = Annotated[int, typer.Argument(help="Version number, e.g. 3.")]


def parse_pairs(pairs: list[str] | None, option: str) -> dict[str, Any]:
    """``key=value`` strings as a dict; values that are valid JSON are decoded."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(
                f"{option} {pair!r} must look like key=value, e.g. {option} temperature=0.2"
            )
        out[key.strip()] = _json_or_text(raw)
    return out


def _json_or_text(raw: str) -> Any:
    def no_constants(name: str) -> Any:
        raise ValueError(name)  # NaN/Infinity are not JSON; keep them as text

    try:
        return json.loads(raw, parse_constant=no_constants)
    except ValueError:
        return raw


def parse_parent(value: str | None) -> tuple[str, int] | None:
    """``MODEL@VERSION`` as a pair, else an ``InvalidInput`` naming the fix."""
    if value is None:
        return None
    name, sep, version = value.rpartition("@")
    if not sep or not name or not version.isdigit() or int(version) < 1:
        raise InvalidInput(f"--parent {value!r} must look like MODEL@VERSION, e.g. base@1")
    return name, int(version)


def _ref(ref: VersionRef | None) -> str | None:
    return f"{ref.model}@{ref.version}" if ref else None


def version_fields(version: ModelVersion) -> dict[str, object]:
    """The fields of a version as shown in a record table."""
    return {
        "model": version.model,
        "version": version.version,
        "status": version.status,
        "backend": version.backend,
        "source": version.source,
        "params": version.params,
        "parent": _ref(version.parent),
        "aliases": ", ".join(version.aliases) or None,
        "metadata": version.metadata,
        "created by": version.created_by,
        "created at": version.created_at,
    }


@app.command("register")
def register(
    name: NameArgument,
    source: Annotated[str, typer.Option(help="Weights or endpoint: a path or URL.")],
    backend: Annotated[
        str, typer.Option(help="Engine: llamacpp, transformers, openai, ray or mock.")
    ],
    param: Annotated[
        list[str] | None,
        typer.Option(
            help="Serving parameter key=value (repeatable); JSON values are decoded.",
            metavar="K=V",
            show_default=False,
        ),
    ] = None,
    parent: Annotated[
        str | None,
        typer.Option(help="Version this one derives from.", metavar="MODEL@VERSION"),
    ] = None,
    description: Annotated[str, typer.Option(help="What changed in this version.")] = "",
    meta: Annotated[
        list[str] | None,
        typer.Option(
            help="Metadata key=value (repeatable); JSON values are decoded.",
            metavar="K=V",
            show_default=False,
        ),
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register the next version of a model (the model is created if new)."""
    kind = parse_choice(BackendKind, backend, "--backend")
    params, metadata = parse_pairs(param, "--param"), parse_pairs(meta, "--meta")
    parent_ref = parse_parent(parent)
    with Client(server, api_key) as client:
        version = client.models.register(
            name,
            source=source,
            backend=kind,
            params=params,
            parent=parent_ref,
            description=description,
            metadata=metadata,
        )
    title = f"Registered {version.model} version {version.version}"
    emit(version, as_json, lambda out: out.print(record(version_fields(version), title=title)))


@app.command("list")
def list_models(
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the models of the project."""
    with Client(server, api_key) as client:
        models = client.models.list()
    columns = ("name", "latest", "aliases", "description", "created at")
    rows = [(m.name, m.latest_version, _aliases(m), m.description, m.created_at) for m in models]
    emit(models, as_json, lambda out: out.print(table(columns, rows)))


def _aliases(model: Model) -> str | None:
    return ", ".join(f"{alias}->{v}" for alias, v in sorted(model.aliases.items())) or None


@app.command("show")
def show(
    name: NameArgument,
    version: Annotated[
        int | None,
        typer.Option("--version", help="Show this version instead of the model."),
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a model and its versions, or one version with --version."""
    with Client(server, api_key) as client:
        if version is not None:
            found = client.models.version(name, version)
            emit(found, as_json, lambda out: out.print(record(version_fields(found))))
            return
        model = client.models.get(name)
        versions = client.models.versions(name)

    def render(out: Console) -> None:
        fields = {
            "name": model.name,
            "description": model.description,
            "metadata": model.metadata,
            "latest version": model.latest_version,
            "aliases": _aliases(model),
            "created at": model.created_at,
        }
        out.print(record(fields, title=f"Model {model.name}"))
        columns = ("version", "status", "backend", "source", "aliases", "created at")
        rows = [
            (v.version, v.status, v.backend, v.source, ", ".join(v.aliases), v.created_at)
            for v in versions
        ]
        out.print(table(columns, rows, title="Versions"))

    emit({"model": model, "versions": versions}, as_json, render)


@app.command("archive")
def archive(
    name: NameArgument,
    version: VersionArgument,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Archive a version (hidden from new deployments, kept for lineage)."""
    with Client(server, api_key) as client:
        found = client.models.archive(name, version)
    emit(found, as_json, lambda _: ok(f"archived {found.model} version {found.version}"))


@app.command("restore")
def restore(
    name: NameArgument,
    version: VersionArgument,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Restore an archived version."""
    with Client(server, api_key) as client:
        found = client.models.restore(name, version)
    emit(found, as_json, lambda _: ok(f"restored {found.model} version {found.version}"))


@app.command("delete-version")
def delete_version(
    name: NameArgument,
    version: VersionArgument,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete a version that no alias or other version points at."""
    with Client(server, api_key) as client:
        client.models.delete_version(name, version)
    result = {"deleted": True, "model": name, "version": version}
    emit(result, as_json, lambda _: ok(f"deleted {name} version {version}"))


@app.command("lineage")
def lineage(
    name: NameArgument,
    version: VersionArgument,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the ancestors of a version and its links to other records."""
    with Client(server, api_key) as client:
        found = client.models.lineage(name, version)

    def render(out: Console) -> None:
        chain = [_ref(found.version), *(_ref(ref) for ref in found.ancestors)]
        out.print(record({"version": chain[0], "ancestry": " <- ".join(map(str, chain))}))
        columns = ("relation", "kind", "target", "metadata", "created at")
        rows = [
            (e.relation, e.target_kind, e.target_ref, e.metadata, e.created_at) for e in found.edges
        ]
        out.print(table(columns, rows, title="Links"))

    emit(found, as_json, render)
