"""NHS and CHI number rules: check digits, normalisation, rejection reasons, safe generation."""

from __future__ import annotations

import datetime
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dicomhaven.errors import InvalidIdentifier
from dicomhaven.identity import (
    generate_chi_number,
    generate_nhs_number,
    is_valid_chi_number,
    is_valid_nhs_number,
    nhs_check_digit,
    normalise_chi_number,
    normalise_nhs_number,
)

# NHS Digital's published example of a valid number.
VALID_NHS = "9434765919"


def test_check_digit_of_published_example() -> None:
    assert nhs_check_digit(VALID_NHS[:9]) == 9


def test_remainder_zero_gives_check_digit_zero() -> None:
    # 11 - (0 mod 11) = 11, which the rule maps to 0.
    assert nhs_check_digit("000000000") == 0
    assert is_valid_nhs_number("0000000000")


def test_remainder_one_has_no_check_digit() -> None:
    # 1*10 + 2*9 + ... + 9*2 = 210 = 19*11 + 1, so 11 - 1 = 10: no valid number exists.
    assert nhs_check_digit("123456789") is None
    with pytest.raises(InvalidIdentifier, match="no valid check digit"):
        normalise_nhs_number("123 456 7890")


@pytest.mark.parametrize("bad", ["12345678", "1234567890", "12345678a"])
def test_check_digit_needs_nine_digits(bad: str) -> None:
    with pytest.raises(InvalidIdentifier):
        nhs_check_digit(bad)


@pytest.mark.parametrize("text", ["943 476 5919", "943-476-5919", " 9434765919 ", "943 4765 919"])
def test_normalise_accepts_spaces_and_hyphens(text: str) -> None:
    assert normalise_nhs_number(text) == VALID_NHS


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("943 476 591", "NHS number must have 10 digits, got 9"),
        ("94347659190", "NHS number must have 10 digits, got 11"),
        ("943 476 5918", "NHS number check digit does not match"),
        ("943/476/5919", "only digits, spaces and hyphens"),
        ("", "NHS number must have 10 digits, got 0"),
    ],
)
def test_normalise_rejects_with_reason_but_never_the_value(text: str, reason: str) -> None:
    with pytest.raises(InvalidIdentifier, match=reason) as caught:
        normalise_nhs_number(text)
    digits = "".join(c for c in text if c.isdigit())
    if digits:
        assert digits not in str(caught.value)
        assert text.strip() not in str(caught.value)
    assert not is_valid_nhs_number(text)


def test_unicode_digits_are_not_digits() -> None:
    assert not is_valid_nhs_number("٩٤٣٤٧٦٥٩١٩")  # Arabic-Indic digits


@given(st.integers())
def test_generated_nhs_numbers_are_valid_and_in_the_test_range(seed: int) -> None:
    number = generate_nhs_number(random.Random(seed))
    assert len(number) == 10
    assert number.startswith("999")
    assert is_valid_nhs_number(number)


@given(st.integers(), st.integers(min_value=0, max_value=9), st.integers(min_value=1, max_value=9))
def test_changing_one_digit_is_always_detected(seed: int, position: int, delta: int) -> None:
    number = generate_nhs_number(random.Random(seed))
    changed = number[:position] + str((int(number[position]) + delta) % 10) + number[position + 1 :]
    assert not is_valid_nhs_number(changed)


def test_generation_is_seeded() -> None:
    assert generate_nhs_number(random.Random(5)) == generate_nhs_number(random.Random(5))


@given(
    st.integers(),
    st.dates(min_value=datetime.date(1900, 1, 1), max_value=datetime.date(2099, 12, 31)),
    st.sampled_from(["M", "F", "m", "f"]),
)
def test_generated_chi_numbers_are_valid(seed: int, birth: datetime.date, sex: str) -> None:
    number = generate_chi_number(random.Random(seed), birth, sex)
    assert is_valid_chi_number(number)
    assert number[:6] == birth.strftime("%d%m%y")
    assert int(number[8]) % 2 == (1 if sex.upper() == "M" else 0)


@given(
    st.integers(),
    st.dates(min_value=datetime.date(1900, 1, 1), max_value=datetime.date(2099, 12, 31)),
    st.integers(min_value=6, max_value=9),
    st.integers(min_value=1, max_value=9),
)
def test_changing_one_chi_digit_after_the_date_is_detected(
    seed: int, birth: datetime.date, position: int, delta: int
) -> None:
    number = generate_chi_number(random.Random(seed), birth, "F")
    changed = number[:position] + str((int(number[position]) + delta) % 10) + number[position + 1 :]
    assert not is_valid_chi_number(changed)


def test_chi_rejects_an_impossible_birth_date() -> None:
    # 31 February: the date part is checked before the check digit.
    with pytest.raises(InvalidIdentifier, match="real birth date") as caught:
        normalise_chi_number("310260 1234")
    assert "3102601234" not in str(caught.value)


def test_chi_accepts_29_february_only_in_leap_years() -> None:
    leap = generate_chi_number(random.Random(1), datetime.date(1960, 2, 29), "M")
    assert normalise_chi_number(f"{leap[:6]}-{leap[6:]}") == leap
    first9 = "290261" + "123"
    check = nhs_check_digit(first9)
    candidate = first9 + str(check if check is not None else 0)
    with pytest.raises(InvalidIdentifier, match="real birth date"):
        normalise_chi_number(candidate)


def test_chi_rejects_bad_check_digit_and_length() -> None:
    good = generate_chi_number(random.Random(3), datetime.date(1975, 6, 1), "F")
    bad = good[:9] + str((int(good[9]) + 1) % 10)
    with pytest.raises(InvalidIdentifier, match="CHI number check digit does not match"):
        normalise_chi_number(bad)
    with pytest.raises(InvalidIdentifier, match="CHI number must have 10 digits, got 9"):
        normalise_chi_number(good[:9])


def test_chi_generation_needs_a_binary_sex_code() -> None:
    with pytest.raises(ValueError, match="'M' or 'F'"):
        generate_chi_number(random.Random(0), datetime.date(1970, 1, 1), "O")
