"""What the compliance map is built from: statuses, evidence strings and shared tests.

Every status is computed from the gathered data; nothing is claimed that the
report does not show. ``covered`` means the control is in place on every
deployment serving the version (or the record exists), ``partial`` that some of
it is, ``not covered`` that the report holds no evidence.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from modelcycle.reports.schemas import (
    ComplianceItem,
    CoverageStatus,
    DeploymentUse,
    Framework,
    GuardRuleView,
    ModelReport,
)

RETENTION_DAYS_REQUIRED = 183
"""Art. 19 / 26(6): logs kept at least six months; 183 days covers any six calendar months."""

AI_ACT: Framework = "EU AI Act"
OWASP: Framework = "OWASP Top 10 for LLM Applications 2025"

OWASP_ITEMS = {
    "LLM01": "Prompt Injection",
    "LLM02": "Sensitive Information Disclosure",
    "LLM03": "Supply Chain",
    "LLM04": "Data and Model Poisoning",
    "LLM05": "Improper Output Handling",
    "LLM06": "Excessive Agency",
    "LLM07": "System Prompt Leakage",
    "LLM08": "Vector and Embedding Weaknesses",
    "LLM09": "Misinformation",
    "LLM10": "Unbounded Consumption",
}
DIGEST_KEYS = ("sha256", "digest", "checksum")
"""Version metadata keys taken as a recorded artifact digest (LLM03)."""

RulePredicate = Callable[[GuardRuleView], bool]


def control_id(text: str) -> str:
    """``LLM01:2025`` -> ``LLM01``; ``Art. 15`` or ``art15`` -> ``art15``."""
    compact = re.sub(r"[\s.:_-]", "", text).lower()
    if compact.startswith("llm"):
        return compact[:5].upper()
    if compact.startswith("art"):
        return "art" + re.sub(r"\D.*$", "", compact[3:])
    return compact


def covering(report: ModelReport, control: str) -> list[str]:
    """Titles of contributed sections that say they cover ``control``."""
    return [
        section.title
        for section in report.evaluations
        if control in {control_id(entry) for entry in section.covers}
    ]


def with_rule(deployments: Iterable[DeploymentUse], wanted: RulePredicate) -> list[str]:
    """Deployments whose guard policy has a rule matching ``wanted``."""
    return [
        d.name
        for d in deployments
        if d.guard is not None and d.guard.found and any(wanted(rule) for rule in d.guard.rules)
    ]


def spread(have: list[str], every: list[str]) -> CoverageStatus:
    """``covered`` when ``have`` is all of ``every``, ``partial`` when some."""
    if every and len(have) == len(every):
        return "covered"
    return "partial" if have else "not covered"


def names(values: Iterable[str]) -> str:
    """A readable list, ``none`` when empty."""
    return ", ".join(values) or "none"


def item(
    framework: Framework,
    ref: str,
    title: str,
    status: CoverageStatus,
    evidence: list[str],
    sections: list[str],
    contributed: list[str] | None = None,
) -> ComplianceItem:
    """One map entry; contributed sections are cited and lift ``not covered``."""
    if contributed:
        evidence = [*evidence, "contributed sections: " + "; ".join(contributed)]
        sections = [*sections, "Evaluations"]
        if status == "not covered":
            status = "partial"
    return ComplianceItem(
        framework=framework,
        ref=ref,
        title=title,
        status=status,
        evidence="; ".join(evidence) if evidence else "no evidence in this report",
        sections=sections,
    )


def guard_item(
    report: ModelReport,
    code: str,
    strong: RulePredicate,
    weak: RulePredicate,
    what: str,
) -> ComplianceItem:
    """An OWASP item met by a guard rule on every serving deployment."""
    serving = [d.name for d in report.deployments]
    full = with_rule(report.deployments, strong)
    some = with_rule(report.deployments, lambda r: strong(r) or weak(r))
    status = spread(full, serving)
    if status == "not covered" and some:
        status = "partial"
    evidence = [f"{what} on: {names(full)}"]
    if set(some) - set(full):
        evidence.append(f"detection only (flag) on: {names(sorted(set(some) - set(full)))}")
    missing = [name for name in serving if name not in some]
    if missing:
        evidence.append(f"no such rule on: {names(missing)}")
    if not serving:
        evidence = ["no deployment routes to this version"]
    return item(
        OWASP,
        f"{code}:2025",
        OWASP_ITEMS[code],
        status,
        evidence,
        ["Deployments and guard policies"],
        covering(report, code),
    )


def input_rule(detector: str, actions: tuple[str, ...]) -> RulePredicate:
    """Rules on input by ``detector`` with one of ``actions``."""
    return lambda r: r.stage == "input" and r.detector == detector and r.action in actions


def output_rule(detectors: tuple[str, ...], actions: tuple[str, ...]) -> RulePredicate:
    """Rules on output by one of ``detectors`` with one of ``actions``."""
    return lambda r: r.stage == "output" and r.detector in detectors and r.action in actions
