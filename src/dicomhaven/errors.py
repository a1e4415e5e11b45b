"""The one exception hierarchy of dicomhaven.

::

    DicomHavenError
    ├── ConfigError            settings or a config file is wrong (names the file and key)
    ├── SiteError              the site folder is missing, incomplete or not initialised
    ├── InvalidIdentifier      a patient identifier failed validation (never carries the value)
    ├── LedgerError            the ledger refused a transition or found an inconsistency
    ├── DiskFull               a write found no space left (names the zone, never a file)
    ├── PullError              a pull cannot go on (source refused us, job unknown or busy)
    └── UnsafeContent          an object holds an identifier that cannot be removed from it
        ├── RedactionError     pixels that cannot be blanked and written back (pixels)
        └── DefacingError      a volume that cannot be defaced safely (pixels)

Messages say what was expected, what was received and how to fix it, and never contain a
patient identifier. Libraries raise; only the CLI turns errors into exit codes.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DicomHavenError",
    "DiskFull",
    "InvalidIdentifier",
    "LedgerError",
    "PullError",
    "SiteError",
    "UnsafeContent",
]


class DicomHavenError(Exception):
    """Base of every error dicomhaven raises on purpose."""


class ConfigError(DicomHavenError):
    """A setting or configuration file is invalid."""


class SiteError(DicomHavenError):
    """The site folder is missing or was not initialised with ``dicomhaven init``."""


class InvalidIdentifier(DicomHavenError):
    """A patient identifier is malformed; the message says why but never repeats the value."""


class LedgerError(DicomHavenError):
    """A ledger transition is not allowed, or the ledger is inconsistent."""


class DiskFull(DicomHavenError):
    """A write found no space left (ENOSPC, a quota, SQLite's "database or disk is full").

    ``zones`` are the site's zones it was for; the command line exits 74 (EX_IOERR).
    """

    def __init__(self, zones: list[str], doing: str) -> None:
        self.zones = zones
        where = " and ".join(zones) if zones else "unknown (a file system the command writes to)"
        super().__init__(
            f"disk full: no space left in zone {where} while {doing}; free space there, then "
            "run 'dicomhaven process': it records and finishes everything received so far"
        )


class PullError(DicomHavenError):
    """A pull cannot go on: the source refused or aborted us, a job is unknown or run by
    another process, or a resumed job's criteria differ from the ones given."""


class UnsafeContent(DicomHavenError):
    """An object holds an identifier in an attribute that its IOD requires and that cannot be
    cleaned (text inside binary data, say): it must be held, not released. The message names
    the attribute, never the value."""
