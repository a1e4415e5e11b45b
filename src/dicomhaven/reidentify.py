"""Re-identification: the identifiers behind a pseudonym, for those allowed, with a reason.

Every attempt is audited before anything is returned — allowed or refused, and also when
the token is not valid. The reason is free text that becomes part of the permanent audit
log, so one that contains something shaped like an NHS or CHI number is refused.
"""

from __future__ import annotations

import re

from dicomhaven.access import Action, NotAuthenticated, Users
from dicomhaven.catalogue import make_engine
from dicomhaven.errors import DicomHavenError
from dicomhaven.identity import PatientIdentifier, is_valid_chi_number, is_valid_nhs_number
from dicomhaven.site import Site

__all__ = ["MIN_REASON_LENGTH", "reidentify"]

MIN_REASON_LENGTH = 10
_NUMBER_LIKE = re.compile(r"(?<!\d)\d(?:[ -]?\d){9}(?!\d)")


def _check_reason(reason: str) -> str:
    reason = " ".join(reason.split())
    if len(reason) < MIN_REASON_LENGTH:
        raise DicomHavenError(
            f"give a reason of at least {MIN_REASON_LENGTH} characters (it is audited), "
            "e.g. 'marking lesions for project ALPHA'"
        )
    for match in _NUMBER_LIKE.finditer(reason):
        if is_valid_nhs_number(match.group()) or is_valid_chi_number(match.group()):
            raise DicomHavenError(
                "the reason seems to contain an NHS or CHI number; the audit log must not hold "
                "patient identifiers, so describe the purpose instead"
            )
    return reason


def reidentify(
    site: Site, token: str | None, pseudonym: str, reason: str
) -> list[PatientIdentifier]:
    """The identifiers of the patient behind ``pseudonym`` (empty if none), if allowed."""
    users = Users(make_engine(site.database_url))
    reason = _check_reason(reason)
    try:
        actor = users.authenticate(token)
    except NotAuthenticated:
        users.audit.append(
            actor="(not authenticated)",
            role="",
            action=Action.REIDENTIFY.value,
            target=pseudonym,
            reason=reason,
            outcome="refused",
        )
        raise
    users.authorise(actor, Action.REIDENTIFY, target=pseudonym, reason=reason)
    return site.open_vault().identifiers_of(pseudonym)
