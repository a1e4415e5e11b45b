"""Access: users and roles, authorisation, and the hash-chained audit log."""

from dicomhaven.access._audit import GENESIS, AuditLog, AuditProblem
from dicomhaven.access._roles import PERMISSIONS, Action, Operator, Role
from dicomhaven.access._users import AccessDenied, Actor, NotAuthenticated, Users

__all__ = [
    "GENESIS",
    "PERMISSIONS",
    "AccessDenied",
    "Action",
    "Actor",
    "AuditLog",
    "AuditProblem",
    "NotAuthenticated",
    "Operator",
    "Role",
    "Users",
]
