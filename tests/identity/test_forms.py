"""The one normaliser of known values that the de-identifier and the scanner both call."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from dicomhaven.identity import clean_value, identifiers_in, known_forms, value_parts


def test_a_nul_ends_the_value_and_padding_goes() -> None:
    assert clean_value("ZZ91139748\x00junk") == "ZZ91139748"
    assert clean_value(" ZZ91139748 \x00\x00") == "ZZ91139748"
    assert clean_value(None) == ""


def test_backslash_values_are_offered_separately_each_cut_at_a_nul() -> None:
    assert value_parts("ZZ91139748\x00junk") == ["ZZ91139748"]
    assert value_parts("A1\\B2 \\ A1") == ["A1", "B2"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ZZ91139748\x00junk", {"ZZ91139748"}),
        ("TODD^JULIA", {"TODD^JULIA", "TODD", "JULIA", "TODD JULIA"}),
        ("LI^NA", {"LI^NA", "LI", "NA", "LI NA"}),
        ("Yamada^Tarou=山田^太郎", {"Yamada", "Tarou", "山田", "太郎", "Yamada Tarou"}),
        ("943 476 5919", {"943 476 5919", "9434765919"}),
        ("ZZ-9113-9748", {"ZZ-9113-9748", "ZZ91139748"}),
    ],
)
def test_forms_cover_what_free_text_holds(value: str, expected: set[str]) -> None:
    assert expected <= set(known_forms([value]))


def test_a_name_s_prefix_and_suffix_are_no_known_value() -> None:
    """ "Dr" names nobody: as a known value it was found in "DR 7500" (a model name) and
    in the standard code meaning "CR/DR Mechanical Configuration", holding both."""
    forms = {f.casefold() for f in known_forms(["PEARSON^Leigh^Ricky^Dr^Jr", "LEE^Ann^^Mrs"])}
    assert {"pearson", "leigh", "ricky", "lee", "ann"} <= forms
    assert not {"dr", "jr", "mrs"} & forms
    assert not any("dr" in f.split() or f.endswith("^dr^jr") for f in forms)


def test_forms_are_unique_ignoring_case_and_longest_first() -> None:
    forms = known_forms(["SMITH^JOHN", "smith", "John"])
    assert len({f.casefold() for f in forms}) == len(forms)
    assert [len(f) for f in forms] == sorted((len(f) for f in forms), reverse=True)


def test_a_padded_hospital_number_names_the_same_patient_as_a_clean_one() -> None:
    padded, clean = Dataset(), Dataset()
    padded.PatientID = "ZZ91139748\x00junk"
    clean.PatientID = "ZZ91139748"
    none: frozenset[str] = frozenset()
    assert identifiers_in(padded, none, none) == identifiers_in(clean, none, none)
