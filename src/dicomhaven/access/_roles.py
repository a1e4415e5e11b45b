"""Roles and what each may do. The table is the single source of authorisation."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["PERMISSIONS", "Action", "Role"]


class Role(StrEnum):
    DATA_MANAGER = "data-manager"
    CLINICIAN = "clinician"
    COMMITTEE_MEMBER = "committee-member"
    RESEARCHER = "researcher"
    AUDITOR = "auditor"


class Action(StrEnum):
    REIDENTIFY = "reidentify"
    MANAGE_USERS = "manage-users"
    RECORD_CONSENT = "record-consent"
    IMPORT_CLINICAL = "import-clinical"
    READ_AUDIT = "read-audit"
    ROTATE_VAULT_KEY = "rotate-vault-key"
    PURGE = "purge"
    REVIEW_TEMPLATES = "review-templates"
    REVIEW_OUTPUTS = "review-outputs"  # trust devices, decide findings, release held copies
    EXPORT_COPIES = "export-copies"  # deid and redact: write safe copies of a folder elsewhere


PERMISSIONS: dict[Action, frozenset[Role]] = {
    Action.REIDENTIFY: frozenset({Role.DATA_MANAGER, Role.CLINICIAN}),
    Action.MANAGE_USERS: frozenset({Role.DATA_MANAGER}),
    Action.RECORD_CONSENT: frozenset({Role.DATA_MANAGER}),
    Action.IMPORT_CLINICAL: frozenset({Role.DATA_MANAGER}),
    Action.READ_AUDIT: frozenset({Role.AUDITOR, Role.DATA_MANAGER}),
    Action.ROTATE_VAULT_KEY: frozenset({Role.DATA_MANAGER}),
    Action.PURGE: frozenset({Role.DATA_MANAGER}),
    Action.REVIEW_TEMPLATES: frozenset({Role.DATA_MANAGER}),
    Action.REVIEW_OUTPUTS: frozenset({Role.DATA_MANAGER}),
    Action.EXPORT_COPIES: frozenset({Role.DATA_MANAGER}),
}
