"""The import job: files → intake → ledger (received) → pipeline → ledger (decided).

This is the core that every face calls (the CLI today; the DICOM receiver and pulls later).
Work is done in batches: each batch is received into the ledger in one transaction before
any of it is processed, so the ledger always knows about an object before a stage touches
it, and an interrupted run leaves objects in flight that ``process_pending`` finishes.

A crash at any point (``kill -9``, a full disk, a lost database) leaves every received file
either recorded or in intake without an entry; ``process_pending`` records the latter as
intake would have, finishes what was in flight and retries what failed, so after it every
object is accounted for (``dicomhaven ledger --deep``). That recovery lives in ``process``
rather than in ``ledger --repair`` because it runs the pipeline, which is ``process``'s
job, and it keeps ``ledger`` a check that never changes anything.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.engine import make_url

from dicomhaven._logging import library_warnings
from dicomhaven.catalogue import make_engine
from dicomhaven.collect import IntakeTask, iter_entries
from dicomhaven.errors import DiskFull
from dicomhaven.intake import IntakeStore, Receipt, receive_bytes
from dicomhaven.ledger import Ledger, Pending, ReceiptResult, pid_alive
from dicomhaven.pipeline import Executor, Pipeline, ProcessTask, make_executor
from dicomhaven.pipeline._failures import disk_full_zones, is_disk_full
from dicomhaven.site import Site

if TYPE_CHECKING:
    from dicomhaven.pixels._deface_held import DefaceSummary

__all__ = [
    "RECOVERED_SOURCE",
    "ImportSummary",
    "ProcessSummary",
    "Progress",
    "import_paths",
    "pipeline_for",
    "process_pending",
]

log = logging.getLogger(__name__)
T = TypeVar("T")
Progress = Callable[[int, int], None]  # (files done, bytes done) since the last call


@dataclass
class ImportSummary:
    """What an import did; identifiers never appear here, file paths only in ``rejected``."""

    job_id: int
    files: int = 0
    bytes: int = 0
    receipts: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    #: (path, reason) of each entry not received: a link loop, a dangling link, a FIFO, a
    #: socket, a folder or file without permission. Any makes the import exit 1.
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    interrupted: bool = False
    #: Library warnings met, by kind in our words (their text may quote a value, so it is
    #: kept nowhere); counted where the command line routes warnings (``_logging``).
    warnings: Counter[str] = field(default_factory=Counter)
    #: Objects that failed because a zone had no space left, by zone.
    disk_full: Counter[str] = field(default_factory=Counter)
    #: The held head series found complete at the end, defaced and offered for release.
    defaced: DefaceSummary | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "job": self.job_id,
            "files": self.files,
            "bytes": self.bytes,
            "receipts": dict(self.receipts),
            "outcomes": dict(self.outcomes),
            "rejected": [{"path": p, "reason": r} for p, r in self.rejected],
            "unreadable": [{"path": p, "reason": r} for p, r in self.unreadable],
            "interrupted": self.interrupted,
            "warnings": dict(self.warnings),
            "disk_full": dict(self.disk_full),
            "defaced": _defaced(self.defaced),
        }

    def ledger_summary(self) -> dict[str, object]:
        """The summary kept in the jobs table: counts only, no paths."""
        return {
            "files": self.files,
            "bytes": self.bytes,
            "receipts": dict(self.receipts),
            "outcomes": dict(self.outcomes),
            "unreadable": len(self.unreadable),
            "warnings": dict(self.warnings),
            "disk_full": dict(self.disk_full),
        }


@dataclass
class ProcessSummary:
    """What ``process`` did to bring the site back to every object accounted for."""

    job_id: int
    outcomes: Counter[str] = field(default_factory=Counter)
    #: Intake files found without a ledger entry and recorded now.
    recovered: int = 0
    #: Intake files without an entry that could not be recorded as themselves (reported).
    not_recovered: list[str] = field(default_factory=list)
    #: Partial files of writers that died mid-write, removed from intake.
    partials_removed: int = 0
    warnings: Counter[str] = field(default_factory=Counter)
    disk_full: Counter[str] = field(default_factory=Counter)
    #: The held head series found complete at the end, defaced and offered for release.
    defaced: DefaceSummary | None = None

    def as_dict(self) -> dict[str, object]:
        return (
            {"job": self.job_id}
            | self.ledger_summary()
            | {"not_recovered": self.not_recovered, "defaced": _defaced(self.defaced)}
        )

    def ledger_summary(self) -> dict[str, object]:
        """Counts only (intake paths are keyed hashes, but the jobs table keeps counts)."""
        return {
            "outcomes": dict(self.outcomes),
            "recovered": self.recovered,
            "partials_removed": self.partials_removed,
            "warnings": dict(self.warnings),
            "disk_full": dict(self.disk_full),
        }


def _defaced(summary: DefaceSummary | None) -> dict[str, object] | None:
    return summary.as_dict() if summary is not None else None


def _deface_complete(site: Site) -> DefaceSummary:
    """Deface the held head series that are complete now that this command's job has ended
    (with ``head_series_quiet_seconds`` 0, every series it received is)."""
    from dicomhaven.pixels._deface_held import deface_complete

    return deface_complete(site)


def pipeline_for(site: Site) -> Pipeline:
    """The stages this site runs on every received object, in order.

    Identity first (pseudonym from the vault, consent checked), then the header stage (the
    limited-access copy; an object that is all headers is offered for release), then the pixel
    stage for images (blanked and verified, or held), then the release gate: the copy is
    scanned for residual PII and released only if the scan is clean and its device (entered
    in the registry by the device stage) is trusted.
    """
    from dicomhaven.deid import ProfileLayers, load_layers, load_profile
    from dicomhaven.deid._stage import HeaderStage
    from dicomhaven.identity import IdentityStage
    from dicomhaven.pixels._clean import PixelPolicy
    from dicomhaven.pixels._stage import PixelStage
    from dicomhaven.scan._stage import DeviceStage, ReleaseGate

    profiles = ProfileLayers(load_profile(site.settings.deid_profile))
    if site.settings.deid_layers:
        layers = Path(site.settings.deid_layers)
        profiles = load_layers(
            layers if layers.is_absolute() else site.root / layers, profiles.base
        )
    return Pipeline(
        stages=(
            IdentityStage(),
            DeviceStage(),
            HeaderStage(profiles, pixels_follow=True),
            PixelStage(policy=PixelPolicy(max_pixel_bytes=site.settings.max_pixel_bytes)),
            ReleaseGate(),
        )
    )


def _batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Batches of ``size``; when the items stop on a full disk, the batch read so far comes
    first, so what reached intake before the disk filled is recorded before the error."""
    iterator = iter(items)
    while True:
        batch: list[T] = []
        try:
            batch.extend(islice(iterator, size))
        except DiskFull:
            if batch:
                yield batch
            raise
        if not batch:
            return
        yield batch


@contextmanager
def _zone(zone: str, doing: str) -> Iterator[None]:
    """Turn a write that found no space into :class:`DiskFull` naming ``zone``."""
    try:
        yield
    except DiskFull:
        raise
    except Exception as exc:
        if is_disk_full(exc):
            raise DiskFull([zone], doing) from exc
        raise


def _guarded(items: Iterator[T], zone: str, doing: str) -> Iterator[T]:
    """``items``, with a full disk met while making them raised as :class:`DiskFull`."""
    while True:
        with _zone(zone, doing):
            try:
                item = next(items)
            except StopIteration:
                return
        yield item


def _catalogue_zone(site: Site) -> str:
    """The zone the ledger's writes land in, for a disk-full message."""
    url = make_url(site.database_url)
    if url.get_backend_name() != "sqlite":
        return "catalogue (on its database server)"
    try:
        relative = Path(url.database or "").resolve().relative_to(site.root.resolve())
    except ValueError:
        return "catalogue (its database file is outside the site)"
    return relative.parts[0]


def _process(
    ledger: Ledger,
    executor: Executor,
    task: ProcessTask,
    job_id: int,
    pending: Sequence[Pending],
    outcomes: Counter[str],
    disk_full: Counter[str],
    catalogue: str,
) -> None:
    if not pending:
        return
    items = ((p.object_id, p.object_key, p.intake_path) for p in pending)
    decided = list(executor.imap(task, items))
    with _zone(catalogue, "recording the pipeline's decisions"):
        ledger.settle(job_id, decided)
    outcomes.update(d.outcome.status.value for d in decided)
    for decision in decided:
        disk_full.update(disk_full_zones(decision.outcome.reason))


def _end_interrupted(ledger: Ledger, job_id: int, summary: dict[str, object]) -> None:
    """Mark a job interrupted if the catalogue still takes writes (a full disk may refuse:
    the job then shows as running with a dead process, which the ledger treats alike)."""
    try:
        ledger.finish_job(job_id, summary, interrupted=True)
    except Exception as exc:
        log.warning("could not mark job %s interrupted (%s)", job_id, type(exc).__name__)


def import_paths(
    site: Site,
    paths: Sequence[Path],
    *,
    workers: int | None = None,
    source: str = "folder",
    progress: Progress | None = None,
) -> ImportSummary:
    """Import every file under ``paths`` into the site; never raises on bad file content.

    Raises :class:`DiskFull` when intake or the catalogue has no space left; what was
    received before is recorded, and ``dicomhaven process`` records and finishes the rest.
    """
    ledger = Ledger(make_engine(site.database_url))
    catalogue = _catalogue_zone(site)
    with _zone(catalogue, "starting the import job"):
        job_id = ledger.start_job("import")
    summary = ImportSummary(job_id=job_id)
    warned = library_warnings()
    executor = make_executor(workers or site.settings.workers)
    intake = IntakeTask(site.intake, site.site_key(), site.settings.intake_fsync)
    process = ProcessTask(site.root, pipeline_for(site))
    try:
        results = _guarded(
            executor.imap(intake, iter_entries(paths)), "intake", "writing received files"
        )
        for batch in _batches(results, site.settings.ledger_batch_size):
            receipts = []
            for result in batch:
                summary.files += 1
                if result.receipt is None:
                    summary.unreadable.append((result.path, result.unreadable or "unreadable"))
                    continue
                summary.bytes += result.receipt.size
                receipts.append(result.receipt)
                if result.receipt.rejection is not None:
                    summary.rejected.append((result.path, result.receipt.rejection))
            with _zone(catalogue, "recording received files in the ledger"):
                verdicts, pending = ledger.receive(job_id, source, receipts)
            summary.receipts.update(v.value for v in verdicts)
            summary.outcomes.update(
                "rejected"
                for v, r in zip(verdicts, receipts, strict=True)
                if v is ReceiptResult.NEW and r.rejection is not None
            )
            _process(ledger, executor, process, job_id, pending, summary.outcomes,
                     summary.disk_full, catalogue)  # fmt: skip
            if progress is not None:
                progress(len(batch), sum(r.size for r in receipts))
    except BaseException:
        summary.interrupted = True
        summary.warnings = library_warnings() - warned
        _end_interrupted(ledger, job_id, summary.ledger_summary())
        raise
    finally:
        executor.close()
    summary.warnings = library_warnings() - warned
    with _zone(catalogue, "finishing the import job"):
        ledger.finish_job(job_id, summary.ledger_summary())
    summary.defaced = _deface_complete(site)
    return summary


#: The source recorded for an intake file found without a ledger entry (its own is unknown).
RECOVERED_SOURCE = "intake-recovery"
_PARTIAL_FOLDER = ".partial"  # where IntakeStore writes a file before linking it into place


def _remove_dead_partials(intake: Path) -> int:
    """Remove partial intake files whose writer is gone (named ``<pid>.<n>.part``): a
    process killed mid-write leaves one, which nothing else would ever remove."""
    removed = 0
    folder = intake / _PARTIAL_FOLDER
    if not folder.is_dir():
        return 0
    for path in folder.iterdir():
        pid = path.name.partition(".")[0]
        if path.suffix == ".part" and pid.isdigit() and not pid_alive(int(pid)):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _unrecorded(site: Site, ledger: Ledger, left: list[str]) -> Iterator[Receipt]:
    """A receipt for each intake file no ledger entry names, made as intake makes them (the
    file is found in place, so nothing is written). ``left`` gets those whose receipt
    would name another file (the site key changed, say): they are reported, not guessed."""
    store = IntakeStore(site.intake, fsync=False)
    key = site.site_key()
    for relpath in ledger.unrecorded(site.intake):
        try:
            data = (site.intake / relpath).read_bytes()
        except FileNotFoundError:
            continue
        receipt = receive_bytes(data, store, key)
        if receipt.intake_path == relpath:
            yield receipt
        else:
            left.append(relpath)


def process_pending(site: Site, *, workers: int | None = None) -> ProcessSummary:
    """Bring the site back to a state where every object is accounted for, after any crash.

    In order: partial intake files of dead writers are removed; intake files that no
    ledger entry names (their job died between writing them and recording them) are
    recorded, as intake would have; objects a dead job left in flight are finished, and
    failed ones retried. Safe beside running imports: an object is recorded once and
    claimed by one job (see :meth:`Ledger.reopen`).
    """
    ledger = Ledger(make_engine(site.database_url))
    catalogue = _catalogue_zone(site)
    with _zone(catalogue, "starting the process job"):
        job_id = ledger.start_job("process")
    summary = ProcessSummary(job_id=job_id)
    warned = library_warnings()
    executor = make_executor(workers or site.settings.workers)
    task = ProcessTask(site.root, pipeline_for(site))
    size = site.settings.ledger_batch_size
    try:
        summary.partials_removed = _remove_dead_partials(site.intake)
        for receipts in _batches(_unrecorded(site, ledger, summary.not_recovered), size):
            with _zone(catalogue, "recording intake files in the ledger"):
                verdicts, pending = ledger.receive(job_id, RECOVERED_SOURCE, receipts)
            summary.recovered += sum(v is ReceiptResult.NEW for v in verdicts)
            summary.outcomes.update(
                "rejected"
                for v, r in zip(verdicts, receipts, strict=True)
                if v is ReceiptResult.NEW and r.rejection is not None
            )
            _process(ledger, executor, task, job_id, pending, summary.outcomes,
                     summary.disk_full, catalogue)  # fmt: skip
        for batch in ledger.pending(size):
            with _zone(catalogue, "claiming objects to process"):
                claimed = ledger.reopen(job_id, batch)
            _process(ledger, executor, task, job_id, claimed, summary.outcomes,
                     summary.disk_full, catalogue)  # fmt: skip
        with _zone(catalogue, "marking dead jobs interrupted"):
            ledger.end_dead_jobs()
    except BaseException:
        summary.warnings = library_warnings() - warned
        _end_interrupted(ledger, job_id, summary.ledger_summary())
        raise
    finally:
        executor.close()
    summary.warnings = library_warnings() - warned
    with _zone(catalogue, "finishing the process job"):
        ledger.finish_job(job_id, summary.ledger_summary())
    summary.defaced = _deface_complete(site)
    return summary
