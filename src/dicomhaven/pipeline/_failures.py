"""When a stage raises: is it the object's content, or the world around it?

The answer decides the object's terminal status:

- **the content** (deterministic: the same bytes fail the same way on every retry): a
  required attribute missing, a structure nested too deep to read (RecursionError), a value
  that does not parse (ValueError and its kin), an error raised inside the DICOM library
  while it interprets the bytes. The object ends ``rejected`` with the reason; retrying
  could never help. Content a stage finds it cannot make safe (:class:`UnsafeContent`) is
  held (``quarantined``) instead, for review.
- **the environment** (a retry may succeed): a full disk, any other OSError, the database
  (OperationalError), memory. The object ends ``failed``, and ``dicomhaven process``
  retries it once the cause is fixed; a full disk is named as such, with the zone.
- anything else is taken for a fault of ours (a TypeError in our code, say): ``failed``,
  retryable after an upgrade, since rejecting would lose the object for our mistake.

Reasons are our words and the exception's type, never its text: that may quote a value.
"""

from __future__ import annotations

import errno
import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from pydicom.datadict import dictionary_description, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.tag import BaseTag

from dicomhaven.catalogue import ObjectStatus
from dicomhaven.errors import UnsafeContent

__all__ = [
    "DISK_FULL_PREFIX",
    "disk_full_zones",
    "failure_outcome",
    "full_zones",
    "is_disk_full",
]

#: Every reason of an object that failed on a full disk starts so (the summary counts them).
DISK_FULL_PREFIX = "disk full"
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
_SQLITE_FULL = 13  # SQLITE_FULL: "database or disk is full"
_PG_DISK_FULL = "53100"  # SQLSTATE disk_full
#: Raised by parsing a value or a structure that is not what the standard allows.
_CONTENT_ERRORS: tuple[type[BaseException], ...] = (
    RecursionError,
    ValueError,  # includes UnicodeDecodeError
    InvalidDicomError,
    struct.error,
    zlib.error,
    EOFError,
    OverflowError,
)
#: The site's zones, in the order a message lists them (see ``dicomhaven.site``).
_ZONES = ("intake", "vault", "quarantine", "store", "catalogue", "exports", "logs", "keys")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)  # SQLAlchemy's DBAPIError wraps the driver's
        if isinstance(orig, BaseException):
            yield orig
        current = current.__cause__ or current.__context__


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) says a write found no space: ENOSPC or EDQUOT,
    SQLite's SQLITE_FULL, PostgreSQL's disk_full."""
    for error in _chain(exc):
        if isinstance(error, OSError) and error.errno in _NO_SPACE:
            return True
        if getattr(error, "sqlite_errorcode", None) == _SQLITE_FULL:
            return True
        if getattr(error, "sqlstate", None) == _PG_DISK_FULL:
            return True
    return False


def full_zones(site_root: Path, exc: BaseException | None = None) -> list[str]:
    """The zones a write that found no space was most likely for: the zone of the file the
    error names, else the zones on the file system with the least space left (several when
    they share it)."""
    for error in _chain(exc) if exc is not None else ():
        filename = getattr(error, "filename", None)
        if isinstance(filename, str | os.PathLike):
            try:
                relative = Path(os.fspath(filename)).resolve().relative_to(site_root.resolve())
            except (ValueError, OSError):
                continue
            if relative.parts and relative.parts[0] in _ZONES:
                return [relative.parts[0]]
    free: dict[str, int] = {}
    for zone in _ZONES:
        try:
            info = os.statvfs(site_root / zone)
        except OSError:
            continue
        free[zone] = info.f_bavail * info.f_frsize
    if not free:
        return []
    least = min(free.values())
    return [zone for zone, space in free.items() if space == least]


def disk_full_zones(reason: str) -> list[str]:
    """The zones named by a disk-full reason made by :func:`failure_outcome` (else [])."""
    if not reason.startswith(DISK_FULL_PREFIX):
        return []
    named = reason.partition("zone ")[2].partition(" (")[0]
    return [z for z in named.replace(" and ", ", ").split(", ") if z in _ZONES]


def zone_list(zones: Sequence[str]) -> str:
    """``'quarantine'`` or ``'catalogue, intake and store'``, for a message."""
    if not zones:
        return "unknown"
    if len(zones) == 1:
        return zones[0]
    return f"{', '.join(zones[:-1])} and {zones[-1]}"


def _missing_attribute(exc: BaseException) -> str | None:
    """A reason if ``exc`` is pydicom saying a data set lacks an element (a standard name or
    a tag: never a value)."""
    if isinstance(exc, AttributeError) and isinstance(getattr(exc, "obj", None), Dataset):
        keyword = exc.name or ""
        tag = tag_for_keyword(keyword)
        if tag is not None:
            name = dictionary_description(tag)
            return f"required attribute {name} ({tag >> 16:04X},{tag & 0xFFFF:04X}) is missing"
    if isinstance(exc, KeyError) and exc.args and isinstance(exc.args[0], BaseTag):
        return f"required attribute {exc.args[0]} is missing"
    return None


def _raised_in_pydicom(exc: BaseException) -> bool:
    """Whether the innermost frame of ``exc`` is in pydicom: the library met something in
    the bytes it could not interpret."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return f"{os.sep}pydicom{os.sep}" in tb.tb_frame.f_code.co_filename


def failure_outcome(exc: Exception, stage: str, site_root: Path) -> tuple[ObjectStatus, str]:
    """The terminal status and reason of an object whose stage ``stage`` raised ``exc``."""
    kind = type(exc).__name__
    if is_disk_full(exc):
        zones = zone_list(full_zones(site_root, exc))
        return ObjectStatus.FAILED, (
            f"{DISK_FULL_PREFIX}: no space left in zone {zones} (stage '{stage}', {kind}); "
            "free space there, then run 'dicomhaven process'"
        )
    if isinstance(exc, UnsafeContent):
        return ObjectStatus.QUARANTINED, (
            f"held: stage '{stage}' found content it cannot make safe ({kind})"
        )
    missing = _missing_attribute(exc)
    if missing is not None:
        return ObjectStatus.REJECTED, f"stage '{stage}' cannot process the object: {missing}"
    if isinstance(exc, RecursionError):
        return ObjectStatus.REJECTED, (
            f"stage '{stage}' cannot process the object: its structure (sequences within "
            "sequences) is nested too deep to read (RecursionError)"
        )
    if isinstance(exc, _CONTENT_ERRORS) or (
        isinstance(exc, TypeError | KeyError | IndexError | AttributeError)
        and _raised_in_pydicom(exc)
    ):
        return ObjectStatus.REJECTED, (
            f"stage '{stage}' cannot process the object: a value or structure in it does "
            f"not parse ({kind})"
        )
    if isinstance(exc, OSError | MemoryError) or _is_database_error(exc):
        return ObjectStatus.FAILED, (
            f"stage '{stage}' failed with {kind} (the environment, not the object: fix "
            "the cause, then retry with 'dicomhaven process')"
        )
    return ObjectStatus.FAILED, (
        f"stage '{stage}' failed with {kind} (an internal error: report it with the site's "
        "log; 'dicomhaven process' retries it)"
    )


def _is_database_error(exc: BaseException) -> bool:
    from sqlalchemy.exc import OperationalError

    return isinstance(exc, OperationalError)
