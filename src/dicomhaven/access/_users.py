"""Users, their API tokens, and the check that a user may do an action (always audited).

A token reads ``NAME.SECRET``: the name finds the user, the secret is checked against its
stored hash. Only the hash is stored; the token is shown once, when it is made.

The secret is 24 random bytes from :mod:`secrets` (192 bits), not a password a person
chose: no guessing attack can enumerate it, so a slow password hash (argon2: ~0.2 s and
64 MiB at every command) buys nothing, and the hash is SHA-256 under a fixed label
(``sha256:`` and 64 hex digits), compared in constant time, as API tokens are kept
elsewhere. Hashes stored by earlier versions (argon2, ``$argon2...``) still verify, and
are replaced by the SHA-256 form on their first successful use.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from dicomhaven.access._audit import AuditLog
from dicomhaven.access._roles import PERMISSIONS, Action, Role
from dicomhaven.catalogue import User, make_sessionmaker
from dicomhaven.errors import DicomHavenError

__all__ = ["AccessDenied", "Actor", "NotAuthenticated", "Users"]

_NAME = re.compile(r"[a-z][a-z0-9_-]{1,63}")
_SHA256 = "sha256:"
#: Domain separation: a token's hash is never the hash of the same bytes used elsewhere.
_TOKEN_LABEL = b"dicomhaven API token v1"


def token_hash(secret: str) -> str:
    """The stored form of a token's secret."""
    digest = hmac.new(_TOKEN_LABEL, secret.encode(), hashlib.sha256).hexdigest()
    return f"{_SHA256}{digest}"


def _verifies(stored: str, secret: str) -> bool:
    """Whether ``secret`` matches a stored hash, of this version's form or argon2's."""
    if stored.startswith(_SHA256):
        return hmac.compare_digest(stored.encode(), token_hash(secret).encode())
    from argon2 import PasswordHasher
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return PasswordHasher().verify(stored, secret)
    except (VerificationError, InvalidHashError):
        return False


class NotAuthenticated(DicomHavenError):
    """No token, or a token that matches no active user."""


class AccessDenied(DicomHavenError):
    """The user's role may not do this action (the refusal is audited)."""


@dataclass(frozen=True)
class Actor:
    """An authenticated user."""

    name: str
    role: Role


class Users:
    """User accounts and authorisation, with every decision written to the audit log."""

    def __init__(self, engine: Engine) -> None:
        self._sessions: sessionmaker[Session] = make_sessionmaker(engine)
        self.audit = AuditLog(engine)

    def count(self) -> int:
        with self._sessions() as session:
            return len(session.scalars(select(User.id)).all())

    def add(self, name: str, role: Role, *, by: str) -> str:
        """Create a user and return their token (shown once)."""
        if not _NAME.fullmatch(name):
            raise DicomHavenError(
                "a user name is 2-64 characters: lower-case letters, digits, '-' and '_', "
                "starting with a letter"
            )
        secret = secrets.token_urlsafe(24)
        with self._sessions.begin() as session:
            if session.scalars(select(User).where(User.name == name)).first() is not None:
                raise DicomHavenError(f"user '{name}' already exists")
            session.add(
                User(
                    name=name,
                    role=role.value,
                    token_hash=token_hash(secret),
                    active=True,
                    created_at=datetime.now(UTC),
                )
            )
        self.audit.append(
            actor=by, role="", action="add-user", target=name, reason=role.value, outcome="done"
        )
        return f"{name}.{secret}"

    def revoke(self, name: str, *, by: str) -> None:
        with self._sessions.begin() as session:
            user = session.scalars(select(User).where(User.name == name)).first()
            if user is None:
                raise DicomHavenError(f"no user '{name}'")
            user.active = False
        self.audit.append(
            actor=by, role="", action="revoke-user", target=name, reason="", outcome="done"
        )

    def all_users(self) -> list[tuple[str, str, bool]]:
        with self._sessions() as session:
            return [
                (u.name, u.role, u.active)
                for u in session.scalars(select(User).order_by(User.name))
            ]

    def authenticate(self, token: str | None) -> Actor:
        if not token:
            raise NotAuthenticated("this needs a user token: pass --token or set DICOMHAVEN_TOKEN")
        name, _, secret = token.partition(".")
        with self._sessions() as session:
            user = session.scalars(select(User).where(User.name == name, User.active)).first()
        if user is None or not secret or not _verifies(user.token_hash, secret):
            raise NotAuthenticated("the token matches no active user")
        if not user.token_hash.startswith(_SHA256):  # an earlier version's argon2 hash
            self._rehash(user.id, user.token_hash, secret)
        return Actor(user.name, Role(user.role))

    def _rehash(self, user_id: int, old: str, secret: str) -> None:
        """Replace a verified argon2 hash with this version's form (only if it is still
        the one verified: a revoke or a new token in between is not undone)."""
        with self._sessions.begin() as session:
            session.execute(
                update(User)
                .where(User.id == user_id, User.token_hash == old)
                .values(token_hash=token_hash(secret))
                .execution_options(synchronize_session=False)
            )

    def authorise(self, actor: Actor, action: Action, *, target: str, reason: str) -> None:
        """Allow or refuse ``action``; both are written to the audit log before returning."""
        allowed = actor.role in PERMISSIONS[action]
        self.audit.append(
            actor=actor.name,
            role=actor.role.value,
            action=action.value,
            target=target,
            reason=reason,
            outcome="allowed" if allowed else "refused",
        )
        if not allowed:
            roles = ", ".join(sorted(r.value for r in PERMISSIONS[action]))
            raise AccessDenied(
                f"user '{actor.name}' ({actor.role}) may not {action.value}; roles that may: {roles}. "
                "The refusal was audited."
            )
