"""SQLAlchemy models of pull jobs: what a PACS promised, and how far its retrieval got.

No column holds an identifier. Series and SOP Instances are named by keyed hashes (the
same keyed hash as the ledger's object keys, so a promised instance is checked against the
ledger by key); criteria that identify patients (patient IDs, accession numbers) are kept
only as a keyed fingerprint that a resumed run must match.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from dicomhaven.catalogue._models import Base

__all__ = ["ItemState", "PullInstance", "PullItem", "PullJob", "PullState"]


class PullState(StrEnum):
    """Where a pull job stands."""

    PLANNING = "planning"  # querying the source for what it holds
    MOVING = "moving"  # retrieving work items
    COMPLETE = "complete"  # every promised instance is in the ledger
    FAILED = "failed"  # every item was tried; some stayed short (see the items)


class ItemState(StrEnum):
    """Where one work item (a series) stands. ``moving`` left by a killed process counts as
    ``pending`` when the job resumes."""

    PENDING = "pending"
    MOVING = "moving"
    DONE = "done"
    FAILED = "failed"


class PullJob(Base):
    """One pull: a source, criteria, and the work items planned from them."""

    __tablename__ = "pull_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # how: move, get, dicomweb
    source: Mapped[str] = mapped_column(String(255))  # AE@host:port or a base URL
    spec: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)  # collection
    criteria: Mapped[str] = mapped_column(Text)  # JSON, non-identifying parts and list sizes
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)  # keyed hash of criteria
    state: Mapped[str] = mapped_column(String(16))
    planned: Mapped[bool] = mapped_column(default=False)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the process running it
    runs: Mapped[int] = mapped_column(Integer, default=0)
    studies: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    summary: Mapped[str] = mapped_column(Text, default="{}")


class PullItem(Base):
    """One work item of a pull: a series, its promised instance count and its progress."""

    __tablename__ = "pull_items"
    __table_args__ = (UniqueConstraint("job_id", "series_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("pull_jobs.id"), index=True)
    study_key: Mapped[str] = mapped_column(String(80), index=True)  # keyed hash of the Study UID
    series_key: Mapped[str] = mapped_column(String(80))  # keyed hash of the Series UID
    modality: Mapped[str | None] = mapped_column(String(16), nullable=True)
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    expected: Mapped[int] = mapped_column(Integer, default=0)
    received: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PullInstance(Base):
    """A SOP Instance a work item promised, by the object key the ledger will know it by."""

    __tablename__ = "pull_instances"
    __table_args__ = (
        UniqueConstraint("item_id", "object_key"),
        Index("ix_pull_instances_object_key", "object_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("pull_items.id"))
    object_key: Mapped[str] = mapped_column(String(80))
