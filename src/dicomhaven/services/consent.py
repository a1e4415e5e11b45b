"""The consent register: decisions recorded, the national opt-out imported, a withdrawn
patient's copies purged, and the counts in force."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dicomhaven.access import Action
from dicomhaven.catalogue import ConsentStatus, make_engine
from dicomhaven.services._core import Grant, service

if TYPE_CHECKING:
    from dicomhaven.consent import OptOutResult
    from dicomhaven.identity import PatientIdentifier
    from dicomhaven.site import Site

__all__ = ["Recorded", "import_optout", "purge", "record", "status_counts"]


def _patient(arguments: Mapping[str, Any]) -> str:
    """What a refusal names: the pseudonym, never the NHS number a patient was given by."""
    patient = arguments["patient"]
    return patient if isinstance(patient, str) else "a patient given by NHS number"


@dataclass(frozen=True)
class Recorded:
    """The pseudonym a decision was recorded for, and the decision."""

    pseudonym: str
    status: ConsentStatus


@service(Action.RECORD_CONSENT, target=_patient, reason="{status}", records_allowed=True)
def record(
    grant: Grant, site: Site, patient: PatientIdentifier | str, status: ConsentStatus
) -> Recorded:
    """Record one patient's decision; ``patient`` is their identifier (found in the vault,
    or given a pseudonym there) or their master pseudonym. Audited under the pseudonym."""
    from dicomhaven.consent import ConsentRegister

    pseudonym = patient if isinstance(patient, str) else site.open_vault().resolve([patient])
    grant.allow(pseudonym, status.value)
    ConsentRegister(make_engine(site.database_url)).record(
        [pseudonym], status, source="manual", actor=grant.name
    )
    return Recorded(pseudonym, status)


@service(Action.RECORD_CONSENT, target="{file.name}", reason="national opt-out")
def import_optout(grant: Grant, site: Site, file: Path) -> OptOutResult:
    """Record each patient on the national data opt-out list (one NHS number a line) as
    withdrawn; lines that are not valid NHS numbers are reported by number, not content."""
    from dicomhaven.consent import import_optout as import_list

    return import_list(site, file, actor=grant.name)


@service(Action.PURGE, target="{pseudonym}", reason="consent withdrawn")
def purge(grant: Grant, site: Site, pseudonym: str) -> int:
    """Remove a withdrawn patient's de-identified copies and hold every object of theirs
    (a ledger entry each); returns how many objects were held."""
    from dicomhaven.consent import purge as purge_copies

    return purge_copies(site, pseudonym)


@service(Action.READ_CONSENT)
def status_counts(grant: Grant, site: Site) -> dict[str, int]:
    """Patients by the decision in force."""
    from dicomhaven.consent import ConsentRegister

    return ConsentRegister(make_engine(site.database_url)).counts()
