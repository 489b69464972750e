"""``modelcycle datasets``: import, from-traces, list, show, export, split, dedupe, delete."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from modelcycle.cli.output import (
    ApiKeyOption,
    JsonOption,
    ServerOption,
    compact_json,
    emit,
    ok,
    record,
    table,
)
from modelcycle.cli.traces import EndOption, SinceOption, StartOption, time_range
from modelcycle.client import Client
from modelcycle.client.transport import DEFAULT_SERVER
from modelcycle.errors import InvalidInput
from modelcycle.evaluate.dataset_files import FileFormat
from modelcycle.evaluate.datasets import DatasetOut, DatasetVersionOut, SampleOut
from modelcycle.evaluate.samples import parse_ref

app = typer.Typer(
    help="Evaluation datasets: import files, build from traces, split, dedupe, export.",
    no_args_is_help=True,
)


class ImportFormat(enum.StrEnum):
    """Dataset file formats."""

    JSONL = "jsonl"
    CHAT = "chat"
    CSV = "csv"


class ExportChoice(enum.StrEnum):
    """Export formats."""

    JSONL = "jsonl"
    CSV = "csv"


class FeedbackChoice(enum.StrEnum):
    """Which feedback a trace must have."""

    NEGATIVE = "negative"
    POSITIVE = "positive"
    ANY = "any"


class ExpectedChoice(enum.StrEnum):
    """Where a trace sample's expected answer comes from."""

    CORRECTION = "correction"
    OUTPUT = "output"
    NONE = "none"


NameArgument = Annotated[str, typer.Argument(help="Dataset name.")]
RefArgument = Annotated[str, typer.Argument(help="NAME (latest version) or NAME@VERSION.")]
VersionOption = Annotated[
    int | None, typer.Option("--version", min=1, help="Version to use (default: the latest).")
]
PREVIEW_CHARS = 80


def _versions(versions: list[DatasetVersionOut], out: Console) -> None:
    rows = [
        (
            v.version,
            v.sample_count,
            v.source,
            v.parent,
            v.content_hash[:12],
            v.created_at,
        )
        for v in versions
    ]
    columns = ("version", "samples", "source", "parent", "hash", "created at")
    out.print(table(columns, rows))


def _input_text(sample: SampleOut) -> str:
    prompt = sample.input.get("prompt")
    if isinstance(prompt, str):
        return prompt
    messages = sample.input.get("messages") or []
    return " | ".join(f"{m.get('role')}: {m.get('content')}" for m in messages)


def _samples(samples: list[SampleOut], out: Console) -> None:
    rows = [
        (
            s.position,
            _clip(_input_text(s)),
            _clip(s.expected or ""),
            s.trace_id,
            compact_json(s.metadata, PREVIEW_CHARS) if s.metadata else None,
        )
        for s in samples
    ]
    out.print(table(("#", "input", "expected", "trace", "metadata"), rows))


def _clip(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= PREVIEW_CHARS else flat[: PREVIEW_CHARS - 1] + "…"


def _created(found: DatasetVersionOut, out: Console) -> None:
    fields = {
        "dataset": found.ref,
        "samples": found.sample_count,
        "source": found.source,
        "parent": found.parent,
        "hash": found.content_hash,
        "meta": found.meta,
    }
    out.print(record(fields))


@app.command("import")
def import_file(
    name: NameArgument,
    file: Annotated[Path, typer.Argument(help="A .jsonl, .csv or chat .jsonl file.")],
    file_format: Annotated[
        ImportFormat | None,
        typer.Option(
            "--format", help="jsonl, chat or csv (default: from the file).", show_default=False
        ),
    ] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import a file as a new version of NAME (created when missing); a bad line imports nothing."""
    try:
        content = file.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {file}: {exc.strerror or exc}") from None
    fmt: FileFormat | None = None
    if file_format is not None:
        fmt = file_format.value
    with Client(server, api_key) as client:
        found = client.datasets.import_bytes(
            name, content, format=fmt, filename=file.name, description=description
        )
    emit(found, as_json, lambda out: _created(found, out))


@app.command("from-traces")
def from_traces(
    name: NameArgument,
    deployment: Annotated[
        str | None, typer.Option("--deployment", help="Only this deployment.")
    ] = None,
    version: Annotated[
        int | None, typer.Option("--model-version", min=0, help="Only this model version.")
    ] = None,
    feedback: Annotated[
        FeedbackChoice | None,
        typer.Option(
            "--feedback", help="Only traces with this feedback: negative, positive or any."
        ),
    ] = None,
    with_correction: Annotated[
        bool, typer.Option("--with-correction", help="Only traces whose feedback has a correction.")
    ] = False,
    expected_from: Annotated[
        ExpectedChoice,
        typer.Option("--expected-from", help="Expected answer: correction, output or none."),
    ] = ExpectedChoice.CORRECTION,
    since: SinceOption = None,
    start: StartOption = None,
    end: EndOption = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many traces.")] = 1_000,
    no_scrub: Annotated[
        bool, typer.Option("--no-scrub", help="Keep personal data (admins only).")
    ] = False,
    description: Annotated[str | None, typer.Option("--description")] = None,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Build a new version of NAME from production traces (default: the last 30 days).

    The input is the request, the expected answer the feedback's correction;
    personal data and secrets are redacted.
    """
    begin, finish = time_range(since, start, end)
    with Client(server, api_key) as client:
        found = client.datasets.from_traces(
            name,
            deployment=deployment,
            version=version,
            start=_aware(begin),
            end=_aware(finish),
            feedback=feedback.value if feedback is not None else None,
            with_correction=with_correction,
            expected_from=expected_from.value,
            limit=limit,
            scrub=not no_scrub,
            description=description,
        )
    emit(found, as_json, lambda out: _created(found, out))


def _aware(moment: datetime | None) -> datetime | None:
    """Times without an offset are UTC (as ``modelcycle traces`` reads them)."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


@app.command("list")
def list_datasets(
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the datasets of the key's project with their latest version."""
    with Client(server, api_key) as client:
        found = client.datasets.list()

    def render(out: Console) -> None:
        rows = [
            (
                d.name,
                d.latest.version if d.latest else None,
                d.latest.sample_count if d.latest else None,
                d.latest.source if d.latest else None,
                d.version_count,
                d.description,
                d.latest.created_at if d.latest else None,
            )
            for d in found
        ]
        columns = ("name", "latest", "samples", "source", "versions", "description", "updated")
        out.print(table(columns, rows))

    emit(found, as_json, render)


@app.command("show")
def show(
    ref: RefArgument,
    samples: Annotated[
        int, typer.Option("--samples", min=0, help="Also show the first N samples.")
    ] = 0,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """NAME: its versions; NAME@N: that version and its first samples."""
    name, number = parse_ref(ref)
    with Client(server, api_key) as client:
        dataset = client.datasets.show(name)
        count = samples or (10 if number is not None else 0)
        listed = client.datasets.samples(ref, limit=count) if count else []
    if number is not None:
        chosen = next((v for v in dataset.versions or [] if v.version == number), None)
        if chosen is None:
            raise InvalidInput(f"dataset '{name}' has no version {number}")
        data: object = {"version": chosen, "samples": listed}
        emit(data, as_json, lambda out: _show_version(chosen, listed, out))
        return
    emit(
        {**dataset.model_dump(mode="json"), "samples": listed} if listed else dataset,
        as_json,
        lambda out: _show_dataset(dataset, listed, out),
    )


def _show_version(found: DatasetVersionOut, listed: list[SampleOut], out: Console) -> None:
    _created(found, out)
    _samples(listed, out)


def _show_dataset(dataset: DatasetOut, listed: list[SampleOut], out: Console) -> None:
    out.print(
        record(
            {
                "name": dataset.name,
                "description": dataset.description,
                "created by": dataset.created_by,
                "created at": dataset.created_at,
            }
        )
    )
    _versions(dataset.versions or [], out)
    if listed:
        _samples(listed, out)


@app.command("export")
def export(
    ref: RefArgument,
    file_format: Annotated[
        ExportChoice, typer.Option("--format", help="jsonl (lossless) or csv.")
    ] = ExportChoice.JSONL,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write to this file (default: standard output).")
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
) -> None:
    """Export a version as JSONL or CSV."""
    with Client(server, api_key) as client:
        content = client.datasets.export(ref, format=file_format.value)
    if out_file is None:
        typer.echo(content.decode("utf-8"), nl=False)
        return
    try:
        out_file.write_bytes(content)
    except OSError as exc:
        raise InvalidInput(f"cannot write {out_file}: {exc.strerror or exc}") from None
    ok(f"wrote {len(content)} bytes to {out_file}")


def parse_ratios(values: list[str]) -> dict[str, float]:
    """``["train=0.8", "test=0.2"]`` as ``{"train": 0.8, "test": 0.2}``."""
    ratios: dict[str, float] = {}
    for value in values:
        part, _, number = value.partition("=")
        try:
            ratios[part.strip()] = float(number)
        except ValueError:
            raise InvalidInput(
                f"--ratio {value!r} is not PART=FRACTION, e.g. --ratio train=0.8"
            ) from None
    return ratios


@app.command("split")
def split(
    name: NameArgument,
    ratio: Annotated[
        list[str],
        typer.Option("--ratio", help="PART=FRACTION, repeated: --ratio train=0.8 --ratio test=0.2"),
    ],
    seed: Annotated[
        int, typer.Option("--seed", min=0, help="The same seed gives the same split.")
    ] = 0,
    stratify_by: Annotated[
        str | None,
        typer.Option("--stratify-by", help="Keep the share of each value of this metadata key."),
    ] = None,
    version: VersionOption = None,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Split a version into new datasets NAME-PART (e.g. NAME-train, NAME-test)."""
    ratios = parse_ratios(ratio)
    with Client(server, api_key) as client:
        found = client.datasets.split(
            name, ratios, seed=seed, stratify_by=stratify_by, version=version
        )
    emit(found, as_json, lambda out: _versions_with_names(found, out))


def _versions_with_names(found: list[DatasetVersionOut], out: Console) -> None:
    rows = [(v.ref, v.sample_count, v.parent, v.content_hash[:12]) for v in found]
    out.print(table(("dataset", "samples", "parent", "hash"), rows))


@app.command("dedupe")
def dedupe(
    name: NameArgument,
    near: Annotated[
        bool,
        typer.Option("--near", help="Also remove inputs equal up to case, punctuation, spaces."),
    ] = False,
    version: VersionOption = None,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write a version of NAME without duplicate inputs (the first of each is kept)."""
    with Client(server, api_key) as client:
        found = client.datasets.dedupe(name, near=near, version=version)

    def render(out: Console) -> None:
        if found.created:
            ok(
                f"removed {found.removed} duplicate(s): {found.version.ref} has "
                f"{found.version.sample_count} samples"
            )
        else:
            ok(f"no duplicates in {found.version.ref}; no version written")

    emit(found, as_json, render)


@app.command("delete")
def delete(
    name: NameArgument,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
) -> None:
    """Delete a dataset and all its versions (refused while an evaluation run uses it)."""
    with Client(server, api_key) as client:
        client.datasets.delete(name)
    ok(f"dataset {name} deleted")
