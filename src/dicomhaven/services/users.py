"""Users and their roles: the first data manager, then users added and revoked by one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dicomhaven.access import Action, Role, Users
from dicomhaven.catalogue import make_engine
from dicomhaven.services._core import Grant, service
from dicomhaven.services._errors import Conflict, InvalidRequest

if TYPE_CHECKING:
    from dicomhaven.site import Site

__all__ = ["NewUser", "UserRow", "add", "add_first", "listing", "revoke"]


@dataclass(frozen=True)
class NewUser:
    """A user just added, with the token they will use (shown once, never stored)."""

    name: str
    role: Role
    token: str = field(repr=False)


@dataclass(frozen=True)
class UserRow:
    name: str
    role: str
    active: bool

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "role": self.role, "active": self.active}


def _users(site: Site) -> Users:
    return Users(make_engine(site.database_url))


@service(Action.ADD_FIRST_USER, target="{name}", reason="{role}")
def add_first(grant: Grant, site: Site, name: str, role: Role) -> NewUser:
    """The site's first user, who must be a data manager: they add everyone else."""
    users = _users(site)
    if users.count() > 0:
        raise Conflict(
            "the site has users already: adding one needs a data manager's token; pass "
            "--token or set DICOMHAVEN_TOKEN"
        )
    if role is not Role.DATA_MANAGER:
        raise InvalidRequest("the first user must be a data-manager")
    return NewUser(name, role, users.add(name, role, by=grant.name))


@service(Action.MANAGE_USERS, target="{name}")
def add(grant: Grant, site: Site, name: str, role: Role) -> NewUser:
    """Add a user with one role."""
    users = _users(site)
    if name in {n for n, _, _ in users.all_users()}:
        raise Conflict(f"user '{name}' already exists")
    return NewUser(name, role, users.add(name, role, by=grant.name))


@service(Action.READ_USERS)
def listing(grant: Grant, site: Site) -> list[UserRow]:
    """Every user, their role and whether their token still works."""
    return [UserRow(n, r, a) for n, r, a in _users(site).all_users()]


@service(Action.MANAGE_USERS, target="{name}")
def revoke(grant: Grant, site: Site, name: str) -> None:
    """Stop a user's token working; they stay in the audit log."""
    _users(site).revoke(name, by=grant.name)
