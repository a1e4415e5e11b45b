"""Roles and what each may do. The table is the single source of authorisation.

Who may do an action is a user's :class:`Role` (a person signed in with a token, later a
web session) or the :class:`Operator`: the command line run on the server by the OS account
that owns the site's files. That account can read every zone whatever we decide, so for
pipeline work and for reading counts and states it is authenticated by the file system and
needs no token; an action a person must answer for (re-identification, user management,
consent, trust and release, the vault key, purge, reading the audit log) always needs a
named user, and the operator is not in its row. The web and API faces never act as it.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["PERMISSIONS", "Action", "Operator", "Role"]


class Role(StrEnum):
    DATA_MANAGER = "data-manager"
    CLINICIAN = "clinician"
    COMMITTEE_MEMBER = "committee-member"
    RESEARCHER = "researcher"
    AUDITOR = "auditor"


class Operator(StrEnum):
    """Who acts without a user: never a role a user can be given."""

    LOCAL = "local-operator"


class Action(StrEnum):
    REIDENTIFY = "reidentify"
    MANAGE_USERS = "manage-users"
    ADD_FIRST_USER = "add-first-user"  # a site with no user yet: its first data manager
    RECORD_CONSENT = "record-consent"
    IMPORT_CLINICAL = "import-clinical"
    READ_AUDIT = "read-audit"
    ROTATE_VAULT_KEY = "rotate-vault-key"
    PURGE = "purge"
    REVIEW_TEMPLATES = "review-templates"
    REVIEW_OUTPUTS = "review-outputs"  # trust devices, decide findings, release held copies
    EXPORT_COPIES = "export-copies"  # deid and redact: write safe copies of a folder elsewhere
    RUN_PIPELINE = "run-pipeline"  # import, process, receive, pull: objects into the ledger
    # Reads of counts, states and pseudonymised views: no identifier, no vault value.
    READ_USERS = "read-users"
    VERIFY_AUDIT = "verify-audit"  # the chain's breaks, by entry number: not the entries
    READ_LEDGER = "read-ledger"
    READ_CONSENT = "read-consent"  # counts by decision
    READ_PATIENTS = "read-patients"  # pseudonyms and what the catalogue holds under one
    READ_TEMPLATES = "read-templates"
    READ_DEVICES = "read-devices"
    READ_REVIEW = "read-review"
    BROWSE_DIRECTORY = "browse-directory"  # published, suppressed counts: every role


_DM, _AUDITOR, _LOCAL = Role.DATA_MANAGER, Role.AUDITOR, Operator.LOCAL

PERMISSIONS: dict[Action, frozenset[Role | Operator]] = {
    Action.REIDENTIFY: frozenset({_DM, Role.CLINICIAN}),
    Action.MANAGE_USERS: frozenset({_DM}),
    Action.ADD_FIRST_USER: frozenset({_LOCAL}),
    Action.RECORD_CONSENT: frozenset({_DM}),
    Action.IMPORT_CLINICAL: frozenset({_DM}),
    Action.READ_AUDIT: frozenset({_AUDITOR, _DM}),
    Action.ROTATE_VAULT_KEY: frozenset({_DM}),
    Action.PURGE: frozenset({_DM}),
    Action.REVIEW_TEMPLATES: frozenset({_DM}),
    Action.REVIEW_OUTPUTS: frozenset({_DM}),
    Action.EXPORT_COPIES: frozenset({_DM}),
    Action.RUN_PIPELINE: frozenset({_DM, _LOCAL}),
    Action.READ_USERS: frozenset({_DM, _AUDITOR, _LOCAL}),
    Action.VERIFY_AUDIT: frozenset({_DM, _AUDITOR, _LOCAL}),
    Action.READ_LEDGER: frozenset({_DM, _AUDITOR, _LOCAL}),
    Action.READ_CONSENT: frozenset({_DM, _LOCAL}),
    Action.READ_PATIENTS: frozenset({_DM, Role.CLINICIAN, Role.RESEARCHER, _LOCAL}),
    Action.READ_TEMPLATES: frozenset({_DM, _LOCAL}),
    Action.READ_DEVICES: frozenset({_DM, _LOCAL}),
    Action.READ_REVIEW: frozenset({_DM, _LOCAL}),
    Action.BROWSE_DIRECTORY: frozenset({*Role, _LOCAL}),
}
