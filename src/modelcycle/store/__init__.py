"""Storage: database engines, sessions, migrations, the audit log."""

from modelcycle.store.audit import AuditRecord, ChainStatus
from modelcycle.store.engine import Store
from modelcycle.store.pagination import Page, decode_cursor, encode_cursor

__all__ = ["AuditRecord", "ChainStatus", "Page", "Store", "decode_cursor", "encode_cursor"]
