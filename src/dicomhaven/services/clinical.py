"""Linked clinical data: rows of a CSV stored under master pseudonyms, dates shifted."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dicomhaven.access import Action
from dicomhaven.services._core import Grant, service

if TYPE_CHECKING:
    from dicomhaven.clinical import ClinicalImport
    from dicomhaven.site import Site

__all__ = ["import_csv"]


@service(Action.IMPORT_CLINICAL, target="{file.name}", reason="clinical import")
def import_csv(grant: Grant, site: Site, file: Path, mapping: Path | None = None) -> ClinicalImport:
    """Import a CSV keyed by NHS number; rows with an invalid one are reported by number."""
    from dicomhaven.clinical import import_clinical

    return import_clinical(site, file, mapping)
