"""Access control: projects (tenants), API keys, roles."""

from modelcycle.access.audit_log import AuditEntry, AuditLog, AuditVerification
from modelcycle.access.schemas import (
    ApiKey,
    CreatedApiKey,
    KeyCreate,
    KeyRotate,
    Principal,
    Project,
    ProjectCreate,
    RotatedApiKey,
    WhoAmI,
)
from modelcycle.access.service import AccessService, require

__all__ = [
    "AccessService",
    "ApiKey",
    "AuditEntry",
    "AuditLog",
    "AuditVerification",
    "CreatedApiKey",
    "KeyCreate",
    "KeyRotate",
    "Principal",
    "Project",
    "ProjectCreate",
    "RotatedApiKey",
    "WhoAmI",
    "require",
]
