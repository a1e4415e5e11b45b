"""The durable record of pull jobs: each job, its work items (series) and what they promised.

A work item moves through these states; every change is one committed transaction, so a
process killed at any moment leaves a record that the next run resumes from::

    pending ──> moving ──> done            (every promised instance is in the ledger)
       ^          │
       └──────────┤  short: retried after a back-off (moves only what is still missing)
                  └──> failed              (attempts used up; retried when the job resumes)
    failed ──> pending                     (a resumed job tries its failed items again)
    moving ──> pending                     (a resumed job: the killed run's move is redone)

"Done" is decided by the count check alone: every promised instance's object key is in the
ledger. What the PACS answered (success with zero instances, say) never makes an item done.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from dicomhaven.catalogue import (
    ItemState,
    LedgerObject,
    PullInstance,
    PullItem,
    PullJob,
    PullState,
    make_sessionmaker,
)
from dicomhaven.catalogue._models import SeriesRecord
from dicomhaven.errors import PullError
from dicomhaven.ledger import pid_alive

__all__ = [
    "ITEM_TRANSITIONS",
    "ItemView",
    "JobView",
    "PullError",
    "PullJobs",
    "backoff_seconds",
    "keyed",
]

_I = ItemState
ITEM_TRANSITIONS: dict[ItemState, frozenset[ItemState]] = {
    _I.PENDING: frozenset({_I.MOVING, _I.DONE, _I.FAILED}),
    _I.MOVING: frozenset({_I.DONE, _I.PENDING, _I.FAILED}),
    _I.FAILED: frozenset({_I.PENDING}),
    _I.DONE: frozenset(),
}
BACKOFF_CAP_SECONDS = 600.0


def backoff_seconds(attempt: int, base: float, cap: float = BACKOFF_CAP_SECONDS) -> float:
    """How long to wait after failed attempt number ``attempt`` (1, 2, ...): ``base``, then
    twice as long each time, never more than ``cap``."""
    if attempt < 1:
        return 0.0
    return float(min(cap, base * 2 ** min(attempt - 1, 30)))


def _now() -> datetime:
    return datetime.now(UTC)


def keyed(site_key: bytes, kind: str, uid: str) -> str:
    """Keyed hash of a study or series UID: stable per site, reveals nothing. Pull work
    items and the series records of held head slices name series by it."""
    return hmac.new(site_key, f"{kind}:{uid}".encode("ascii"), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class JobView:
    """A pull job as read from the database."""

    id: int
    kind: str
    source: str
    spec: str | None
    criteria: dict[str, object]
    fingerprint: str
    state: PullState
    planned: bool
    runs: int
    studies: int
    running: bool
    summary: dict[str, object]


@dataclass(frozen=True)
class ItemView:
    """A work item as read from the database."""

    id: int
    job_id: int
    study_key: str
    series_key: str
    modality: str | None
    state: ItemState
    attempts: int
    expected: int
    received: int
    last_error: str


def _job_view(job: PullJob) -> JobView:
    return JobView(
        id=job.id,
        kind=job.kind,
        source=job.source,
        spec=job.spec,
        criteria=json.loads(job.criteria),
        fingerprint=job.fingerprint,
        state=PullState(job.state),
        planned=job.planned,
        runs=job.runs,
        studies=job.studies,
        running=job.pid is not None and job.pid != os.getpid() and pid_alive(job.pid),
        summary=json.loads(job.summary),
    )


def _item_view(item: PullItem) -> ItemView:
    return ItemView(
        id=item.id,
        job_id=item.job_id,
        study_key=item.study_key,
        series_key=item.series_key,
        modality=item.modality,
        state=ItemState(item.state),
        attempts=item.attempts,
        expected=item.expected,
        received=item.received,
        last_error=item.last_error,
    )


class PullJobs:
    """All reads and writes of pull jobs go through here."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions: sessionmaker[Session] = make_sessionmaker(engine)

    # -- jobs -------------------------------------------------------------------------------
    def create(
        self,
        kind: str,
        source: str,
        criteria: dict[str, object],
        fingerprint: str,
        *,
        spec: str | None = None,
    ) -> int:
        now = _now()
        with self._sessions.begin() as session:
            job = PullJob(
                kind=kind, source=source, spec=spec, criteria=json.dumps(criteria, sort_keys=True),
                fingerprint=fingerprint, state=PullState.PLANNING.value, planned=False, runs=0,
                studies=0, created_at=now, updated_at=now, summary="{}",
            )  # fmt: skip
            session.add(job)
            session.flush()
            return job.id

    def get(self, job_id: int) -> JobView:
        with self._sessions() as session:
            job = session.get(PullJob, job_id)
            if job is None:
                raise PullError(f"no pull job {job_id}; 'dicomhaven pull-status' lists them")
            return _job_view(job)

    def all(self, limit: int = 50) -> list[JobView]:
        with self._sessions() as session:
            jobs = session.scalars(select(PullJob).order_by(PullJob.id.desc()).limit(limit))
            return [_job_view(job) for job in jobs]

    def unfinished(self, fingerprint: str, source: str, spec: str | None = None) -> JobView | None:
        """The newest job with these criteria, source and spec that did not complete."""
        same_spec = PullJob.spec.is_(None) if spec is None else PullJob.spec == spec
        with self._sessions() as session:
            job = session.scalars(
                select(PullJob)
                .where(PullJob.fingerprint == fingerprint, PullJob.source == source,
                       PullJob.state != PullState.COMPLETE.value, same_spec)
                .order_by(PullJob.id.desc())
                .limit(1)
            ).first()  # fmt: skip
            return _job_view(job) if job is not None else None

    def claim(self, job_id: int) -> JobView:
        """Make this process the job's runner: refused while another live process runs it.
        Items a killed run left ``moving`` go back to ``pending``, and ``failed`` ones too,
        so this run tries them again."""
        with self._sessions.begin() as session:
            job = session.get(PullJob, job_id, with_for_update=True)
            if job is None:
                raise PullError(f"no pull job {job_id}; 'dicomhaven pull-status' lists them")
            if job.pid is not None and job.pid != os.getpid() and pid_alive(job.pid):
                raise PullError(
                    f"pull job {job_id} is being run by process {job.pid}; wait for it, or stop "
                    "it first"
                )
            job.pid = os.getpid()
            job.runs += 1
            job.updated_at = _now()
            if job.state != PullState.PLANNING.value:
                job.state = PullState.MOVING.value
            session.execute(
                update(PullItem)
                .where(PullItem.job_id == job_id,
                       PullItem.state.in_([_I.MOVING.value, _I.FAILED.value]))
                .values(state=_I.PENDING.value, updated_at=_now())
            )  # fmt: skip
            session.flush()
            return _job_view(job)

    def set_planned(self, job_id: int, studies: int) -> None:
        with self._sessions.begin() as session:
            session.execute(
                update(PullJob)
                .where(PullJob.id == job_id)
                .values(planned=True, studies=studies, state=PullState.MOVING.value,
                        updated_at=_now())
            )  # fmt: skip

    def finish(self, job_id: int, state: PullState, summary: dict[str, object]) -> None:
        with self._sessions.begin() as session:
            session.execute(
                update(PullJob)
                .where(PullJob.id == job_id)
                .values(state=state.value, pid=None, updated_at=_now(),
                        summary=json.dumps(summary, sort_keys=True))
            )  # fmt: skip

    def release(self, job_id: int) -> None:
        """Give the job up without deciding it (an interrupted run)."""
        with self._sessions.begin() as session:
            session.execute(
                update(PullJob).where(PullJob.id == job_id).values(pid=None, updated_at=_now())
            )

    # -- items ------------------------------------------------------------------------------
    def add_item(
        self,
        job_id: int,
        study_key: str,
        series_key: str,
        modality: str | None,
        object_keys: Iterable[str],
    ) -> ItemView:
        """Record a series and the instances it promised; planning the same series again (a
        resumed job) adds instances the PACS now offers and keeps the item's progress."""
        keys = set(object_keys)
        now = _now()
        with self._sessions.begin() as session:
            item = session.scalars(
                select(PullItem).where(PullItem.job_id == job_id,
                                       PullItem.series_key == series_key)
            ).first()  # fmt: skip
            if item is None:
                item = PullItem(
                    job_id=job_id, study_key=study_key, series_key=series_key,
                    modality=modality, state=_I.PENDING.value, attempts=0, expected=0,
                    received=0, last_error="", updated_at=now,
                )  # fmt: skip
                session.add(item)
                session.flush()
                known: set[str] = set()
            else:
                known = set(
                    session.scalars(
                        select(PullInstance.object_key).where(PullInstance.item_id == item.id)
                    )
                )
            new = sorted(keys - known)
            if new:
                session.execute(
                    insert(PullInstance), [{"item_id": item.id, "object_key": k} for k in new]
                )
                if item.state == _I.DONE.value:
                    item.state = _I.PENDING.value  # the series grew: fetch the newcomers
            item.expected = len(known | keys)
            item.updated_at = now
            session.flush()
            return _item_view(item)

    def announce(self, series_key: str, expected: int) -> None:
        """Record how many instances the source says a series holds, for the pipeline to
        know when the series is complete (a held head series is then defaced). The highest
        count any answer gave is kept: a series is never taken as complete too early."""
        now = _now()
        with self._sessions.begin() as session:
            module: Any = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
            session.execute(
                module.insert(SeriesRecord)
                .values(series_key=series_key, expected=expected, reason="", slices=0,
                        updated_at=now)
                .on_conflict_do_nothing(index_elements=[SeriesRecord.series_key])
            )  # fmt: skip
            session.execute(
                update(SeriesRecord)
                .where(SeriesRecord.series_key == series_key,
                       SeriesRecord.expected.is_(None) | (SeriesRecord.expected < expected))
                .values(expected=expected, updated_at=now)
            )  # fmt: skip

    def items(self, job_id: int) -> list[ItemView]:
        with self._sessions() as session:
            rows = session.scalars(
                select(PullItem).where(PullItem.job_id == job_id).order_by(PullItem.id)
            )
            return [_item_view(item) for item in rows]

    def promised(self, item_id: int) -> set[str]:
        with self._sessions() as session:
            return set(
                session.scalars(
                    select(PullInstance.object_key).where(PullInstance.item_id == item_id)
                )
            )

    def missing(self, item_id: int) -> set[str]:
        """The item's promised object keys that the ledger does not hold yet."""
        with self._sessions() as session:
            held = (
                select(LedgerObject.object_key)
                .where(LedgerObject.object_key == PullInstance.object_key)
                .exists()
            )
            return set(
                session.scalars(
                    select(PullInstance.object_key).where(PullInstance.item_id == item_id, ~held)
                )
            )

    def transition(
        self,
        item_id: int,
        to: ItemState,
        *,
        attempts: int | None = None,
        received: int | None = None,
        error: str | None = None,
    ) -> ItemView:
        """Move an item to ``to``, refusing a transition the state machine does not allow."""
        with self._sessions.begin() as session:
            item = session.get(PullItem, item_id, with_for_update=True)
            if item is None:
                raise PullError(f"no pull work item {item_id}")
            current = ItemState(item.state)
            if to not in ITEM_TRANSITIONS[current] and to is not current:
                allowed = ", ".join(sorted(ITEM_TRANSITIONS[current])) or "nothing"
                raise PullError(
                    f"pull work item {item_id}: {current} → {to} is not allowed; from "
                    f"{current} an item may go to: {allowed}"
                )
            item.state = to.value
            if attempts is not None:
                item.attempts = attempts
            if received is not None:
                item.received = received
            if error is not None:
                item.last_error = error
            item.updated_at = _now()
            session.flush()
            return _item_view(item)

    def drop_unoffered(self, job_id: int, offered: set[str]) -> int:
        """Items the source no longer offers (deleted from the PACS since planning) fail with
        that reason; returns how many."""
        count = 0
        for item in self.items(job_id):
            if item.series_key not in offered and item.state is not _I.DONE:
                reason = "the source no longer offers this series"
                if item.state is _I.PENDING or item.state is _I.MOVING:
                    self.transition(item.id, _I.FAILED, error=reason)
                count += 1
        return count

    def studies_pulled(self, spec: str) -> set[str]:
        """Study keys whose every item is done, over every job of a collection spec."""
        done: dict[str, bool] = {}
        with self._sessions() as session:
            rows = session.execute(
                select(PullItem.study_key, PullItem.state)
                .join(PullJob, PullJob.id == PullItem.job_id)
                .where(PullJob.spec == spec)
            )
            for key, state in rows:
                done[key] = done.get(key, True) and state == _I.DONE.value
        return {key for key, all_done in done.items() if all_done}
