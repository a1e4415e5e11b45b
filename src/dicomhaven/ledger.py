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

from sqlalchemy import Engine, func, insert, select, update
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
from dicomhaven.pipeline import Decision, Outcome

__all__ = ["ALLOWED_TRANSITIONS", "Ledger", "LedgerReport", "Pending", "ReceiptResult", "pid_alive"]

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


@dataclass
class _Known:
    """An object already in the ledger, as a batch of receipts sees and changes it."""

    id: int
    status: ObjectStatus
    job_id: int
    receipts: int
    intake_path: str
    reason: str | None = None

    def changes(self, now: datetime) -> dict[str, object]:
        row: dict[str, object] = {"id": self.id, "receipts": self.receipts, "job_id": self.job_id}
        if self.reason is not None:
            row.update(status=self.status.value, reason=self.reason, updated_at=now)
        return row


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this id runs (a job's owner, say)."""
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
    # Writes are bulk statements (one INSERT/UPDATE per batch, not per object): the ledger
    # must not be what limits how fast a site can receive.
    def receive(
        self, job_id: int, source: str, receipts: Sequence[Receipt]
    ) -> tuple[list[ReceiptResult], list[Pending]]:
        """Enter a batch of receipts in one transaction.

        New objects become ``received`` (and at once ``rejected`` when intake refused them);
        re-receipts of a known object are counted. Returns one result per receipt and the
        objects the pipeline should now process.
        """
        now = _now()
        results: list[ReceiptResult] = []
        pending: list[Pending] = []
        events: list[dict[str, object]] = []
        with self._sessions.begin() as session:
            known = {
                row.object_key: _Known(row.id, ObjectStatus(row.status), row.job_id,
                                       row.receipts, row.intake_path)
                for row in session.execute(
                    select(LedgerObject.id, LedgerObject.object_key, LedgerObject.status,
                           LedgerObject.job_id, LedgerObject.receipts, LedgerObject.intake_path)
                    .where(LedgerObject.object_key.in_({r.object_key for r in receipts}))
                )
            }  # fmt: skip
            stale_jobs = self._stale_job_ids(session)
            fresh: dict[str, Receipt] = {}
            fresh_count: Counter[str] = Counter()
            touched: dict[int, _Known] = {}
            for receipt in receipts:
                key = receipt.object_key
                if key in fresh:
                    fresh_count[key] += 1
                    results.append(ReceiptResult.DUPLICATE)
                    continue
                row = known.get(key)
                if row is None:
                    fresh[key] = receipt
                    fresh_count[key] += 1
                    results.append(ReceiptResult.NEW)
                    continue
                row.receipts += 1
                touched[row.id] = row
                stale = row.status is _S.RECEIVED and row.job_id in stale_jobs
                if row.status is _S.FAILED or stale:
                    if row.status is _S.FAILED:
                        events.append(
                            self._event(row.id, key, row.status, _S.RECEIVED, "retry", job_id, "ingest", now)
                        )  # fmt: skip
                        row.status = _S.RECEIVED
                        row.reason = "retry"
                    row.job_id = job_id
                    pending.append(Pending(row.id, key, row.intake_path))
                    results.append(ReceiptResult.RESUMED)
                else:
                    results.append(ReceiptResult.DUPLICATE)
            if fresh:
                rows = [
                    self._new_row(job_id, source, r, fresh_count[k], now) for k, r in fresh.items()
                ]
                ids = session.execute(
                    insert(LedgerObject).returning(LedgerObject.id, sort_by_parameter_order=True),
                    rows,
                ).scalars()
                for object_id, receipt in zip(ids, fresh.values(), strict=True):
                    key = receipt.object_key
                    events.append(
                        self._event(object_id, key, None, _S.RECEIVED, f"received from {source}",
                                    job_id, "ingest", now)
                    )  # fmt: skip
                    if receipt.rejection is None:
                        pending.append(Pending(object_id, key, receipt.intake_path))
                    else:
                        events.append(
                            self._event(object_id, key, _S.RECEIVED, _S.REJECTED,
                                        receipt.rejection, job_id, "ingest", now)
                        )  # fmt: skip
            if touched:
                session.execute(
                    update(LedgerObject), [row.changes(now) for row in touched.values()]
                )
            if events:
                session.execute(insert(LedgerEvent), events)
        return results, pending

    @staticmethod
    def _new_row(
        job_id: int, source: str, receipt: Receipt, receipts: int, now: datetime
    ) -> dict[str, object]:
        rejected = receipt.rejection is not None
        return {
            "object_key": receipt.object_key,
            "kind": receipt.kind.value,
            "status": (_S.REJECTED if rejected else _S.RECEIVED).value,
            "reason": receipt.rejection or "",
            "sha256": receipt.sha256,
            "size": receipt.size,
            "intake_path": receipt.intake_path,
            "source": source,
            "sop_class_uid": receipt.sop_class_uid,
            "transfer_syntax_uid": receipt.transfer_syntax_uid,
            "modality": receipt.modality,
            "receipts": receipts,
            "job_id": job_id,
            "received_at": now,
            "updated_at": now,
        }

    @staticmethod
    def _event(
        object_id: object,
        object_key: str,
        current: ObjectStatus | None,
        to: ObjectStatus,
        reason: str,
        job_id: int,
        stage: str,
        now: datetime,
    ) -> dict[str, object]:
        """One history row, after checking the transition is allowed and reasoned."""
        if to not in ALLOWED_TRANSITIONS[current]:
            allowed = ", ".join(sorted(ALLOWED_TRANSITIONS[current])) or "nothing"
            raise LedgerError(
                f"object {object_key[:12]}…: transition {current} → {to} is not allowed; "
                f"from {current} an object may go to: {allowed}"
            )
        if to in TERMINAL_STATUSES and not reason:
            raise LedgerError(f"object {object_key[:12]}…: status {to} needs a reason")
        return {
            "object_id": object_id,
            "job_id": job_id,
            "at": now,
            "stage": stage,
            "from_status": current.value if current is not None else None,
            "to_status": to.value,
            "reason": reason,
        }

    def _move(
        self,
        job_id: int,
        decisions: dict[int, tuple[ObjectStatus, str, str]],
        *,
        only_from: ObjectStatus | None = None,
        pseudonyms: dict[int, str] | None = None,
        profiles: dict[int, str] | None = None,
    ) -> None:
        """Apply status changes ``{object id: (status, reason, stage)}`` in one transaction,
        recording each object's master pseudonym where the identity stage found one."""
        now = _now()
        with self._sessions.begin() as session:
            rows = session.execute(
                select(LedgerObject.id, LedgerObject.object_key, LedgerObject.status).where(
                    LedgerObject.id.in_(list(decisions))
                )
            )
            updates: list[dict[str, object]] = []
            events: list[dict[str, object]] = []
            for object_id, key, status in rows:
                to, reason, stage = decisions[object_id]
                current = ObjectStatus(status)
                row: dict[str, object] = {"id": object_id, "job_id": job_id}
                if only_from is None or current is only_from:
                    events.append(
                        self._event(object_id, key, current, to, reason, job_id, stage, now)
                    )
                    row.update(status=to.value, reason=reason, updated_at=now)
                if pseudonyms and object_id in pseudonyms:
                    row["pseudonym"] = pseudonyms[object_id]
                if profiles and object_id in profiles:
                    row["profile_sha256"] = profiles[object_id]
                updates.append(row)
            if updates:
                session.execute(update(LedgerObject), updates)
            if events:
                session.execute(insert(LedgerEvent), events)

    def settle(self, job_id: int, decisions: Iterable[Decision | tuple[int, Outcome]]) -> None:
        """Record the pipeline's decisions for a batch of objects in one transaction."""
        made = [Decision(*d) for d in decisions]
        self._move(
            job_id,
            {d.object_id: (d.outcome.status, d.outcome.reason, d.outcome.stage) for d in made},
            pseudonyms={d.object_id: d.pseudonym for d in made if d.pseudonym},
            profiles={d.object_id: d.profile_sha256 for d in made if d.profile_sha256},
        )

    def objects_of(self, pseudonym: str) -> list[tuple[int, ObjectStatus]]:
        """Every object of one patient, with its status."""
        with self._sessions() as session:
            rows = session.execute(
                select(LedgerObject.id, LedgerObject.status)
                .where(LedgerObject.pseudonym == pseudonym)
                .order_by(LedgerObject.id)
            )
            return [(object_id, ObjectStatus(status)) for object_id, status in rows]

    def hold(self, job_id: int, object_ids: Sequence[int], reason: str, stage: str) -> None:
        """Put objects (released or quarantined) into quarantine with ``reason``, each with
        its own ledger event, in one transaction."""
        self._move(job_id, {oid: (_S.QUARANTINED, reason, stage) for oid in object_ids})

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
        self._move(
            job_id,
            {p.object_id: (_S.RECEIVED, "retry", "process") for p in items},
            only_from=_S.FAILED,
        )

    # -- reading and checking ---------------------------------------------------------------
    def _stale_job_ids(self, session: Session) -> set[int]:
        """Jobs that say they are running but whose process is gone."""
        stale = set()
        for job in session.scalars(select(Job).where(Job.state == JobState.RUNNING)):
            if job.pid != os.getpid() and not pid_alive(job.pid):
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
