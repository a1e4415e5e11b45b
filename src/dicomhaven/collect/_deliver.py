"""Storing what a pull fetched itself (C-GET, WADO-RS): the receiver's own path, without it.

Each object goes into intake (``receive_bytes``: atomic, never overwriting), then into the
ledger (a batch per transaction), and only then counts as stored; the pipeline works on it
in a background process, as for received objects. The ledger job (kind ``pull-get`` or
``pull-dicomweb``) is opened on the first object and finished by :meth:`Delivery.close`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

from dicomhaven.catalogue import make_engine
from dicomhaven.collect._scp import _PipelineWorker
from dicomhaven.intake import IntakeStore, Receipt, receive_bytes
from dicomhaven.intake._receive import receive_file
from dicomhaven.ledger import Ledger

if TYPE_CHECKING:
    from dicomhaven.site import Site

__all__ = ["Delivering", "Delivery"]


class Delivery:
    """Where a pulling process puts the objects it fetched itself. Thread-safe."""

    def __init__(self, site: Site, kind: str, source: str, *, drain_seconds: float) -> None:
        self._site = site
        self._kind = kind
        self._source = source[:32]
        self._drain_seconds = drain_seconds
        self._ledger = Ledger(make_engine(site.database_url))
        self._store = IntakeStore(site.intake, fsync=site.settings.intake_fsync)
        self._site_key = site.site_key()
        self._job_id: int | None = None
        self._worker: _PipelineWorker | None = None
        self._lock = threading.Lock()
        self.stored = 0

    def receipt(self, data: bytes | Path) -> Receipt:
        """Put one object's Part-10 bytes, or the file holding them, in intake (not yet in
        the ledger)."""
        if isinstance(data, Path):
            return receive_file(data, self._store, self._site_key)
        return receive_bytes(data, self._store, self._site_key)

    def record(self, receipts: Sequence[Receipt]) -> None:
        """Enter receipts in the ledger in one transaction and queue them for the pipeline."""
        if not receipts:
            return
        with self._lock:
            if self._job_id is None or self._worker is None:
                self._job_id = self._ledger.start_job(self._kind)
                self._worker = _PipelineWorker(self._site, self._ledger, self._job_id)
            job_id, worker = self._job_id, self._worker
        _, pending = self._ledger.receive(job_id, self._source, list(receipts))
        worker.put(pending)
        with self._lock:
            self.stored += len(receipts)

    def close(self, *, interrupted: bool = False) -> None:
        """Let the pipeline work for ``drain_seconds`` (the rest end failed, retryable), then
        finish the ledger job."""
        with self._lock:
            worker, job_id, self._worker = self._worker, self._job_id, None
        if worker is not None and job_id is not None:
            worker.close(self._drain_seconds)
            self._ledger.finish_job(
                job_id, {"stored": self.stored, "source": self._kind}, interrupted=interrupted
            )


class Delivering:
    """A source that stores what it fetches through a :class:`Delivery`: a context manager
    whose end finishes the ledger job of what it stored."""

    _delivery: Delivery

    @property
    def stored(self) -> int:
        return self._delivery.stored

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._delivery.close(interrupted=kind is not None)
