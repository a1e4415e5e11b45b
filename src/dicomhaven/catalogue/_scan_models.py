"""Catalogue tables of the scanner and the release gate: devices and their trust (by kind of
object, too), findings.

Neither holds a value from a file: devices are named by a keyed hash (their serial number
and station name are sealed in the vault), and a finding keeps its value's shape only.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from dicomhaven.catalogue._models import Base

__all__ = ["Device", "DeviceState", "GateHold", "KindRevocation", "ScanFinding"]


class DeviceState(StrEnum):
    UNTRUSTED = "untrusted"  # new: its outputs are held until a data manager trusts it
    TRUSTED = "trusted"  # reviewed: its outputs are released when their scans are clean
    REVOKED = "revoked"  # a data manager stopped trusting it: held again until trusted again


class Device(Base):
    """An imaging device, as the release gate knows it."""

    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    manufacturer: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(64))
    software: Mapped[str] = mapped_column(String(64))
    modality: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    changed_by: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)


class KindRevocation(Base):
    """One kind of object (``scan.object_kind``) of a trusted device whose trust was revoked:
    a scan failed on one of them, or a data manager revoked it. The device's other kinds
    stay trusted; trusting the kind (or the whole device) again deletes the row."""

    __tablename__ = "device_kind_revocations"

    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(128), primary_key=True)
    group_id: Mapped[str] = mapped_column(String(16))  # the review group that caused it, or ""
    cause: Mapped[str] = mapped_column(Text)  # rule and attribute, or the manager's reason
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    by: Mapped[str] = mapped_column(String(64))


class ScanFinding(Base):
    """One finding of the scanner on one object's output (its latest scan)."""

    __tablename__ = "scan_findings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    object_id: Mapped[int] = mapped_column(ForeignKey("ledger_objects.id"), index=True)
    device_id: Mapped[str] = mapped_column(String(24))
    rule: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(8))
    detector: Mapped[str] = mapped_column(String(32))
    tag_path: Mapped[str] = mapped_column(String(255))
    path_pattern: Mapped[str] = mapped_column(String(255))
    keyword: Mapped[str] = mapped_column(String(64))
    vr: Mapped[str] = mapped_column(String(4))
    shape: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class GateHold(Base):
    """An output the release gate holds in quarantine, ready to be released when its device
    is trusted and its scan is clean: ``dicomhaven release`` reads these."""

    __tablename__ = "gate_holds"

    object_id: Mapped[int] = mapped_column(ForeignKey("ledger_objects.id"), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(24), index=True)
    #: The object's kind (``scan.object_kind``); "" for copies held before kinds were kept.
    kind: Mapped[str] = mapped_column(String(128), server_default=text("''"))
    path: Mapped[str] = mapped_column(String(255))  # under quarantine/ and store/
    release_reason: Mapped[str] = mapped_column(Text)  # the reason given when released
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
