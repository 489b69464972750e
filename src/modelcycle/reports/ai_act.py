"""The EU AI Act (Regulation (EU) 2024/1689) items of the compliance map."""

from __future__ import annotations

from modelcycle.reports.evidence import (
    AI_ACT,
    covering,
    input_rule,
    item,
    names,
    spread,
    with_rule,
)
from modelcycle.reports.schemas import ComplianceItem, CoverageStatus, ModelReport


def ai_act_items(report: ModelReport) -> list[ComplianceItem]:
    """Art. 11, 12, 13, 14, 15, 19/26(6) and 50, in that order."""
    use = {field.key: field for field in report.use}
    recorded = [key for key, field in use.items() if field.value is not None]
    missing_use = [key for key in ("intended_use", "limitations", "contact") if key not in recorded]
    lineage = report.lineage
    monitoring = report.monitoring
    serving = [d.name for d in report.deployments]
    return [
        _art11(report, recorded, lineage.ancestors != [] or lineage.edges != []),
        item(
            AI_ACT,
            "Art. 12",
            "Record-keeping (automatic logging of events)",
            "covered" if report.retention.tracing else "not covered",
            [
                f"request tracing {'on' if report.retention.tracing else 'off'}",
                f"{monitoring.requests} requests recorded over the last {monitoring.days} days",
                "audit entries shown to admin keys only"
                if report.changes.withheld
                else f"{len(report.changes.entries)} audit entries (hash-chained log)",
            ],
            ["Monitoring", "Approvals and changes"],
            covering(report, "art12"),
        ),
        item(
            AI_ACT,
            "Art. 13",
            "Transparency and instructions for use",
            "covered" if not missing_use else ("partial" if recorded else "not covered"),
            [f"recorded: {names(recorded)}", f"missing: {names(missing_use)}"],
            ["Intended use and limitations"],
            covering(report, "art13"),
        ),
        _art14(report, serving),
        _art15(report),
        _art19(report),
        item(
            AI_ACT,
            "Art. 50",
            "Transparency of interaction with an AI system",
            "covered" if "ai_disclosure" in recorded else "not covered",
            [
                f"ai_disclosure: {use['ai_disclosure'].value}"
                if "ai_disclosure" in recorded
                else "how users are told they talk to an AI is not recorded (ai_disclosure)"
            ],
            ["Intended use and limitations"],
            covering(report, "art50"),
        ),
    ]


def _art11(report: ModelReport, recorded: list[str], has_lineage: bool) -> ComplianceItem:
    identity = report.identity
    parts = {
        "intended use": "intended_use" in recorded,
        "lineage": has_lineage,
        "evaluation results": report.evaluations != [],
    }
    present = [name for name, ok in parts.items() if ok]
    absent = [name for name, ok in parts.items() if not ok]
    evidence = [
        f"source, backend ({identity.backend.value}) and parameters of "
        f"{identity.model}@{identity.version} recorded",
        f"also recorded: {names(present)}",
    ]
    if absent:
        evidence.append(f"not recorded: {names(absent)}")
    return item(
        AI_ACT,
        "Art. 11 + Annex IV",
        "Technical documentation",
        "partial" if absent else "covered",
        evidence,
        ["Identity", "Lineage", "Evaluations"],
    )


def _art14(report: ModelReport, serving: list[str]) -> ComplianceItem:
    watched = sorted({r.deployment for r in report.incidents.rules if r.enabled and r.deployment})
    status = spread([name for name in serving if name in watched], serving)
    feedback = report.monitoring.feedback_count
    if status == "not covered" and feedback:
        status = "partial"
    staged = [d.name for d in report.deployments if any(r.role != "primary" for r in d.routes)]
    return item(
        AI_ACT,
        "Art. 14",
        "Human oversight",
        status,
        [
            f"alert rules watching: {names(watched)}",
            f"{feedback} human feedback entries in the window",
            f"staged rollout (canary/shadow/fallback) on: {names(staged)}",
            "rollback: every deployment keeps its revisions",
        ],
        ["Incidents", "Monitoring", "Deployments and guard policies"],
        covering(report, "art14"),
    )


def _art15(report: ModelReport) -> ComplianceItem:
    accuracy = covering(report, "art15")
    injection = with_rule(report.deployments, input_rule("injection", ("block",)))
    serving = [d.name for d in report.deployments]
    resilient = [d.name for d in report.deployments if d.retries or len(d.routes) > 1]
    if accuracy and serving and len(injection) == len(serving):
        status: CoverageStatus = "covered"
    else:
        status = "partial" if accuracy or injection else "not covered"
    return item(
        AI_ACT,
        "Art. 15",
        "Accuracy, robustness and cybersecurity",
        status,
        [
            f"accuracy evaluations: {len(accuracy)}",
            f"adversarial input (injection) blocked on: {names(injection)}",
            f"retries or fallbacks on: {names(resilient)}",
        ],
        ["Evaluations", "Deployments and guard policies"],
        accuracy,
    )


def _art19(report: ModelReport) -> ComplianceItem:
    retention = report.retention
    kept = (
        "traces kept until deleted (no retention limit)"
        if retention.retention_days is None
        else f"traces kept {retention.retention_days} days"
    )
    evidence = [kept, f"{retention.required_days} days required"]
    if not retention.tracing:
        evidence.append("request tracing is off: no logs are kept")
    return item(
        AI_ACT,
        "Art. 19 / Art. 26(6)",
        "Retention of automatically generated logs (at least six months)",
        "covered" if retention.meets_requirement else "not covered",
        evidence,
        ["Record retention"],
    )
