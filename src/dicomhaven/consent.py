"""The consent register: each patient's consent decisions, by master pseudonym.

Decisions are appended, never edited; the newest is in force. A patient who refused or
withdrew is *excluded*: their new images are quarantined with reason "consent withdrawn"
and they never enter an extract. Patients with no decision follow the site's default
(included), as under the national data opt-out, which names only those who opted out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from dicomhaven.catalogue import Consent, ConsentStatus, make_engine, make_sessionmaker
from dicomhaven.errors import InvalidIdentifier

if TYPE_CHECKING:
    from dicomhaven.site import Site

__all__ = ["EXCLUDING", "PURGE_REASON", "ConsentRegister", "OptOutResult", "import_optout", "purge"]

PURGE_REASON = "consent withdrawn: de-identified copies purged"

#: Decisions that keep a patient's data out of the pipeline and of every extract.
EXCLUDING = frozenset({ConsentStatus.REFUSED, ConsentStatus.WITHDRAWN})


class ConsentRegister:
    """Reads and appends consent decisions in the catalogue."""

    def __init__(self, engine: Engine) -> None:
        self._sessions: sessionmaker[Session] = make_sessionmaker(engine)

    def record(
        self, pseudonyms: Iterable[str], status: ConsentStatus, *, source: str, actor: str
    ) -> int:
        """Append one decision for each patient; returns how many were recorded."""
        now = datetime.now(UTC)
        rows = [
            Consent(pseudonym=p, status=status.value, source=source, actor=actor, recorded_at=now)
            for p in dict.fromkeys(pseudonyms)
        ]
        with self._sessions.begin() as session:
            session.add_all(rows)
        return len(rows)

    def status_of(self, pseudonym: str) -> ConsentStatus | None:
        with self._sessions() as session:
            status = session.scalars(
                select(Consent.status)
                .where(Consent.pseudonym == pseudonym)
                .order_by(Consent.id.desc())
                .limit(1)
            ).first()
        return ConsentStatus(status) if status is not None else None

    def excluded(self, pseudonym: str) -> bool:
        return self.status_of(pseudonym) in EXCLUDING

    def counts(self) -> dict[str, int]:
        """Patients by the decision in force."""
        with self._sessions() as session:
            newest = select(func.max(Consent.id).label("id")).group_by(Consent.pseudonym).subquery()
            rows = session.execute(
                select(Consent.status, func.count())
                .join(newest, Consent.id == newest.c.id)
                .group_by(Consent.status)
            )
            found = {status: count for status, count in rows}
        return {s.value: found.get(s.value, 0) for s in ConsentStatus}


@dataclass
class OptOutResult:
    recorded: int = 0
    invalid: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)

    def as_dict(self) -> dict[str, object]:
        return {
            "recorded": self.recorded,
            "invalid": [{"line": n, "reason": r} for n, r in self.invalid],
        }


def import_optout(site: Site, path: Path, *, actor: str) -> OptOutResult:
    """Record every NHS number in ``path`` (one a line) as withdrawn, through the vault.

    Invalid lines are reported by number, never by content, and skipped.
    """
    from dicomhaven.identity import PatientIdentifier, Scheme

    vault = site.open_vault()
    result = OptOutResult()
    pseudonyms: list[str] = []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            try:
                identifier = PatientIdentifier(Scheme.NHS, text)
            except InvalidIdentifier as exc:
                result.invalid.append((number, str(exc)))
                continue
            pseudonyms.append(vault.resolve([identifier]))
    register = ConsentRegister(make_engine(site.database_url))
    result.recorded = register.record(
        pseudonyms, ConsentStatus.WITHDRAWN, source="national opt-out", actor=actor
    )
    return result


def purge(site: Site, pseudonym: str) -> int:
    """Remove a withdrawn patient's de-identified copies and hold every object of theirs.

    De-identified copies live under ``store/<pseudonym>/`` (released) and
    ``quarantine/<pseudonym>/`` (held); both folders are removed. Each of the patient's released or quarantined objects gets a ledger
    event (quarantined, :data:`PURGE_REASON`). Originals stay in intake until its retention
    policy removes them, so the ledger still accounts for every object. Refuses unless the
    patient's consent decision in force excludes them. Returns the number of objects held.
    """
    import shutil

    from dicomhaven.catalogue import ObjectStatus
    from dicomhaven.errors import DicomHavenError
    from dicomhaven.ledger import Ledger

    engine = make_engine(site.database_url)
    if not ConsentRegister(engine).excluded(pseudonym):
        raise DicomHavenError(
            "this patient has not refused or withdrawn consent; record the withdrawal first "
            "('dicomhaven consent record --status withdrawn')"
        )
    for zone in ("store", "quarantine"):  # released copies, and copies held for release
        copies = site.zone(zone) / pseudonym
        if copies.exists():
            shutil.rmtree(copies)
    ledger = Ledger(engine)
    held = [
        object_id
        for object_id, status in ledger.objects_of(pseudonym)
        if status in (ObjectStatus.RELEASED, ObjectStatus.QUARANTINED)
    ]
    if held:
        job = ledger.start_job("purge")
        ledger.hold(job, held, PURGE_REASON, "consent")
        ledger.finish_job(job, {"held": len(held)})
    return len(held)
