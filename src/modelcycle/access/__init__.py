"""Access control: projects (tenants), API keys, roles."""

from modelcycle.access.schemas import (
    ApiKey,
    CreatedApiKey,
    KeyCreate,
    Principal,
    Project,
    ProjectCreate,
    WhoAmI,
)
from modelcycle.access.audit_log import AuditEntry, AuditLog, AuditVerification
from modelcycle.access.service import AccessService, require

__all__ = [
    "AccessService",
    "AuditEntry",
    "AuditLog",
    "AuditVerification",
    "ApiKey",
    "CreatedApiKey",
    "KeyCreate",
    "Principal",
    "Project",
    "ProjectCreate",
    "WhoAmI",
    "require",
]
