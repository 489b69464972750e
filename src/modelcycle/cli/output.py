"""What every command shares: the remote options, JSON or rich output, one-line errors.

Errors are handled once, in ``OneLineErrors.invoke``: a ``ModelcycleError`` (the SDK
raises them, connection failures included) or a pydantic ``ValidationError`` (a
request body rejected client-side) becomes ``error: <message>`` on stderr and exit
code 1, never a traceback.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from pydantic_core import to_jsonable_python
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from modelcycle.client.transport import API_KEY_ENV, SERVER_ENV
from modelcycle.errors import InvalidInput, ModelcycleError

if TYPE_CHECKING:
    # typer vendors click as ``typer._click``; TyperGroup.invoke takes that Context.
    from typer._click import Context

E = TypeVar("E", bound=enum.Enum)

ServerOption = Annotated[
    str,
    typer.Option(
        "--server",
        envvar=SERVER_ENV,
        help="Base URL of the modelcycle server.",
        metavar="URL",
    ),
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar=API_KEY_ENV,
        help="API key sent as a Bearer credential (prefer the environment variable).",
        metavar="KEY",
        show_default=False,
    ),
]
JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Print machine-readable JSON instead of tables."),
]


class OneLineErrors(TyperGroup):
    """A command group that turns modelcycle and validation errors into one stderr line."""

    def invoke(self, ctx: Context) -> Any:
        """Run the command; known errors print ``error: ...`` and exit 1."""
        try:
            return super().invoke(ctx)
        except ModelcycleError as exc:
            fail(exc.message)
        except ValidationError as exc:
            fail(describe_validation(exc))


def fail(message: str) -> NoReturn:
    """Print ``error: <message>`` on one stderr line and exit with code 1."""
    one_line = " ".join(message.split())
    typer.echo(f"error: {one_line}", err=True)
    raise typer.Exit(1)


def describe_validation(exc: ValidationError) -> str:
    """A one-line summary of what pydantic rejected, field by field."""
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"])
        parts.append(f"{where}: {error['msg']}" if where else error["msg"])
    return f"invalid {exc.title}: " + "; ".join(parts)


def parse_choice(kind: type[E], value: str, option: str) -> E:
    """The enum member named ``value``, else an ``InvalidInput`` listing the choices."""
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(str(member.value) for member in kind)
        raise InvalidInput(f"{option} {value!r} is not one of: {choices}") from None


def console() -> Console:
    """A console on the current stdout (resolved per call, so test runners capture it)."""
    return Console(highlight=False)


def emit(data: Any, as_json: bool, render: Callable[[Console], None]) -> None:
    """Print ``data`` as JSON (models dumped in JSON mode) or through ``render``."""
    if as_json:
        typer.echo(json.dumps(to_jsonable_python(data), indent=2, ensure_ascii=False))
    else:
        render(console())


def cell(value: object) -> Text:
    """A table cell: plain text (never rich markup), ``-`` for empty values."""
    if value is None or value == [] or value == {}:
        return Text("-", style="dim")
    if isinstance(value, enum.Enum):
        return Text(str(value.value))
    if isinstance(value, datetime):
        # The server stores UTC; seconds are precise enough for people.
        return Text(value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"))
    if isinstance(value, dict | list):
        return Text(compact_json(value))
    return Text(str(value))


def compact_json(value: object, limit: int | None = None) -> str:
    """One-line JSON of ``value``, cut at ``limit`` characters with an ellipsis."""
    text = json.dumps(to_jsonable_python(value), ensure_ascii=False)
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def table(
    columns: Sequence[str], rows: Iterable[Sequence[object]], *, title: str | None = None
) -> Table:
    """A table with one header per column; times never wrap, long text folds."""
    materialised = [list(row) for row in rows]
    out = Table(title=title, title_justify="left")
    for index, header in enumerate(columns):
        is_time = any(isinstance(row[index], datetime) for row in materialised)
        out.add_column(header, no_wrap=is_time, overflow="fold")
    for row in materialised:
        out.add_row(*(cell(value) for value in row))
    return out


def record(fields: Mapping[str, object], *, title: str | None = None) -> Table:
    """A two-column field/value table for one object."""
    out = Table(show_header=False, title=title, title_justify="left", box=None)
    out.add_column(style="bold")
    out.add_column()
    for name, value in fields.items():
        out.add_row(name, cell(value))
    return out


def ok(message: str) -> None:
    """Print a confirmation line as plain text."""
    console().print(Text(message))
