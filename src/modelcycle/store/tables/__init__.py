"""Every table of modelcycle, on one metadata (Alembic compares against it)."""

from modelcycle.store.tables.access import ApiKeyRow, ProjectRow, UiSessionRow
from modelcycle.store.tables.audit import AuditEntryRow, AuditHeadRow
from modelcycle.store.tables.base import Base, utcnow
from modelcycle.store.tables.deploy import DeploymentRevisionRow, DeploymentRow
from modelcycle.store.tables.evaluate import (
    DatasetRow,
    DatasetSampleRow,
    DatasetVersionRow,
    EvalResultRow,
    EvalRunRow,
    OnlineEvalConfigRow,
    OnlineScoreRow,
)
from modelcycle.store.tables.guard import GuardPolicyRow
from modelcycle.store.tables.jobs import JobEventRow, JobRow, ScheduleRow
from modelcycle.store.tables.monitor import (
    AlertEventRow,
    AlertRuleRow,
    DriftReportRow,
    FeedbackRow,
    MonitorPolicyRow,
    SpanRollupRow,
    SpanRow,
)
from modelcycle.store.tables.registry import (
    AliasHistoryRow,
    AliasRow,
    LineageEdgeRow,
    ModelRow,
    ModelVersionRow,
)
from modelcycle.store.tables.secrets import SecretRow
from modelcycle.store.tables.tune import FileRow, TuneCheckpointRow, TuneJobRow

__all__ = [
    "AlertEventRow",
    "AlertRuleRow",
    "AliasHistoryRow",
    "AliasRow",
    "ApiKeyRow",
    "AuditEntryRow",
    "AuditHeadRow",
    "Base",
    "DatasetRow",
    "DatasetSampleRow",
    "DatasetVersionRow",
    "DeploymentRevisionRow",
    "DeploymentRow",
    "DriftReportRow",
    "EvalResultRow",
    "EvalRunRow",
    "FeedbackRow",
    "FileRow",
    "GuardPolicyRow",
    "JobEventRow",
    "JobRow",
    "LineageEdgeRow",
    "ModelRow",
    "ModelVersionRow",
    "MonitorPolicyRow",
    "OnlineEvalConfigRow",
    "OnlineScoreRow",
    "ProjectRow",
    "ScheduleRow",
    "SecretRow",
    "SpanRollupRow",
    "SpanRow",
    "TuneCheckpointRow",
    "TuneJobRow",
    "UiSessionRow",
    "utcnow",
]
