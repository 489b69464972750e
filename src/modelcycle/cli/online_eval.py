"""``modelcycle online-eval``: score a sample of a deployment's traces; read the scores.

``set`` takes scorers as ``NAME`` or ``NAME=JSON`` (the scorer's options as a
JSON object), e.g. ``--scorer json_valid --scorer 'regex={"pattern": "^OK"}'``.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import typer
from rich.console import Console

from modelcycle.cli.output import ApiKeyOption, JsonOption, ServerOption, emit, ok, record, table
from modelcycle.cli.traces import SinceOption, parse_duration, time_range
from modelcycle.client import Client
from modelcycle.client.transport import DEFAULT_SERVER
from modelcycle.errors import InvalidInput
from modelcycle.evaluate.online_schemas import OnlineEvalConfig, OnlineScores

app = typer.Typer(
    help="Online evaluation: score a sample of each deployment's production traces.",
    no_args_is_help=True,
)

DeploymentArgument = Annotated[str, typer.Argument(help="Deployment name.")]


def parse_scorer(value: str) -> dict[str, Any]:
    """``NAME`` or ``NAME=JSON`` as a scorer spec."""
    name, sep, options = value.partition("=")
    name = name.strip()
    if not name:
        raise InvalidInput(f"--scorer {value!r}: give a scorer name, e.g. --scorer json_valid")
    if not sep:
        return {"name": name}
    try:
        parsed = orjson.loads(options)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise InvalidInput(
            f"--scorer {value!r}: options must be a JSON object, "
            f'e.g. --scorer \'{name}={{"key": "value"}}\''
        )
    return {"name": name, "options": parsed}


def _scorers(config: OnlineEvalConfig) -> str:
    return " ".join(
        spec.name + (f"={orjson.dumps(spec.options).decode()}" if spec.options else "")
        for spec in config.scorers
    )


def _rate(rate: float) -> str:
    return f"{rate * 100:g}%"


def _render_config(config: OnlineEvalConfig, out: Console) -> None:
    fields = {
        "deployment": config.deployment,
        "sample rate": _rate(config.sample_rate),
        "scorers": _scorers(config),
        "enabled": config.enabled,
        "scored until": config.scored_until,
        "updated by": config.updated_by,
        "updated at": config.updated_at,
    }
    out.print(record(fields))


@app.command("set")
def set_config(
    deployment: DeploymentArgument,
    rate: Annotated[
        str, typer.Option("--rate", help="Share of traces to score: 10% or 0.1.", metavar="R")
    ],
    scorer: Annotated[
        list[str],
        typer.Option(
            "--scorer",
            help="A reference-free scorer: NAME or NAME=JSON options (repeat for several).",
            metavar="S",
        ),
    ],
    disabled: Annotated[
        bool, typer.Option("--disabled", help="Store it, but do not score yet.")
    ] = False,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Score a sample of DEPLOYMENT's traces with scorers (maintainers); replaces any config."""
    specs = [parse_scorer(value) for value in scorer]
    with Client(server, api_key) as client:
        found = client.online_eval.set(
            deployment, sample_rate=rate, scorers=specs, enabled=not disabled
        )
    emit(found, as_json, lambda out: _render_config(found, out))


@app.command("list")
def list_configs(
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the deployments under online evaluation."""
    with Client(server, api_key) as client:
        found = client.online_eval.list()
    rows = [
        (c.deployment, _rate(c.sample_rate), _scorers(c), c.enabled, c.scored_until) for c in found
    ]
    columns = ("deployment", "rate", "scorers", "enabled", "scored until")
    emit(found, as_json, lambda out: out.print(table(columns, rows)))


@app.command("show")
def show_config(
    deployment: DeploymentArgument,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a deployment's online evaluation."""
    with Client(server, api_key) as client:
        found = client.online_eval.get(deployment)
    emit(found, as_json, lambda out: _render_config(found, out))


@app.command("delete")
def delete_config(
    deployment: DeploymentArgument,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
) -> None:
    """Stop scoring DEPLOYMENT (maintainers); the scores already made stay."""
    with Client(server, api_key) as client:
        client.online_eval.delete(deployment)
    ok(f"online evaluation of {deployment} deleted")


def _render_scores(result: OnlineScores, out: Console) -> None:
    def mean(value: float | None) -> str | None:
        return None if value is None else f"{value:.3f}"

    rows = [
        (
            s.scorer,
            f"{s.model}@{s.version}" if s.model and s.version is not None else s.model,
            s.count,
            s.errors,
            mean(s.mean),
            mean(s.points[-1].mean) if s.points else None,
        )
        for s in result.series
    ]
    span = f"{result.start:%Y-%m-%d %H:%M} .. {result.end:%Y-%m-%d %H:%M} UTC"
    columns = ("scorer", "version", "scored", "errors", "mean", "latest bucket")
    out.print(table(columns, rows, title=f"online scores of {result.deployment} {span}"))


@app.command("scores")
def scores(
    deployment: DeploymentArgument,
    since: SinceOption = None,
    bucket: Annotated[
        str | None, typer.Option("--bucket", help="Bucket width, e.g. 1m, 5m, 1h.")
    ] = None,
    version: Annotated[
        int | None, typer.Option("--version", min=0, help="Only this version.")
    ] = None,
    scorer: Annotated[str | None, typer.Option("--scorer", help="Only this scorer.")] = None,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Count, errors and mean of each scorer per model version (default: the last 24 hours)."""
    start, end = time_range(since, None, None)
    bucket_s = None if bucket is None else int(parse_duration(bucket, "--bucket").total_seconds())
    with Client(server, api_key) as client:
        result = client.online_eval.scores(
            deployment, start=start, end=end, bucket_s=bucket_s, version=version, scorer=scorer
        )
    emit(result, as_json, lambda out: _render_scores(result, out))
