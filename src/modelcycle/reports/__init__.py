"""Reports: model cards and deployment records, and evaluation run reports."""

from modelcycle.reports.compliance import RETENTION_DAYS_REQUIRED, compliance_map, control_id
from modelcycle.reports.eval_report import (
    MAX_REPORT_SAMPLES,
    EvalReport,
    build_eval_report,
    eval_report_json,
)
from modelcycle.reports.eval_report_html import render_eval_html, render_eval_report_html
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
    "MAX_REPORT_SAMPLES",
    "RETENTION_DAYS_REQUIRED",
    "ComplianceItem",
    "EvalReport",
    "ModelReport",
    "ModelReports",
    "ReportFormat",
    "ReportSection",
    "build_eval_report",
    "compliance_map",
    "control_id",
    "eval_report_json",
    "render_eval_html",
    "render_eval_report_html",
    "render_html",
    "render_markdown",
]
