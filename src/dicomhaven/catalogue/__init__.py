"""The catalogue database: jobs, the ledger, and (later) metadata, projects and the audit log."""

from dicomhaven.catalogue._engine import (
    CATALOGUE,
    Schema,
    current_revision,
    dispose_engines,
    head_revision,
    make_engine,
    make_sessionmaker,
    migrate,
)
from dicomhaven.catalogue._models import (
    TERMINAL_STATUSES,
    AuditEntry,
    Base,
    Consent,
    ConsentStatus,
    Job,
    JobState,
    LedgerEvent,
    LedgerObject,
    ObjectKind,
    ObjectStatus,
    User,
)

__all__ = [
    "CATALOGUE",
    "TERMINAL_STATUSES",
    "AuditEntry",
    "Base",
    "Consent",
    "ConsentStatus",
    "Job",
    "JobState",
    "LedgerEvent",
    "LedgerObject",
    "ObjectKind",
    "ObjectStatus",
    "Schema",
    "User",
    "current_revision",
    "dispose_engines",
    "head_revision",
    "make_engine",
    "make_sessionmaker",
    "migrate",
]
