"""Running stages over objects, and the executors that run work inline or in processes.

A pool's workers die with the process that made them: each holds the read end of a pipe
whose only write end the parent holds, and a worker thread ends the worker when the pipe
reads end-of-file, which the kernel makes happen when the parent exits however it exits
(``kill -9`` included). Without it, workers of a killed import lived on, ~0.5 GB each.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import sys
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from itertools import islice
from multiprocessing import forkserver
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Protocol, TypeVar

from dicomhaven._logging import add_library_warnings, install_warning_route, library_warnings
from dicomhaven.catalogue import ObjectStatus
from dicomhaven.pipeline._failures import failure_outcome
from dicomhaven.pipeline._stage import Decision, Outcome, PipelineObject, Stage, StageContext

__all__ = [
    "NO_RELEASE_REASON",
    "WORKER_UMASK",
    "Executor",
    "InlineExecutor",
    "Pipeline",
    "ProcessExecutor",
    "ProcessTask",
    "WorkerLogging",
    "make_executor",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

NO_RELEASE_REASON = (
    "held: no stage released it (nothing is released before de-identification and the "
    "residual-PII scan pass)"
)


@dataclass(frozen=True)
class Pipeline:
    """An ordered list of stages. An object no stage decides on ends quarantined, because
    nothing may be released unless a stage has positively released it."""

    stages: Sequence[Stage] = ()

    def run(self, obj: PipelineObject, ctx: StageContext) -> Outcome:
        for stage in self.stages:
            try:
                outcome = stage(obj, ctx)
            except Exception as exc:
                # The exception text may quote a value from the file: keep only its type.
                status, reason = failure_outcome(exc, stage.name, ctx.site_root)
                log.warning(
                    "stage failed with %s",
                    type(exc).__name__,
                    extra={
                        "stage": stage.name,
                        "object": obj.object_key,
                        "error": type(exc).__name__,
                        "status": status.value,
                    },
                )
                return Outcome(status, reason, stage.name)
            if outcome is not None:
                return outcome
        return Outcome(ObjectStatus.QUARANTINED, NO_RELEASE_REASON, "gate")


class Executor(Protocol):
    """Where work runs. Results come back in the order of the items."""

    workers: int

    def imap(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]: ...

    def close(self) -> None: ...


class InlineExecutor:
    """Runs everything in the calling process: the default, and the easiest to debug."""

    workers = 1

    def imap(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        for item in items:
            yield fn(item)

    def close(self) -> None:
        return None


class ProcessExecutor:
    """A local process pool fed through a bounded window, so memory stays flat however many
    items the iterable yields (a folder of 100,000 files is never listed up front).

    Items travel in chunks: one round trip to a worker per chunk, not per item, since the
    cost of a round trip is close to the cost of receiving a small file.
    """

    def __init__(self, workers: int, chunk_size: int = 16, chunks_per_worker: int = 4) -> None:
        self.workers = workers
        self._chunk_size = chunk_size
        self._window = workers * chunks_per_worker
        # forkserver: workers start clean, not as forks of a parent that holds threads,
        # open database connections or locks.
        context = multiprocessing.get_context("forkserver")
        # Every worker re-runs the main script, and CPython's forkserver never preloads
        # ``__main__`` as it means to (it looks for the key 'main_path' where the preparation
        # data says 'init_main_from_path'), so without a preload each worker of each pool
        # imports pydicom, NumPy and SQLAlchemy afresh: ~0.6 s of CPU, more than a whole
        # small import. The forkserver imports them once instead, and workers fork warm.
        # It only takes effect when the forkserver starts (once per process).
        context.set_forkserver_preload(_loaded_dicomhaven_modules())
        # Started now, not at the first submit: its socket is made in the temporary folder
        # of that moment, which code receiving a large object may have pointed elsewhere.
        forkserver.ensure_running()
        # The lifeline: workers get the read end; the write end stays here, and closes
        # when this process ends (see the module docstring).
        self._lifeline, self._lifeline_writer = context.Pipe(duplex=False)
        self._pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_start_worker,
            initargs=(WorkerLogging.of_this_process(), self._lifeline),
        )

    def imap(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        pending: deque[Future[tuple[list[R], Counter[str]]]] = deque()
        iterator = iter(items)
        while chunk := list(islice(iterator, self._chunk_size)):
            pending.append(self._pool.submit(_apply, fn, chunk))
            if len(pending) >= self._window:
                yield from _results(pending.popleft())
        while pending:
            yield from _results(pending.popleft())

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._lifeline_writer.close()
        self._lifeline.close()


#: Workers write owner-only files (mode 0600, folders 0700) whatever their parent's umask:
#: they write held copies, renders and intake files. Kept equal to ``dicomhaven._modes.SITE_UMASK``.
WORKER_UMASK = 0o077


@dataclass(frozen=True)
class WorkerLogging:
    """The parent's log files for the ``dicomhaven`` logger (path, level, formatter), so
    that a worker's records (a stage that failed, say) reach the site's log as well."""

    level: int
    files: tuple[tuple[str, logging.Formatter | None], ...]

    @classmethod
    def of_this_process(cls) -> WorkerLogging:
        logger = logging.getLogger("dicomhaven")
        files = tuple(
            (handler.baseFilename, handler.formatter)
            for handler in logger.handlers
            if isinstance(handler, logging.FileHandler)
        )
        return cls(logger.level, files)

    def apply(self) -> None:
        logger = logging.getLogger("dicomhaven")
        for old in list(logger.handlers):
            logger.removeHandler(old)
            old.close()
        for path, formatter in self.files:
            # Appends of whole lines by several processes to one file do not interleave.
            handler = logging.FileHandler(path, encoding="utf-8")
            handler.setFormatter(formatter)
            logger.addHandler(handler)
        logger.setLevel(self.level)
        logging.getLogger("pydicom").propagate = False  # its messages quote values


def _start_worker(logs: WorkerLogging, lifeline: Connection) -> None:
    """A pool worker's start: owner-only files, the parent's log, library warnings routed
    into it (never onto the terminal: they quote values), and death with the parent."""
    os.umask(WORKER_UMASK)
    logs.apply()
    install_warning_route()
    threading.Thread(
        target=_die_with_parent, args=(lifeline,), name="lifeline", daemon=True
    ).start()


def _die_with_parent(lifeline: Connection) -> None:
    """Block until the parent's end of the lifeline closes, then end this worker at once:
    its work is for a parent that cannot take the result (what it left half-done, the
    ledger finds and ``dicomhaven process`` finishes)."""
    with contextlib.suppress(EOFError, OSError):
        lifeline.recv_bytes()
    os._exit(70)  # EX_SOFTWARE: no clean-up may run in a process whose parent is gone


def _loaded_dicomhaven_modules() -> list[str]:
    """dicomhaven's modules this process has imported: what the main script and the work
    sent to workers need (and, through them, pydicom and SQLAlchemy), whatever the face."""
    return sorted(name for name in sys.modules if name.partition(".")[0] == "dicomhaven")


def _apply(fn: Callable[[T], R], chunk: list[T]) -> tuple[list[R], Counter[str]]:
    """Run ``fn`` over a chunk in a worker; also return the library warnings it met, for the
    parent's counts (a worker's own counts die with it)."""
    before = library_warnings()
    results = [fn(item) for item in chunk]
    return results, library_warnings() - before


def _results(future: Future[tuple[list[R], Counter[str]]]) -> list[R]:
    results, warned = future.result()
    add_library_warnings(warned)
    return results


def make_executor(workers: int) -> Executor:
    """One worker runs inline; more use a local process pool."""
    if workers < 1:
        raise ValueError("workers must be at least 1")
    return InlineExecutor() if workers == 1 else ProcessExecutor(workers)


@dataclass(frozen=True)
class ProcessTask:
    """Runs the site's pipeline on one object; picklable, so it runs in any worker."""

    site_root: Path
    pipeline: Pipeline

    def __call__(self, item: tuple[int, str, str]) -> Decision:
        object_id, object_key, intake_path = item
        obj = PipelineObject(object_id, object_key, self.site_root / "intake" / intake_path)
        outcome = self.pipeline.run(obj, StageContext(self.site_root))
        return Decision(object_id, outcome, obj.pseudonym, obj.profile_sha256)
