"""``modelcycle guard``: check texts against a policy; named policies; the detectors.

``guard check`` exits 0 when the text would pass (allowed, flagged or redacted)
and 3 when the policy blocks it, so scripts and CI can gate on it; errors exit 1.
"""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.text import Text

from modelcycle.cli.output import ApiKeyOption, JsonOption, ServerOption, emit, ok, record, table
from modelcycle.client import Client
from modelcycle.client.transport import DEFAULT_SERVER
from modelcycle.errors import InvalidInput
from modelcycle.guard.schemas import GuardCheckResponse, GuardPolicy, GuardPolicySpec
from modelcycle.guard.types import Stage

BLOCKED_EXIT_CODE = 3
"""Exit code of ``guard check`` when the policy blocks the text."""

app = typer.Typer(
    help="Guard: check a text against a policy, manage policies, list detectors.",
    no_args_is_help=True,
)
policy_app = typer.Typer(
    help="Named guard policies: list, show, set (from a YAML or JSON file), delete.",
    no_args_is_help=True,
)
app.add_typer(policy_app, name="policy")


class StageChoice(enum.StrEnum):
    """Which side of the model the text is on."""

    INPUT = "input"
    OUTPUT = "output"


PolicyName = Annotated[str, typer.Argument(help="Name of the guard policy.")]
FileOption = Annotated[
    str | None,
    typer.Option("--file", "-f", help="Read from this file; - for standard input.", metavar="F"),
]


def read_source(path: str) -> str:
    """The text of a file, or of standard input for ``-``."""
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}") from None


def text_to_check(text: str | None, file: str | None) -> str:
    """The text given as an argument or through ``--file``, exactly one of them."""
    if (text is None) == (file is None):
        raise InvalidInput("give the text to check as an argument or with --file F (- for stdin)")
    return text if text is not None else read_source(file or "-")


def load_spec(path: str, name: str) -> GuardPolicySpec:
    """A policy from a YAML or JSON file (JSON is YAML); a ``name`` in it must be ``name``."""
    try:
        data = yaml.safe_load(read_source(path))
    except yaml.YAMLError as exc:
        problem = " ".join(str(exc).split())
        raise InvalidInput(f"{path} is not valid YAML or JSON: {problem}") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{path} must hold a mapping with input/output rules")
    named = data.pop("name", name)
    if named != name:
        raise InvalidInput(f"{path} names policy '{named}', not '{name}'")
    return GuardPolicySpec.model_validate(data)


def _render_check(result: GuardCheckResponse, out: Console) -> None:
    rows = [(f.detector, f.type, f.start, f.end, f.score, f.action) for f in result.findings]
    if rows:
        out.print(table(("detector", "type", "start", "end", "score", "action"), rows))
    summary = f"action: {result.action} (policy: {result.policy or 'none'})"
    if result.errors:
        summary += f"; detectors failed: {', '.join(result.errors)}"
    out.print(Text(summary))
    out.print(Text(result.redacted_text))


@app.command("check")
def check(
    text: Annotated[str | None, typer.Argument(help="The text; or use --file.")] = None,
    file: FileOption = None,
    stage: Annotated[
        StageChoice, typer.Option("--stage", help="Check as a prompt (input) or an answer.")
    ] = StageChoice.INPUT,
    deployment: Annotated[
        str | None, typer.Option("--deployment", help="Use this deployment's policy.")
    ] = None,
    policy: Annotated[str | None, typer.Option("--policy", help="Use this named policy.")] = None,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check a text: findings, decision and redacted text; exit code 3 when it is blocked.

    Without --deployment or --policy, the project's policy 'default' runs.
    """
    content = text_to_check(text, file)
    side: Stage = "output" if stage is StageChoice.OUTPUT else "input"
    with Client(server, api_key) as client:
        result = client.guard.check(content, stage=side, deployment=deployment, policy=policy)
    emit(result, as_json, lambda out: _render_check(result, out))
    if result.action == "block":
        kinds = ", ".join(dict.fromkeys(f.type for f in result.findings if f.action == "block"))
        typer.echo(f"blocked by guard policy {result.policy}: {kinds}", err=True)
        raise typer.Exit(BLOCKED_EXIT_CODE)


@app.command("detectors")
def detectors(
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the detectors a policy rule may name."""
    with Client(server, api_key) as client:
        found = client.guard.detectors()
    rows = [(d.name, d.description) for d in found]
    emit(found, as_json, lambda out: out.print(table(("detector", "finds"), rows)))


def _rules(spec: GuardPolicySpec) -> list[tuple[object, ...]]:
    return [
        (stage, rule.detector, rule.action, rule.min_score, rule.types, rule.options)
        for stage in ("input", "output")
        for rule in spec.rules(stage)
    ]


def _render_policy(found: GuardPolicy, out: Console) -> None:
    fields: dict[str, Any] = {
        "name": found.name,
        "revision": found.revision,
        "description": found.spec.description,
        "stream hold-back": found.spec.stream_hold_back_chars,
        "placeholder": found.spec.placeholder,
        "updated by": found.updated_by,
        "updated at": found.updated_at,
    }
    out.print(record(fields))
    columns = ("stage", "detector", "action", "min score", "types", "options")
    out.print(table(columns, _rules(found.spec)))


@policy_app.command("list")
def list_policies(
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the guard policies of the key's project."""
    with Client(server, api_key) as client:
        found = client.guard.policies.list()
    rows = [
        (
            p.name,
            p.revision,
            " ".join(f"{r.detector}:{r.action}" for r in p.spec.input),
            " ".join(f"{r.detector}:{r.action}" for r in p.spec.output),
            p.updated_by,
            p.updated_at,
        )
        for p in found
    ]
    columns = ("name", "revision", "input", "output", "updated by", "updated at")
    emit(found, as_json, lambda out: out.print(table(columns, rows)))


@policy_app.command("show")
def show_policy(
    name: PolicyName,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a policy: its settings and rules."""
    with Client(server, api_key) as client:
        found = client.guard.policies.get(name)
    emit(found, as_json, lambda out: _render_policy(found, out))


@policy_app.command("set")
def set_policy(
    name: PolicyName,
    file: Annotated[
        str,
        typer.Option("--file", "-f", help="The policy as YAML or JSON; - for stdin.", metavar="F"),
    ],
    expected_revision: Annotated[
        int | None,
        typer.Option(
            "--expected-revision", min=1, help="Refuse unless this is the revision in force."
        ),
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create or replace a policy from a YAML or JSON file (maintainers)."""
    spec = load_spec(file, name)
    with Client(server, api_key) as client:
        if expected_revision is None:
            found = client.guard.policies.set(name, spec)
        else:
            found = client.guard.policies.update(name, spec, expected_revision=expected_revision)
    emit(found, as_json, lambda out: _render_policy(found, out))


@policy_app.command("delete")
def delete_policy(
    name: PolicyName,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
) -> None:
    """Delete a policy (maintainers); refused while a deployment names it."""
    with Client(server, api_key) as client:
        client.guard.policies.delete(name)
    ok(f"guard policy {name} deleted")
