"""The catalogue database: jobs, the ledger, and (later) metadata, projects and the audit log."""

from dicomhaven.catalogue._engine import (
    current_revision,
    head_revision,
    make_engine,
    make_sessionmaker,
    migrate,
)
from dicomhaven.catalogue._models import (
    TERMINAL_STATUSES,
    Base,
    Job,
    JobState,
    LedgerEvent,
    LedgerObject,
    ObjectKind,
    ObjectStatus,
)

__all__ = [
    "TERMINAL_STATUSES",
    "Base",
    "Job",
    "JobState",
    "LedgerEvent",
    "LedgerObject",
    "ObjectKind",
    "ObjectStatus",
    "current_revision",
    "head_revision",
    "make_engine",
    "make_sessionmaker",
    "migrate",
]
