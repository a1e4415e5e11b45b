"""Folder import: walk paths lazily and hand each file's bytes to intake.

The walk is a generator over ``os.scandir`` (sorted per folder, so runs are repeatable), so
a tree of 100,000 files is never held in memory. Symbolic links to files are followed;
links to folders are not, so a link loop cannot trap the walk.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from dicomhaven.intake import IntakeStore, Receipt, receive_bytes

__all__ = ["FileResult", "IntakeTask", "count_files", "iter_files"]


def iter_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Every regular file under ``paths`` (files are yielded as they are)."""
    for path in paths:
        if path.is_dir():
            yield from _walk(path)
        else:
            yield path


def read_files(
    paths: Iterable[Path], progress: Callable[[int], None] | None = None
) -> Iterator[tuple[Path, bytes | str]]:
    """Each file under ``paths`` with its bytes, or why it could not be read (the error's
    type only: its text may quote a file name); ``progress`` is told of each file."""
    for path in iter_files(paths):
        if progress is not None:
            progress(1)
        try:
            yield path, path.read_bytes()
        except OSError as exc:
            yield path, f"could not read the file ({type(exc).__name__})"


def _walk(folder: Path) -> Iterator[Path]:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return
    subfolders = []
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            subfolders.append(Path(entry.path))
        elif entry.is_file(follow_symlinks=True):
            yield Path(entry.path)
    for sub in subfolders:
        yield from _walk(sub)


def count_files(paths: Iterable[Path]) -> int:
    """How many files ``iter_files`` will yield (for a progress bar's total)."""
    return sum(1 for _ in iter_files(paths))


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

    def __call__(self, path: Path) -> FileResult:
        try:
            data = path.read_bytes()
        except OSError as exc:
            return FileResult(str(path), None, f"could not read the file ({type(exc).__name__})")
        store = _store(self.intake_root, self.fsync)
        return FileResult(str(path), receive_bytes(data, store, self.site_key))


@functools.lru_cache(maxsize=8)
def _store(root: Path, fsync: bool) -> IntakeStore:
    """One store per worker process, so its cache of made folders lasts the whole import."""
    return IntakeStore(root, fsync=fsync)
