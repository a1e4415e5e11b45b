"""The import job: files → intake → ledger (received) → pipeline → ledger (decided).

This is the core that every face calls (the CLI today; the DICOM receiver and pulls later).
Work is done in batches: each batch is received into the ledger in one transaction before
any of it is processed, so the ledger always knows about an object before a stage touches
it, and an interrupted run leaves objects in flight that ``process_pending`` finishes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import TypeVar

from dicomhaven.catalogue import make_engine
from dicomhaven.collect import FileResult, IntakeTask, iter_entries
from dicomhaven.ledger import Ledger, Pending, ReceiptResult
from dicomhaven.pipeline import Executor, Pipeline, ProcessTask, make_executor
from dicomhaven.site import Site

__all__ = ["ImportSummary", "Progress", "import_paths", "pipeline_for", "process_pending"]

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
        }

    def ledger_summary(self) -> dict[str, object]:
        """The summary kept in the jobs table: counts only, no paths."""
        return {
            "files": self.files,
            "bytes": self.bytes,
            "receipts": dict(self.receipts),
            "outcomes": dict(self.outcomes),
            "unreadable": len(self.unreadable),
        }


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
            HeaderStage(profiles, pixels_follow=True, gated=True),
            PixelStage(gated=True),
            ReleaseGate(),
        )
    )


def _batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _process(
    ledger: Ledger,
    executor: Executor,
    task: ProcessTask,
    job_id: int,
    pending: Sequence[Pending],
    outcomes: Counter[str],
) -> None:
    if not pending:
        return
    items = ((p.object_id, p.object_key, p.intake_path) for p in pending)
    decided = list(executor.imap(task, items))
    ledger.settle(job_id, decided)
    outcomes.update(d.outcome.status.value for d in decided)


def import_paths(
    site: Site,
    paths: Sequence[Path],
    *,
    workers: int | None = None,
    source: str = "folder",
    progress: Progress | None = None,
) -> ImportSummary:
    """Import every file under ``paths`` into the site; never raises on bad file content."""
    ledger = Ledger(make_engine(site.database_url))
    job_id = ledger.start_job("import")
    summary = ImportSummary(job_id=job_id)
    executor = make_executor(workers or site.settings.workers)
    intake = IntakeTask(site.intake, site.site_key(), site.settings.intake_fsync)
    process = ProcessTask(site.root, pipeline_for(site))
    try:
        results: Iterator[FileResult] = executor.imap(intake, iter_entries(paths))
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
            verdicts, pending = ledger.receive(job_id, source, receipts)
            summary.receipts.update(v.value for v in verdicts)
            summary.outcomes.update(
                "rejected"
                for v, r in zip(verdicts, receipts, strict=True)
                if v is ReceiptResult.NEW and r.rejection is not None
            )
            _process(ledger, executor, process, job_id, pending, summary.outcomes)
            if progress is not None:
                progress(len(batch), sum(r.size for r in receipts))
    except BaseException:
        summary.interrupted = True
        ledger.finish_job(job_id, summary.ledger_summary(), interrupted=True)
        raise
    finally:
        executor.close()
    ledger.finish_job(job_id, summary.ledger_summary())
    return summary


def process_pending(site: Site, *, workers: int | None = None) -> Counter[str]:
    """Finish objects an interrupted job left in flight, and retry failed ones."""
    ledger = Ledger(make_engine(site.database_url))
    job_id = ledger.start_job("process")
    outcomes: Counter[str] = Counter()
    executor = make_executor(workers or site.settings.workers)
    task = ProcessTask(site.root, pipeline_for(site))
    try:
        for batch in ledger.pending(site.settings.ledger_batch_size):
            ledger.reopen(job_id, batch)
            _process(ledger, executor, task, job_id, batch, outcomes)
    except BaseException:
        ledger.finish_job(job_id, dict(outcomes), interrupted=True)
        raise
    finally:
        executor.close()
    ledger.finish_job(job_id, dict(outcomes))
    return outcomes
