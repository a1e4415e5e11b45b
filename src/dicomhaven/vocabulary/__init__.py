"""The common vocabulary: Body Part Examined, descriptions, protocol names and procedure
codes normalised to PS3.16 codes (CID 4031 / Annex L SNOMED CT body parts, imaging
procedure codes) by a declarative mapping file, and the words it does not know yet.

The code tables are generated from highdicom's and pydicom's copies of PS3.16 by
``scripts/generate_body_parts.py``; the mapping is ``default.yaml`` with a site's
``SITE/vocabulary.yaml`` over it (see docs/vocabulary.md).
"""

from typing import TYPE_CHECKING

from dicomhaven._lazy import lazy_exports

if TYPE_CHECKING:  # the same names, imported on first use (see dicomhaven._lazy)
    from dicomhaven.vocabulary._codes import (
        Code,
        body_part_code,
        body_part_for_term,
        defined_term,
        in_cid_4031,
        procedure_code,
    )
    from dicomhaven.vocabulary._mapping import (
        SITE_FILE,
        TEXT_ATTRIBUTES,
        Rule,
        Standard,
        Vocabulary,
        default_vocabulary,
        load_vocabulary,
        site_vocabulary,
    )
    from dicomhaven.vocabulary._normalise import Header, Normalised, normalise
    from dicomhaven.vocabulary._terms import clinical_terms
    from dicomhaven.vocabulary._unmapped import MIN_PATIENTS, UnmappedTerm, unmapped_terms

__all__ = [
    "MIN_PATIENTS",
    "SITE_FILE",
    "TEXT_ATTRIBUTES",
    "Code",
    "Header",
    "Normalised",
    "Rule",
    "Standard",
    "UnmappedTerm",
    "Vocabulary",
    "body_part_code",
    "body_part_for_term",
    "clinical_terms",
    "default_vocabulary",
    "defined_term",
    "in_cid_4031",
    "load_vocabulary",
    "normalise",
    "procedure_code",
    "site_vocabulary",
    "unmapped_terms",
]

#: The private module that defines each public name.
_EXPORTS = {
    **dict.fromkeys(
        (
            "Code",
            "body_part_code",
            "body_part_for_term",
            "defined_term",
            "in_cid_4031",
            "procedure_code",
        ),
        "_codes",
    ),
    **dict.fromkeys(
        (
            "SITE_FILE",
            "TEXT_ATTRIBUTES",
            "Rule",
            "Standard",
            "Vocabulary",
            "default_vocabulary",
            "load_vocabulary",
            "site_vocabulary",
        ),
        "_mapping",
    ),
    **dict.fromkeys(("Header", "Normalised", "normalise"), "_normalise"),
    "clinical_terms": "_terms",
    **dict.fromkeys(("MIN_PATIENTS", "UnmappedTerm", "unmapped_terms"), "_unmapped"),
}
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
