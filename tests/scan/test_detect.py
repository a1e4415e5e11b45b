"""The scanner's text detectors, one by one: what they find and what they leave alone."""

from __future__ import annotations

import datetime

import pytest

from dicomhaven.scan import Detector, KnownIdentifiers, detect_text, value_shape
from dicomhaven.scan._detect import detect_known, shape_pattern


def found(text: str, known: KnownIdentifiers | None = None) -> set[tuple[Detector, str]]:
    return {(h.detector, text[h.start : h.end]) for h in detect_text(text, known)}


def detectors(text: str, known: KnownIdentifiers | None = None) -> set[Detector]:
    return {d for d, _ in found(text, known)}


@pytest.mark.parametrize(
    ("text", "detector"),
    [
        ("NHS no 943 476 5919 on file", Detector.NHS_NUMBER),
        ("nhs:9434765919", Detector.NHS_NUMBER),
        ("CHI 010150 1781", Detector.CHI_NUMBER),
        ("lives at LS1 4AP now", Detector.POSTCODE),
        ("call 0113 496 0000", Detector.PHONE),
        ("mobile +44 7700 900123", Detector.PHONE),
        ("mail jo.bloggs@example.nhs.uk", Detector.EMAIL),
        ("seen 12/03/1951", Detector.DATE),
        ("seen 1951-03-12", Detector.DATE),
        ("seen 12 March 1951", Detector.DATE),
        ("reported by Dr Henderson", Detector.PERSON_NAME),
        ("Margaret Thompson attended", Detector.PERSON_NAME),
        ("name HENDERSON^MARGARET", Detector.PERSON_NAME),
    ],
)
def test_patterns_find_identifiers(text: str, detector: Detector) -> None:
    assert detector in detectors(text)


@pytest.mark.parametrize(
    "text",
    [
        "943 476 5918",  # check digit wrong
        "000000000",  # a station name of zeros is not a phone number
        "CT HEAD WITHOUT CONTRAST",
        "Thorax^RTP",  # a body part and a protocol, the way Siemens writes descriptions
        "Series 3 of 12, slice 1.25 mm",
    ],
)
def test_ordinary_radiology_text_is_left_alone(text: str) -> None:
    assert not detectors(text)


def test_known_values_are_found_exactly_and_nearly() -> None:
    known = KnownIdentifiers.of(["HENDERSON^MARGARET", "RX123456", "19510312", "9434765919"])
    assert known.dates == (datetime.date(1951, 3, 12),)
    assert Detector.KNOWN_VALUE in detectors("Mrs Henderson seen", known)
    assert Detector.KNOWN_VALUE in detectors("HENDERSEN", known)  # one edit in a long name
    assert Detector.KNOWN_VALUE in detectors("ref RX 123 456", known)  # separators anywhere
    assert Detector.KNOWN_VALUE in detectors("943-476-5919", known)
    assert Detector.KNOWN_VALUE in detectors("born 12/3/1951", known)
    assert Detector.KNOWN_VALUE in detectors("born 12 Mar 1951", known)
    assert Detector.KNOWN_VALUE not in detectors("Anderson seen 13/03/1951 ref RX123457", known)


def test_short_name_parts_do_not_match_inside_words() -> None:
    known = KnownIdentifiers.of(["LI^AL"])
    assert Detector.KNOWN_VALUE not in detectors("ALIGNMENT CALIBRATION", known)


def test_a_shape_keeps_no_digit_or_letter_and_its_pattern_matches_the_value() -> None:
    for value in ("943 476 5919", "HENDERSON^MARGARET", "jo.bloggs@example.nhs.uk", "LS1 4AP"):
        shape = value_shape(value)
        assert not any(c.isdigit() and c != "9" for c in shape)
        assert not set(shape) & set("BCDEFGHIJKLMNOPQRSTUVWXYZbcdefghijklmnopqrstuvwxyz")
        import re

        assert re.search(shape_pattern(shape), value), (value, shape)


def test_a_standard_word_one_letter_from_a_name_is_no_leak_and_a_misspelt_name_is() -> None:
    """The mixed site (issue 18): a referring physician PEARSON^Leigh^^Dr failed SRs for
    the code meaning "Person Name" (one letter from the name) and "CR/DR Mechanical
    Configuration" (the title "Dr"), and a CR for its model name "DR 7500"."""
    known = KnownIdentifiers.of(["PEARSON^Leigh^^Dr", "MURPHY^Carol"])
    for standard in ("Person Name", "CR/DR Mechanical Configuration", "DR 7500"):
        assert detect_known(standard, known) == [], standard
    for leak in ("seen by Peerson", "Pearson", "MURPHI C", "Leigh"):
        assert [h.detector for h in detect_known(leak, known)] == [Detector.KNOWN_VALUE], leak


def test_the_gate_takes_no_title_from_the_original_header_as_a_known_value() -> None:
    """The mixed site again: the gate split the referring physician's name at every ``^``
    itself, so "Dr" stayed a known value and failed a CR for its model name "DR 7500"."""
    from pydicom.dataset import Dataset

    from dicomhaven.scan._stage import original_values

    header = Dataset()
    header.PatientName = "FOX^Lynne^Stephanie"
    header.ReferringPhysicianName = "JOHNSON^Leanne^^Dr^Jr"
    values = original_values(header)
    assert {"FOX", "Lynne", "Stephanie", "JOHNSON", "Leanne"} <= set(values)
    assert not {"Dr", "Jr"} & set(values)
    known = KnownIdentifiers.of(values)
    assert detect_known("DR 7500", known) == []
    assert detect_known("CR/DR Mechanical Configuration", known) == []
    assert detect_known("seen by Dr Johnson", known) != []


def test_a_failed_scan_gives_the_same_reason_whatever_the_count() -> None:
    """The ledger lists each kind of hold once: a reason with a count ("leak at
    CodeMeaning (×12)") made one line per object of one kind."""
    from dicomhaven.scan import Action
    from dicomhaven.scan._scanner import Finding, ScanResult

    def result(n: int) -> ScanResult:
        leak = Finding(Detector.KNOWN_VALUE, "(0008,0104)", "(0008,0104)", "CodeMeaning", "LO",
                       "Aa", Action.FAIL, "leak")  # fmt: skip
        nhs = Finding(Detector.NHS_NUMBER, "(0020,4000)", "(0020,4000)", "ImageComments", "LT",
                      "9", Action.FAIL, "nhs-number")  # fmt: skip
        return ScanResult(findings=[leak] * n + [nhs] * (3 - n))

    assert result(2).reasons() == result(1).reasons()
    assert result(2).reasons() == "leak at CodeMeaning; nhs-number at ImageComments"
