"""Tables of the vault database: kept apart from the catalogue, identifiers sealed.

Nothing here is readable without the vault key: identifier values and patient details are
AES-GCM sealed, and lookups use keyed HMAC tokens. Only the pseudonym is in the clear,
and it is random.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import DateTime, ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from dicomhaven.catalogue import Schema

__all__ = [
    "VAULT",
    "VaultBase",
    "VaultDevice",
    "VaultIdentifier",
    "VaultMeta",
    "VaultPatient",
    "VaultProject",
]


class VaultBase(DeclarativeBase):
    pass


class VaultPatient(VaultBase):
    """A patient known to the site, by master pseudonym."""

    __tablename__ = "vault_patients"

    id: Mapped[int] = mapped_column(primary_key=True)
    pseudonym: Mapped[str] = mapped_column(String(16), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    details: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # sealed JSON


class VaultIdentifier(VaultBase):
    """One identifier of a patient (NHS, CHI or a local hospital number), sealed."""

    __tablename__ = "vault_identifiers"
    __table_args__ = (UniqueConstraint("scheme", "issuer", "lookup"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("vault_patients.id"), index=True)
    scheme: Mapped[str] = mapped_column(String(16))
    issuer: Mapped[str] = mapped_column(String(64))
    lookup: Mapped[str] = mapped_column(String(64))
    sealed: Mapped[bytes] = mapped_column(LargeBinary)


class VaultProject(VaultBase):
    """A research project's secret, from which its pseudonyms, UIDs and date offsets derive."""

    __tablename__ = "vault_projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    sealed_secret: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class VaultDevice(VaultBase):
    """An imaging device's identifying attributes (serial number, station name, ...), sealed.
    The catalogue knows the device only by its id, a keyed hash of the same attributes."""

    __tablename__ = "vault_devices"

    device_id: Mapped[str] = mapped_column(String(24), primary_key=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)  # sealed JSON
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class VaultMeta(VaultBase):
    """Facts about the vault itself, such as a sealed check value that proves the key."""

    __tablename__ = "vault_meta"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)


VAULT = Schema(Path(__file__).with_name("vault_migrations"), VaultBase.metadata, "vault_version")
