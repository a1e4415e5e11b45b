"""SQLAlchemy models of the catalogue database: jobs and the ledger.

No column holds a patient identifier: objects are named by a keyed hash of their SOP
Instance UID (or of their content when they are not readable DICOM), and source file names
are never stored.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "AuditEntry",
    "Base",
    "ClinicalRecord",
    "Consent",
    "ConsentStatus",
    "Job",
    "JobState",
    "LedgerEvent",
    "LedgerObject",
    "ObjectKind",
    "ObjectStatus",
    "SeriesMember",
    "SeriesRecord",
    "User",
]


class Base(DeclarativeBase):
    pass


class ObjectStatus(StrEnum):
    """Where an object stands. Every object is in exactly one status at every moment."""

    RECEIVED = "received"  # in flight: accepted into intake, no decision yet
    RELEASED = "released"  # de-identified, scanned clean, in the store
    QUARANTINED = "quarantined"  # held, with a reason
    REJECTED = "rejected"  # not processable (malformed, conflicting), with a reason
    FAILED = "failed"  # a stage failed; retryable, with a reason


TERMINAL_STATUSES = frozenset(
    {ObjectStatus.RELEASED, ObjectStatus.QUARANTINED, ObjectStatus.REJECTED, ObjectStatus.FAILED}
)


class ObjectKind(StrEnum):
    DICOM = "dicom"  # a readable DICOM object, keyed by its SOP Instance UID
    BLOB = "blob"  # bytes that are not readable DICOM, keyed by their content


class JobState(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    INTERRUPTED = "interrupted"


class Job(Base):
    """One run of work (an import, later a pull or a release) that objects are recorded under."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default=JobState.RUNNING.value)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    summary: Mapped[str] = mapped_column(Text, default="{}")


class LedgerObject(Base):
    """An object received by the site, with its current status."""

    __tablename__ = "ledger_objects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    object_key: Mapped[str] = mapped_column(String(80), unique=True)
    kind: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    intake_path: Mapped[str] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(32))
    sop_class_uid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    transfer_syntax_uid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    modality: Mapped[str | None] = mapped_column(String(16), nullable=True)
    pseudonym: Mapped[str | None] = mapped_column(String(16), nullable=True, index=True)
    profile_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    receipts: Mapped[int] = mapped_column(Integer, default=1)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    events: Mapped[list[LedgerEvent]] = relationship(
        back_populates="object", order_by="LedgerEvent.id"
    )


class LedgerEvent(Base):
    """One status transition of an object; append-only, so the history can be checked."""

    __tablename__ = "ledger_events"
    __table_args__ = (Index("ix_ledger_events_object", "object_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    object_id: Mapped[int] = mapped_column(ForeignKey("ledger_objects.id"))
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    stage: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")

    object: Mapped[LedgerObject] = relationship(back_populates="events")


class SeriesRecord(Base):
    """What is known of one series beside its objects: how many instances its source said it
    holds (a pull's series-level C-FIND or QIDO-RS answer), and how its held head slices were
    decided (``dicomhaven.pixels._series_complete``). Named by the keyed hash of its Series
    Instance UID, the same as a pull's work items."""

    __tablename__ = "series_records"

    series_key: Mapped[str] = mapped_column(String(80), primary_key=True)
    expected: Mapped[int | None] = mapped_column(Integer, nullable=True)
    decision: Mapped[str | None] = mapped_column(String(16), nullable=True)  # a FaceDecision
    reason: Mapped[str] = mapped_column(Text, default="")  # words and counts, never a value
    slices: Mapped[int] = mapped_column(Integer, default=0)  # how many the decision took
    render: Mapped[str | None] = mapped_column(String(255), nullable=True)  # in quarantine/
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SeriesMember(Base):
    """The series of a held head slice, read once from its header as received, so that
    grouping held slices by series needs no file read."""

    __tablename__ = "series_members"

    object_id: Mapped[int] = mapped_column(ForeignKey("ledger_objects.id"), primary_key=True)
    series_key: Mapped[str] = mapped_column(String(80), index=True)


class ConsentStatus(StrEnum):
    CONSENTED = "consented"
    REFUSED = "refused"
    WITHDRAWN = "withdrawn"


class Consent(Base):
    """One consent decision of a patient, by master pseudonym; the newest one is in force."""

    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pseudonym: Mapped[str] = mapped_column(String(16), index=True)
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class User(Base):
    """A person who may use the site, with one role. Only the token's HMAC-SHA256 is stored."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(32))
    token_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AuditEntry(Base):
    """One audited action. Each entry carries the hash of the one before it, so an edited,
    inserted or removed entry breaks the chain (``dicomhaven audit verify``)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(16))
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64))


class ClinicalRecord(Base):
    """One row of linked clinical data, under the master pseudonym only; dates shifted."""

    __tablename__ = "clinical_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pseudonym: Mapped[str] = mapped_column(String(16), index=True)
    data: Mapped[str] = mapped_column(Text)  # JSON object: vocabulary field → value
    source: Mapped[str] = mapped_column(String(64))  # SHA-256 of the imported file
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
