"""Pulling from a PACS: query what it holds, retrieve it series by series, check every instance.

::

    criteria ──> study-level C-FIND ──> series-level ──> image-level C-FIND
                                                          │ promised SOP Instances
                                                          v (object keys only)
                 job table: pull_jobs, pull_items (series), pull_instances (keys)
                                                          │
    pending item ──> C-MOVE (series; on a retry only the missing instances)
                        │ PACS ──C-STORE──> our receiver ──> intake + ledger
                        v
                 count check: every promised key in the ledger? ── yes ──> done
                                                                  └─ no ──> back-off, retry
                                                                            (then failed)

The PACS's answer never decides an item: "success" with zero or fewer instances than it
promised is a failure of that item. UIDs are held in memory only, for the run that needs
them; a resumed run queries the PACS again and matches series by their keyed hash. The
source is a :class:`PullSource` (the seam): DICOM C-FIND/C-MOVE here, DICOMweb beside it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Protocol

from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
)

from dicomhaven.catalogue import ItemState, PullState, make_engine
from dicomhaven.collect._criteria import Criteria
from dicomhaven.collect._jobs import ItemView, PullError, PullJobs, backoff_seconds, keyed
from dicomhaven.collect._scp import ReceiverConfig, run_receiver
from dicomhaven.errors import ConfigError
from dicomhaven.intake import dicom_object_key
from dicomhaven.settings import Settings, check_ae_title

if TYPE_CHECKING:
    from dicomhaven.pixels._deface_held import DefaceSummary
    from dicomhaven.site import Site

__all__ = [
    "DimseSource",
    "PacsAddress",
    "PullOptions",
    "PullSource",
    "PullSummary",
    "RetrieveResult",
    "SeriesOffer",
    "embedded_receiver",
    "pacs_address",
    "pull_options",
    "run_pull",
]

log = logging.getLogger(__name__)

_PENDING_STATUSES = frozenset({0xFF00, 0xFF01})
_SETTLE_POLL_SECONDS = 0.05


def _uid(value: object) -> str:
    """A UID as the PACS sent it, without the NUL or space padding some PACS leave."""
    return str(value or "").strip("\x00 ")


def _count(answer: Dataset) -> int:
    """Number of Series Related Instances (0020,1209) in a series-level answer; 0 when the
    source left it out or sent something that is not a count."""
    try:
        return max(0, int(str(answer.get("NumberOfSeriesRelatedInstances", "") or 0).strip()))
    except ValueError:
        return 0


@dataclass(frozen=True)
class PacsAddress:
    """Where the PACS is and who we are to it."""

    host: str
    port: int
    ae_title: str  # the PACS's (called) AE title
    calling_ae: str  # ours
    destination: str  # the AE title the PACS sends C-MOVE results to (our receiver)

    def describe(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


def pacs_address(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    ae_title: str | None = None,
    calling_ae: str | None = None,
    destination: str | None = None,
) -> PacsAddress:
    """The PACS to pull from: the site's settings with command-line values on top."""
    chosen_host = host or settings.pacs_host
    if not chosen_host:
        raise ConfigError(
            "no PACS to pull from: give --pacs-host (and --pacs-port, --pacs-ae) or set "
            "'pacs_host' in the site's dicomhaven.yaml"
        )
    titles: dict[str, str] = {}
    for option, value in (
        ("--pacs-ae", ae_title or settings.pacs_ae_title),
        ("--calling-ae", calling_ae or settings.pull_ae_title or settings.scp_ae_title),
        ("--destination", destination or settings.pull_destination or settings.scp_ae_title),
    ):
        try:
            titles[option] = check_ae_title(value)
        except ValueError as exc:
            raise ConfigError(f"{option}: {exc}") from None
    return PacsAddress(
        host=chosen_host,
        port=port or settings.pacs_port,
        ae_title=titles["--pacs-ae"],
        calling_ae=titles["--calling-ae"],
        destination=titles["--destination"],
    )


@dataclass(frozen=True)
class PullOptions:
    """How hard a pull may press the PACS, and how it retries."""

    max_moves: int = 1
    pause_seconds: float = 0.0
    max_attempts: int = 3
    backoff_seconds: float = 5.0
    settle_seconds: float = 5.0  # after a retrieval, how long the ledger may take to catch up


def pull_options(
    settings: Settings,
    *,
    max_moves: int | None = None,
    pause_seconds: float | None = None,
    max_attempts: int | None = None,
    backoff: float | None = None,
) -> PullOptions:
    return PullOptions(
        max_moves=max_moves if max_moves is not None else settings.pull_max_moves,
        pause_seconds=pause_seconds if pause_seconds is not None else settings.pull_pause_seconds,
        max_attempts=max_attempts if max_attempts is not None else settings.pull_max_attempts,
        backoff_seconds=backoff if backoff is not None else settings.pull_backoff_seconds,
    )


@dataclass(frozen=True)
class SeriesOffer:
    """A series the source holds: its UIDs (memory only), modality and instances."""

    study_uid: str
    series_uid: str
    modality: str | None
    sop_uids: tuple[str, ...]


@dataclass(frozen=True)
class RetrieveResult:
    """What the source said about one retrieval; the count check decides, not this."""

    status: str  # e.g. "0x0000", or "no association" when the source could not be reached
    completed: int = 0
    failed: int = 0
    warning: int = 0

    @classmethod
    def of_final(cls, last: Dataset | None) -> RetrieveResult:
        """From the final C-MOVE or C-GET response (None: the association was aborted)."""
        if last is None:
            return cls("aborted")
        return cls(
            status=f"0x{int(last.Status):04x}",
            completed=int(last.get("NumberOfCompletedSuboperations", 0) or 0),
            failed=int(last.get("NumberOfFailedSuboperations", 0) or 0),
            warning=int(last.get("NumberOfWarningSuboperations", 0) or 0),
        )


class PullSource(Protocol):
    """Something that can be queried for studies and asked to deliver series."""

    kind: str  # "move", "get" or "dicomweb": recorded with the job

    def describe(self) -> str: ...

    def studies(self, query: Dataset) -> list[Dataset]: ...

    def series(self, study_uid: str) -> list[Dataset]: ...

    def instances(self, study_uid: str, series_uid: str) -> list[str]: ...

    def retrieve(
        self, study_uid: str, series_uid: str, sop_uids: list[str] | None
    ) -> RetrieveResult: ...


def retrieve_query(study_uid: str, series_uid: str, sop_uids: list[str] | None) -> Dataset:
    """The identifier of a C-MOVE or C-GET: a whole series, or only the instances named
    (a retry fetches what is still missing)."""
    query = Dataset()
    query.StudyInstanceUID = study_uid
    query.SeriesInstanceUID = series_uid
    if sop_uids is None:
        query.QueryRetrieveLevel = "SERIES"
    else:
        query.QueryRetrieveLevel = "IMAGE"
        query.SOPInstanceUID = sop_uids
    return query


class DimseSource:
    """A PACS reached over DICOM: C-FIND (Study Root) to query, C-MOVE to retrieve."""

    kind = "move"

    def __init__(self, address: PacsAddress, *, timeout: float = 60.0) -> None:
        self.address = address
        self._timeout = timeout

    def describe(self) -> str:
        return self.address.describe()

    @contextlib.contextmanager
    def _association(self, context: str, what: str) -> Iterator[Any]:
        ae = AE(ae_title=self.address.calling_ae)
        ae.acse_timeout = self._timeout
        ae.dimse_timeout = self._timeout
        ae.network_timeout = self._timeout
        ae.add_requested_context(context)
        assoc = ae.associate(self.address.host, self.address.port, ae_title=self.address.ae_title)
        if not assoc.is_established:
            raise PullError(
                f"{what}: could not open an association with {self.address.describe()} as "
                f"{self.address.calling_ae} (rejected, aborted or unreachable); check the host, "
                "port and AE titles, and that the PACS knows our AE title and host"
            )
        try:
            yield assoc
        finally:
            if assoc.is_established:
                assoc.release()

    def _find(self, query: Dataset, what: str) -> list[Dataset]:
        found: list[Dataset] = []
        with self._association(StudyRootQueryRetrieveInformationModelFind, what) as assoc:
            for status, identifier in assoc.send_c_find(
                query, StudyRootQueryRetrieveInformationModelFind
            ):
                if not status:  # an empty status: the PACS aborted (e.g. it refused us)
                    raise PullError(
                        f"{what}: {self.address.describe()} aborted the query; is our AE title "
                        f"{self.address.calling_ae} (from this host) allowed to query it?"
                    )
                code = int(status.Status)
                if code in _PENDING_STATUSES and identifier is not None:
                    found.append(identifier)
                elif code != 0x0000:
                    raise PullError(f"{what}: the PACS answered C-FIND status 0x{code:04x}")
        return found

    def studies(self, query: Dataset) -> list[Dataset]:
        return self._find(query, "study query")

    def series(self, study_uid: str) -> list[Dataset]:
        query = Dataset()
        query.QueryRetrieveLevel = "SERIES"
        query.StudyInstanceUID = study_uid
        query.SeriesInstanceUID = ""
        query.Modality = ""
        query.NumberOfSeriesRelatedInstances = ""  # how many it holds: when a series is whole
        return self._find(query, "series query")

    def instances(self, study_uid: str, series_uid: str) -> list[str]:
        query = Dataset()
        query.QueryRetrieveLevel = "IMAGE"
        query.StudyInstanceUID = study_uid
        query.SeriesInstanceUID = series_uid
        query.SOPInstanceUID = ""
        return [_uid(i.get("SOPInstanceUID")) for i in self._find(query, "instance query")]

    def retrieve(
        self, study_uid: str, series_uid: str, sop_uids: list[str] | None
    ) -> RetrieveResult:
        query = retrieve_query(study_uid, series_uid, sop_uids)
        last: Dataset | None = None
        try:
            with self._association(StudyRootQueryRetrieveInformationModelMove, "retrieve") as a:
                for status, _ in a.send_c_move(
                    query, self.address.destination, StudyRootQueryRetrieveInformationModelMove
                ):
                    if status:
                        last = status
        except PullError as exc:
            log.warning("retrieve failed", extra={"pacs": self.describe(), "error": str(exc)})
            return RetrieveResult("no association")
        return RetrieveResult.of_final(last)


@dataclass
class PullSummary:
    """What a pull run did: counts and our own words only, never an identifier."""

    job_id: int
    source: str
    resumed: bool = False
    studies: int = 0
    items: int = 0
    expected: int = 0
    received: int = 0
    retrievals: int = 0
    seconds: float = 0.0
    state: str = PullState.PLANNING.value
    interrupted: bool = False
    items_by_state: Counter[str] = field(default_factory=Counter)
    skipped_studies: int = 0  # pulled by an earlier run of the same collection spec
    unmatched: dict[str, list[int]] = field(default_factory=dict)  # list → positions (1-based)
    failures: list[tuple[int, str]] = field(default_factory=list)  # (item id, reason)
    #: The held head series found complete when the run ended, defaced and offered for release.
    defaced: DefaceSummary | None = None

    @property
    def complete(self) -> bool:
        return self.state == PullState.COMPLETE.value and not self.unmatched

    def as_dict(self) -> dict[str, object]:
        return {
            "job": self.job_id,
            "source": self.source,
            "resumed": self.resumed,
            "state": self.state,
            "complete": self.complete,
            "interrupted": self.interrupted,
            "studies": self.studies,
            "skipped_studies": self.skipped_studies,
            "items": self.items,
            "items_by_state": dict(self.items_by_state),
            "expected": self.expected,
            "received": self.received,
            "retrievals": self.retrievals,
            "seconds": round(self.seconds, 3),
            "unmatched": self.unmatched,
            "failures": [{"item": i, "reason": r} for i, r in self.failures],
            "defaced": self.defaced.as_dict() if self.defaced is not None else None,
        }


Progress = Callable[[int, int], None]  # (instances received so far, instances promised)


class _Run:
    """One run of one pull job: plan (again), then fetch every item that is not done."""

    def __init__(
        self,
        site: Site,
        jobs: PullJobs,
        source: PullSource,
        criteria: Criteria,
        options: PullOptions,
        summary: PullSummary,
        stop: threading.Event,
        progress: Progress | None,
        skip: frozenset[str] = frozenset(),
    ) -> None:
        self._skip = skip
        self._site_key = site.site_key()
        self._jobs = jobs
        self._source = source
        self._criteria = criteria
        self._options = options
        self._summary = summary
        self._stop = stop
        self._progress = progress
        self._offers: dict[str, SeriesOffer] = {}  # series key → offer (UIDs: memory only)
        self._keys: dict[str, dict[str, str]] = {}  # series key → {object key: SOP UID}
        self._lock = threading.Lock()
        self._received = 0

    # -- planning -----------------------------------------------------------------------------
    def plan(self) -> None:
        job_id = self._summary.job_id
        studies: dict[str, Dataset] = {}
        for query in self._criteria.study_queries():
            for answer in self._source.studies(query):
                uid = _uid(answer.get("StudyInstanceUID"))
                if uid and self._criteria.matches(answer):
                    studies[uid] = answer
        self._summary.unmatched = self._unmatched(list(studies.values()))
        for study_uid in list(studies):
            if keyed(self._site_key, "study", study_uid) in self._skip:
                del studies[study_uid]  # pulled by an earlier run of the same collection
                self._summary.skipped_studies += 1
        for study_uid in studies:
            for answer in self._source.series(study_uid):
                series_uid = _uid(answer.get("SeriesInstanceUID"))
                modality = str(answer.get("Modality", "") or "").strip() or None
                if not series_uid:
                    continue
                if self._criteria.modality and modality != self._criteria.modality:
                    continue
                sop_uids = tuple(u for u in self._source.instances(study_uid, series_uid) if u)
                if not sop_uids:
                    continue
                key = keyed(self._site_key, "series", series_uid)
                # What the PACS says the series holds (0020,1209), or at least what it listed.
                self._jobs.announce(key, max(_count(answer), len(sop_uids)))
                self._offers[key] = SeriesOffer(study_uid, series_uid, modality, sop_uids)
                self._keys[key] = {dicom_object_key(self._site_key, u): u for u in sop_uids}
                self._jobs.add_item(
                    job_id, keyed(self._site_key, "study", study_uid), key, modality,
                    self._keys[key],
                )  # fmt: skip
        self._jobs.drop_unoffered(job_id, set(self._offers))
        self._jobs.set_planned(job_id, len(studies))
        self._summary.studies = len(studies)
        log.info("pull planned", extra={"job": job_id, "studies": len(studies),
                                        "series": len(self._offers)})  # fmt: skip

    def _unmatched(self, answers: list[Dataset]) -> dict[str, list[int]]:
        """Positions (1-based) of listed values that no matching study carried."""
        unmatched: dict[str, list[int]] = {}
        for name, keyword, values in (
            ("patient_ids", "PatientID", self._criteria.patient_ids),
            ("accession_numbers", "AccessionNumber", self._criteria.accession_numbers),
        ):
            seen = {str(a.get(keyword, "")).strip() for a in answers}
            missing = [i for i, value in enumerate(values, start=1) if value not in seen]
            if missing:
                unmatched[name] = missing
        return unmatched

    # -- retrieving ---------------------------------------------------------------------------
    def fetch_all(self) -> None:
        items = [i for i in self._jobs.items(self._summary.job_id) if i.state is not ItemState.DONE]
        total = sum(i.expected for i in self._jobs.items(self._summary.job_id))
        self._received = total - sum(len(self._jobs.missing(i.id)) for i in items)
        self._report(total)
        with ThreadPoolExecutor(self._options.max_moves, thread_name_prefix="pull-move") as pool:
            for _ in pool.map(lambda item: self._fetch(item, total), items):
                pass

    def _report(self, total: int) -> None:
        if self._progress is not None:
            self._progress(self._received, total)

    def _fetch(self, item: ItemView, total: int) -> None:
        offer = self._offers.get(item.series_key)
        if offer is None or item.state is ItemState.FAILED:
            return  # no longer offered: already failed with the reason
        keys = self._keys[item.series_key]
        tries = 0
        attempts = item.attempts
        error = ""
        missing = self._jobs.missing(item.id)
        while missing:
            if self._stop.is_set():
                return  # left pending (or moving): the next run goes on from here
            unoffered = [k for k in missing if k not in keys]
            if unoffered:
                error = f"the source no longer offers {len(unoffered)} promised instances"
                break
            if tries >= self._options.max_attempts:
                break
            if tries:
                self._stop.wait(backoff_seconds(tries, self._options.backoff_seconds))
                if self._stop.is_set():
                    return
            tries += 1
            attempts += 1
            self._jobs.transition(item.id, ItemState.MOVING, attempts=attempts)
            everything = len(missing) == item.expected
            uids = None if everything else sorted(keys[k] for k in missing)
            result = self._source.retrieve(offer.study_uid, offer.series_uid, uids)
            with self._lock:
                self._summary.retrievals += 1
            before = len(missing)
            missing = self._settle(item.id, before, result)
            with self._lock:
                self._received += before - len(missing)
                self._report(total)
            received = item.expected - len(missing)
            if missing:
                error = (
                    f"attempt {attempts}: the source answered {result.status} "
                    f"({result.completed} sent, {result.failed} failed) but {len(missing)} of "
                    f"{item.expected} promised instances are not in the ledger"
                )
                self._jobs.transition(item.id, ItemState.PENDING, received=received, error=error)
                log.warning("pull item short", extra={"job": item.job_id, "item": item.id,
                                                      "status": result.status,
                                                      "missing": len(missing),
                                                      "expected": item.expected})  # fmt: skip
            if self._options.pause_seconds:
                self._stop.wait(self._options.pause_seconds)
        if missing:
            self._jobs.transition(
                item.id, ItemState.FAILED, received=item.expected - len(missing), error=error
            )
            log.warning("pull item failed", extra={"job": item.job_id, "item": item.id,
                                                   "attempts": attempts})  # fmt: skip
        else:
            self._jobs.transition(item.id, ItemState.DONE, received=item.expected, error="")
            log.info("pull item done", extra={"job": item.job_id, "item": item.id,
                                              "instances": item.expected})  # fmt: skip

    def _settle(self, item_id: int, before: int, result: RetrieveResult) -> set[str]:
        """The missing keys after a retrieval, giving a receiver that acknowledged sub-
        operations a moment to commit them (an asynchronous PACS answers first)."""
        deadline = time.monotonic() + self._options.settle_seconds
        missing = self._jobs.missing(item_id)
        while missing and before - len(missing) < result.completed:
            if time.monotonic() > deadline or self._stop.wait(_SETTLE_POLL_SECONDS):
                break
            missing = self._jobs.missing(item_id)
        return missing


def _resolve_job(
    jobs: PullJobs,
    source: PullSource,
    criteria: Criteria,
    fingerprint: str,
    resume: int | None,
    spec: str | None,
) -> tuple[int, Criteria, bool]:
    """The job to run: the one named, else an unfinished one with the same criteria, source
    and collection spec, else a new one. Returns (job id, criteria to use, resumed?)."""
    if resume is None:
        found = jobs.unfinished(fingerprint, source.describe(), spec)
        if found is None:
            made = jobs.create(
                source.kind, source.describe(), criteria.describe(), fingerprint, spec=spec
            )
            return made, criteria, False
        return found.id, criteria, True
    job = jobs.get(resume)
    if job.state is PullState.COMPLETE:
        raise PullError(f"pull job {resume} is already complete; start a new pull instead")
    if job.source != source.describe():
        raise PullError(
            f"pull job {resume} pulls from {job.source}, not {source.describe()}; give the same "
            "PACS (--pacs-host, --pacs-port, --pacs-ae)"
        )
    if not criteria.empty:
        if job.fingerprint != fingerprint:
            raise PullError(
                f"pull job {resume} was made with other criteria; give the same criteria, or "
                "none (when the job used no patient or accession list)"
            )
        return job.id, criteria, True
    if job.criteria.get("patient_ids") or job.criteria.get("accession_numbers"):
        raise PullError(
            f"pull job {resume} was made with a list of patient IDs or accession numbers, which "
            "is not kept; give the same --patients-csv, --accessions-csv or --accession again"
        )
    modality, start, end = (job.criteria.get(k) for k in ("modality", "from", "to"))
    restored = Criteria(
        modality=str(modality) if modality else None,
        date_from=date.fromisoformat(str(start)) if start else None,
        date_to=date.fromisoformat(str(end)) if end else None,
    )
    return job.id, restored, True


def run_pull(
    site: Site,
    source: PullSource,
    criteria: Criteria,
    options: PullOptions,
    *,
    resume: int | None = None,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
    spec: str | None = None,
    skip_studies: frozenset[str] = frozenset(),
) -> PullSummary:
    """Run a pull job to its end (complete, or failed items reported) or until ``stop``.

    A new job is made unless ``resume`` names one, or an unfinished job with the same
    criteria, source and ``spec`` exists, which is then resumed. Studies whose keyed hash is
    in ``skip_studies`` are left out (a collection's incremental runs). The receiver that the source delivers
    to must be running (see :func:`embedded_receiver`).
    """
    if criteria.empty and resume is None:
        raise ConfigError(
            "give at least one criterion (--modality, --from/--to, --accession, "
            "--accessions-csv, --patients-csv), or --resume JOB"
        )
    stop = stop or threading.Event()
    jobs = PullJobs(make_engine(site.database_url))
    fingerprint = criteria.fingerprint(site.site_key())
    job_id, criteria, resumed = _resolve_job(jobs, source, criteria, fingerprint, resume, spec)
    summary = PullSummary(job_id=job_id, source=source.describe(), resumed=resumed)
    started = time.monotonic()
    jobs.claim(job_id)
    log.info("pull started", extra={"job": job_id, "source": source.describe(),
                                    "resumed": resumed} | criteria.describe())  # fmt: skip
    run = _Run(site, jobs, source, criteria, options, summary, stop, progress, skip_studies)
    finished = False
    try:
        run.plan()
        run.fetch_all()
        finished = not stop.is_set()
    finally:
        items = jobs.items(job_id)
        summary.items = len(items)
        summary.items_by_state = Counter(i.state.value for i in items)
        summary.expected = sum(i.expected for i in items)
        summary.received = sum(i.received for i in items)
        summary.failures = [(i.id, i.last_error) for i in items if i.state is ItemState.FAILED]
        summary.seconds = time.monotonic() - started
        summary.studies = summary.studies or jobs.get(job_id).studies
        if finished:
            done = all(i.state is ItemState.DONE for i in items)
            state = PullState.COMPLETE if done else PullState.FAILED
            summary.state = state.value
            jobs.finish(job_id, state, summary.as_dict() | {"failures": len(summary.failures)})
        else:
            summary.interrupted = True
            summary.state = jobs.get(job_id).state.value
            jobs.release(job_id)
        log.info("pull finished", extra={"job": job_id, "state": summary.state,
                                         "expected": summary.expected,
                                         "received": summary.received})  # fmt: skip
    if finished:
        from dicomhaven.pixels._deface_held import deface_complete  # the pixel package

        # Series whose every announced instance has been processed; a receiver defaces
        # those still in its pipeline when it next looks, or as it stops.
        summary.defaced = deface_complete(site)
    return summary


@contextlib.contextmanager
def embedded_receiver(
    site: Site, config: ReceiverConfig, *, drain_seconds: float = 60.0
) -> Iterator[str]:
    """Run the site's DICOM receiver in this process for the duration of a pull; yields the
    address it listens on. It stops (and drains) when the block ends."""
    stop = threading.Event()
    ready = threading.Event()
    address: list[str] = []
    failure: list[BaseException] = []

    def listening(where: str) -> None:
        address.append(where)
        ready.set()

    def serve() -> None:
        try:
            run_receiver(site, config, stop, drain_seconds=drain_seconds, ready=listening)
        except BaseException as exc:  # handed to the caller below
            failure.append(exc)
            ready.set()

    thread = threading.Thread(target=serve, name="pull-receiver", daemon=True)
    thread.start()
    ready.wait()
    if failure:
        thread.join()
        raise failure[0]
    try:
        yield address[0]
    finally:
        stop.set()
        thread.join()
        if failure:
            raise failure[0]
