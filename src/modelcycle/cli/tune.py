"""``modelcycle tune``: start tuning jobs, watch them train, read what they produced.

``tune create --watch`` follows the job to its end with a progress bar and the
latest loss (plain metric lines when stderr is not a terminal) and exits 1 when
the job failed or was cancelled, so scripts can chain on it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from modelcycle.cli.output import ApiKeyOption, JsonOption, ServerOption, emit, ok, record, table
from modelcycle.client import Client
from modelcycle.client.transport import DEFAULT_SERVER
from modelcycle.client.tune import TERMINAL
from modelcycle.jobs import JobEventView
from modelcycle.tune.schemas import TuneJob, TuneMethod

POLL_S = 1.0

app = typer.Typer(
    help="Tuning: LoRA SFT, DPO and prompt-search jobs on a registered base version, with lineage.",
    no_args_is_help=True,
)

JobArg = Annotated[str, typer.Argument(help="The tuning job id (ftjob-...).")]


def _loss(data: dict[str, Any] | None) -> str:
    if not data:
        return ""
    parts = [f"{name} {data[name]:.4f}" for name in ("train_loss", "val_loss") if name in data]
    return ", ".join(parts)


def _print_event(event: JobEventView, err: Console) -> None:
    err.print(f"{event.at:%H:%M:%S} {event.level:<7} {event.message}", markup=False)


def _follow_plain(client: Client, job: TuneJob, err: Console, quiet: bool) -> TuneJob:
    after = 0
    while True:
        for event in client.tune.events(job.id, after_id=after, limit=500):
            after = event.id
            if not quiet:
                _print_event(event, err)
        job = client.tune.get(job.id)
        if job.status in TERMINAL:
            return job
        time.sleep(POLL_S)


def _follow_bar(client: Client, job: TuneJob, err: Console) -> TuneJob:
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
    )
    after, loss = 0, ""
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task(f"{job.id}: {job.status}", total=1.0)
        while True:
            for event in client.tune.events(job.id, after_id=after, limit=500):
                after = event.id
                if event.level == "metric":
                    loss = _loss(event.data) or loss
                elif event.level in ("warning", "error"):
                    progress.console.print(f"{event.level}: {event.message}", markup=False)
            job = client.tune.get(job.id)
            description = f"{job.id}: {job.status}" + (f" ({loss})" if loss else "")
            progress.update(task, completed=job.progress or 0.0, description=description)
            if job.status in TERMINAL:
                return job
            time.sleep(POLL_S)


def watch(client: Client, job: TuneJob, *, quiet: bool) -> TuneJob:
    """Follow ``job`` until it ends: a progress bar with the loss, or plain event lines."""
    err = Console(stderr=True, highlight=False)
    if quiet or not err.is_terminal:
        return _follow_plain(client, job, err, quiet)
    return _follow_bar(client, job, err)


def _fields(job: TuneJob) -> dict[str, object]:
    result = f"{job.result_model}@{job.result_version}" if job.result_version else None
    return {
        "id": job.id,
        "status": job.status,
        "progress": f"{job.progress:.0%}" if job.progress is not None else None,
        "method": job.method,
        "base": job.base,
        "data": job.dataset or job.training_file,
        "validation": job.validation_dataset or job.validation_file,
        "result version": result,
        "metrics": job.metrics,
        "trained tokens": job.trained_tokens,
        "eval datasets": job.eval_datasets,
        "comparison run": job.eval_run_id,
        "decontamination": _decontamination(job.artifacts.get("decontamination")),
        "adapter": job.artifacts.get("adapter"),
        "error": job.error,
        "queue job": job.job_id,
        "created": job.created_at,
        "finished": job.finished_at,
    }


def _decontamination(report: Any) -> str | None:
    if not isinstance(report, dict):
        return None
    return (
        f"{report.get('dropped_count', 0)} of {report.get('checked', 0)} examples dropped "
        f"({report.get('n')}-gram overlap with {', '.join(report.get('eval_datasets', []))})"
    )


def _finish(job: TuneJob) -> None:
    if job.status == "failed":
        typer.echo(f"error: tuning job {job.id} failed: {job.error or 'see its events'}", err=True)
        raise typer.Exit(1)
    if job.status == "cancelled":
        typer.echo(f"error: tuning job {job.id} was cancelled", err=True)
        raise typer.Exit(1)


METHODS = ("sft-lora", "dpo", "prompt-search")


def _space(path: Path) -> dict[str, object]:
    """The search space in ``path`` (a JSON object); a one-line error when it is not."""
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        typer.echo(f"error: --candidates {path}: {exc}", err=True)
        raise typer.Exit(1) from None
    if not isinstance(found, dict):
        typer.echo(f"error: --candidates {path}: expected a JSON object", err=True)
        raise typer.Exit(1)
    return found


@app.command("create")
def create(
    base: Annotated[
        str, typer.Option("--base", help="The base version: NAME@VERSION or NAME@alias.")
    ],
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Training data: NAME or NAME@N.", metavar="D")
    ] = None,
    training_file: Annotated[
        str | None, typer.Option("--training-file", help="Or an uploaded file-... id.")
    ] = None,
    method: Annotated[
        str,
        typer.Option("--method", help="sft-lora (default), dpo or prompt-search.", metavar="M"),
    ] = "sft-lora",
    candidates: Annotated[
        Path | None,
        typer.Option(
            "--candidates",
            help="prompt-search: a JSON file of the space (system_prompts, few_shot, "
            "temperature, scorer...; see docs/prompt-search.md).",
            metavar="FILE",
        ),
    ] = None,
    budget: Annotated[
        int | None, typer.Option("--budget", min=1, help="prompt-search: most model calls.")
    ] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1)] = None,
    learning_rate: Annotated[float | None, typer.Option("--learning-rate", min=0.0)] = None,
    lora_r: Annotated[int | None, typer.Option("--lora-r", min=1, help="LoRA rank.")] = None,
    lora_alpha: Annotated[int | None, typer.Option("--lora-alpha", min=1)] = None,
    lora_dropout: Annotated[float | None, typer.Option("--lora-dropout", min=0.0, max=0.99)] = None,
    target_modules: Annotated[
        list[str] | None,
        typer.Option(
            "--target-module",
            help="A module LoRA adapts, e.g. q_proj (repeatable; default: attention).",
            metavar="NAME",
        ),
    ] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=1)] = None,
    max_length: Annotated[int | None, typer.Option("--max-length", min=16)] = None,
    validation_dataset: Annotated[
        str | None, typer.Option("--validation-dataset", metavar="D")
    ] = None,
    eval_datasets: Annotated[
        list[str] | None,
        typer.Option(
            "--eval-dataset",
            help="Compare the tuned version with its parent on it afterwards, and drop "
            "training examples overlapping it (repeatable).",
            metavar="D",
        ),
    ] = None,
    suffix: Annotated[
        str | None, typer.Option("--suffix", help="Added to the new version's description.")
    ] = None,
    watch_it: Annotated[
        bool, typer.Option("--watch", help="Follow the job to its end (exit 1 if it fails).")
    ] = False,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start a tuning job; the data is checked first (a bad sample is named, nothing queued)."""
    if method not in METHODS:
        typer.echo(f"error: --method {method!r} is not one of: {', '.join(METHODS)}", err=True)
        raise typer.Exit(1)
    chosen: dict[str, object] = {
        "epochs": epochs,
        "learning_rate": learning_rate,
        "lora_r": lora_r,
        "lora_alpha": lora_alpha,
        "lora_dropout": lora_dropout,
        "target_modules": target_modules or None,
        "batch_size": batch_size,
        "max_length": max_length,
        "budget": budget,
        "candidates": _space(candidates) if candidates is not None else None,
    }
    hyperparameters = {name: value for name, value in chosen.items() if value is not None}
    tune_method = cast(TuneMethod, method)
    with Client(server, api_key) as client:
        job = client.tune.create(
            base,
            dataset=dataset,
            training_file=training_file,
            method=tune_method,
            hyperparameters=hyperparameters,
            validation_dataset=validation_dataset,
            eval_datasets=eval_datasets,
            suffix=suffix,
        )
        if not as_json and not watch_it:
            ok(f"created {job.id} ({job.status}); follow it with: modelcycle tune show {job.id}")
            return
        if watch_it:
            job = watch(client, job, quiet=as_json)
    emit(job, as_json, lambda out: out.print(record(_fields(job), title=f"tuning job {job.id}")))
    _finish(job)


@app.command("list")
def list_jobs(
    limit: Annotated[int, typer.Option("--limit", min=1, max=500)] = 20,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Tuning jobs of the project, newest first."""
    with Client(server, api_key) as client:
        found = client.tune.list(limit=limit)[:limit]
    rows = [
        (
            j.id,
            j.status,
            j.method,
            j.base,
            j.dataset or j.training_file,
            f"{j.result_model}@{j.result_version}" if j.result_version else None,
            j.created_at,
        )
        for j in found
    ]
    columns = ("id", "status", "method", "base", "data", "result", "created")
    emit(found, as_json, lambda out: out.print(table(columns, rows)))


@app.command("show")
def show(
    job_id: JobArg,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """One job: status, metrics, the registered version and its lineage, the comparison run."""
    with Client(server, api_key) as client:
        job = client.tune.get(job_id)
        lineage = (
            client.models.lineage(job.result_model, job.result_version)
            if job.result_model and job.result_version
            else None
        )
    if as_json:
        emit({"job": job, "lineage": lineage}, True, lambda out: None)
        return

    def render(out: Console) -> None:
        out.print(record(_fields(job), title=f"tuning job {job.id}"))
        if lineage is not None:
            rows = [(e.relation, e.target_kind, e.target_ref) for e in lineage.edges]
            out.print(table(("relation", "kind", "target"), rows, title="lineage"))

    emit(job, False, render)


@app.command("cancel")
def cancel(
    job_id: JobArg,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel a job: a queued one at once, a running one at its next step."""
    with Client(server, api_key) as client:
        job = client.tune.cancel(job_id)
    if as_json:
        emit(job, True, lambda out: None)
    else:
        ok(f"{job.id}: {job.status}" + ("" if job.status == "cancelled" else " (stopping)"))


@app.command("events")
def events(
    job_id: JobArg,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500)] = 500,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """The job's log lines and metric points (loss, learning rate, tokens/s), oldest first."""
    with Client(server, api_key) as client:
        found = client.tune.events(job_id, limit=limit)
    rows = [(e.at, e.level, e.message) for e in found]
    emit(found, as_json, lambda out: out.print(table(("at", "level", "message"), rows)))
