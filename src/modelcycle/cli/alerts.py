"""``modelcycle alerts``: rules that fire and resolve on metrics, their events, evaluation."""

from __future__ import annotations

import re
from typing import Annotated, Any

import typer
from rich.console import Console

from modelcycle.cli.output import (
    ApiKeyOption,
    JsonOption,
    ServerOption,
    emit,
    ok,
    record,
    table,
)
from modelcycle.client import Client
from modelcycle.client.calls import KEEP, Keep
from modelcycle.client.transport import DEFAULT_SERVER
from modelcycle.errors import InvalidInput
from modelcycle.monitor.alert_rules import AlertEvent, AlertRule, format_window

app = typer.Typer(
    help="Alert rules: create, list, show, update, events, evaluate, delete.",
    no_args_is_help=True,
)

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}

RuleArgument = Annotated[str, typer.Argument(help="The rule's name or id.")]
METRIC_HELP = (
    "error_rate, requests, latency_p50_ms, latency_p95_ms, latency_p99_ms, ttft_p95_ms, "
    "tokens, cost, feedback_score, feedback_count, cache_hit_rate, drift.<name>, drift.any "
    "or online_score:<scorer>."
)
OP_HELP = "Fires when the value is >, >=, < or <= the threshold."
THRESHOLD_HELP = "The value to compare with."
MetricOption = Annotated[str | None, typer.Option("--metric", help=METRIC_HELP)]
OpOption = Annotated[str | None, typer.Option("--op", help=OP_HELP)]
ThresholdOption = Annotated[float | None, typer.Option("--threshold", help=THRESHOLD_HELP)]
WindowOption = Annotated[
    str | None, typer.Option("--window", help="The last 60s .. 7d, e.g. 300, 5m, 1h, 1d.")
]
SeverityOption = Annotated[
    str | None, typer.Option("--severity", help="info, warning (default) or critical.")
]
DeploymentOption = Annotated[
    str | None, typer.Option("--deployment", help="Only this deployment's traffic.")
]
VersionOption = Annotated[
    int | None, typer.Option("--version", min=1, help="Only this model version's requests.")
]
MinRequestsOption = Annotated[
    int | None,
    typer.Option("--min-requests", min=1, help="No decision on fewer requests (rates, means)."),
]
WebhookOption = Annotated[
    list[str] | None,
    typer.Option("--webhook", help="POST each transition to this URL (repeat for several)."),
]
WebhookSecretOption = Annotated[
    str | None,
    typer.Option(
        "--webhook-secret",
        envvar="MODELCYCLE_WEBHOOK_SECRET",
        help="Sign webhook deliveries with HMAC-SHA256 (16+ characters; prefer the variable).",
        show_default=False,
    ),
]
HeaderOption = Annotated[
    list[str] | None,
    typer.Option("--header", help="An extra webhook header, 'Name: value' (repeat)."),
]


def parse_window(text: str) -> int:
    """``300``, ``300s``, ``5m``, ``1h``, ``1d`` -> seconds."""
    match = _DURATION.match(text.lower())
    if match is None:
        raise InvalidInput(f"--window {text!r} is not a duration; write e.g. 300, 5m, 1h or 1d")
    return int(match.group(1)) * _UNITS[match.group(2)]


def _headers(pairs: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition(":")
        if not sep or not name.strip():
            raise InvalidInput(f"--header {name.strip()!r}: write it as 'Name: value'")
        headers[name.strip()] = value.strip()
    return headers


def _channels(
    webhooks: list[str], secret: str | None, headers: list[str]
) -> list[dict[str, Any]] | None:
    if not webhooks:
        if secret is not None or headers:
            raise InvalidInput("--webhook-secret and --header need a --webhook URL")
        return None
    extra = _headers(headers)
    hooks = [
        {"type": "webhook", "url": url, "headers": extra, **({"secret": secret} if secret else {})}
        for url in webhooks
    ]
    return [{"type": "log"}, *hooks]


def _condition(rule: AlertRule) -> str:
    return f"{rule.metric} {rule.op} {rule.threshold:g} over {format_window(rule.window_s)}"


def _scope(rule: AlertRule) -> str:
    where = rule.deployment or "all deployments"
    return f"{where} v{rule.version}" if rule.version is not None else where


def _state(rule: AlertRule) -> str:
    return rule.state if rule.enabled else "disabled"


def _show(rule: AlertRule, as_json: bool, message: str | None = None) -> None:
    def render(out: Console) -> None:
        if message:
            ok(message)
        channels = [c.target or c.type for c in rule.channels]
        out.print(
            record(
                {
                    "id": rule.id,
                    "name": rule.name,
                    "condition": _condition(rule),
                    "scope": _scope(rule),
                    "min requests": rule.min_requests,
                    "severity": rule.severity,
                    "channels": ", ".join(channels),
                    "state": _state(rule),
                    "since": rule.state_since,
                    "last value": rule.last_value,
                    "last evaluated": rule.last_evaluated_at,
                }
            )
        )

    emit(rule, as_json, render)


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="A name unique in the project.")],
    metric: Annotated[str, typer.Option("--metric", help=METRIC_HELP)],
    op: Annotated[str, typer.Option("--op", help=OP_HELP)],
    threshold: Annotated[float, typer.Option("--threshold", help=THRESHOLD_HELP)],
    window: WindowOption = "5m",
    severity: SeverityOption = "warning",
    deployment: DeploymentOption = None,
    version: VersionOption = None,
    min_requests: MinRequestsOption = None,
    webhook: WebhookOption = None,
    webhook_secret: WebhookSecretOption = None,
    header: HeaderOption = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it disabled.")] = False,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a rule, e.g. --metric error_rate --op '>' --threshold 0.1 --window 5m."""
    with Client(server, api_key) as client:
        rule = client.alerts.create(
            name,
            metric=metric,
            op=op,
            threshold=threshold,
            window_s=parse_window(window or "5m"),
            deployment=deployment,
            version=version,
            min_requests=min_requests,
            severity=severity or "warning",
            channels=_channels(webhook or [], webhook_secret, header or []),
            enabled=not disabled,
        )
    _show(rule, as_json, f"created alert rule {rule.name} (id {rule.id})")


@app.command("update")
def update(
    rule: RuleArgument,
    metric: MetricOption = None,
    op: OpOption = None,
    threshold: ThresholdOption = None,
    window: WindowOption = None,
    severity: SeverityOption = None,
    deployment: DeploymentOption = None,
    all_deployments: Annotated[
        bool, typer.Option("--all-deployments", help="Watch every deployment again.")
    ] = False,
    min_requests: MinRequestsOption = None,
    webhook: WebhookOption = None,
    webhook_secret: WebhookSecretOption = None,
    header: HeaderOption = None,
    enabled: Annotated[
        bool | None,
        typer.Option("--enable/--disable", help="Turn the rule on or off (off forgets its state)."),
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change some fields of a rule; --webhook replaces its channels (audited)."""
    if deployment is not None and all_deployments:
        raise InvalidInput("--deployment cannot be combined with --all-deployments")
    new_deployment: str | Keep | None = None if all_deployments else (deployment or KEEP)
    with Client(server, api_key) as client:
        updated = client.alerts.update(
            _rule_ref(rule),
            metric=metric,
            op=op,
            threshold=threshold,
            window_s=parse_window(window) if window is not None else None,
            deployment=new_deployment,
            min_requests=min_requests,
            severity=severity,
            channels=_channels(webhook or [], webhook_secret, header or []),
            enabled=enabled,
        )
    _show(updated, as_json, f"updated alert rule {updated.name}")


def _rule_ref(rule: str) -> int | str:
    return int(rule) if rule.isdigit() else rule


@app.command("list")
def list_rules(
    firing: Annotated[bool, typer.Option("--firing", help="Only rules firing now.")] = False,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the project's rules and where each stands."""
    with Client(server, api_key) as client:
        rules = client.alerts.list(state="firing" if firing else None)
    columns = ("id", "name", "condition", "scope", "severity", "state", "last value", "since")
    rows = [
        (r.id, r.name, _condition(r), _scope(r), r.severity, _state(r), r.last_value, r.state_since)
        for r in rules
    ]
    emit(rules, as_json, lambda out: out.print(table(columns, rows)))


@app.command("show")
def show(
    rule: RuleArgument,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """One rule, its condition, channels and state."""
    with Client(server, api_key) as client:
        found = client.alerts.get(_rule_ref(rule))
    _show(found, as_json)


def _deliveries(event: AlertEvent) -> str:
    parts = []
    for delivery in event.deliveries:
        if delivery.channel == "log":
            continue
        outcome = "pending" if delivery.ok is None else ("ok" if delivery.ok else delivery.error)
        parts.append(f"{delivery.target}: {outcome}")
    return "; ".join(parts) or "log"


@app.command("events")
def events(
    rule: RuleArgument,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """A rule's transitions (firing, resolved) and how each delivery went, newest first."""
    with Client(server, api_key) as client:
        found = client.alerts.events(_rule_ref(rule))
    columns = ("at", "state", "value", "message", "deliveries")
    rows = [(e.at, e.state, e.value, e.message, _deliveries(e)) for e in found]
    emit(found, as_json, lambda out: out.print(table(columns, rows)))


@app.command("evaluate")
def evaluate(
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Evaluate the project's rules now and print what changed."""
    with Client(server, api_key) as client:
        result = client.alerts.evaluate()

    def render(out: Console) -> None:
        ok(f"evaluated {result.evaluated} rules: {len(result.transitions)} changed state")
        if result.transitions:
            columns = ("rule", "state", "value", "message", "deliveries")
            rows = [
                (e.rule, e.state, e.value, e.message, _deliveries(e)) for e in result.transitions
            ]
            out.print(table(columns, rows))

    emit(result, as_json, render)


@app.command("delete")
def delete(
    rule: RuleArgument,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
) -> None:
    """Delete a rule and its events (the audit log keeps the record)."""
    with Client(server, api_key) as client:
        client.alerts.delete(_rule_ref(rule))
    ok(f"deleted alert rule {rule}")
