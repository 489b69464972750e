"""The ``modelcycle`` command: the root app and its command groups.

Remote commands call the SDK ``Client``; ``up``, ``db`` and ``keys generate``
run locally on this machine's settings.
"""

from __future__ import annotations

import typer

from modelcycle.cli import (
    alerts,
    aliases,
    audit,
    datasets,
    db,
    deploy,
    drift,
    evals,
    guard,
    keys,
    models,
    online_eval,
    privacy,
    projects,
    report,
    safety_eval,
    secrets,
    server,
    trace_writer,
    traces,
    tune,
    worker,
)
from modelcycle.cli.loadtest import loadtest
from modelcycle.cli.output import OneLineErrors

app = typer.Typer(
    name="modelcycle",
    help="Deploy, monitor, evaluate and tune the LLMs you run in production.",
    cls=OneLineErrors,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("up")(server.up)
app.command("worker")(worker.worker)
app.command("trace-writer", hidden=True)(trace_writer.trace_writer)
app.command("whoami")(keys.whoami)
app.command("loadtest")(loadtest)
app.add_typer(db.app, name="db")
app.add_typer(keys.app, name="keys")
app.add_typer(projects.app, name="projects")
app.add_typer(models.app, name="models")
app.add_typer(aliases.app, name="aliases")
app.add_typer(audit.app, name="audit")
app.add_typer(deploy.app, name="deploy")
app.add_typer(alerts.app, name="alerts")
app.add_typer(secrets.app, name="secrets")
app.add_typer(traces.app, name="traces")
app.add_typer(drift.app, name="drift")
app.add_typer(guard.app, name="guard")
app.add_typer(datasets.app, name="datasets")
app.add_typer(evals.app, name="eval")
app.add_typer(safety_eval.app, name="safety-eval")
app.add_typer(online_eval.app, name="online-eval")
app.add_typer(privacy.app, name="privacy")
app.add_typer(traces.feedback_app, name="feedback")
app.add_typer(report.app, name="report")
app.add_typer(tune.app, name="tune")


def main() -> None:
    """Run the command line (the ``modelcycle`` console script)."""
    app()
