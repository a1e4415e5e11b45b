"""The pseudonym vault: patient identifiers ↔ master pseudonym, and project secrets.

Only the identity service (this module) reads the vault. It lives in its own database
(``vault/vault.db`` by default, or the ``vault_url`` setting), apart from the catalogue,
and its key comes from a :class:`KeyProvider`, apart from both.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import Engine, Insert, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from dicomhaven.catalogue import make_sessionmaker, migrate
from dicomhaven.errors import DicomHavenError, InvalidIdentifier
from dicomhaven.identity._crypto import VaultCipher, VaultKeyError, new_pseudonym
from dicomhaven.identity._identifiers import normalise_chi_number, normalise_nhs_number
from dicomhaven.identity._vault_models import (
    VAULT,
    VaultDevice,
    VaultIdentifier,
    VaultMeta,
    VaultPatient,
    VaultProject,
)

__all__ = ["IdentityConflict", "PatientIdentifier", "Scheme", "Vault"]

_KEY_CHECK = b"dicomhaven vault key check"
_PROJECT_SECRET_BYTES = 32


class IdentityConflict(DicomHavenError):
    """Identifiers of one object belong to different patients in the vault."""


class Scheme(StrEnum):
    NHS = "nhs"  # NHS number (England, Wales, Isle of Man)
    CHI = "chi"  # Community Health Index number (Scotland)
    LOCAL = "local"  # a hospital's own number; ``issuer`` names the hospital


@dataclass(frozen=True)
class PatientIdentifier:
    """One identifier of a patient, normalised on creation (invalid ones raise)."""

    scheme: Scheme
    value: str
    issuer: str = ""

    def __post_init__(self) -> None:
        if self.scheme is Scheme.NHS:
            object.__setattr__(self, "value", normalise_nhs_number(self.value))
        elif self.scheme is Scheme.CHI:
            object.__setattr__(self, "value", normalise_chi_number(self.value))
        else:
            value = self.value.strip().upper()
            if not value:
                raise InvalidIdentifier("a local hospital number must not be empty")
            if not self.issuer.strip():
                raise InvalidIdentifier(
                    "a local hospital number needs its issuer (the hospital that gave it)"
                )
            object.__setattr__(self, "value", value)
            object.__setattr__(self, "issuer", self.issuer.strip().upper())
        if self.scheme is not Scheme.LOCAL and self.issuer:
            object.__setattr__(self, "issuer", "")

    @property
    def field(self) -> str:
        return f"{self.scheme.value}:{self.issuer}"


def _now() -> datetime:
    return datetime.now(UTC)


def _insert_if_absent(engine: Engine, table: type[VaultProject] | type[VaultMeta]) -> Insert:
    """``INSERT … ON CONFLICT DO NOTHING``: workers that create the same row at the same
    moment all succeed, and each then reads the one row that won (SQLite and PostgreSQL)."""
    if engine.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if engine.dialect.name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    raise DicomHavenError(f"the vault supports SQLite and PostgreSQL, not {engine.dialect.name}")


class Vault:
    """Identity lookups and their secrets; every method is one transaction."""

    def __init__(self, engine: Engine, cipher: VaultCipher) -> None:
        self.engine = engine
        self.cipher = cipher
        self._sessions: sessionmaker[Session] = make_sessionmaker(engine)

    @classmethod
    def create_or_open(cls, engine: Engine, master_key: bytes) -> Vault:
        """Open a vault (creating its schema if new) and prove the key opens it."""
        migrate(engine, VAULT)
        vault = cls(engine, VaultCipher.from_master(master_key))
        vault._check_key()
        return vault

    def _check_key(self) -> None:
        with self._sessions.begin() as session:
            check = session.get(VaultMeta, "key_check")
            if check is None:  # a new vault: whoever writes the check value first wins
                session.execute(
                    _insert_if_absent(self.engine, VaultMeta).values(
                        name="key_check", value=self.cipher.seal("meta", _KEY_CHECK)
                    )
                )
                check = session.scalars(
                    select(VaultMeta).where(VaultMeta.name == "key_check")
                ).one()
            if self.cipher.open("meta", check.value) != _KEY_CHECK:
                raise VaultKeyError("the vault key check value is wrong")

    # -- patients ---------------------------------------------------------------------------
    def _find(self, session: Session, identifier: PatientIdentifier) -> VaultIdentifier | None:
        lookup = self.cipher.lookup(identifier.field, identifier.value)
        return session.scalars(
            select(VaultIdentifier).where(
                VaultIdentifier.scheme == identifier.scheme.value,
                VaultIdentifier.issuer == identifier.issuer,
                VaultIdentifier.lookup == lookup,
            )
        ).first()

    def find(self, identifier: PatientIdentifier) -> str | None:
        """The master pseudonym of a known identifier, or None."""
        with self._sessions() as session:
            row = self._find(session, identifier)
            if row is None:
                return None
            patient = session.get(VaultPatient, row.patient_id)
            return patient.pseudonym if patient is not None else None

    def resolve(self, identifiers: Sequence[PatientIdentifier]) -> str:
        """The master pseudonym for a patient known by ``identifiers``, creating one if new.

        Identifiers not yet in the vault are added to the patient, so a patient first seen
        by hospital number and later by NHS number keeps one pseudonym. Raises
        :class:`IdentityConflict` if the identifiers point at different patients.
        """
        if not identifiers:
            raise InvalidIdentifier("no patient identifier to resolve")
        for attempt in range(3):
            try:
                return self._resolve_once(identifiers)
            except IntegrityError:
                # Another worker added the same identifier at the same moment: read it back.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _resolve_once(self, identifiers: Sequence[PatientIdentifier]) -> str:
        with self._sessions.begin() as session:
            found = {i: self._find(session, i) for i in identifiers}
            patient_ids = {row.patient_id for row in found.values() if row is not None}
            if len(patient_ids) > 1:
                raise IdentityConflict(
                    "the identifiers of this object belong to different patients in the vault; "
                    "a data manager must reconcile them"
                )
            if patient_ids:
                patient = session.get(VaultPatient, patient_ids.pop())
                assert patient is not None
            else:
                patient = VaultPatient(pseudonym=self._unused_pseudonym(session), created_at=_now())
                session.add(patient)
                session.flush()
            for identifier, row in found.items():
                if row is None:
                    session.add(
                        VaultIdentifier(
                            patient_id=patient.id,
                            scheme=identifier.scheme.value,
                            issuer=identifier.issuer,
                            lookup=self.cipher.lookup(identifier.field, identifier.value),
                            sealed=self.cipher.seal(identifier.field, identifier.value.encode()),
                        )
                    )
            return patient.pseudonym

    def _unused_pseudonym(self, session: Session) -> str:
        while True:
            candidate = new_pseudonym()
            if (
                session.scalars(
                    select(VaultPatient.id).where(VaultPatient.pseudonym == candidate)
                ).first()
                is None
            ):
                return candidate

    def identifiers_of(self, pseudonym: str) -> list[PatientIdentifier]:
        """Re-identification: the identifiers behind a pseudonym. Callers must authorise
        and audit first (see ``dicomhaven.access``); the vault itself does neither."""
        with self._sessions() as session:
            patient = session.scalars(
                select(VaultPatient).where(VaultPatient.pseudonym == pseudonym)
            ).first()
            if patient is None:
                return []
            rows = session.scalars(
                select(VaultIdentifier).where(VaultIdentifier.patient_id == patient.id)
            )
            return [
                PatientIdentifier(
                    Scheme(row.scheme),
                    self.cipher.open(f"{row.scheme}:{row.issuer}", row.sealed).decode(),
                    row.issuer,
                )
                for row in rows
            ]

    def remember_details(self, pseudonym: str, details: dict[str, str]) -> None:
        """Keep what headers said about a patient (name, birth date, ...) sealed, for the
        leak check that looks for a patient's own identifiers in outputs."""
        # Compare and swap: two workers adding details of one patient at once must not lose
        # either's (a lost name would be missed by the leak check), so the write only lands
        # on the value it was computed from, and is recomputed when another worker won.
        while True:
            with self._sessions.begin() as session:
                patient_id, old = session.execute(
                    select(VaultPatient.id, VaultPatient.details).where(
                        VaultPatient.pseudonym == pseudonym
                    )
                ).one()
                known: dict[str, list[str]] = {}
                if old is not None:
                    known = json.loads(self.cipher.open("details", old))
                changed = False
                for name, value in details.items():
                    if value and value not in known.setdefault(name, []):
                        known[name].append(value)
                        changed = True
                if not changed:
                    return
                unchanged = (
                    VaultPatient.details.is_(None) if old is None else VaultPatient.details == old
                )
                written = session.execute(
                    update(VaultPatient)
                    .where(VaultPatient.id == patient_id, unchanged)
                    .values(details=self.cipher.seal("details", json.dumps(known).encode()))
                    .execution_options(synchronize_session=False)
                )
                if written.rowcount == 1:  # type: ignore[attr-defined]
                    return

    def details_of(self, pseudonym: str) -> dict[str, list[str]]:
        with self._sessions() as session:
            sealed = session.scalars(
                select(VaultPatient.details).where(VaultPatient.pseudonym == pseudonym)
            ).first()
        if sealed is None:
            return {}
        result: dict[str, list[str]] = json.loads(self.cipher.open("details", sealed))
        return result

    def patient_count(self) -> int:
        with self._sessions() as session:
            return len(session.scalars(select(VaultPatient.id)).all())

    # -- projects ---------------------------------------------------------------------------
    def project_secret(self, project: str) -> bytes:
        """The secret of a project, created on first use.

        Workers of one import may all meet a new project at once: each offers a secret with
        insert-if-absent and then reads back the one that was kept, so none fails and all
        derive the same pseudonyms. (``init`` creates the site's own project up front.)
        """
        field = f"project:{project}"
        with self._sessions.begin() as session:
            query = select(VaultProject).where(VaultProject.name == project)
            row = session.scalars(query).first()
            if row is None:
                offered = secrets.token_bytes(_PROJECT_SECRET_BYTES)
                session.execute(
                    _insert_if_absent(self.engine, VaultProject).values(
                        name=project,
                        sealed_secret=self.cipher.seal(field, offered),
                        created_at=_now(),
                    )
                )
                row = session.scalars(query.execution_options(populate_existing=True)).one()
            return self.cipher.open(field, row.sealed_secret)

    # -- devices ----------------------------------------------------------------------------
    def remember_device(self, device_id: str, attributes: dict[str, str]) -> None:
        """Keep a device's identifying attributes, sealed, the first time it is seen."""
        try:
            with self._sessions.begin() as session:
                if session.get(VaultDevice, device_id) is None:
                    sealed = self.cipher.seal(
                        "device", json.dumps(attributes, sort_keys=True).encode()
                    )
                    session.add(VaultDevice(device_id=device_id, sealed=sealed, created_at=_now()))
        except IntegrityError:
            pass  # another worker kept it first: the same attributes

    def device_attributes(self, device_id: str) -> dict[str, str]:
        """A device's attributes, for the data manager who decides whether to trust it."""
        with self._sessions() as session:
            row = session.get(VaultDevice, device_id)
            if row is None:
                return {}
            loaded: dict[str, str] = json.loads(self.cipher.open("device", row.sealed))
            return loaded

    # -- key rotation -----------------------------------------------------------------------
    def rotate_key(self, new_master_key: bytes) -> int:
        """Re-seal every value and re-make every lookup token under a new key, in one
        transaction. Pseudonyms do not change. Returns the number of values re-sealed."""
        new = VaultCipher.from_master(new_master_key)
        count = 0
        with self._sessions.begin() as session:
            for row in session.scalars(select(VaultIdentifier)):
                field = f"{row.scheme}:{row.issuer}"
                value = self.cipher.open(field, row.sealed)
                row.sealed = new.seal(field, value)
                row.lookup = new.lookup(field, value.decode())
                count += 1
            for patient in session.scalars(
                select(VaultPatient).where(VaultPatient.details.is_not(None))
            ):
                assert patient.details is not None
                patient.details = new.seal("details", self.cipher.open("details", patient.details))
                count += 1
            for device in session.scalars(select(VaultDevice)):
                device.sealed = new.seal("device", self.cipher.open("device", device.sealed))
                count += 1
            for project in session.scalars(select(VaultProject)):
                field = f"project:{project.name}"
                project.sealed_secret = new.seal(
                    field, self.cipher.open(field, project.sealed_secret)
                )
                count += 1
            session.execute(delete(VaultMeta).where(VaultMeta.name == "key_check"))
            session.add(VaultMeta(name="key_check", value=new.seal("meta", _KEY_CHECK)))
        self.cipher = new
        return count
