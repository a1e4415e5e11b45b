"""The service layer: every operation a face offers, with authorisation decided in it.

The command line (and the REST API and web pages next) parses its input, names the caller
(:class:`User` by token, or the :class:`LocalOperator` on the server), calls a function of
one of these modules and renders its result; no face decides who may do what. Each module
is one command group: ``users``, ``reidentify``, ``audit``, ``consent``, ``vault``,
``templates``, ``clinical``, ``patients``, ``devices``, ``review``, ``ledger``. Every public
function of them is declared with the action it needs (see :mod:`dicomhaven.services._core`),
takes ``(caller, site, ...)`` with plain arguments, returns a dataclass, a dict or a list,
and raises :class:`ServiceError` (a code and a message) rather than printing or exiting.
"""

from typing import TYPE_CHECKING

from dicomhaven._lazy import lazy_exports

if TYPE_CHECKING:  # the same names, imported on first use (see dicomhaven._lazy)
    from dicomhaven.services._core import (
        Caller,
        Grant,
        LocalOperator,
        Service,
        User,
        registered,
        service,
        services,
    )
    from dicomhaven.services._errors import (
        Conflict,
        Forbidden,
        InvalidReason,
        InvalidRequest,
        NotFound,
        NothingMatched,
        Problem,
        ServiceError,
        Unauthenticated,
        problem,
    )

__all__ = [
    "Caller",
    "Conflict",
    "Forbidden",
    "Grant",
    "InvalidReason",
    "InvalidRequest",
    "LocalOperator",
    "NotFound",
    "NothingMatched",
    "Problem",
    "Service",
    "ServiceError",
    "Unauthenticated",
    "User",
    "problem",
    "registered",
    "service",
    "services",
]

#: The private module that defines each public name.
_EXPORTS = {
    **dict.fromkeys(
        ("Caller", "Grant", "LocalOperator", "Service", "User", "registered", "service"),
        "_core",
    ),
    "services": "_core",
    **dict.fromkeys(
        ("Conflict", "Forbidden", "InvalidReason", "InvalidRequest", "NotFound"), "_errors"
    ),
    **dict.fromkeys(
        ("NothingMatched", "Problem", "ServiceError", "Unauthenticated", "problem"), "_errors"
    ),
}

__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
