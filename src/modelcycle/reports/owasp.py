"""The OWASP Top 10 for LLM Applications 2025 items of the compliance map."""

from __future__ import annotations

from modelcycle.reports.evidence import (
    DIGEST_KEYS,
    OWASP,
    OWASP_ITEMS,
    covering,
    guard_item,
    input_rule,
    item,
    names,
    output_rule,
    spread,
)
from modelcycle.reports.schemas import ComplianceItem, CoverageStatus, ModelReport


def owasp_items(report: ModelReport, rate_limited_by_settings: bool) -> list[ComplianceItem]:
    """LLM01..LLM10 in order; ``rate_limited_by_settings``: server-wide limits apply."""
    items = [
        guard_item(
            report,
            "LLM01",
            input_rule("injection", ("block",)),
            input_rule("injection", ("flag", "redact")),
            "input injection rule that blocks",
        ),
        _llm02(report),
        _llm03(report),
        _llm04(report),
        guard_item(
            report,
            "LLM05",
            output_rule(("json_schema",), ("block", "redact")),
            output_rule(("json_schema",), ("flag",)),
            "output validated against a JSON schema",
        ),
        _evaluated_only(report, "LLM06"),
        guard_item(
            report,
            "LLM07",
            output_rule(("secrets",), ("block", "redact")),
            output_rule(("secrets",), ("flag",)),
            "secrets removed from answers",
        ),
        _evaluated_only(report, "LLM08"),
        _llm09(report),
        _llm10(report, rate_limited_by_settings),
    ]
    items[6] = _llm07(report, items[6])
    return items


def _llm07(report: ModelReport, guarded: ComplianceItem) -> ComplianceItem:
    """Secrets kept out of answers limit the harm; only a test shows the prompt does not leak."""
    leaked = report.identity.redacted
    notes = [
        f"credential-like values withheld from params: {names(leaked)}"
        if leaked
        else "no credential-like values in the version's params"
    ]
    status = guarded.status
    if status == "covered" and not covering(report, "LLM07"):
        status = "partial"
        notes.append("no evaluation tests for system prompt leakage")
    return guarded.model_copy(
        update={"status": status, "evidence": "; ".join([guarded.evidence, *notes])}
    )


def _llm02(report: ModelReport) -> ComplianceItem:
    guarded = guard_item(
        report,
        "LLM02",
        output_rule(("pii", "secrets"), ("block", "redact")),
        lambda r: r.detector in ("pii", "secrets"),
        "personal data or secrets redacted from answers",
    )
    stored = (
        "prompts and answers stored unredacted in traces"
        if report.retention.raw_text_stored
        else "traces stored with personal data redacted"
        if report.retention.content_recorded
        else "prompts and answers not stored in traces"
    )
    return guarded.model_copy(update={"evidence": f"{guarded.evidence}; {stored}"})


def _llm03(report: ModelReport) -> ComplianceItem:
    identity = report.identity
    digest = next((k for k in DIGEST_KEYS if k in identity.metadata), None)
    licence = next((f.value for f in report.use if f.key == "license" and f.value), None)
    evidence = [
        f"source recorded: {identity.source}",
        f"{len(report.lineage.ancestors)} ancestor version(s) recorded",
        f"artifact digest: {identity.metadata[digest]}"
        if digest
        else f"no artifact digest recorded (metadata {'/'.join(DIGEST_KEYS)})",
        f"licence: {licence}" if licence else "licence not recorded",
    ]
    return item(
        OWASP,
        "LLM03:2025",
        OWASP_ITEMS["LLM03"],
        "covered" if digest and licence else "partial",
        evidence,
        ["Identity", "Lineage"],
        covering(report, "LLM03"),
    )


def _llm04(report: ModelReport) -> ComplianceItem:
    data = [e.target_ref for e in report.lineage.edges if e.target_kind == "dataset"]
    sections = covering(report, "LLM04")
    status: CoverageStatus = (
        "covered" if sections and data else "partial" if data else "not covered"
    )
    return item(
        OWASP,
        "LLM04:2025",
        OWASP_ITEMS["LLM04"],
        status,
        [f"training data in lineage: {names(data)}"],
        ["Lineage"],
        sections,
    )


def _evaluated_only(report: ModelReport, code: str) -> ComplianceItem:
    """Items only an evaluation can speak to: the platform records no control for them."""
    return item(
        OWASP,
        f"{code}:2025",
        OWASP_ITEMS[code],
        "not covered",
        [],
        [],
        covering(report, code),
    )


def _llm09(report: ModelReport) -> ComplianceItem:
    sections = covering(report, "LLM09")
    monitoring = report.monitoring
    score = (
        f"mean feedback score {monitoring.feedback_score:.2f} over {monitoring.feedback_count}"
        if monitoring.feedback_score is not None
        else "no feedback scores in the window"
    )
    status: CoverageStatus = (
        "covered" if sections else "partial" if monitoring.feedback_count else "not covered"
    )
    return item(
        OWASP, "LLM09:2025", OWASP_ITEMS["LLM09"], status, [score], ["Monitoring"], sections
    )


def _llm10(report: ModelReport, rate_limited_by_settings: bool) -> ComplianceItem:
    serving = [d.name for d in report.deployments]
    limited = [
        d.name
        for d in report.deployments
        if rate_limited_by_settings
        or any(
            v is not None for v in (d.limits.rpm, d.limits.tpm, d.limits.key_rpm, d.limits.key_tpm)
        )
    ]
    max_tokens = report.identity.params.get("max_tokens")
    status = spread(limited, serving)
    if status == "not covered" and max_tokens is not None:
        status = "partial"
    evidence = [
        f"request or token rate limits on: {names(limited)}",
        f"answer length capped at max_tokens={max_tokens}"
        if max_tokens is not None
        else "no max_tokens default in params",
    ]
    if rate_limited_by_settings:
        evidence.append("server-wide project or key rate limits set")
    timeouts = sorted({d.timeout_s for d in report.deployments})
    if timeouts:
        evidence.append("backend call timeouts: " + ", ".join(f"{t:g} s" for t in timeouts))
    return item(
        OWASP,
        "LLM10:2025",
        OWASP_ITEMS["LLM10"],
        status,
        evidence,
        ["Deployments and guard policies", "Identity"],
        covering(report, "LLM10"),
    )
