"""Re-identification: the identifiers behind a pseudonym, for those allowed, with a reason.

Every attempt is audited before anything is read from the vault: allowed, refused for the
role, or refused without a valid user. The reason becomes part of the permanent audit
log, so it must say why (at least :data:`MIN_REASON_LENGTH` characters) and one holding
something shaped like an NHS or CHI number is refused before anything is decided.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dicomhaven.access import Action
from dicomhaven.services._core import Grant, service

if TYPE_CHECKING:
    from dicomhaven.identity import PatientIdentifier
    from dicomhaven.site import Site

__all__ = ["MIN_REASON_LENGTH", "reidentify"]

MIN_REASON_LENGTH = 10


@service(Action.REIDENTIFY, target="{pseudonym}", reason="{reason}", min_reason=MIN_REASON_LENGTH)
def reidentify(grant: Grant, site: Site, pseudonym: str, reason: str) -> list[PatientIdentifier]:
    """The identifiers of the patient behind ``pseudonym`` (empty if none)."""
    return site.open_vault().identifiers_of(pseudonym)
