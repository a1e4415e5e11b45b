"""The one gate of every service function: who acts, whether they may, and the audit entry.

A face (the command line; the REST API and the web pages next) parses its input, says who
is calling and calls a service function. Each function is declared with the
:class:`~dicomhaven.access.Action` it needs (``@service(Action.REIDENTIFY, ...)``), and
before its body runs the declaration

1. checks the reason that will be audited (collapsed whitespace; refused when shorter than
   the declared minimum or when it holds an NHS or CHI number: the audit log keeps no
   patient identifier) - nothing is decided or written before that;
2. authenticates the :data:`Caller`: a :class:`User` by their token (a web session next),
   the :class:`LocalOperator` by the file system (the process runs as the account that
   owns the site's keys);
3. decides with the one table, :data:`~dicomhaven.access.PERMISSIONS`;
4. audits: every decision about a user, allowed or refused (``Users.authorise``), and every
   refusal, an unauthenticated one as ``(not authenticated)``, never under the name a
   token claims. The local operator's allowed decisions are not audited: it is the owner
   of the files, which it can read whatever we decide, and its work is recorded where it
   lands (the ledger, the user it adds);
5. registers the function, so that a test walks every public function of every service
   module and fails on one that was not declared.

The body receives a :class:`Grant` in place of the caller: it cannot run without one, and
a grant is made only here. A service whose audit entry names what it resolves first (the
devices a selection matched, the pseudonym of an NHS number) is declared
``records_allowed=True`` and calls :meth:`Grant.allow` before it changes anything; the
refusal is still decided and audited before the body runs.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from dicomhaven.access import (
    PERMISSIONS,
    AccessDenied,
    Action,
    NotAuthenticated,
    Operator,
    Role,
    Users,
)
from dicomhaven.identity import is_valid_chi_number, is_valid_nhs_number
from dicomhaven.services._errors import Forbidden, InvalidReason, Unauthenticated

if TYPE_CHECKING:
    from dicomhaven.site import Site

__all__ = [
    "NOT_AUTHENTICATED",
    "Caller",
    "Grant",
    "LocalOperator",
    "Service",
    "User",
    "registered",
    "service",
    "services",
]

NOT_AUTHENTICATED = "(not authenticated)"
_NEEDS_USER = "this needs a user token: pass --token or set DICOMHAVEN_TOKEN"
_TARGET_LENGTH = 128  # the audit log's column
_NUMBER_LIKE = re.compile(r"(?<!\d)\d(?:[ -]?\d){9}(?!\d)")

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class User:
    """A person, known by the token they gave (``NAME.SECRET``); not yet authenticated."""

    token: str | None = field(repr=False)


def _account() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:  # an account without a passwd entry (a container's arbitrary uid)
        return str(os.geteuid())


@dataclass(frozen=True)
class LocalOperator:
    """The command line run on the server by the OS account that owns the site's files.

    Only the command line makes one; the web and API faces never do."""

    name: str = field(default_factory=lambda: f"(local operator {_account()})"[:64])


Caller = User | LocalOperator

#: Audited text: a constant, ``str.format`` fields naming the function's parameters, or a
#: function of its bound arguments.
Text = str | Callable[[Mapping[str, Any]], str]


@dataclass(frozen=True)
class Service:
    """A registered service function and the decision it is declared with."""

    name: str  # module.function
    action: Action
    target: Text
    reason: Text
    min_reason: int
    records_allowed: bool


_REGISTRY: dict[Callable[..., Any], Service] = {}


def registered(function: Callable[..., Any]) -> Service | None:
    """The declaration of a service function; None for anything that is not one."""
    return _REGISTRY.get(function)


def services() -> dict[Callable[..., Any], Service]:
    """Every service function registered so far (importing a module registers its own)."""
    return dict(_REGISTRY)


@dataclass
class Grant:
    """An allowed decision: who acts (their name for every record they leave) and for what.

    Made only by :func:`service`, before the body runs."""

    action: Action
    name: str
    role: Role | None  # None: the local operator
    _users: Users | None = field(repr=False)
    _pending: bool = field(default=False, repr=False)

    def allow(self, target: str, reason: str) -> None:
        """Audit the allowed decision with what the body resolved (``records_allowed``)."""
        if not self._pending:
            raise RuntimeError(f"{self.action.value}: the decision was recorded already")
        self._pending = False
        if self._users is not None and self.role is not None:
            from dicomhaven.access import Actor

            actor = Actor(self.name, self.role)
            self._users.authorise(actor, self.action, target=_target(target), reason=reason)


def _fields(text: Text) -> set[str]:
    if not isinstance(text, str):
        return set()
    return {
        re.split(r"[.\[]", name, maxsplit=1)[0]
        for _, name, _, _ in string.Formatter().parse(text)
        if name
    }


def _render(text: Text, arguments: Mapping[str, Any]) -> str:
    if isinstance(text, str):
        return text.format_map(arguments)
    return text(arguments)


def _target(text: str) -> str:
    """A target for the audit log: no number shaped like an NHS or CHI number, and short."""
    return _NUMBER_LIKE.sub(
        lambda m: "[number]" if _patient_number(m.group()) else m.group(), text
    )[:_TARGET_LENGTH]


def _patient_number(text: str) -> bool:
    return is_valid_nhs_number(text) or is_valid_chi_number(text)


def _reason(text: str, minimum: int) -> str:
    reason = " ".join(text.split())
    if len(reason) < minimum:
        raise InvalidReason(
            f"give a reason of at least {minimum} characters (it is audited), "
            "e.g. 'marking lesions for project ALPHA'"
        )
    if any(_patient_number(m.group()) for m in _NUMBER_LIKE.finditer(reason)):
        raise InvalidReason(
            "the reason seems to contain an NHS or CHI number; the audit log must not hold "
            "patient identifiers, so describe the purpose instead"
        )
    return reason


def _owns_site(site: Site) -> bool:
    """Whether this process runs as the account that owns the site's keys."""
    try:
        return site.zone("keys").stat().st_uid == os.geteuid()
    except OSError:
        return False


def _decide(spec: Service, caller: Caller, site: Site, arguments: Mapping[str, Any]) -> Grant:
    reason = _reason(_render(spec.reason, arguments), spec.min_reason)
    target = _target(_render(spec.target, arguments))
    allowed = PERMISSIONS[spec.action]
    if isinstance(caller, LocalOperator) and Operator.LOCAL in allowed:
        if not _owns_site(site):
            raise Unauthenticated(
                "the local operator is the OS account that owns the site's files and this "
                "process runs as another; run as that account, or pass a user token"
            )
        return Grant(spec.action, caller.name, None, None, _pending=spec.records_allowed)
    from dicomhaven.catalogue import make_engine

    users = Users(make_engine(site.database_url))

    def refused(message: str) -> Unauthenticated:
        users.audit.append(
            actor=NOT_AUTHENTICATED, role="", action=spec.action.value, target=target,
            reason=reason, outcome="refused",
        )  # fmt: skip
        return Unauthenticated(message)

    if isinstance(caller, LocalOperator):
        raise refused(_NEEDS_USER)
    try:
        actor = users.authenticate(caller.token)
    except NotAuthenticated as exc:
        raise refused(str(exc)) from None
    grant = Grant(spec.action, actor.name, actor.role, users, _pending=spec.records_allowed)
    if not spec.records_allowed or actor.role not in allowed:
        try:
            users.authorise(actor, spec.action, target=target, reason=reason)
        except AccessDenied as exc:
            raise Forbidden(str(exc)) from None
    return grant


def service(
    action: Action,
    *,
    target: Text = "",
    reason: Text = "",
    min_reason: int = 0,
    records_allowed: bool = False,
) -> Callable[
    [Callable[Concatenate[Grant, Site, P], R]], Callable[Concatenate[Caller, Site, P], R]
]:
    """Declare a service function: ``body(grant, site, ...)`` becomes
    ``function(caller, site, ...)``, which decides (and audits) before the body runs.

    ``target`` and ``reason`` say what the audit entry names (``"{pseudonym}"``);
    ``min_reason`` is the shortest reason accepted; ``records_allowed`` lets the body audit
    the allowed decision itself, by :meth:`Grant.allow`, once it knows what it acts on."""

    def declare(
        body: Callable[Concatenate[Grant, Site, P], R],
    ) -> Callable[Concatenate[Caller, Site, P], R]:
        signature = inspect.signature(body)
        parameters = list(signature.parameters.values())
        if [p.name for p in parameters[:2]] != ["grant", "site"]:
            raise TypeError(f"{body.__qualname__}: a service's body takes (grant, site, ...)")
        unknown = (_fields(target) | _fields(reason)) - {p.name for p in parameters[2:]}
        if unknown:
            raise TypeError(f"{body.__qualname__}: audited text names {sorted(unknown)}")
        spec = Service(
            f"{body.__module__}.{body.__qualname__}", action, target, reason, min_reason,
            records_allowed,
        )  # fmt: skip

        @functools.wraps(body)
        def function(caller: Caller, site: Site, /, *args: P.args, **kwargs: P.kwargs) -> R:
            if not isinstance(caller, User | LocalOperator):
                raise TypeError(f"{spec.name}: the caller is a User or the LocalOperator")
            bound = signature.bind(None, site, *args, **kwargs)
            bound.apply_defaults()
            grant = _decide(spec, caller, site, bound.arguments)
            result = body(grant, site, *args, **kwargs)
            if grant._pending:
                raise RuntimeError(f"{spec.name} acted without recording its decision")
            return result

        caller = inspect.Parameter("caller", inspect.Parameter.POSITIONAL_ONLY, annotation="Caller")
        site = parameters[1].replace(kind=inspect.Parameter.POSITIONAL_ONLY)
        function.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[caller, site, *parameters[2:]]
        )
        _REGISTRY[function] = spec
        return function

    return declare
