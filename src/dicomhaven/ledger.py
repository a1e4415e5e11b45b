"""The ledger: every object received, its status, and the history of how it got there.

Invariant: every object received is, at every moment, in exactly one status — in flight
(``received``, under a job that is still running) or terminal (released, quarantined,
rejected, failed), each terminal status with a reason. :meth:`Ledger.verify` checks it,
together with the history of transitions and the files in the intake zone.

Several processes write at once (two imports, the receiver, ``process``), so every write
that first reads what it changes holds the rows it read: on SQLite the transaction takes the
database's write lock before it reads (``BEGIN IMMEDIATE``), on PostgreSQL it reads them
``FOR UPDATE``, in one order (object key), and a transaction PostgreSQL picks as a
deadlock's victim is run again. New objects are inserted if absent (``ON CONFLICT DO
NOTHING``): an object another importer entered meanwhile is counted as a re-receipt, never
an IntegrityError.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError
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
_ATTEMPTS = 5  # a PostgreSQL deadlock or serialization failure is retried this often
_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock_detected, serialization_failure
T = TypeVar("T")


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
    """Whether a process with this id runs (a job's owner, say). A zombie has ended: a
    worker killed with its parent is reparented to PID 1, and in a container whose PID 1
    reaps nothing it stays a zombie, which a signal 0 still reaches."""
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc (macOS), or it just ended
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


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

    # -- writing safely beside other writers -------------------------------------------------
    @contextmanager
    def _writing(self) -> Iterator[Session]:
        """A transaction that may read rows and then change them, beside other processes
        doing the same: on SQLite it holds the write lock from its first statement (a read
        outside it would be stale by the time it writes); PostgreSQL reads ``FOR UPDATE``."""
        with self._sessions.begin() as session:
            if session.get_bind().dialect.name == "sqlite":
                session.execute(text("BEGIN IMMEDIATE"))
            yield session

    def _retrying(self, write: Callable[[], T]) -> T:
        """Run ``write`` again when PostgreSQL chose it as a deadlock's or a serialization
        failure's victim (its transaction was rolled back whole, so a rerun is safe)."""
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                return write()
            except OperationalError as exc:
                code = getattr(exc.orig, "sqlstate", None)
                if code not in _RETRYABLE_SQLSTATES or attempt == _ATTEMPTS:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _known(self, session: Session, keys: Iterable[str]) -> dict[str, _Known]:
        """The ledger's rows for ``keys``, held until the transaction ends."""
        query = (
            select(LedgerObject.id, LedgerObject.object_key, LedgerObject.status,
                   LedgerObject.job_id, LedgerObject.receipts, LedgerObject.intake_path)
            .where(LedgerObject.object_key.in_(sorted(keys)))
            .order_by(LedgerObject.object_key)
            .with_for_update()
        )  # fmt: skip
        return {
            row.object_key: _Known(row.id, ObjectStatus(row.status), row.job_id, row.receipts,
                                   row.intake_path)
            for row in session.execute(query)
        }  # fmt: skip

    @staticmethod
    def _insert_if_absent(session: Session, rows: list[dict[str, Any]]) -> dict[str, int]:
        """Insert the rows whose object key is not in the ledger yet (another writer may have
        entered some since we looked); the ids of those inserted, by object key."""
        if not rows:
            return {}
        dialect = session.get_bind().dialect.name
        module: Any = postgresql if dialect == "postgresql" else sqlite
        statement = (
            module.insert(LedgerObject)
            .on_conflict_do_nothing(index_elements=[LedgerObject.object_key])
            .returning(LedgerObject.id, LedgerObject.object_key)
        )
        # In receipt order, so ids follow the order of arrival; two importers inserting the
        # same new objects in opposite orders may deadlock on PostgreSQL, which then rolls
        # one back, and ``_retrying`` runs it again.
        return {key: object_id for object_id, key in session.execute(statement, rows)}

    # -- receiving ------------------------------------------------------------------------
    # Writes are bulk statements (one INSERT/UPDATE per batch, not per object): the ledger
    # must not be what limits how fast a site can receive.
    def receive(
        self, job_id: int, source: str, receipts: Sequence[Receipt]
    ) -> tuple[list[ReceiptResult], list[Pending]]:
        """Enter a batch of receipts in one transaction.

        New objects become ``received`` (and at once ``rejected`` when intake refused them);
        re-receipts of a known object are counted. Returns one result per receipt and the
        objects the pipeline should now process. Safe beside other importers of the same
        objects: each object is entered once, by whichever transaction comes first.
        """
        return self._retrying(lambda: self._receive(job_id, source, receipts))

    def _receive(
        self, job_id: int, source: str, receipts: Sequence[Receipt]
    ) -> tuple[list[ReceiptResult], list[Pending]]:
        now = _now()
        results: list[ReceiptResult] = []
        pending: list[Pending] = []
        events: list[dict[str, object]] = []
        with self._writing() as session:
            known = self._known(session, {r.object_key for r in receipts})
            first: dict[str, Receipt] = {}
            counted: Counter[str] = Counter()
            for receipt in receipts:
                if receipt.object_key not in known:
                    first.setdefault(receipt.object_key, receipt)
                    counted[receipt.object_key] += 1
            inserted = self._insert_if_absent(
                session,
                [self._new_row(job_id, source, r, counted[k], now) for k, r in first.items()],
            )
            lost = set(first) - set(inserted)  # entered by another writer since we looked
            if lost:
                known.update(self._known(session, lost))
            live = self._live_job_ids(session)
            entered: set[str] = set()
            touched: dict[int, _Known] = {}
            for receipt in receipts:
                key = receipt.object_key
                if key in inserted:
                    if key in entered:
                        results.append(ReceiptResult.DUPLICATE)
                        continue
                    entered.add(key)
                    results.append(ReceiptResult.NEW)
                    object_id = inserted[key]
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
                    continue
                row = known[key]
                row.receipts += 1
                touched[row.id] = row
                abandoned = row.status is _S.RECEIVED and row.job_id not in live
                if row.status is _S.FAILED or abandoned:
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
        pseudonyms: dict[int, str] | None = None,
        profiles: dict[int, str] | None = None,
    ) -> None:
        """Apply status changes ``{object id: (status, reason, stage)}`` in one transaction,
        recording each object's master pseudonym where the identity stage found one."""
        self._retrying(lambda: self._moving(job_id, decisions, pseudonyms, profiles))

    def _locked(
        self, session: Session, object_ids: Iterable[int]
    ) -> list[tuple[int, str, str, int]]:
        """(id, key, status, job id) of objects, held until the transaction ends, in the
        order every writer takes them (object key)."""
        query = (
            select(LedgerObject.id, LedgerObject.object_key, LedgerObject.status,
                   LedgerObject.job_id)
            .where(LedgerObject.id.in_(list(object_ids)))
            .order_by(LedgerObject.object_key)
            .with_for_update()
        )  # fmt: skip
        return [tuple(row) for row in session.execute(query)]  # type: ignore[misc]

    def _moving(
        self,
        job_id: int,
        decisions: Mapping[int, tuple[ObjectStatus, str, str]],
        pseudonyms: Mapping[int, str] | None,
        profiles: Mapping[int, str] | None,
    ) -> None:
        now = _now()
        with self._writing() as session:
            updates: list[dict[str, object]] = []
            events: list[dict[str, object]] = []
            for object_id, key, status, _job in self._locked(session, decisions):
                to, reason, stage = decisions[object_id]
                current = ObjectStatus(status)
                row: dict[str, object] = {"id": object_id, "job_id": job_id}
                events.append(self._event(object_id, key, current, to, reason, job_id, stage, now))
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
            live = self._live_job_ids(session)
            query = (
                select(LedgerObject.id, LedgerObject.object_key, LedgerObject.intake_path)
                .where(
                    (LedgerObject.status == _S.FAILED)
                    | ((LedgerObject.status == _S.RECEIVED) & LedgerObject.job_id.not_in(live))
                )
                .order_by(LedgerObject.id)
            )
            rows = [Pending(*row) for row in session.execute(query)]
        for start in range(0, len(rows), batch):
            yield rows[start : start + batch]

    def reopen(self, job_id: int, items: Sequence[Pending]) -> list[Pending]:
        """Claim objects for ``job_id`` before they are processed again: failed ones go back
        in flight, those a dead job left in flight change job. Returns those claimed: an
        object another live job took meanwhile (a second ``process``, an import that met it
        again) is left to it, so no object is processed twice at once."""
        return self._retrying(lambda: self._reopen(job_id, items))

    def _reopen(self, job_id: int, items: Sequence[Pending]) -> list[Pending]:
        now = _now()
        by_id = {p.object_id: p for p in items}
        claimed: list[Pending] = []
        with self._writing() as session:
            live = self._live_job_ids(session)
            updates: list[dict[str, object]] = []
            events: list[dict[str, object]] = []
            for object_id, key, status, owner in self._locked(session, by_id):
                current = ObjectStatus(status)
                if current is _S.FAILED:
                    events.append(
                        self._event(object_id, key, current, _S.RECEIVED, "retry", job_id,
                                    "process", now)
                    )  # fmt: skip
                    updates.append({"id": object_id, "job_id": job_id, "status": _S.RECEIVED.value,
                                    "reason": "retry", "updated_at": now})  # fmt: skip
                elif current is _S.RECEIVED and owner not in live:
                    updates.append({"id": object_id, "job_id": job_id})
                else:
                    continue
                claimed.append(by_id[object_id])
            if updates:
                session.execute(update(LedgerObject), updates)
            if events:
                session.execute(insert(LedgerEvent), events)
        return sorted(claimed, key=lambda p: p.object_id)

    # -- reading and checking ---------------------------------------------------------------
    def unrecorded(self, intake_root: Path) -> list[str]:
        """Intake files that no ledger entry names: written by a job that died before it
        recorded them (or, while one runs, not recorded yet). Listed before the ledger is
        read, so a file recorded in between is not taken for one."""
        stored = IntakeStore(intake_root).iter_files()
        with self._sessions() as session:
            referenced = set(session.scalars(select(LedgerObject.intake_path)))
        return sorted(set(stored) - referenced)

    def _stale_job_ids(self, session: Session) -> set[int]:
        """Jobs that say they are running but whose process is gone."""
        stale = set()
        for job in session.scalars(select(Job).where(Job.state == JobState.RUNNING)):
            if job.pid != os.getpid() and not pid_alive(job.pid):
                stale.add(job.id)
        return stale

    def _live_job_ids(self, session: Session) -> set[int]:
        """Jobs running in a process that lives. An object in flight under any other job
        (one interrupted, or whose process died, however it died) is abandoned: the next
        import that meets it or ``process`` takes it over."""
        running = set(session.scalars(select(Job.id).where(Job.state == JobState.RUNNING)))
        return running - self._stale_job_ids(session)

    def end_dead_jobs(self) -> int:
        """Mark interrupted the jobs that say they run but whose process is gone (killed, or
        unable to record its end on a full disk); how many."""
        with self._writing() as session:
            stale = self._stale_job_ids(session)
            if stale:
                session.execute(
                    update(Job)
                    .where(Job.id.in_(stale))
                    .values(state=JobState.INTERRUPTED, finished_at=_now())
                )
        return len(stale)

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
                    f"intake file {path} is in no ledger entry; run 'dicomhaven process' to "
                    "record it"
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
