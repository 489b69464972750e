"""``modelcycle secrets``: encrypted credentials that ``openai`` versions name.

A value is never taken as a command-line argument (shell history, ``ps``): it is
read from a hidden prompt, from standard input, or from an environment variable
of the shell running the command.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer
from pydantic import TypeAdapter
from rich.console import Console

from modelcycle.access.secrets import SecretInfo, generate_key
from modelcycle.cli.output import ApiKeyOption, JsonOption, ServerOption, emit, ok, record, table
from modelcycle.client import Client
from modelcycle.client.calls import API, Call
from modelcycle.client.transport import DEFAULT_SERVER
from modelcycle.errors import InvalidInput

app = typer.Typer(
    help="Encrypted secrets (upstream API keys): set, list, delete.", no_args_is_help=True
)

NameArgument = Annotated[str, typer.Argument(help="Secret name, e.g. openai-prod.")]
_LIST = TypeAdapter(list[SecretInfo])


def _fields(info: SecretInfo) -> dict[str, object]:
    return {
        "name": info.name,
        "fingerprint": info.fingerprint,
        "created by": info.created_by,
        "created at": info.created_at,
        "updated by": info.updated_by,
        "updated at": info.updated_at,
    }


def _read_value(from_env: str | None) -> str:
    if from_env is not None:
        value = os.environ.get(from_env)
        if not value:
            raise InvalidInput(f"--from-env: the environment variable {from_env} is not set")
        return value
    if sys.stdin.isatty():
        return str(typer.prompt("value", hide_input=True))
    # Piped in: one line, its newline dropped (`printf %s "$KEY" | ...` works as well).
    value = sys.stdin.read().removesuffix("\n").removesuffix("\r")
    if not value:
        raise InvalidInput("no value on standard input; pipe it in or use --from-env VAR")
    return value


def _secret_path(name: str) -> str:
    return f"{API}/secrets/{name}"


def _parse(body: Any) -> SecretInfo:
    return SecretInfo.model_validate(body)


@app.command("set")
def set_secret(
    name: NameArgument,
    from_env: Annotated[
        str | None,
        typer.Option(
            "--from-env", help="Read the value from this environment variable.", metavar="VAR"
        ),
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create or replace a secret (admins); the value comes from a prompt, stdin or --from-env."""
    value = _read_value(from_env)
    with Client(server, api_key) as client:
        info = client.run(Call("PUT", _secret_path(name), _parse, json={"value": value}))
    emit(info, as_json, lambda out: out.print(record(_fields(info), title="secret set")))


@app.command("list")
def list_secrets(
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the secrets of the key's project (names and fingerprints, never values)."""
    with Client(server, api_key) as client:
        found = client.run(Call("GET", f"{API}/secrets", _LIST.validate_python))
    columns = ("name", "fingerprint", "updated by", "updated at")
    rows = [(s.name, s.fingerprint, s.updated_by, s.updated_at) for s in found]

    def render(out: Console) -> None:
        out.print(table(columns, rows))

    emit(found, as_json, render)


@app.command("delete")
def delete_secret(
    name: NameArgument,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
) -> None:
    """Delete a secret (admins); versions naming it fail until it is set again."""
    with Client(server, api_key) as client:
        client.run(Call("DELETE", _secret_path(name), lambda body: None))
    ok(f"secret {name} deleted")


@app.command("generate-key")
def generate_key_command() -> None:
    """Print a fresh encryption key (local), for MODELCYCLE_SECRET_KEY."""
    typer.echo(generate_key())
