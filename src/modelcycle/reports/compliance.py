"""The compliance map: each EU AI Act duty and OWASP LLM risk, and this report's evidence.

Every status is computed from the gathered data; nothing is claimed that the
report does not show (see ``evidence`` for what each status means).
"""

from __future__ import annotations

from modelcycle.reports.ai_act import ai_act_items
from modelcycle.reports.evidence import RETENTION_DAYS_REQUIRED, control_id
from modelcycle.reports.owasp import owasp_items
from modelcycle.reports.schemas import ComplianceItem, ModelReport

__all__ = ["RETENTION_DAYS_REQUIRED", "compliance_map", "control_id"]


def compliance_map(report: ModelReport, *, rate_limited_by_settings: bool) -> list[ComplianceItem]:
    """Every item of both frameworks, evidence first-hand from ``report``."""
    return [*ai_act_items(report), *owasp_items(report, rate_limited_by_settings)]
