"""The errors a service raises, each with a stable code, and the code of every other error.

::

    DicomHavenError
    └── ServiceError            code, message: what a face shows (the API as its JSON error)
        ├── Unauthenticated     not-authenticated  (also a NotAuthenticated)  CLI exit 1
        ├── Forbidden           forbidden          (also an AccessDenied)     CLI exit 1
        ├── InvalidReason       invalid-reason     an audited reason refused  CLI exit 1
        ├── Conflict            conflict           the site's state forbids it CLI exit 1
        ├── NothingMatched      nothing-matched    a selection matched nothing CLI exit 1
        ├── InvalidRequest      invalid-request    (also a ConfigError)       CLI exit 2
        └── NotFound            not-found          (also a ConfigError)       CLI exit 2

Each also derives from the class the command line already maps to its exit status, so the
faces keep their exit codes. Errors the core raises on its own way through a service (a
:class:`~dicomhaven.errors.SiteError`, a :class:`~dicomhaven.errors.DiskFull`) pass through
unchanged; :func:`problem` gives any of them a code. No message holds a patient identifier.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from dicomhaven.access import AccessDenied, NotAuthenticated
from dicomhaven.errors import (
    ConfigError,
    DicomHavenError,
    DiskFull,
    InvalidIdentifier,
    LedgerError,
    PullError,
    SiteError,
    UnsafeContent,
)

__all__ = [
    "Conflict",
    "Forbidden",
    "InvalidReason",
    "InvalidRequest",
    "NotFound",
    "NothingMatched",
    "Problem",
    "ServiceError",
    "Unauthenticated",
    "problem",
]


class ServiceError(DicomHavenError):
    """A service refused or failed, with a code a program can act on."""

    code: ClassVar[str] = "failed"

    @property
    def message(self) -> str:
        return str(self)


class Unauthenticated(ServiceError, NotAuthenticated):
    """No user, a token that matches no active user, or the local operator on an action
    that needs a named user. The attempt is audited."""

    code = "not-authenticated"


class Forbidden(ServiceError, AccessDenied):
    """The user's role may not do this action. The refusal is audited."""

    code = "forbidden"


class InvalidReason(ServiceError):
    """A reason that would go into the audit log is too short or holds an NHS or CHI
    number; nothing was decided or written."""

    code = "invalid-reason"


class Conflict(ServiceError):
    """The request is well formed but the site's state forbids it now (a user exists
    already, a patient has not withdrawn)."""

    code = "conflict"


class NothingMatched(ServiceError):
    """A selection (devices by manufacturer, say) matched nothing: nothing was changed."""

    code = "nothing-matched"


class InvalidRequest(ServiceError, ConfigError):
    """An argument is malformed or two of them contradict each other."""

    code = "invalid-request"


class NotFound(ServiceError, ConfigError):
    """The thing named (a template, a review group, a user) does not exist."""

    code = "not-found"


@dataclass(frozen=True)
class Problem:
    """An error as every face shows it: the API's ``{"error": {"code", "message"}}``."""

    code: str
    message: str

    def as_dict(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


#: Codes of the core's own errors, most specific class first.
_CODES: tuple[tuple[type[DicomHavenError], str], ...] = (
    (ServiceError, ""),  # its own code
    (NotAuthenticated, Unauthenticated.code),
    (AccessDenied, Forbidden.code),
    (DiskFull, "disk-full"),
    (SiteError, "site-unavailable"),
    (ConfigError, InvalidRequest.code),
    (InvalidIdentifier, "invalid-identifier"),
    (LedgerError, "ledger-refused"),
    (PullError, "pull-failed"),
    (UnsafeContent, "unsafe-content"),
)


def problem(error: DicomHavenError) -> Problem:
    """The code and message of any dicomhaven error (a service's or the core's)."""
    for kind, code in _CODES:
        if isinstance(error, kind):
            return Problem(code or getattr(error, "code", ServiceError.code), str(error))
    return Problem(ServiceError.code, str(error))
