"""Identity: UK patient identifiers, the pseudonym vault and what project secrets derive.

NHS numbers and Scottish CHI numbers are checked (length, check digit, CHI birth date) and
normalised; the vault maps identifiers to random master pseudonyms, with identifiers sealed
(AES-GCM) under a key kept apart from the vault; each project derives its own pseudonyms,
UIDs and per-patient date offsets from its own secret.
"""

from typing import TYPE_CHECKING

from dicomhaven._lazy import lazy_exports

if TYPE_CHECKING:  # the same names, imported on first use (see dicomhaven._lazy)
    from dicomhaven.identity._crypto import VaultKeyError, new_pseudonym
    from dicomhaven.identity._derivations import MAX_DATE_SHIFT_DAYS, SITE_PROJECT, ProjectKeys
    from dicomhaven.identity._forms import clean_value, known_forms, value_parts
    from dicomhaven.identity._identifiers import (
        generate_chi_number,
        generate_nhs_number,
        is_valid_chi_number,
        is_valid_nhs_number,
        nhs_check_digit,
        normalise_chi_number,
        normalise_nhs_number,
    )
    from dicomhaven.identity._keys import (
        EnvKeyProvider,
        FileKeyProvider,
        KeyProvider,
        create_key_file,
    )
    from dicomhaven.identity._stage import IdentityStage, identifiers_in
    from dicomhaven.identity._vault import IdentityConflict, PatientIdentifier, Scheme, Vault

__all__ = [
    "MAX_DATE_SHIFT_DAYS",
    "SITE_PROJECT",
    "EnvKeyProvider",
    "FileKeyProvider",
    "IdentityConflict",
    "IdentityStage",
    "KeyProvider",
    "PatientIdentifier",
    "ProjectKeys",
    "Scheme",
    "Vault",
    "VaultKeyError",
    "clean_value",
    "create_key_file",
    "generate_chi_number",
    "generate_nhs_number",
    "identifiers_in",
    "is_valid_chi_number",
    "is_valid_nhs_number",
    "known_forms",
    "new_pseudonym",
    "nhs_check_digit",
    "normalise_chi_number",
    "normalise_nhs_number",
    "value_parts",
]

#: The private module that defines each public name.
_EXPORTS = {
    **dict.fromkeys(("VaultKeyError", "new_pseudonym"), "_crypto"),
    **dict.fromkeys(("MAX_DATE_SHIFT_DAYS", "SITE_PROJECT", "ProjectKeys"), "_derivations"),
    **dict.fromkeys(("clean_value", "known_forms", "value_parts"), "_forms"),
    **dict.fromkeys(
        (
            "generate_chi_number",
            "generate_nhs_number",
            "is_valid_chi_number",
            "is_valid_nhs_number",
            "nhs_check_digit",
            "normalise_chi_number",
            "normalise_nhs_number",
        ),
        "_identifiers",
    ),
    **dict.fromkeys(
        ("EnvKeyProvider", "FileKeyProvider", "KeyProvider", "create_key_file"), "_keys"
    ),
    **dict.fromkeys(("IdentityStage", "identifiers_in"), "_stage"),
    **dict.fromkeys(("IdentityConflict", "PatientIdentifier", "Scheme", "Vault"), "_vault"),
}
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
