"""The audit log: append-only and hash-chained.

Each entry's hash covers its fields and the previous entry's hash, so editing, inserting or
removing an entry anywhere but at the very end breaks the chain, which
:meth:`AuditLog.verify` finds. ``prev_hash`` is unique, so two writers racing to append
cannot fork the chain: the loser retries on the new end.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from dicomhaven.catalogue import AuditEntry, make_sessionmaker

__all__ = ["GENESIS", "AuditLog", "AuditProblem"]

GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditProblem:
    entry_id: int
    problem: str


def _digest(prev_hash: str, fields: dict[str, str]) -> str:
    body = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def _fields(entry: AuditEntry) -> dict[str, str]:
    at = entry.at if entry.at.tzinfo else entry.at.replace(tzinfo=UTC)
    return {
        "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": entry.actor,
        "role": entry.role,
        "action": entry.action,
        "target": entry.target,
        "reason": entry.reason,
        "outcome": entry.outcome,
    }


class AuditLog:
    """Appends and checks audit entries in the catalogue."""

    def __init__(self, engine: Engine) -> None:
        self._sessions: sessionmaker[Session] = make_sessionmaker(engine)

    def append(
        self, *, actor: str, role: str, action: str, target: str, reason: str, outcome: str
    ) -> int:
        for _ in range(5):
            try:
                return self._append_once(actor, role, action, target, reason, outcome)
            except IntegrityError:
                continue  # another writer took this end of the chain; append after it
        raise RuntimeError("could not append to the audit log after 5 attempts")

    def _append_once(
        self, actor: str, role: str, action: str, target: str, reason: str, outcome: str
    ) -> int:
        with self._sessions.begin() as session:
            last = session.scalars(
                select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1)
            ).first()
            prev_hash = last.hash if last is not None else GENESIS
            entry = AuditEntry(
                at=datetime.now(UTC),
                actor=actor,
                role=role,
                action=action,
                target=target,
                reason=reason,
                outcome=outcome,
                prev_hash=prev_hash,
                hash="",
            )
            entry.hash = _digest(prev_hash, _fields(entry))
            session.add(entry)
            session.flush()
            return entry.id

    def entries(self, limit: int = 100) -> list[AuditEntry]:
        with self._sessions() as session:
            rows = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit))
            return list(rows)[::-1]

    def verify(self) -> list[AuditProblem]:
        """Every break in the chain; an empty list means the log is intact."""
        problems: list[AuditProblem] = []
        expected_prev = GENESIS
        with self._sessions() as session:
            for entry in session.scalars(select(AuditEntry).order_by(AuditEntry.id)).yield_per(
                2000
            ):
                if entry.prev_hash != expected_prev:
                    problems.append(
                        AuditProblem(
                            entry.id,
                            "does not follow the entry before it (one was removed or inserted)",
                        )
                    )
                if _digest(entry.prev_hash, _fields(entry)) != entry.hash:
                    problems.append(
                        AuditProblem(entry.id, "its content was changed after it was written")
                    )
                expected_prev = entry.hash
        return problems
