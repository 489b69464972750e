"""``modelcycle report``: compliance records (model card and deployment record), eval reports."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated, Literal, cast

import typer

from modelcycle.cli.output import ApiKeyOption, ServerOption
from modelcycle.client import Client
from modelcycle.client.transport import DEFAULT_SERVER
from modelcycle.errors import InvalidInput
from modelcycle.reports import DEFAULT_DAYS, MAX_DAYS, EvalReport, ModelReport, ReportFormat

app = typer.Typer(
    help="Reports: a model version's card and compliance record, or an evaluation run's report.",
    no_args_is_help=True,
)

FORMATS = ("md", "html", "json")
EVAL_FORMATS = ("html", "json")


def parse_target(value: str) -> tuple[str, str]:
    """``NAME@VERSION`` or ``NAME@ALIAS`` as a pair, else an ``InvalidInput`` with the fix."""
    name, sep, ref = value.rpartition("@")
    if not sep or not name or not ref:
        raise InvalidInput(
            f"{value!r} must look like NAME@VERSION or NAME@ALIAS, e.g. support-bot@3"
        )
    return name, ref


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (a temporary file, then a rename)."""
    temporary: str | None = None
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except OSError as exc:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
        raise InvalidInput(
            f"cannot write {path}: {exc.strerror or exc}; choose another --out"
        ) from None


@app.command("model")
def model(
    target: Annotated[
        str,
        typer.Argument(help="The version: NAME@VERSION or NAME@ALIAS.", metavar="NAME@VERSION"),
    ],
    form: Annotated[
        str, typer.Option("--format", help="md (Markdown), html (a standalone page) or json.")
    ] = "md",
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the report to this file instead of stdout."),
    ] = None,
    days: Annotated[
        int, typer.Option("--days", help="Activity window: the last N days.")
    ] = DEFAULT_DAYS,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
) -> None:
    """Write the model card and deployment record of one version (EU AI Act / OWASP map)."""
    name, ref = parse_target(target)
    if form not in FORMATS:
        raise InvalidInput(f"--format {form!r} is not one of: {', '.join(FORMATS)}")
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"--days must be between 1 and {MAX_DAYS}")
    with Client(server, api_key) as client:
        found = client.reports.model(name, ref, format=cast(ReportFormat, form), days=days)
    text = found.model_dump_json(indent=2) + "\n" if isinstance(found, ModelReport) else found
    if out is None:
        typer.echo(text, nl=False)
        return
    write_atomically(out, text)
    typer.echo(f"Wrote the report of {name}@{ref} to {out}")


@app.command("eval")
def eval_report(
    run_id: Annotated[int, typer.Argument(help="The evaluation run's id.", metavar="RUN_ID")],
    form: Annotated[
        str, typer.Option("--format", help="html (a standalone page) or json.")
    ] = "html",
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the report to this file instead of stdout."),
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
) -> None:
    """Write an evaluation run's report: gates, statistics, charts and per-sample diffs."""
    if form not in EVAL_FORMATS:
        raise InvalidInput(f"--format {form!r} is not one of: {', '.join(EVAL_FORMATS)}")
    with Client(server, api_key) as client:
        found = client.reports.eval(run_id, format=cast(Literal["html", "json"], form))
    text = found.model_dump_json(indent=2) + "\n" if isinstance(found, EvalReport) else found
    if out is None:
        typer.echo(text, nl=False)
        return
    write_atomically(out, text)
    typer.echo(f"Wrote the report of evaluation run {run_id} to {out}")
