"""The unmapped terms: the words a data manager should map or ignore, counted, and never a
name, a number or a date typed into a description."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dicomhaven.scan import detect_text
from dicomhaven.synth._people import Patient, make_patients, make_site
from dicomhaven.vocabulary import (
    MIN_PATIENTS,
    SITE_FILE,
    UnmappedTerm,
    clinical_terms,
    load_vocabulary,
    normalise,
    unmapped_terms,
)

SEED = 20261204


@pytest.fixture(scope="module")
def patients() -> list[Patient]:
    return make_patients(SEED, 120, make_site(SEED))


def _name_parts(patient: Patient) -> set[str]:
    parts = (patient.name.family, *patient.name.given, patient.name.prefix)
    return {w.upper() for part in parts for w in re.findall(r"[^\W\d_]+", part)}


def _planted(patient: Patient) -> list[str]:
    """A patient's name, numbers and dates, written into descriptions as people do."""
    name, birth = patient.name, patient.birth_date
    return [
        f"CT HEAD {name.display}",
        f"CT HEAD {name.pn}",
        f"{name.family} {name.given[0]} CAROTIDS",
        f"CAROTIDS {name.family.upper()}",
        f"CAROTIDS {name.given[0]}",
        f"Dr {name.family} protocol",
        f"CAROTIDS {patient.nhs_number}",
        f"CAROTIDS {patient.nhs_number[:3]} {patient.nhs_number[3:6]} {patient.nhs_number[6:]}",
        f"CAROTIDS {patient.hospital_number}",
        f"CAROTIDS {birth:%d/%m/%Y}",
        f"CAROTIDS {birth:%d %b %Y}",
        f"CAROTIDS {birth:%Y%m%d}",
        f"CAROTIDS {patient.phone} {patient.postcode}",
    ]


def test_a_planted_name_or_number_is_never_an_unmapped_term(patients: list[Patient]) -> None:
    for patient in patients:
        forbidden = _name_parts(patient)
        for text in _planted(patient):
            for attribute in ("StudyDescription", "SeriesDescription", "ProtocolName"):
                terms = normalise({"Modality": "OT", attribute: text}).unmapped_terms
                assert not forbidden & set(terms), "a name part was listed"
                assert all(t.isalpha() and t.isascii() for t in terms), "a number was listed"


def test_a_value_the_scanner_flags_gives_no_term_at_all() -> None:
    for text in ("VASCULAR seen by Dr Smith", "VASCULAR SMITH^JOHN", "VASCULAR 12/03/1961",
                 "VASCULAR 943 476 5919", "VASCULAR call 0113 496 0123", "VASCULAR LS1 4AP"):  # fmt: skip
        assert detect_text(text), text
        assert clinical_terms(text, frozenset()) == []
    assert clinical_terms("VASCULAR hardware", frozenset()) == ["VASCULAR", "HARDWARE"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("T1 5MM 3D 1234567 ZZ91234567", []),  # digits: never
        ("Mon 12 March", []),  # calendar words
        ("SMITH", []),  # a census family name alone
        ("KIRSTY", []),  # a British given name the census lacks
        ("SHOULDER WILLIS", []),  # family names, whatever else they are
        ("Zürich ÅLESUND", []),  # letters outside ASCII
        ("ab abc", ["ABC"]),  # three letters at least
        ("Functieonderzoek VASCULAR vascular", ["FUNCTIEONDERZOEK", "VASCULAR"]),
    ],
)
def test_what_looks_like_a_clinical_term(text: str, expected: list[str]) -> None:
    assert clinical_terms(text, frozenset()) == expected


def test_terms_are_given_only_when_a_code_is_missing() -> None:
    mapped = normalise({"Modality": "CT", "StudyDescription": "CT HEAD HARDWARE"})
    assert mapped.body_part is not None and mapped.procedure is not None
    assert mapped.unmapped_terms == []
    unmapped = normalise({"Modality": "US", "StudyDescription": "US KIDNEY HARDWARE, routine"})
    assert unmapped.procedure is None
    assert unmapped.unmapped_terms == ["HARDWARE"]  # KIDNEY is known, ROUTINE ignored


def _header(patient: int, description: str) -> dict[str, str]:
    return {"PatientID": f"ZZTEST{patient:04d}", "Modality": "SR", "StudyDescription": description}


def test_the_list_counts_headers_and_patients_most_common_first() -> None:
    headers = [_header(p, "VASCULAR HARDWARE") for p in range(6)]
    headers += [_header(p, "VASCULAR removal") for p in range(6)]
    headers += [_header(p, "RARE") for p in range(MIN_PATIENTS - 1)]
    assert unmapped_terms(headers) == [
        UnmappedTerm("VASCULAR", 12, 6),
        UnmappedTerm("HARDWARE", 6, 6),
        UnmappedTerm("REMOVAL", 6, 6),
    ]
    assert UnmappedTerm("RARE", MIN_PATIENTS - 1, MIN_PATIENTS - 1) in unmapped_terms(
        headers, min_patients=2
    )
    with pytest.raises(ValueError, match="at least 2"):
        unmapped_terms(headers, min_patients=1)


def test_a_word_of_one_patient_never_reaches_the_list(patients: list[Patient]) -> None:
    """Made-up names in no list (so the word filter cannot know them), each typed for
    fewer than MIN_PATIENTS patients in every series, beside words every patient has."""
    made_up = ["QUORVENA", "ZILBERTH", "VANTROSSE", "OKKELBY", "PRIMWELLA"]
    headers = []
    for index, patient in enumerate(patients):
        name = made_up[index % len(made_up)] if index < len(made_up) * (MIN_PATIENTS - 1) else ""
        for text in [*_planted(patient), f"VASCULAR {name}", f"{name} HARDWARE"]:
            headers.append(
                {"PatientID": f"ZZTEST{index:04d}", "Modality": "SR", "SeriesDescription": text}
            )
    listed = {term.term for term in unmapped_terms(headers)}
    assert {"VASCULAR", "HARDWARE"} <= listed
    assert not listed & set(made_up)
    assert not listed & set().union(*(_name_parts(p) for p in patients))


def test_a_site_ignores_or_maps_a_listed_word(tmp_path: Path) -> None:
    headers = [_header(p, "VASCULAR HARDWARE") for p in range(MIN_PATIENTS)]
    (tmp_path / SITE_FILE).write_text(
        "ignore: [hardware]\nrules:\n  - {name: vascular, words: [VASCULAR], body_part: ARTERY}\n"
    )
    site = load_vocabulary(tmp_path / SITE_FILE)
    assert [t.term for t in unmapped_terms(headers)] == ["HARDWARE", "VASCULAR"]
    assert unmapped_terms(headers, site) == []
    artery = normalise(headers[0], site).body_part
    assert artery is not None and artery.meaning == "Artery"
