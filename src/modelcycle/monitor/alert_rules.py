"""Public shapes of alert rules and their events: what the API takes and shows.

A rule watches one metric of the last ``window_s`` seconds — a rollup metric
(``error_rate``, ``latency_p95_ms``...), a drift statistic (``drift.<name>``)
or the mean of an online evaluation scorer (``online_score:<scorer>``) — and
compares it with ``threshold``. Webhook channels hold a URL, headers and
an optional signing secret, all of which may be credentials: they are stored
encrypted and shown only as the URL's origin, the header names and whether
deliveries are signed.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    SerializationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from modelcycle.types import MAX_INT32, NAME_PATTERN, RequestBody

Op = Literal[">", ">=", "<", "<="]
Severity = Literal["info", "warning", "critical"]
RuleState = Literal["ok", "firing"]
TransitionState = Literal["firing", "resolved"]

RATE_METRICS = (
    "error_rate",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "ttft_p95_ms",
    "feedback_score",
    "cache_hit_rate",
)
"""Ratios, percentiles and means: undecided (no data) below ``min_requests``."""
COUNT_METRICS = ("requests", "tokens", "cost", "feedback_count")
"""Counts and sums: always decided, zero traffic is a value (``requests < 1``)."""
ROLLUP_METRICS = (*RATE_METRICS, *COUNT_METRICS)
DRIFT_PREFIX = "drift."
DRIFT_ANY = "drift.any"
"""1 when the latest drift report in the window found drift, else 0."""
DRIFT_METRIC = re.compile(r"^drift\.[a-z0-9_]{1,56}$")
ONLINE_SCORE_PREFIX = "online_score:"
"""The mean of an online evaluation scorer over the window (docs/online-evaluation.md)."""
ONLINE_SCORE_METRIC = re.compile(r"^online_score:[a-z0-9_.-]{1,51}$")

MIN_WINDOW_S = 60
MAX_WINDOW_S = 7 * 24 * 3600
MAX_CHANNELS = 10
MAX_HEADERS = 20
MAX_THRESHOLD = 1e15
RESERVED_HEADERS = frozenset(
    {"host", "content-length", "content-type", "transfer-encoding", "connection"}
)
"""Set by the sender; ``X-Modelcycle-*`` headers are reserved too."""
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")


def check_metric(metric: str) -> str:
    """``metric`` if known: a rollup metric, ``drift.<name>``, ``online_score:<scorer>``.

    Anything else is a ``ValueError`` listing what is.
    """
    if metric in ROLLUP_METRICS or DRIFT_METRIC.match(metric) or ONLINE_SCORE_METRIC.match(metric):
        return metric
    known = ", ".join(ROLLUP_METRICS)
    raise ValueError(
        f"unknown metric {metric!r}; use one of {known}, or drift.<name> "
        "(a drift report's metric, e.g. drift.embedding_auc) or drift.any, "
        "or online_score:<scorer> (e.g. online_score:json_valid)"
    )


def compare(value: float, op: str, threshold: float) -> bool:
    """Whether ``value op threshold`` holds (the rule's condition)."""
    if op == ">":
        return value > threshold
    if op == ">=":
        return value >= threshold
    if op == "<":
        return value < threshold
    return value <= threshold


def format_window(seconds: int) -> str:
    """``300`` -> ``5m``; the largest unit that divides the window exactly."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def check_webhook_url(url: str) -> str:
    """``url`` when it is an absolute http(s) URL with a host; else ``ValueError``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises on a port that is not a number or out of range
    except ValueError:
        raise ValueError("not a valid URL; give an http:// or https:// URL") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError("must be an http:// or https:// URL with a host")
    if any(char.isspace() or ord(char) < 32 for char in url):
        raise ValueError("may not contain whitespace or control characters")
    return url


def shown_url(url: str) -> str:
    """What the API shows of a webhook URL: its origin, the rest elided.

    Many webhook URLs carry their credential in the path (Slack's, for one), so
    only ``scheme://host[:port]`` is ever shown back.
    """
    parts = urlsplit(url)
    rest = url.split(parts.netloc, 1)[1] if parts.netloc else ""
    origin = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return origin + ("/…" if rest.strip("/") else "/")


class WebhookChannel(RequestBody):
    """POST a JSON document to ``url`` on every transition."""

    type: Literal["webhook"]
    url: str = Field(
        max_length=2000, description="http:// or https:// URL; stored encrypted, shown as origin."
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        max_length=MAX_HEADERS,
        description="Extra request headers (e.g. Authorization); stored encrypted.",
    )
    secret: SecretStr | None = Field(
        default=None,
        min_length=16,
        max_length=256,
        description="Signs each delivery: X-Modelcycle-Signature: t=<unix>,v1=<HMAC-SHA256 hex> "
        "of '<t>.<body>'. Stored encrypted, never shown.",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        return check_webhook_url(url)

    @field_serializer("secret", when_used="json")
    def _secret_for_the_wire(self, secret: SecretStr | None, info: SerializationInfo) -> str | None:
        # Masked in any JSON dump, except the SDK's request body (context reveal_secrets).
        if secret is None:
            return None
        context = info.context or {}
        return secret.get_secret_value() if context.get("reveal_secrets") else "**********"

    @field_validator("headers")
    @classmethod
    def _plain_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"header name {name[:40]!r} is not a valid HTTP header name")
            lowered = name.lower()
            if lowered in RESERVED_HEADERS or lowered.startswith("x-modelcycle-"):
                raise ValueError(f"header {name!r} is set by modelcycle and cannot be overridden")
            if len(value) > 4096 or any(char in value for char in "\r\n"):
                raise ValueError(f"header {name!r}: one line of at most 4096 characters")
        return headers


class LogChannel(RequestBody):
    """Write the transition to the server log (it always is; this makes it explicit)."""

    type: Literal["log"]


Channel = Annotated[WebhookChannel | LogChannel, Field(discriminator="type")]


def _log_only() -> list[WebhookChannel | LogChannel]:
    return [LogChannel(type="log")]


class _RuleFields(RequestBody):
    @field_validator("metric", check_fields=False)
    @classmethod
    def _known_metric(cls, metric: str | None) -> str | None:
        return None if metric is None else check_metric(metric)


class AlertRuleCreate(_RuleFields):
    """Body of ``POST /api/v1/alerts``."""

    name: str = Field(pattern=NAME_PATTERN, max_length=64, description="Unique in the project.")
    metric: str = Field(
        max_length=64,
        description=f"One of {', '.join(ROLLUP_METRICS)}; drift.<name>; drift.any; "
        "or online_score:<scorer>.",
    )
    op: Op = Field(description="How the value compares with the threshold to fire.")
    threshold: float = Field(allow_inf_nan=False, ge=-MAX_THRESHOLD, le=MAX_THRESHOLD)
    window_s: int = Field(
        default=300,
        ge=MIN_WINDOW_S,
        le=MAX_WINDOW_S,
        description="The metric covers the last window_s seconds (60 s .. 7 days).",
    )
    deployment: str | None = Field(
        default=None, pattern=NAME_PATTERN, max_length=64, description="None: every deployment."
    )
    version: int | None = Field(
        default=None,
        ge=1,
        le=MAX_INT32,
        description="Only this model version's requests (shadow traffic included).",
    )
    min_requests: int = Field(
        default=1,
        ge=1,
        le=MAX_INT32,
        description="Rates, percentiles and means are not decided on fewer requests.",
    )
    severity: Severity = "warning"
    channels: list[Channel] = Field(default_factory=_log_only, max_length=MAX_CHANNELS)
    enabled: bool = True


class AlertRuleUpdate(_RuleFields):
    """Body of ``PATCH /api/v1/alerts/{id}``: the fields given are replaced."""

    metric: str | None = Field(default=None, max_length=64)
    op: Op | None = None
    threshold: float | None = Field(
        default=None, allow_inf_nan=False, ge=-MAX_THRESHOLD, le=MAX_THRESHOLD
    )
    window_s: int | None = Field(default=None, ge=MIN_WINDOW_S, le=MAX_WINDOW_S)
    deployment: str | None = Field(
        default=None, pattern=NAME_PATTERN, max_length=64, description="null: every deployment."
    )
    version: int | None = Field(default=None, ge=1, le=MAX_INT32, description="null: any.")
    min_requests: int | None = Field(default=None, ge=1, le=MAX_INT32)
    severity: Severity | None = None
    channels: list[Channel] | None = Field(default=None, max_length=MAX_CHANNELS)
    enabled: bool | None = Field(
        default=None, description="Disabling forgets the state: the rule is 'ok' when enabled."
    )

    @model_validator(mode="after")
    def _required_fields_not_null(self) -> AlertRuleUpdate:
        nullable = {"deployment", "version"}
        for name in self.model_fields_set - nullable:
            if getattr(self, name) is None:
                raise ValueError(f"{name} may not be null")
        return self


class ChannelInfo(BaseModel):
    """What the API shows of a channel: never a URL path, header value or secret."""

    type: Literal["webhook", "log"]
    target: str | None = Field(default=None, description="The webhook URL's origin.")
    headers: list[str] = Field(default_factory=list, description="Names of the extra headers.")
    signed: bool = False


class AlertRule(BaseModel):
    """A rule, its condition and where it stands."""

    id: int
    name: str
    metric: str
    op: Op
    threshold: float
    window_s: int
    deployment: str | None
    version: int | None
    min_requests: int
    severity: Severity
    channels: list[ChannelInfo]
    enabled: bool
    state: RuleState
    last_value: float | None = Field(description="None: no data at the last evaluation.")
    last_evaluated_at: datetime | None
    state_since: datetime | None
    created_by: str
    created_at: datetime
    updated_at: datetime


class Delivery(BaseModel):
    """The outcome of one channel's delivery of a transition."""

    channel: Literal["webhook", "log"]
    target: str | None = None
    ok: bool | None = Field(description="None: not attempted yet (or the process stopped).")
    attempts: int = 0
    status_code: int | None = None
    error: str | None = None


class AlertEvent(BaseModel):
    """One transition of a rule and how its notifications went."""

    id: int
    rule_id: int
    rule: str
    state: TransitionState
    value: float | None
    threshold: float
    message: str
    deliveries: list[Delivery]
    at: datetime


class AlertEvaluation(BaseModel):
    """What ``POST /api/v1/alerts/evaluate`` did."""

    evaluated: int = Field(description="Enabled rules evaluated.")
    transitions: list[AlertEvent]
