"""When a held head series is complete, who may deface it, and what a person must look at.

The pixel stage holds every slice of a head CT or MR volume (:data:`AWAITS_DEFACING`):
defacing needs the whole volume, and slices arrive one at a time. A held series is
**complete** when

- its source said how many instances it holds (a pull's series-level C-FIND or QIDO-RS
  answer, Number of Series Related Instances (0020,1209), recorded by the pull as a
  :class:`~dicomhaven.catalogue._models.SeriesRecord`) and that many of its objects have
  arrived and ended (held, released, rejected: every object of the series in the ledger that
  is no longer in flight); or
- no new slice of it has arrived for the setting ``head_series_quiet_seconds``; with 0, when
  every command that received a slice of it has ended (its ledger job is no longer running).
  A series that came whole by folder import waits ``import_series_quiet_seconds`` instead,
  0 by default: a folder holds what it holds, so its series are complete when the import
  that read it ends.

Then the pipeline defaces it itself (:func:`~dicomhaven.pixels._deface_held.deface_held`, at
the end of import, process, release and pull, and every :data:`HEAD_CHECK_SECONDS` in a
receiver). Two processes may find the same complete series at once: the one that first
**claims** its slices (held → in flight under its ledger job, in one locking transaction:
``BEGIN IMMEDIATE`` on SQLite, ``FOR UPDATE`` in object-key order on PostgreSQL, as the
ledger's own writers do) decides it; the other leaves it. A run that dies leaves the slices
in flight under a dead job, which ``dicomhaven process`` runs through the pipeline again.

Series are named by the keyed hash of their Series Instance UID (the pull's own), never by
the UID. A slice that arrives after its series was decided cannot join the released volume
unchecked: it is held for review. :func:`face_reviews` lists, once per series, what a person
must see: series held for review, pictures rendered from a head, and the before/after
renders of defaced series.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pydicom
from sqlalchemy import Engine, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from dicomhaven.catalogue import (
    Job,
    JobState,
    LedgerEvent,
    LedgerObject,
    ObjectStatus,
    PullInstance,
    PullItem,
    make_engine,
    make_sessionmaker,
)
from dicomhaven.catalogue._models import SeriesMember, SeriesRecord
from dicomhaven.collect._jobs import keyed
from dicomhaven.ledger import pid_alive
from dicomhaven.pixels._verdict import AWAITS_DEFACING, FACE_NOT_CHECKED

if TYPE_CHECKING:
    from dicomhaven.site import Site

__all__ = [
    "AWAITING",
    "HEAD_CHECK_SECONDS",
    "DefaceTask",
    "DefaceWhen",
    "FaceReview",
    "HeadSeriesWatch",
    "HeldSeries",
    "HeldSlice",
    "any_held",
    "claim",
    "complete_because",
    "face_reviews",
    "held_series",
    "live_jobs",
    "prior_decision",
    "reasons_of",
    "record_decision",
    "series_key",
]

#: The reasons of slices that wait for their series to be defaced (the gate sends a head
#: slice back with the second when its face was not checked on its bytes).
AWAITING = (AWAITS_DEFACING, FACE_NOT_CHECKED)
#: How often a receiver looks for complete series while head slices are held.
HEAD_CHECK_SECONDS = 30.0
#: The reason of a claimed slice while its series is being decided (in flight).
CLAIMED = "its series is being defaced"
_REVIEW_WORDS = "held for review"
_IN_LIST = 500  # ids per IN (...) list: far below every backend's limit on parameters
T = TypeVar("T")


class DefaceWhen(StrEnum):
    """Which held series a defacing run takes."""

    COMPLETE = "complete"  # the pipeline's own runs: only series that are complete
    NOW = "now"  # 'dicomhaven deface': every held series, as a person asks


#: The ledger's source of an object that came by folder import (``ingest.import_paths``).
FOLDER = "folder"


def series_key(site_key: bytes, series_uid: str, pseudonym: str) -> str:
    """The keyed hash a series is known by (the pull's, for a UID in ASCII as the standard
    has it); slices with no Series Instance UID are one series per patient."""
    if not series_uid:
        return keyed(site_key, "series-none", pseudonym)
    if not series_uid.isascii():
        return keyed(site_key, "series-bytes", series_uid.encode("utf-8", "replace").hex())
    return keyed(site_key, "series", series_uid)


@dataclass(frozen=True)
class HeldSlice:
    """A held slice, as the ledger knows it."""

    object_id: int
    object_key: str
    pseudonym: str
    intake_path: str
    reason: str
    received_at: datetime
    job_id: int
    source: str = ""  # how it came: "folder" (import), "scp", "pull", ...


@dataclass
class HeldSeries:
    """The held slices of one series of one patient."""

    key: str
    pseudonym: str
    slices: list[HeldSlice] = field(default_factory=list)


def _aware(moment: datetime) -> datetime:
    """SQLite gives back the UTC times it was given without their zone."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _series_of(site: Site, object_id: int, intake_path: str, pseudonym: str) -> str:
    """The series key of an object, from its header as received (an original that cannot
    be read is a series of its own: it joins no volume)."""
    try:
        header = pydicom.dcmread(
            site.intake / intake_path, stop_before_pixels=True, force=True,
            specific_tags=["SeriesInstanceUID"],
        )  # fmt: skip
    except Exception:  # tolerant when reading: its slice is not defaced with any other
        return keyed(site.site_key(), "series-unreadable", str(object_id))
    uid = str(header.get("SeriesInstanceUID", "") or "").strip("\x00 ")
    return series_key(site.site_key(), uid, pseudonym)


def _chunks(items: Sequence[T], size: int = _IN_LIST) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _members(
    site: Site, sessions: sessionmaker[Session], rows: Sequence[tuple[int, str, str]]
) -> dict[int, str]:
    """The series key of each object ``(id, intake path, pseudonym)``: recorded ones from the
    catalogue, the others read from intake once and recorded."""
    known: dict[int, str] = {}
    with sessions() as session:
        for part in _chunks([r[0] for r in rows]):
            found = session.execute(
                select(SeriesMember.object_id, SeriesMember.series_key).where(
                    SeriesMember.object_id.in_(part)
                )
            )
            known.update({object_id: key for object_id, key in found})
    new = {oid: _series_of(site, oid, path, pseudonym) for oid, path, pseudonym in rows
           if oid not in known}  # fmt: skip
    if new:
        with sessions.begin() as session:
            module: Any = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
            session.execute(  # another run may record some at the same time: both agree
                module.insert(SeriesMember).on_conflict_do_nothing(
                    index_elements=[SeriesMember.object_id]
                ),
                [{"object_id": o, "series_key": k} for o, k in new.items()],
            )
    return known | new


def any_held(engine: Engine) -> bool:
    """Whether any slice waits for its series to be defaced (one indexed lookup)."""
    with make_sessionmaker(engine)() as session:
        found = session.scalar(
            select(LedgerObject.id)
            .where(LedgerObject.status == ObjectStatus.QUARANTINED, LedgerObject.reason.in_(AWAITING))
            .limit(1)
        )  # fmt: skip
    return found is not None


def held_series(site: Site, sessions: sessionmaker[Session]) -> list[HeldSeries]:
    """Every series with slices waiting to be defaced, by (pseudonym, series), oldest first."""
    with sessions() as session:
        rows = session.execute(
            select(LedgerObject.id, LedgerObject.object_key, LedgerObject.pseudonym,
                   LedgerObject.intake_path, LedgerObject.reason, LedgerObject.received_at,
                   LedgerObject.job_id, LedgerObject.source)
            .where(LedgerObject.status == ObjectStatus.QUARANTINED,
                   LedgerObject.reason.in_(AWAITING))
            .order_by(LedgerObject.id)
        ).all()  # fmt: skip
    slices = [
        HeldSlice(r[0], r[1], str(r[2] or ""), r[3], r[4], _aware(r[5]), r[6], str(r[7]))
        for r in rows
    ]
    keys = _members(site, sessions, [(s.object_id, s.intake_path, s.pseudonym) for s in slices])
    series: dict[tuple[str, str], HeldSeries] = {}
    for item in slices:
        key = keys[item.object_id]
        group = series.setdefault((item.pseudonym, key), HeldSeries(key, item.pseudonym))
        group.slices.append(item)
    return list(series.values())


def live_jobs(sessions: sessionmaker[Session]) -> set[int]:
    """Ledger jobs that say they run and whose process lives."""
    with sessions() as session:
        rows = session.execute(select(Job.id, Job.pid).where(Job.state == JobState.RUNNING))
        return {job_id for job_id, pid in rows if pid_alive(pid)}


def _arrived(sessions: sessionmaker[Session], series: HeldSeries) -> int:
    """How many objects of the series have arrived and ended: those a pull promised for it
    that the ledger holds out of flight, and the held slices themselves."""
    with sessions() as session:
        ended = set(
            session.scalars(
                select(LedgerObject.id)
                .join(PullInstance, PullInstance.object_key == LedgerObject.object_key)
                .join(PullItem, PullItem.id == PullInstance.item_id)
                .where(PullItem.series_key == series.key,
                       LedgerObject.status != ObjectStatus.RECEIVED)
                .distinct()
            )
        )  # fmt: skip
    return len(ended | {s.object_id for s in series.slices})


def complete_because(
    sessions: sessionmaker[Session],
    series: HeldSeries,
    *,
    quiet_seconds: float,
    now: datetime,
    running: set[int],
    expected: int | None,
    import_quiet_seconds: float | None = None,
) -> str | None:
    """Why the series is complete (our words, counts only), or None while it may grow.
    ``running`` are the ledger jobs whose commands have not ended. A series every slice of
    which came by folder import waits ``import_quiet_seconds`` instead (when given): a
    folder holds what it holds, so by default its series are complete when the import ends."""
    if expected:
        arrived = _arrived(sessions, series)
        if arrived >= expected:
            return f"all {expected} instances its source announced have arrived"
    if import_quiet_seconds is not None and all(s.source == FOLDER for s in series.slices):
        quiet_seconds = import_quiet_seconds
        if quiet_seconds == 0:
            if not {s.job_id for s in series.slices} & running:
                return "the import that brought it has ended"
            return None
    if quiet_seconds == 0:
        if not {s.job_id for s in series.slices} & running:
            return "every command that received it has ended"
        return None
    last = max(s.received_at for s in series.slices)
    if now - last >= timedelta(seconds=quiet_seconds):
        return f"no new slice for {quiet_seconds:g} s"
    return None


def prior_decision(sessions: sessionmaker[Session], key: str) -> SeriesRecord | None:
    """The series' record (its announced count, and its decision if it was decided)."""
    with sessions() as session:
        return session.get(SeriesRecord, key)


def record_decision(
    sessions: sessionmaker[Session],
    key: str,
    *,
    decision: str,
    reason: str,
    slices: int,
    render: str | None,
) -> None:
    """Record how a series was decided: later slices of it are then held for review."""
    now = datetime.now(UTC)
    with sessions.begin() as session:
        record = session.get(SeriesRecord, key, with_for_update=True)
        if record is None:
            record = SeriesRecord(series_key=key, slices=0, reason="", updated_at=now)
            session.add(record)
        record.decision, record.reason, record.decided_at = decision, reason[:2000], now
        record.slices = slices
        record.render = render or record.render
        record.updated_at = now


def claim(engine: Engine, job_id: int, slices: Sequence[HeldSlice]) -> bool:
    """Take every slice of a series for ``job_id`` (held → in flight), or none: False when
    another run took or decided any of them since they were listed."""
    sessions = make_sessionmaker(engine)
    reasons = {s.object_id: s.reason for s in slices}
    with sessions.begin() as session:
        if session.get_bind().dialect.name == "sqlite":
            session.execute(text("BEGIN IMMEDIATE"))  # the write lock before the read
        rows = session.execute(
            select(LedgerObject.id, LedgerObject.status, LedgerObject.reason)
            .where(LedgerObject.id.in_(list(reasons)))
            .order_by(LedgerObject.object_key)
            .with_for_update()
        ).all()  # fmt: skip
        if len(rows) != len(reasons) or any(
            status != ObjectStatus.QUARANTINED or reason != reasons[oid]
            for oid, status, reason in rows
        ):
            return False
        now = datetime.now(UTC)
        session.execute(
            update(LedgerObject),
            [{"id": oid, "status": ObjectStatus.RECEIVED.value, "reason": CLAIMED,
              "job_id": job_id, "updated_at": now} for oid in reasons],
        )  # fmt: skip
        session.execute(
            insert(LedgerEvent),
            [{"object_id": oid, "job_id": job_id, "at": now, "stage": "deface",
              "from_status": ObjectStatus.QUARANTINED.value,
              "to_status": ObjectStatus.RECEIVED.value, "reason": CLAIMED} for oid in reasons],
        )  # fmt: skip
    return True


# -- what a person must see ---------------------------------------------------------------
@dataclass(frozen=True)
class FaceReview:
    """A series a person must look at before its face is settled, listed once."""

    series: str  # "s-" and the start of the series' keyed hash
    kind: str  # "held": held for review; "render": defaced, its before/after render to check
    reason: str
    objects: int
    pseudonym: str
    render: str | None = None  # the render, relative to the site folder (it shows the face)

    def as_dict(self) -> dict[str, object]:
        return {
            "series": self.series, "kind": self.kind, "reason": self.reason,
            "objects": self.objects, "pseudonym": self.pseudonym, "render": self.render,
        }  # fmt: skip


def face_reviews(site: Site) -> list[FaceReview]:
    """Every series held for a person's review (a neck or rendered volume, a picture
    rendered from a head, slices that came after their series was decided) and every
    defaced series' before/after render, each once: held ones first."""
    sessions = make_sessionmaker(make_engine(site.database_url))
    with sessions() as session:
        rows = session.execute(
            select(LedgerObject.id, LedgerObject.intake_path, LedgerObject.pseudonym,
                   LedgerObject.reason)
            .where(LedgerObject.status == ObjectStatus.QUARANTINED,
                   LedgerObject.reason.contains(_REVIEW_WORDS))
            .order_by(LedgerObject.id)
        ).all()  # fmt: skip
        renders = list(
            session.scalars(
                select(SeriesRecord)
                .where(SeriesRecord.render.is_not(None))
                .order_by(SeriesRecord.decided_at)
            )
        )
    keys = _members(site, sessions, [(r[0], r[1], str(r[2] or "")) for r in rows])
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for oid, _path, pseudonym, reason in rows:
        groups[(str(pseudonym or ""), keys[oid])].append(reason)
    held = [
        FaceReview(f"s-{key[:16]}", "held", Counter(reasons).most_common(1)[0][0], len(reasons),
                   pseudonym)
        for (pseudonym, key), reasons in groups.items()
    ]  # fmt: skip
    shown = [
        FaceReview(f"s-{r.series_key[:16]}", "render", f"defaced: check the render ({r.reason})",
                   r.slices, Path(r.render).parts[1], r.render)
        for r in renders
        if r.render and (site.root / r.render).is_file()
    ]  # fmt: skip
    return held + shown


# -- running it ----------------------------------------------------------------------------
@dataclass(frozen=True)
class DefaceTask:
    """Deface a site's complete held series; picklable, so a receiver runs it in a worker
    process. ``ended_jobs``: ledger jobs to take as ended (the receiver's own, at its end)."""

    site_root: Path
    ended_jobs: tuple[int, ...] = ()

    def __call__(self, _item: object = None) -> dict[str, object]:
        from dicomhaven.pixels._deface_held import deface_held
        from dicomhaven.site import open_site

        summary = deface_held(open_site(self.site_root), ended_jobs=frozenset(self.ended_jobs))
        return summary.as_dict()


class HeadSeriesWatch:
    """A receiver's periodic look for complete head series: at most every ``every``
    seconds, and only when head slices are held (one indexed lookup otherwise)."""

    def __init__(
        self,
        site_root: Path,
        engine: Engine,
        *,
        every: float = HEAD_CHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._site_root = site_root
        self._engine = engine
        self._every = every
        self._clock = clock
        self._next = clock() + every

    def seconds_left(self) -> float:
        """How long until the next look is due."""
        return max(0.0, self._next - self._clock())

    def poll(self, run: Callable[[DefaceTask], object]) -> bool:
        """Hand ``run`` a :class:`DefaceTask` when a look is due and slices are held;
        whether it did."""
        if self._clock() < self._next:
            return False
        self._next = self._clock() + self._every
        if not any_held(self._engine):
            return False
        run(DefaceTask(self._site_root))
        return True


def reasons_of(series: Iterable[HeldSlice]) -> dict[str, list[int]]:
    """The held slices' ids by their reason (to hold them again as they were)."""
    by_reason: dict[str, list[int]] = defaultdict(list)
    for item in series:
        by_reason[item.reason].append(item.object_id)
    return by_reason
