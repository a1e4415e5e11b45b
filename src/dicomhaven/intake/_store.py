"""The intake zone on disk: identifiable originals, written atomically and never overwritten.

Layout (names are keyed hashes, never identifiers)::

    intake/dicom/ab/<object key>.dcm         readable DICOM, by keyed hash of SOP Instance UID
    intake/rejected/ab/<sha256>.bin          bytes that were rejected, kept so nothing is lost
    intake/conflicts/ab/<sha256>.dcm         a second, different object claiming a known UID

A write goes to a temporary file, is flushed, and is then *linked* into place: linking fails
if the name exists, so two workers receiving the same object cannot clobber each other and
a half-written file is never visible under its final name.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

__all__ = ["IntakeArea", "IntakeStore", "StoredFile", "dicom_object_key", "sha256_file"]


class IntakeArea(StrEnum):
    DICOM = "dicom"
    REJECTED = "rejected"
    CONFLICTS = "conflicts"


_SUFFIX = {IntakeArea.DICOM: ".dcm", IntakeArea.REJECTED: ".bin", IntakeArea.CONFLICTS: ".dcm"}


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


class IntakeStore:
    """Atomic, no-clobber writes into the intake zone."""

    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = root
        self.fsync = fsync
        self._counter = itertools.count()
        self._made: set[Path] = set()  # folders known to exist: mkdir is a costly syscall

    def relpath(self, area: IntakeArea, name: str) -> str:
        # One level of 256 folders: a new folder per file would cost a mkdir each.
        return f"{area.value}/{name[:2]}/{name}{_SUFFIX[area]}"

    def prepare(self) -> None:
        """Create the 256 folders of the DICOM area up front (at site creation), so receiving
        never pays for a mkdir: on some file systems one costs as much as writing a file."""
        for i in range(256):
            folder = self.root / IntakeArea.DICOM.value / f"{i:02x}"
            folder.mkdir(parents=True, exist_ok=True)
            self._made.add(folder)

    def path(self, relpath: str) -> Path:
        return self.root / relpath

    def put(self, area: IntakeArea, name: str, data: bytes, sha256: str) -> StoredFile:
        """Write ``data`` under ``name`` unless a file is already there.

        When one is, its content is compared (by SHA-256) so the caller can tell an idempotent
        re-receipt from a conflicting object.
        """
        relpath = self.relpath(area, name)
        target = self.root / relpath
        if target.exists():
            return StoredFile(relpath, created=False, same_content=sha256_file(target) == sha256)
        if target.parent not in self._made:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._made.add(target.parent)
        # The partial file sits beside its target (same folder, so the link is cheap) under a
        # dot-name that no reader takes for an object.
        partial = target.parent / f".{name}.{os.getpid()}.{next(self._counter)}.part"
        try:
            with partial.open("xb") as handle:
                handle.write(data)
                if self.fsync:
                    handle.flush()
                    os.fsync(handle.fileno())
            try:
                os.link(partial, target)
            except FileExistsError:
                return StoredFile(
                    relpath, created=False, same_content=sha256_file(target) == sha256
                )
        finally:
            partial.unlink(missing_ok=True)
        return StoredFile(relpath, created=True, same_content=True)

    def iter_files(self) -> list[str]:
        """Relative paths of every stored file (for the ledger's orphan check)."""
        found: list[str] = []
        for area in IntakeArea:
            base = self.root / area.value
            if base.is_dir():
                found.extend(str(p.relative_to(self.root)) for p in base.rglob("*") if p.is_file())
        return found


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, read in blocks so large images do not fill memory."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
