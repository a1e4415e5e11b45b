"""The consent register: each patient's consent decisions, by master pseudonym.

Decisions are appended, never edited; the newest is in force. A patient who refused or
withdrew is *excluded*: their new images are quarantined with reason "consent withdrawn"
and they never enter an extract. Patients with no decision follow the site's default
(included), as under the national data opt-out, which names only those who opted out.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from dicomhaven.catalogue import Consent, ConsentStatus, make_sessionmaker

__all__ = ["EXCLUDING", "ConsentRegister"]

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
