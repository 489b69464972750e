"""Compliance records: a model card and deployment record of one model version."""

from modelcycle.reports.compliance import RETENTION_DAYS_REQUIRED, compliance_map, control_id
from modelcycle.reports.render import render_html, render_markdown
from modelcycle.reports.schemas import (
    ComplianceItem,
    ModelReport,
    ReportFormat,
    ReportSection,
)
from modelcycle.reports.service import DEFAULT_DAYS, MAX_DAYS, ModelReports

__all__ = [
    "DEFAULT_DAYS",
    "MAX_DAYS",
    "RETENTION_DAYS_REQUIRED",
    "ComplianceItem",
    "ModelReport",
    "ModelReports",
    "ReportFormat",
    "ReportSection",
    "compliance_map",
    "control_id",
    "render_html",
    "render_markdown",
]
