"""Patient identifiers of the UK health services: validation and safe test values.

NHS numbers and Scottish CHI numbers are checked (length, check digit, CHI birth date) and
normalised to ten digits; generated NHS numbers come from the 999 range reserved for testing.
"""

from dicomhaven.identity._identifiers import (
    generate_chi_number,
    generate_nhs_number,
    is_valid_chi_number,
    is_valid_nhs_number,
    nhs_check_digit,
    normalise_chi_number,
    normalise_nhs_number,
)

__all__ = [
    "generate_chi_number",
    "generate_nhs_number",
    "is_valid_chi_number",
    "is_valid_nhs_number",
    "nhs_check_digit",
    "normalise_chi_number",
    "normalise_nhs_number",
]
