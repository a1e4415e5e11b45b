"""Folder import: walk paths lazily and hand each file's bytes to intake.

The walk is a generator over ``os.scandir`` (sorted per folder, so runs are repeatable), so
a tree of 100,000 files is never held in memory. Symbolic links to files are followed;
links to folders are not, so a link loop cannot trap the walk.

Nothing is skipped silently: every entry that is not a readable regular file (a link loop,
a dangling link, a link to a folder, a FIFO, a socket, a device, a folder that cannot be
listed, a file that cannot be opened) comes out of the walk as :class:`Unreadable` with the
reason, for the summary and an exit status of 1. Files are opened without blocking and
checked to be regular before a byte is read, so a FIFO never hangs ``import``, ``deid``,
``redact`` or ``scan``.
"""

from __future__ import annotations

import errno
import functools
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # intake loads pydicom and the catalogue: only a run that receives needs it
    from dicomhaven.intake import IntakeStore, Receipt

__all__ = [
    "FileResult",
    "IntakeTask",
    "NotARegularFile",
    "Unreadable",
    "count_files",
    "describe_error",
    "iter_entries",
    "iter_files",
    "read_file",
    "read_files",
]


@dataclass(frozen=True)
class Unreadable:
    """An entry of the walk that is not a file whose bytes can be read, and why (our words
    and the error's type, never its text: that may quote a file name)."""

    path: Path
    reason: str


Entry = Path | Unreadable


class NotARegularFile(OSError):
    """The path names a FIFO, socket, device or folder, not a file of bytes."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def describe_error(exc: OSError, path: Path) -> str:
    """Why ``path`` could not be read, in our words plus the error's type."""
    kind = type(exc).__name__
    if isinstance(exc, NotARegularFile):
        return f"{exc.args[0]}, not a regular file: not read"
    if exc.errno == errno.ELOOP:
        return f"symbolic link loop ({kind})"
    if isinstance(exc, FileNotFoundError) and path.is_symlink():
        return f"dangling symbolic link ({kind})"
    if isinstance(exc, PermissionError):
        return f"no permission to read it ({kind})"
    return f"could not read the file ({kind})"


def read_file(path: Path) -> bytes:
    """The bytes of a regular file. Opened without blocking and checked with ``fstat``
    before reading, so a FIFO or device raises :class:`NotARegularFile` at once (even one
    put in place of a file after the walk saw it)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotARegularFile(_kind(info.st_mode))
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read()
    finally:
        os.close(fd)


def _classify(path: Path) -> Entry | None:
    """A path the user named: a file to read, a folder to walk (None), or why neither."""
    try:
        info = path.stat()  # a named link is followed: the user chose it
    except OSError as exc:
        return Unreadable(path, describe_error(exc, path))
    if stat.S_ISDIR(info.st_mode):
        return None
    if stat.S_ISREG(info.st_mode):
        return path
    return Unreadable(path, f"{_kind(info.st_mode)}, not a regular file: not read")


def iter_entries(paths: Iterable[Path]) -> Iterator[Entry]:
    """Every regular file under ``paths``, and an :class:`Unreadable` for everything else
    met on the way (named paths are followed if they are links; links inside folders are
    followed to files only)."""
    for path in paths:
        entry = _classify(path)
        if entry is None:
            yield from _walk(path)
        else:
            yield entry


def iter_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Only the regular files of :func:`iter_entries`; callers that must account for
    every entry use that instead."""
    for entry in iter_entries(paths):
        if isinstance(entry, Path):
            yield entry


def read_files(
    paths: Iterable[Path], progress: Callable[[int], None] | None = None
) -> Iterator[tuple[Path, bytes | str]]:
    """Each entry under ``paths`` with its bytes, or why it could not be read (our words and
    the error's type only: its text may quote a file name); ``progress`` is told of each."""
    for entry in iter_entries(paths):
        if progress is not None:
            progress(1)
        if isinstance(entry, Unreadable):
            yield entry.path, entry.reason
            continue
        try:
            yield entry, read_file(entry)
        except OSError as exc:
            yield entry, describe_error(exc, entry)


def _link_target(path: Path) -> Entry:
    """A link met inside a folder: the file it names, or why it is not read."""
    try:
        info = path.stat()
    except OSError as exc:
        return Unreadable(path, describe_error(exc, path))
    if stat.S_ISREG(info.st_mode):
        return path
    if stat.S_ISDIR(info.st_mode):
        return Unreadable(path, "symbolic link to a folder: not followed (name the folder)")
    return Unreadable(path, f"symbolic link to {_kind(info.st_mode)}: not read")


def _walk(folder: Path) -> Iterator[Entry]:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        kind = type(exc).__name__
        why = (
            "no permission to list it" if isinstance(exc, PermissionError) else "could not list it"
        )
        yield Unreadable(folder, f"folder not read: {why} ({kind})")
        return
    subfolders = []
    for entry in entries:
        path = Path(entry.path)
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError as exc:
            yield Unreadable(path, describe_error(exc, path))
            continue
        if stat.S_ISDIR(info.st_mode):
            subfolders.append(path)
        elif stat.S_ISREG(info.st_mode):
            yield path
        elif stat.S_ISLNK(info.st_mode):
            yield _link_target(path)
        else:
            yield Unreadable(path, f"{_kind(info.st_mode)}, not a regular file: not read")
    for sub in subfolders:
        yield from _walk(sub)


def count_files(paths: Iterable[Path]) -> int:
    """How many entries ``iter_entries`` will yield (for a progress bar's total)."""
    return sum(1 for _ in iter_entries(paths))


@dataclass(frozen=True)
class FileResult:
    """One file's fate at intake: a receipt, or why it could not even be read."""

    path: str
    receipt: Receipt | None
    unreadable: str | None = None


@dataclass(frozen=True)
class IntakeTask:
    """Reads one file and receives it into intake; picklable, so it runs in any worker."""

    intake_root: Path
    site_key: bytes
    fsync: bool

    def __call__(self, entry: Path | Unreadable) -> FileResult:
        if isinstance(entry, Unreadable):
            return FileResult(str(entry.path), None, entry.reason)
        try:
            data = read_file(entry)
        except OSError as exc:
            return FileResult(str(entry), None, describe_error(exc, entry))
        from dicomhaven.intake import receive_bytes

        path = entry
        store = _store(self.intake_root, self.fsync)
        return FileResult(str(path), receive_bytes(data, store, self.site_key))


@functools.lru_cache(maxsize=8)
def _store(root: Path, fsync: bool) -> IntakeStore:
    """One store per worker process, so its cache of made folders lasts the whole import."""
    from dicomhaven.intake import IntakeStore

    return IntakeStore(root, fsync=fsync)
