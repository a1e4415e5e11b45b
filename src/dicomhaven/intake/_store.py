"""The intake zone on disk: identifiable originals, written atomically and never overwritten.

Layout (names are keyed hashes, never identifiers)::

    intake/dicom/ab/<object key>.dcm         readable DICOM, by keyed hash of SOP Instance UID
    intake/rejected/ab/<sha256>.bin          bytes that were rejected, kept so nothing is lost
    intake/conflicts/ab/<sha256>.dcm         a second, different object claiming a known UID

A write goes to a partial file in ``intake/.partial/``, is flushed, and is then *linked*
into place: linking fails if the name exists, so two workers receiving the same object cannot
clobber each other and a half-written file is never visible under its final name. The partial
file is written on a helper thread while the caller parses and hashes the same bytes (the
write and the hash release the GIL), since the final name is only known after parsing; this
hides most of the write's cost. The intake zone must therefore be one file system.

Folders are made 0700 and files 0600 whatever the process's umask: intake holds the
identifiable originals.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import os
import shutil
import weakref
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

__all__ = [
    "IntakeArea",
    "IntakeStore",
    "StagedBytes",
    "StoredFile",
    "dicom_object_key",
    "sha256_file",
]


class IntakeArea(StrEnum):
    DICOM = "dicom"
    REJECTED = "rejected"
    CONFLICTS = "conflicts"


_SUFFIX = {IntakeArea.DICOM: ".dcm", IntakeArea.REJECTED: ".bin", IntakeArea.CONFLICTS: ".dcm"}
_PARTIAL = ".partial"  # folder of partial files; a dot-name no reader takes for an area


def dicom_object_key(site_key: bytes, sop_instance_uid: str) -> str:
    """Keyed, stable name of a DICOM object: the same instance always gets the same key."""
    digest = hmac.new(site_key, b"sop-instance:" + sop_instance_uid.encode("ascii"), "sha256")
    return digest.hexdigest()


@dataclass(frozen=True)
class StoredFile:
    """Where bytes landed in intake; ``created`` is False when identical bytes were there."""

    relpath: str
    created: bool
    same_content: bool


@dataclass
class StagedBytes:
    """Received bytes on their way into intake: a partial file, written ahead or on demand,
    that ``IntakeStore.place`` links under a final name (see ``IntakeStore.stage``). A file
    staged from disk (``IntakeStore.stage_file``) is already written: ``data`` is empty."""

    data: bytes
    partial: Path
    writing: Future[None] | None = field(default=None, repr=False)


class IntakeStore:
    """Atomic, no-clobber writes into the intake zone."""

    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = root
        self.fsync = fsync
        self._counter = itertools.count()
        self._made: set[Path] = set()  # folders known to exist: mkdir is a costly syscall
        self._write_ahead = True
        self._pool: ThreadPoolExecutor | None = None

    def relpath(self, area: IntakeArea, name: str) -> str:
        # One level of 256 folders: a new folder per file would cost a mkdir each.
        return f"{area.value}/{name[:2]}/{name}{_SUFFIX[area]}"

    def prepare(self) -> None:
        """Create the 256 folders of the DICOM area up front (at site creation), so receiving
        never pays for a mkdir: on some file systems one costs as much as writing a file."""
        folders = [self.root / IntakeArea.DICOM.value / f"{i:02x}" for i in range(256)]
        for folder in [*folders, self.root / _PARTIAL]:
            _make_folder(folder)
            self._made.add(folder)

    def path(self, relpath: str) -> Path:
        return self.root / relpath

    def put(self, area: IntakeArea, name: str, data: bytes, sha256: str) -> StoredFile:
        """Write ``data`` under ``name`` unless a file is already there (see ``place``)."""
        with self.stage(data) as staged:
            return self.place(staged, area, name, sha256)

    @contextmanager
    def stage(self, data: bytes) -> Iterator[StagedBytes]:
        """Start storing ``data`` before its name is known; ``place`` it inside the block.

        The partial file is written on a helper thread while the caller parses and hashes,
        unless the last placement met an existing file: a re-import meets them in runs, and
        writing ahead would then only add a write that is thrown away. The partial file is
        removed when the block ends, whatever happened.
        """
        folder = self.root / _PARTIAL
        if folder not in self._made:
            _make_folder(folder)
            self._made.add(folder)
        staged = StagedBytes(data, folder / f"{os.getpid()}.{next(self._counter)}.part")
        if self._write_ahead:
            staged.writing = self._writer().submit(self._write, staged)
        try:
            yield staged
        finally:
            if staged.writing is not None:
                wait([staged.writing])  # never unlink under a write still running
            staged.partial.unlink(missing_ok=True)

    @contextmanager
    def stage_file(self, source: Path) -> Iterator[StagedBytes]:
        """Stage a file already on disk (an object received to a file as it arrived): it is
        linked into the partial folder (copied by the kernel when on another file system),
        flushed, and never read into memory. The partial file is removed when the block
        ends; ``source`` is left to its owner."""
        folder = self.root / _PARTIAL
        if folder not in self._made:
            _make_folder(folder)
            self._made.add(folder)
        partial = folder / f"{os.getpid()}.{next(self._counter)}.part"
        try:
            try:
                os.link(source, partial)
            except OSError:  # another file system (or links refused): a copy, 0600
                fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as out, source.open("rb") as handle:
                    shutil.copyfileobj(handle, out, 1 << 20)
            partial.chmod(0o600)  # a link shares its mode with the source: intake is 0600
            if self.fsync:
                fd = os.open(partial, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            done: Future[None] = Future()
            done.set_result(None)
            yield StagedBytes(b"", partial, done)
        finally:
            partial.unlink(missing_ok=True)

    def place(self, staged: StagedBytes, area: IntakeArea, name: str, sha256: str) -> StoredFile:
        """Link the staged bytes under ``name`` unless a file is already there.

        When one is, its content is compared (by SHA-256) so the caller can tell an idempotent
        re-receipt from a conflicting object.
        """
        relpath = self.relpath(area, name)
        target = self.root / relpath
        self._write_ahead = not target.exists()
        if not self._write_ahead:
            return StoredFile(relpath, created=False, same_content=sha256_file(target) == sha256)
        if target.parent not in self._made:
            _make_folder(target.parent)
            self._made.add(target.parent)
        if staged.writing is None:  # not written ahead: write now
            staged.writing = self._writer().submit(self._write, staged)
        staged.writing.result()  # raises what the write raised (a full disk, say)
        try:
            os.link(staged.partial, target)
        except FileExistsError:
            return StoredFile(relpath, created=False, same_content=sha256_file(target) == sha256)
        return StoredFile(relpath, created=True, same_content=True)

    def _write(self, staged: StagedBytes) -> None:
        # A bare descriptor, not a buffered file object: the bytes go down in one write call,
        # so a buffer would only add its own set-up cost to every file.
        fd = os.open(staged.partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(staged.data)
            while view:  # os.write may write less than asked (a signal): go on until done
                view = view[os.write(fd, view) :]
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)

    def _writer(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="intake-write")
            # The thread ends with the store, not only at interpreter exit.
            weakref.finalize(self, self._pool.shutdown, wait=False)
        return self._pool

    def iter_files(self) -> list[str]:
        """Relative paths of every stored file (for the ledger's orphan check)."""
        found: list[str] = []
        for area in IntakeArea:
            base = self.root / area.value
            if base.is_dir():
                found.extend(str(p.relative_to(self.root)) for p in base.rglob("*") if p.is_file())
        return found


def _make_folder(folder: Path) -> None:
    """``mkdir -p`` with every folder made 0700 (``Path.mkdir`` gives missing parents the
    umask's default mode instead)."""
    missing = []
    while not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir(mode=0o700, exist_ok=True)


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, read in blocks so large images do not fill memory."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
