"""A report as a list of neutral blocks, which the Markdown and HTML renderers both draw.

Building the document once keeps the two forms identical in content; each
renderer only decides how to escape and lay out text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from modelcycle.reports.compliance import RETENTION_DAYS_REQUIRED
from modelcycle.reports.schemas import DeploymentUse, GuardPolicyView, ModelReport


@dataclass(frozen=True, slots=True)
class Heading:
    """A heading; level 1 is the title."""

    text: str
    level: int


@dataclass(frozen=True, slots=True)
class Paragraph:
    """Plain text (escaped by the renderer)."""

    text: str


@dataclass(frozen=True, slots=True)
class Fields:
    """Name/value pairs of one record."""

    pairs: list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Table:
    """Rows under headers; ``empty`` is shown instead when there are no rows."""

    headers: tuple[str, ...]
    rows: Sequence[Sequence[str]]
    empty: str = "None."
    status_column: int | None = None
    """Column holding a coverage status (the HTML form colours it)."""


@dataclass(frozen=True, slots=True)
class Markdown:
    """Markdown a plugin contributed (HTML shows it as preformatted, escaped text)."""

    text: str


Block = Heading | Paragraph | Fields | Table | Markdown

_SHORT = {"OWASP Top 10 for LLM Applications 2025": "OWASP LLM Top 10"}
"""Framework names as the compliance table shows them (the JSON keeps the full name)."""


@dataclass(slots=True)
class _Document:
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> None:
        self.blocks.extend(blocks)


def when(value: datetime | None) -> str:
    """A UTC timestamp to the second."""
    if value is None:
        return "-"
    if value.tzinfo is None:  # SQLite hands back naive UTC
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def value_text(value: Any) -> str:
    """A JSON-ish value as one line of text."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def build(report: ModelReport) -> list[Block]:
    """The report's blocks, in reading order."""
    doc = _Document()
    ident = report.identity
    doc.add(
        Heading(f"Model report: {ident.model}@{ident.version}", 1),
        Paragraph(
            f"Project {report.project}. Generated {when(report.generated_at)} from the "
            f"platform's records. Activity window: the last {report.monitoring.days} days "
            f"({when(report.monitoring.start)} to {when(report.monitoring.end)})."
        ),
    )
    _identity(doc, report)
    _use(doc, report)
    _lineage(doc, report)
    _evaluations(doc, report)
    _deployments(doc, report)
    _monitoring(doc, report)
    _incidents(doc, report)
    _changes(doc, report)
    _retention(doc, report)
    _compliance(doc, report)
    return doc.blocks


def _identity(doc: _Document, report: ModelReport) -> None:
    ident = report.identity
    doc.add(
        Heading("Identity", 2),
        Fields(
            [
                ("Model", ident.model),
                ("Model description", ident.model_description or "-"),
                ("Version", str(ident.version)),
                ("Status", ident.status.value),
                ("Aliases", ", ".join(ident.aliases) or "-"),
                ("Backend", ident.backend.value),
                ("Source", ident.source),
                ("Registered by", ident.created_by),
                ("Registered at", when(ident.created_at)),
            ]
        ),
        Heading("Parameters", 3),
        Table(
            ("Parameter", "Value"),
            [(key, value_text(value)) for key, value in sorted(ident.params.items())],
            empty="No parameters.",
        ),
        Heading("Metadata", 3),
        Table(
            ("Key", "Value", "Recorded on"),
            [(k, value_text(v), "version") for k, v in sorted(ident.metadata.items())]
            + [(k, value_text(v), "model") for k, v in sorted(ident.model_metadata.items())],
            empty="No metadata.",
        ),
    )
    if ident.redacted:
        doc.add(Paragraph("Withheld as credential-like: " + ", ".join(ident.redacted) + "."))


def _use(doc: _Document, report: ModelReport) -> None:
    doc.add(
        Heading("Intended use and limitations", 2),
        Table(
            ("Item", "Statement", "Recorded on"),
            [(f.key, f.value or f.hint or "-", f.recorded_on or "-") for f in report.use],
        ),
    )


def _lineage(doc: _Document, report: ModelReport) -> None:
    lineage = report.lineage
    ident = report.identity
    chain = [f"{ident.model}@{ident.version}"] + [
        f"{a.model}@{a.version}" for a in lineage.ancestors
    ]
    doc.add(
        Heading("Lineage", 2),
        Paragraph(
            "Parent chain: " + " <- ".join(chain)
            if lineage.ancestors
            else "No parent version is recorded."
        ),
        Table(
            ("Relation", "Kind", "Reference", "Recorded at"),
            [(e.relation, e.target_kind, e.target_ref, when(e.created_at)) for e in lineage.edges],
            empty="No lineage edges.",
        ),
        Paragraph(
            "Versions derived from it: "
            + (", ".join(f"{c.model}@{c.version}" for c in lineage.children) or "none")
            + "."
        ),
    )


def _evaluations(doc: _Document, report: ModelReport) -> None:
    doc.add(Heading("Evaluations", 2))
    if not report.evaluations:
        doc.add(
            Paragraph(
                "No evaluation results are recorded for this version (including safety "
                "evaluations): no stage contributed any."
            )
        )
    for section in report.evaluations:
        doc.add(Heading(section.title, 3), Markdown(section.markdown))
        if section.covers:
            doc.add(Paragraph("Evidence for: " + ", ".join(section.covers) + "."))


def _limits(deployment: DeploymentUse) -> str:
    limits = deployment.limits
    found = [
        f"{name}={getattr(limits, name)}"
        for name in ("rpm", "tpm", "key_rpm", "key_tpm", "max_concurrency")
        if getattr(limits, name) is not None
    ]
    return ", ".join(found) or "none"


def _deployments(doc: _Document, report: ModelReport) -> None:
    doc.add(
        Heading("Deployments and guard policies", 2),
        Table(
            ("Deployment", "Revision", "Role", "Target", "Weight", "Guard policy", "Limits"),
            [
                (
                    d.name,
                    str(d.revision),
                    route.role,
                    route.target,
                    "-" if route.weight is None else f"{route.weight}%",
                    d.guard.name if d.guard else "none",
                    _limits(d),
                )
                for d in report.deployments
                for route in d.routes
            ],
            empty="No deployment routes to this version.",
        ),
    )
    policies: dict[str, tuple[GuardPolicyView, list[str]]] = {}
    for d in report.deployments:
        if d.guard is not None:
            policies.setdefault(d.guard.name, (d.guard, []))[1].append(d.name)
    for name, (policy, users) in sorted(policies.items()):
        doc.add(Heading(f"Guard policy {name} (used by {', '.join(users)})", 3))
        if not policy.found:
            doc.add(Paragraph(f"The policy {name} does not exist: these deployments name it."))
            continue
        doc.add(
            Paragraph(
                f"Revision {policy.revision}, last changed by {policy.updated_by} at "
                f"{when(policy.updated_at)}. {policy.description}".strip()
            ),
            Table(
                ("Stage", "Detector", "Action", "Min score", "Types"),
                [
                    (
                        r.stage,
                        r.detector,
                        r.action,
                        f"{r.min_score:g}",
                        ", ".join(r.types or []) or "all",
                    )
                    for r in policy.rules
                ],
                empty="No rules.",
            ),
        )


def _monitoring(doc: _Document, report: ModelReport) -> None:
    m = report.monitoring
    doc.add(
        Heading(f"Monitoring (last {m.days} days)", 2),
        Fields(
            [
                ("Requests", str(m.requests)),
                ("Errors", f"{m.errors} ({_rate(m.error_rate)})"),
                ("Latency p50 / p95", f"{_ms(m.latency_p50_ms)} / {_ms(m.latency_p95_ms)}"),
                ("Tokens in / out", f"{m.input_tokens} / {m.output_tokens}"),
                ("Cost", f"{m.cost:.4f}"),
                (
                    "Feedback",
                    f"{m.feedback_count} entries, mean score "
                    + ("-" if m.feedback_score is None else f"{m.feedback_score:.2f}"),
                ),
            ]
        ),
        Table(
            ("Deployment", "Route", "Requests", "Errors", "Error rate", "p50", "p95"),
            [
                (
                    s.deployment or "-",
                    s.route or "-",
                    str(s.requests),
                    str(s.errors),
                    _rate(s.error_rate),
                    _ms(s.latency_p50_ms),
                    _ms(s.latency_p95_ms),
                )
                for s in m.by_route
            ],
            empty="No traffic in the window.",
        ),
        Heading("Guard decisions", 3),
        Table(
            ("Decision", "Answered by this version", "Ended before routing"),
            [
                (
                    action,
                    str(m.guard_decisions.get(action, 0)),
                    str(m.guard_before_routing.get(action, 0)),
                )
                for action in sorted({*m.guard_decisions, *m.guard_before_routing})
            ],
            empty="No requests in the window.",
        ),
    )


def _incidents(doc: _Document, report: ModelReport) -> None:
    inc = report.incidents
    doc.add(
        Heading("Incidents", 2),
        Heading("Alert rules on its deployments", 3),
        Table(
            ("Rule", "Deployment", "Condition", "Severity", "Enabled", "State"),
            [
                (
                    r.name,
                    r.deployment or "-",
                    f"{r.metric} {r.op} {r.threshold:g}",
                    r.severity,
                    "yes" if r.enabled else "no",
                    r.state,
                )
                for r in inc.rules
            ],
            empty="No alert rules watch the deployments serving this version.",
        ),
        Heading("Alert transitions", 3),
        Table(
            ("At", "Rule", "Deployment", "State", "Value", "Message"),
            [
                (when(a.at), a.rule, a.deployment or "-", a.state, value_text(a.value), a.message)
                for a in inc.alerts
            ],
            empty="No alert fired or resolved in the window.",
        ),
        Heading("Drift checks", 3),
        Table(
            ("At", "Report", "Deployment", "Drifted metrics", "By"),
            [
                (
                    when(d.created_at),
                    str(d.report_id),
                    d.deployment or "-",
                    ", ".join(d.drifted_metrics) or "none",
                    d.created_by,
                )
                for d in inc.drift
            ],
            empty="No drift checks in the window.",
        ),
    )


def _changes(doc: _Document, report: ModelReport) -> None:
    changes = report.changes
    doc.add(
        Heading("Approvals and changes", 2),
        Table(
            ("Seq", "At", "Actor", "Action", "Target"),
            [(str(c.seq), when(c.at), c.actor, c.action, c.target) for c in changes.entries],
            empty=(
                "Shown to admin keys only (the audit log is admin-only)."
                if changes.withheld
                else "No audit entries."
            ),
        ),
    )
    if changes.truncated:
        doc.add(Paragraph("Older entries left out; read them with: modelcycle audit list."))


def _retention(doc: _Document, report: ModelReport) -> None:
    r = report.retention
    doc.add(
        Heading("Record retention", 2),
        Fields(
            [
                ("Request tracing", "on" if r.tracing else "off"),
                ("Prompts and answers stored", "yes" if r.content_recorded else "no"),
                ("Stored unredacted", "yes" if r.raw_text_stored else "no"),
                (
                    "Trace retention",
                    "no limit" if r.retention_days is None else f"{r.retention_days} days",
                ),
                (
                    f"Meets {RETENTION_DAYS_REQUIRED} days (six months)",
                    "yes" if r.meets_requirement else "no",
                ),
            ]
        ),
    )


def _compliance(doc: _Document, report: ModelReport) -> None:
    doc.add(
        Heading("Compliance map", 2),
        Paragraph(
            "Each status is computed from the records above. The platform produces evidence; "
            "the organisational duties of providers and deployers remain theirs."
        ),
        Table(
            ("Framework", "Item", "Title", "Status", "Evidence"),
            [
                (_SHORT.get(c.framework, c.framework), c.ref, c.title, c.status, c.evidence)
                for c in report.compliance
            ],
            status_column=3,
        ),
    )
