"""What a model report holds: the JSON form, and what the Markdown and HTML forms show."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from modelcycle.deploy import DeploymentLimits
from modelcycle.registry import LineageEdge, VersionRef
from modelcycle.types import BackendKind, VersionStatus

ReportFormat = Literal["md", "html", "json"]
CoverageStatus = Literal["covered", "partial", "not covered"]
RouteRole = Literal["primary", "canary", "shadow", "fallback"]
Framework = Literal["EU AI Act", "OWASP Top 10 for LLM Applications 2025"]

USE_KEYS = ("intended_use", "limitations", "license", "contact", "ai_disclosure")
"""Metadata keys read into the instructions-for-use section (version first, then model)."""


class ReportSection(BaseModel):
    """A section another stage contributes (``modelcycle_model_report_sections``)."""

    title: str = Field(min_length=1, max_length=200)
    markdown: str = Field(max_length=200_000, description="The section's body, in Markdown.")
    covers: list[str] = Field(
        default_factory=list,
        max_length=40,
        description="Controls the section is evidence for: LLM01..LLM10 and art11, art12, "
        "art13, art14, art15, art19, art50.",
    )


class UseField(BaseModel):
    """One instructions-for-use entry and where it was recorded."""

    key: str
    value: str | None
    recorded_on: Literal["version", "model"] | None
    """``None``: recorded nowhere (``hint`` says how to record it)."""
    hint: str | None = None


class Identity(BaseModel):
    """The version itself, as the registry holds it (credentials never appear)."""

    model: str
    model_description: str
    version: int
    source: str
    backend: BackendKind
    params: dict[str, Any]
    status: VersionStatus
    aliases: list[str]
    created_by: str
    created_at: datetime
    metadata: dict[str, Any]
    model_metadata: dict[str, Any]
    redacted: list[str] = Field(
        default_factory=list, description="Fields withheld because they looked like credentials."
    )


class LineageView(BaseModel):
    """Where the version comes from and what derives from it."""

    ancestors: list[VersionRef] = Field(description="Parent first, then its parent...")
    edges: list[LineageEdge]
    children: list[VersionRef]


class GuardRuleView(BaseModel):
    """One rule of a guard policy."""

    stage: Literal["input", "output"]
    detector: str
    action: str
    min_score: float
    types: list[str] | None


class GuardPolicyView(BaseModel):
    """The guard policy a deployment names, as stored now."""

    name: str
    found: bool
    """False: the deployment names a policy that does not exist."""
    revision: int | None = None
    description: str = ""
    rules: list[GuardRuleView] = Field(default_factory=list)
    updated_by: str | None = None
    updated_at: datetime | None = None


class RouteUse(BaseModel):
    """How a deployment sends traffic to this version."""

    role: RouteRole
    target: str
    weight: int | None
    """Percent of live traffic for primary and canary routes; ``None`` for shadow/fallback."""


class DeploymentUse(BaseModel):
    """A deployment that routes to this version now."""

    name: str
    revision: int
    routes: list[RouteUse]
    guard: GuardPolicyView | None
    limits: DeploymentLimits
    timeout_s: float
    retries: int
    updated_by: str
    updated_at: datetime


class TrafficSlice(BaseModel):
    """This version's traffic through one deployment and route."""

    deployment: str | None
    route: str | None
    requests: int
    errors: int
    error_rate: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None


class Monitoring(BaseModel):
    """The version's production traffic over the report's window (from the rollups)."""

    start: datetime
    end: datetime
    days: int
    requests: int
    errors: int
    error_rate: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    input_tokens: int
    output_tokens: int
    cost: float
    feedback_count: int
    feedback_score: float | None
    by_route: list[TrafficSlice]
    guard_decisions: dict[str, int] = Field(
        description="Requests answered by this version, per guard action."
    )
    guard_before_routing: dict[str, int] = Field(
        description="Requests to the deployments serving it that ended before a version was "
        "chosen (an input block, say), per guard action."
    )


class AlertRuleRef(BaseModel):
    """An alert rule watching a deployment that serves this version."""

    name: str
    metric: str
    deployment: str | None
    op: str
    threshold: float
    severity: str
    enabled: bool
    state: str


class AlertIncident(BaseModel):
    """A transition of such a rule within the window."""

    rule: str
    deployment: str | None
    severity: str
    state: str
    value: float | None
    threshold: float
    message: str
    at: datetime


class DriftIncident(BaseModel):
    """A drift check of a serving deployment within the window."""

    report_id: int
    deployment: str | None
    drifted: bool
    drifted_metrics: list[str]
    created_by: str
    created_at: datetime


class Incidents(BaseModel):
    """Alerts and drift of the deployments serving this version."""

    rules: list[AlertRuleRef]
    alerts: list[AlertIncident]
    drift: list[DriftIncident]


class Change(BaseModel):
    """One audit entry touching the version, its model, aliases, deployments or guard."""

    seq: int
    at: datetime
    actor: str
    action: str
    target: str


class Changes(BaseModel):
    """The audit trail (oldest first); ``truncated`` when older entries were left out."""

    entries: list[Change]
    truncated: bool
    withheld: bool = False
    """The caller is not an admin: the audit log, and so this section, is admin-only."""


class Retention(BaseModel):
    """How the project keeps the logs of this version's use."""

    tracing: bool
    """Whether the server records requests at all (setting ``tracing``)."""
    content_recorded: bool
    """Whether prompts and answers are stored with the traces (setting ``trace_content``)."""
    raw_text_stored: bool
    """Whether prompts and answers are stored unredacted (project monitor policy)."""
    retention_days: int | None
    """Traces are purged after this many days; ``None`` keeps them."""
    required_days: int
    meets_requirement: bool


class ComplianceItem(BaseModel):
    """One duty or risk and what in this report is evidence for it."""

    framework: Framework
    ref: str
    title: str
    status: CoverageStatus
    evidence: str
    sections: list[str] = Field(description="Report sections holding the evidence.")


class ModelReport(BaseModel):
    """A model card and deployment record of one version, gathered from the platform's data."""

    generated_at: datetime
    project: str
    identity: Identity
    use: list[UseField]
    lineage: LineageView
    evaluations: list[ReportSection]
    deployments: list[DeploymentUse]
    monitoring: Monitoring
    incidents: Incidents
    changes: Changes
    retention: Retention
    compliance: list[ComplianceItem]
