"""The ledger: every object received, its status, and the history of how it got there.

Invariant: every object received is, at every moment, in exactly one status — in flight
(``received``, under a job that is still running) or terminal (released, quarantined,
rejected, failed), each terminal status with a reason. :meth:`Ledger.verify` checks it,
together with the history of transitions and the files in the intake zone.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from dicomhaven.catalogue import (
    TERMINAL_STATUSES,
    Job,
    JobState,
    LedgerEvent,
    LedgerObject,
    ObjectKind,
    ObjectStatus,
    make_sessionmaker,
)
from dicomhaven.errors import LedgerError
from dicomhaven.intake import IntakeStore, Receipt, sha256_file
from dicomhaven.pipeline import Outcome

__all__ = ["ALLOWED_TRANSITIONS", "Ledger", "LedgerReport", "Pending", "ReceiptResult"]

_S = ObjectStatus
ALLOWED_TRANSITIONS: dict[ObjectStatus | None, frozenset[ObjectStatus]] = {
    None: frozenset({_S.RECEIVED}),
    _S.RECEIVED: frozenset({_S.RELEASED, _S.QUARANTINED, _S.REJECTED, _S.FAILED}),
    _S.FAILED: frozenset({_S.RECEIVED}),
    _S.QUARANTINED: frozenset({_S.RECEIVED, _S.RELEASED, _S.QUARANTINED, _S.REJECTED}),
    _S.RELEASED: frozenset({_S.QUARANTINED}),
    _S.REJECTED: frozenset(),
}
_MAX_PROBLEMS = 50


def _now() -> datetime:
    return datetime.now(UTC)


class ReceiptResult(StrEnum):
    NEW = "new"  # first receipt: now in the ledger
    DUPLICATE = "duplicate"  # identical object seen before: receipt counted, nothing else
    RESUMED = "resumed"  # seen before but left in flight or failed: processed again


@dataclass(frozen=True)
class Pending:
    """An object the pipeline should process next."""

    object_id: int
    object_key: str
    intake_path: str


@dataclass
class LedgerReport:
    """Counts by status and everything that breaks the invariant."""

    counts: dict[str, int]
    in_flight: int
    unaccounted: int
    problems: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def consistent(self) -> bool:
        return self.unaccounted == 0 and not self.problems

    def as_dict(self) -> dict[str, object]:
        return {
            "total": self.total,
            "counts": self.counts,
            "in_flight": self.in_flight,
            "unaccounted": self.unaccounted,
            "consistent": self.consistent,
            "problems": self.problems,
        }


def _pid_alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Ledger:
    """All reads and writes of ledger state go through here."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions: sessionmaker[Session] = make_sessionmaker(engine)

    # -- jobs -----------------------------------------------------------------------------
    def start_job(self, kind: str) -> int:
        with self._sessions.begin() as session:
            job = Job(kind=kind, state=JobState.RUNNING, pid=os.getpid(), started_at=_now())
            session.add(job)
            session.flush()
            return job.id

    def finish_job(
        self, job_id: int, summary: dict[str, object], *, interrupted: bool = False
    ) -> None:
        state = JobState.INTERRUPTED if interrupted else JobState.FINISHED
        with self._sessions.begin() as session:
            session.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(
                    state=state, finished_at=_now(), summary=json.dumps(summary, sort_keys=True)
                )
            )

    # -- receiving ------------------------------------------------------------------------
    def receive(
        self, job_id: int, source: str, receipts: Sequence[Receipt]
    ) -> tuple[list[ReceiptResult], list[Pending]]:
        """Enter a batch of receipts in one transaction.

        New objects become ``received`` (and at once ``rejected`` when intake refused them);
        re-receipts of a known object are counted. Returns one result per receipt and the
        objects the pipeline should now process.
        """
        results: list[ReceiptResult] = []
        pending: list[Pending] = []
        now = _now()
        with self._sessions.begin() as session:
            keys = {r.object_key for r in receipts}
            known = {
                obj.object_key: obj
                for obj in session.scalars(
                    select(LedgerObject).where(LedgerObject.object_key.in_(keys))
                )
            }
            stale_jobs = self._stale_job_ids(session)
            for receipt in receipts:
                obj = known.get(receipt.object_key)
                if obj is None:
                    obj = self._insert(session, job_id, source, receipt, now)
                    known[receipt.object_key] = obj
                    results.append(ReceiptResult.NEW)
                    if receipt.rejection is None:
                        pending.append(Pending(obj.id, obj.object_key, obj.intake_path))
                    continue
                obj.receipts += 1
                retry = obj.status == _S.FAILED or (
                    obj.status == _S.RECEIVED and obj.job_id in stale_jobs
                )
                if retry:
                    if obj.status == _S.FAILED:
                        self._transition(session, obj, _S.RECEIVED, "retry", job_id, "ingest", now)
                    obj.job_id = job_id
                    results.append(ReceiptResult.RESUMED)
                    pending.append(Pending(obj.id, obj.object_key, obj.intake_path))
                else:
                    results.append(ReceiptResult.DUPLICATE)
        return results, pending

    def _insert(
        self, session: Session, job_id: int, source: str, receipt: Receipt, now: datetime
    ) -> LedgerObject:
        obj = LedgerObject(
            object_key=receipt.object_key,
            kind=receipt.kind,
            status=_S.RECEIVED,
            reason="",
            sha256=receipt.sha256,
            size=receipt.size,
            intake_path=receipt.intake_path,
            source=source,
            sop_class_uid=receipt.sop_class_uid,
            transfer_syntax_uid=receipt.transfer_syntax_uid,
            modality=receipt.modality,
            receipts=1,
            job_id=job_id,
            received_at=now,
            updated_at=now,
        )
        session.add(obj)
        session.flush()
        session.add(
            LedgerEvent(
                object_id=obj.id,
                job_id=job_id,
                at=now,
                stage="ingest",
                from_status=None,
                to_status=_S.RECEIVED,
                reason=f"received from {source}",
            )
        )
        if receipt.rejection is not None:
            self._transition(session, obj, _S.REJECTED, receipt.rejection, job_id, "ingest", now)
        return obj

    def _transition(
        self,
        session: Session,
        obj: LedgerObject,
        to: ObjectStatus,
        reason: str,
        job_id: int,
        stage: str,
        now: datetime,
    ) -> None:
        current = ObjectStatus(obj.status)
        if to not in ALLOWED_TRANSITIONS[current]:
            raise LedgerError(
                f"object {obj.object_key[:12]}…: transition {current} → {to} is not allowed; "
                f"from {current} an object may go to: "
                f"{', '.join(sorted(ALLOWED_TRANSITIONS[current])) or 'nothing'}"
            )
        if to in TERMINAL_STATUSES and not reason:
            raise LedgerError(f"object {obj.object_key[:12]}…: status {to} needs a reason")
        session.add(
            LedgerEvent(
                object_id=obj.id,
                job_id=job_id,
                at=now,
                stage=stage,
                from_status=current,
                to_status=to,
                reason=reason,
            )
        )
        obj.status = to
        obj.reason = reason
        obj.updated_at = now

    def settle(self, job_id: int, outcomes: Iterable[tuple[int, Outcome]]) -> None:
        """Record the pipeline's decisions for a batch of objects in one transaction."""
        now = _now()
        with self._sessions.begin() as session:
            decided = dict(outcomes)
            objects = session.scalars(select(LedgerObject).where(LedgerObject.id.in_(decided)))
            for obj in objects:
                outcome = decided[obj.id]
                self._transition(
                    session, obj, outcome.status, outcome.reason, job_id, outcome.stage, now
                )

    def pending(self, batch: int = 500) -> Iterator[list[Pending]]:
        """Objects left in flight by a dead job or failed in a stage, in batches."""
        with self._sessions() as session:
            stale = self._stale_job_ids(session)
            query = (
                select(LedgerObject.id, LedgerObject.object_key, LedgerObject.intake_path)
                .where(
                    (LedgerObject.status == _S.FAILED)
                    | ((LedgerObject.status == _S.RECEIVED) & LedgerObject.job_id.in_(stale))
                )
                .order_by(LedgerObject.id)
            )
            rows = [Pending(*row) for row in session.execute(query)]
        for start in range(0, len(rows), batch):
            yield rows[start : start + batch]

    def reopen(self, job_id: int, items: Sequence[Pending]) -> None:
        """Put failed objects back in flight under ``job_id`` before they are processed again."""
        now = _now()
        with self._sessions.begin() as session:
            ids = [p.object_id for p in items]
            for obj in session.scalars(select(LedgerObject).where(LedgerObject.id.in_(ids))):
                if obj.status == _S.FAILED:
                    self._transition(session, obj, _S.RECEIVED, "retry", job_id, "process", now)
                obj.job_id = job_id

    # -- reading and checking ---------------------------------------------------------------
    def _stale_job_ids(self, session: Session) -> set[int]:
        """Jobs that say they are running but whose process is gone."""
        stale = set()
        for job in session.scalars(select(Job).where(Job.state == JobState.RUNNING)):
            if job.pid != os.getpid() and not _pid_alive(job.pid):
                stale.add(job.id)
        return stale

    def counts(self) -> dict[str, int]:
        with self._sessions() as session:
            rows = session.execute(
                select(LedgerObject.status, func.count()).group_by(LedgerObject.status)
            )
            found = {status: count for status, count in rows}
        return {s.value: found.get(s.value, 0) for s in ObjectStatus}

    def rejections(self, limit: int = 20) -> list[tuple[str, int]]:
        """The most common rejection and quarantine reasons with their counts."""
        with self._sessions() as session:
            rows = session.execute(
                select(LedgerObject.status, LedgerObject.reason, func.count())
                .where(LedgerObject.status != _S.RELEASED)
                .group_by(LedgerObject.status, LedgerObject.reason)
                .order_by(func.count().desc())
                .limit(limit)
            )
            return [(f"{status}: {reason}", count) for status, reason, count in rows]

    def verify(self, intake_root: Path, *, check_content: bool = False) -> LedgerReport:
        """Check the invariant; ``check_content`` also re-hashes every intake file."""
        problems: list[str] = []
        unaccounted = 0
        in_flight = 0
        with self._sessions() as session:
            running = {
                job.id: job
                for job in session.scalars(select(Job).where(Job.state == JobState.RUNNING))
            }
            stale = self._stale_job_ids(session)
            counts: Counter[str] = Counter()
            stored = set(IntakeStore(intake_root).iter_files())
            referenced: set[str] = set()
            last_event: dict[int, LedgerEvent] = {}
            chain_broken: set[int] = set()
            for event in session.scalars(select(LedgerEvent).order_by(LedgerEvent.id)).yield_per(
                5000
            ):
                previous = last_event.get(event.object_id)
                expected_from = previous.to_status if previous is not None else None
                if (
                    event.from_status != expected_from
                    or ObjectStatus(event.to_status)
                    not in ALLOWED_TRANSITIONS[
                        ObjectStatus(event.from_status) if event.from_status else None
                    ]
                ):
                    chain_broken.add(event.object_id)
                last_event[event.object_id] = event
            for obj in session.scalars(select(LedgerObject).order_by(LedgerObject.id)).yield_per(
                5000
            ):
                counts[obj.status] += 1
                name = f"object {obj.object_key[:16]}"
                status = ObjectStatus(obj.status)
                if status is _S.RECEIVED:
                    if obj.job_id in running and obj.job_id not in stale:
                        in_flight += 1
                    else:
                        unaccounted += 1
                        problems.append(
                            f"{name} is still 'received' but its job {obj.job_id} is not "
                            "running; run 'dicomhaven process' to finish it"
                        )
                elif not obj.reason:
                    problems.append(f"{name} is {status} without a reason")
                last = last_event.get(obj.id)
                if last is None or last.to_status != obj.status:
                    problems.append(f"{name}: status {status} does not match its last event")
                if obj.id in chain_broken:
                    problems.append(f"{name}: its event history has a broken transition")
                referenced.add(obj.intake_path)
                if obj.intake_path not in stored:
                    problems.append(f"{name}: intake file {obj.intake_path} is missing")
                elif check_content and sha256_file(intake_root / obj.intake_path) != obj.sha256:
                    problems.append(f"{name}: intake file content does not match its hash")
                if obj.kind == ObjectKind.BLOB and status is not _S.REJECTED:
                    problems.append(f"{name}: unreadable bytes must be rejected, not {status}")
            orphans = sorted(stored - referenced)
            if set(running) - stale:
                in_flight += len(orphans)  # written by a running job, not yet recorded
            else:
                unaccounted += len(orphans)
                problems.extend(
                    f"intake file {path} is in no ledger entry; re-import it to account for it"
                    for path in orphans
                )
        report = LedgerReport(
            counts={s.value: counts.get(s.value, 0) for s in ObjectStatus},
            in_flight=in_flight,
            unaccounted=unaccounted,
            problems=problems[:_MAX_PROBLEMS],
        )
        if len(problems) > _MAX_PROBLEMS:
            report.problems.append(f"… and {len(problems) - _MAX_PROBLEMS} more problems")
        return report
