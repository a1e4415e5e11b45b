"""The researcher's view: pseudonyms, and what the catalogue holds under one.

Nothing here identifies a patient: objects by modality, the consent decision in force and
clinical records whose dates were shifted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dicomhaven.access import Action
from dicomhaven.catalogue import make_engine
from dicomhaven.services._core import Grant, service

if TYPE_CHECKING:
    from dicomhaven.site import Site

__all__ = ["pseudonyms", "summary"]


@service(Action.READ_PATIENTS, target="{pseudonym}")
def summary(grant: Grant, site: Site, pseudonym: str) -> dict[str, object]:
    """Objects by modality, the consent decision in force and the clinical records."""
    from dicomhaven.patients import summarise

    return summarise(make_engine(site.database_url), pseudonym)


@service(Action.READ_PATIENTS, target="pseudonyms")
def pseudonyms(grant: Grant, site: Site) -> list[str]:
    """Every master pseudonym with an object, in order of first receipt."""
    from dicomhaven.patients import pseudonyms as known

    return known(make_engine(site.database_url))
