"""NHS numbers (England, Wales, Isle of Man) and CHI numbers (Scotland).

Both are ten digits ending in a modulus 11 check digit: the first nine digits are weighted
10, 9, ..., 2, the weighted sum is taken modulo 11, and the check digit is 11 minus that
remainder (11 becomes 0; 10 means no number can have those first nine digits). A CHI number
also starts with the holder's birth date as DDMMYY and carries their sex in its ninth digit
(odd male, even female).

Validation errors never repeat the number, so they are safe to log.
"""

from __future__ import annotations

import datetime
import random

from dicomhaven.errors import InvalidIdentifier

__all__ = [
    "generate_chi_number",
    "generate_nhs_number",
    "is_valid_chi_number",
    "is_valid_nhs_number",
    "nhs_check_digit",
    "normalise_chi_number",
    "normalise_nhs_number",
]

_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)
_SEPARATORS = str.maketrans("", "", " -\t")

#: NHS Digital reserves 999 000 0000 to 999 999 9999 for testing: never issued to a person.
_NHS_TEST_PREFIX = "999"


def nhs_check_digit(first9: str) -> int | None:
    """The modulus 11 check digit for nine digits, or None when none is possible.

    The same rule serves NHS and CHI numbers.
    """
    if not (first9.isascii() and first9.isdigit()):
        raise InvalidIdentifier("a check digit is computed from digits only; got other characters")
    if len(first9) != 9:
        raise InvalidIdentifier(f"a check digit needs exactly 9 digits, got {len(first9)}")
    total = sum(int(d) * w for d, w in zip(first9, _WEIGHTS, strict=True))
    check = 11 - total % 11
    if check == 11:
        return 0
    if check == 10:
        return None
    return check


def _digits(text: str, scheme: str) -> str:
    compact = text.translate(_SEPARATORS)
    if not all(c in "0123456789" for c in compact):
        raise InvalidIdentifier(
            f"{scheme} number may contain only digits, spaces and hyphens;"
            " remove any other characters"
        )
    if len(compact) != 10:
        raise InvalidIdentifier(f"{scheme} number must have 10 digits, got {len(compact)}")
    return compact


def _check(compact: str, scheme: str) -> None:
    expected = nhs_check_digit(compact[:9])
    if expected is None:
        raise InvalidIdentifier(
            f"{scheme} number is impossible: its first nine digits give no valid check digit"
        )
    if expected != int(compact[9]):
        raise InvalidIdentifier(f"{scheme} number check digit does not match")


def normalise_nhs_number(text: str) -> str:
    """The ten digits of an NHS number written with or without spaces or hyphens.

    Raises InvalidIdentifier with the reason (never the value).
    """
    compact = _digits(text, "NHS")
    _check(compact, "NHS")
    return compact


def is_valid_nhs_number(text: str) -> bool:
    """True when ``text`` is a well-formed NHS number with a matching check digit."""
    try:
        normalise_nhs_number(text)
    except InvalidIdentifier:
        return False
    return True


def generate_nhs_number(rng: random.Random) -> str:
    """A valid NHS number from the 999 test range, so it can never belong to a person."""
    while True:
        first9 = _NHS_TEST_PREFIX + "".join(str(rng.randrange(10)) for _ in range(6))
        check = nhs_check_digit(first9)
        if check is not None:
            return f"{first9}{check}"


def _chi_date_is_real(compact: str) -> bool:
    day, month, year = int(compact[0:2]), int(compact[2:4]), int(compact[4:6])
    # The century is not encoded; 2000 is a leap year, so 29 February always exists in one
    # of the two candidate centuries exactly when YY is divisible by 4.
    try:
        datetime.date(2000 + year, month, day)
    except ValueError:
        return False
    return True


def normalise_chi_number(text: str) -> str:
    """The ten digits of a CHI number; checks the DDMMYY birth date and the check digit.

    Raises InvalidIdentifier with the reason (never the value).
    """
    compact = _digits(text, "CHI")
    if not _chi_date_is_real(compact):
        raise InvalidIdentifier("CHI number must start with a real birth date as DDMMYY")
    _check(compact, "CHI")
    return compact


def is_valid_chi_number(text: str) -> bool:
    """True when ``text`` is a well-formed CHI number (real date, matching check digit)."""
    try:
        normalise_chi_number(text)
    except InvalidIdentifier:
        return False
    return True


def generate_chi_number(rng: random.Random, birth_date: datetime.date, sex: str) -> str:
    """A valid CHI number for a birth date and sex ("M" or "F").

    Scotland has no reserved test range, so a generated number is only well formed: it may
    equal a real person's, and must only ever be paired with fake demographics.
    """
    sex_code = sex.upper()
    if sex_code not in {"M", "F"}:
        raise ValueError(f"sex must be 'M' or 'F' for a CHI number, got {sex!r}")
    date_part = birth_date.strftime("%d%m%y")
    parity = 1 if sex_code == "M" else 0
    while True:
        serial = f"{rng.randrange(100):02d}"
        sex_digit = rng.randrange(5) * 2 + parity
        first9 = f"{date_part}{serial}{sex_digit}"
        check = nhs_check_digit(first9)
        if check is not None:
            return f"{first9}{check}"
