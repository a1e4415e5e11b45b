"""Which recognised words are identifiers: the patient's own values despite OCR's mistakes,
generic patterns when the patient is unknown, and ordinary screen words left alone.

Words are built by hand (no OCR here) from fake identifiers: NHS number 943 476 5919 is
the valid test number used in ``../shared/peers.md``.
"""

from __future__ import annotations

import datetime

import pytest

from dicomhaven.pixels import Box, Finding, KnownValues, Rule, Scope, Word, find_identifiers
from dicomhaven.pixels._match import phrases

KNOWN = KnownValues(
    names=("SMITH^JOHN^A",),
    identifiers=("9434765919", "44CG43", "RJ1234567"),
    dates=(datetime.date(1960, 2, 1),),
)


def line(*texts: str, y: int = 10, height: int = 12, x: int = 5, space: int = 6) -> list[Word]:
    """Words set on one line, 8 pixels a character, ``space`` pixels apart."""
    words = []
    for text in texts:
        width = 8 * len(text)
        words.append(Word(text, Box(x, y, x + width, y + height), 0.9))
        x += width + space
    return words


def rules(words: list[Word], known: KnownValues | None = KNOWN) -> set[Rule]:
    return {f.rule for f in find_identifiers(words, known, scope=Scope.WORDS)}


@pytest.mark.parametrize(
    "texts",
    [
        ("SMITH^JOHN",),
        ("SMITH*JOHN",),  # tesseract reads ^ as *
        ("SMITH~JOHN",),  # rapidocr, sometimes
        ("SMITH", "JOHN"),
        ("John", "Smith"),
        ("SM1TH",),  # I read as 1
        ("5MITH",),  # S read as 5
        ("SMlTH",),  # I read as l
        ("SMITHJOHN",),  # the space dropped
        ("SMTH",),  # a letter lost
        ("Name:SMITH",),  # glued to its label
    ],
)
def test_the_patients_name_is_found_despite_ocr(texts: tuple[str, ...]) -> None:
    assert Rule.KNOWN_NAME in rules(line(*texts))


def test_both_words_of_a_name_are_blanked() -> None:
    words = line("SMITH", "JOHN", "LIVER")
    boxes = {f.box for f in find_identifiers(words, KNOWN, scope=Scope.WORDS)}
    assert words[0].box in boxes and words[1].box in boxes
    assert not any(b.intersection(words[2].box).area for b in boxes)


@pytest.mark.parametrize(
    "texts",
    [
        ("943", "476", "5919"),  # spaces inside the number
        ("9434765919",),
        ("NHS943", "4765919"),  # rapidocr drops some spaces
        ("g43", "47G", "59I9"),  # look-alikes
        ("44CG43",),
        ("44C643",),
        ("RJ1234567",),
        ("RJI234567",),
        ("ID:44CG43",),
    ],
)
def test_the_patients_identifiers_are_found_despite_ocr(texts: tuple[str, ...]) -> None:
    assert Rule.KNOWN_IDENTIFIER in rules(line(*texts))


@pytest.mark.parametrize(
    "texts",
    [
        ("01/02/1960",),
        ("01.02.1960",),
        ("02/01/1960",),  # month first, as on US devices
        ("1960-02-01",),
        ("19600201",),
        ("01-Feb-1960",),
        ("1", "Feb", "1960"),
        ("Q1.O2.196O",),
        ("DOB:01.02.1960",),
        ("01/02/60",),
    ],
)
def test_the_patients_birth_date_is_found_in_any_format(texts: tuple[str, ...]) -> None:
    assert Rule.KNOWN_DATE in rules(line(*texts))


@pytest.mark.parametrize(
    ("texts", "rule"),
    [
        (("12/03/2024",), Rule.DATE),
        (("03.09.2012",), Rule.DATE),
        (("Q3.09.2012",), Rule.DATE),
        (("Us.09.2012",), Rule.DATE),  # what tesseract made of 03.09.2012 at 1x
        (("2024-03-12",), Rule.DATE),
        (("12", "MAR", "2024"), Rule.DATE),
        (("14:22:05",), Rule.TIME),
        (("2:09:04", "PM"), Rule.TIME),
        (("943", "476", "5919"), Rule.NHS_NUMBER),
        (("NHS:", "943-476-5919"), Rule.NHS_NUMBER),
        (("0101603088",), Rule.CHI_NUMBER),
        (("440643",), Rule.LONG_NUMBER),
        (("22G22X",), Rule.LONG_NUMBER),
        (("SW1A", "1AA"), Rule.POSTCODE),
        (("EH16", "4SA"), Rule.POSTCODE),
        (("020", "7946", "0958"), Rule.PHONE),
        (("+44", "20", "7946", "0958"), Rule.PHONE),
        (("KAUFMAN^SCOTT",), Rule.PERSON_NAME),
        (("Name:", "Brown", "Alice"), Rule.CUE),
        (("Patient", "Brown"), Rule.CUE),
        (("DOB", "unknown"), Rule.CUE),
        (("D.O.B.", "unknown"), Rule.CUE),
        (("Pt:", "Brown"), Rule.CUE),
        (("ID:", "AB12"), Rule.CUE),
        (("ID:AB12",), Rule.CUE),
        (("MRN", "AB12"), Rule.CUE),
        (("Hosp", "No:", "AB12"), Rule.CUE),
    ],
)
def test_generic_patterns_need_no_known_values(texts: tuple[str, ...], rule: Rule) -> None:
    assert rule in rules(line(*texts), known=None)


@pytest.mark.parametrize(
    "texts",
    [
        ("LIVER",),
        ("TRANSVERSE",),
        ("cm/s",),
        ("MHz",),
        ("LEFT", "KIDNEY", "LONG"),
        ("MI", "1.1", "TIS", "0.4"),
        ("C5-1", "ABD"),
        ("FR", "30Hz"),
        ("2.5", "MHz"),
        ("Depth", "16", "cm"),
        ("Gain", "54%"),
        ("1024x768",),
        ("Pt", "position"),  # a weak label needs its colon
        ("ID", "card"),
        ("Semi-Upright",),
        ("Portable",),
        ("PW", "2D", "CF"),
        ("SMITHSON",),  # other words holding a name of this patient
        ("BLACKSMITH",),
        ("JOHNSTONE",),
    ],
)
def test_ordinary_screen_words_are_not_flagged(texts: tuple[str, ...]) -> None:
    assert rules(line(*texts)) == set()


def test_a_wrong_check_digit_is_not_an_nhs_number() -> None:
    assert Rule.NHS_NUMBER not in rules(line("943", "476", "5918"), known=None)


def test_impossible_dates_are_not_dates() -> None:
    assert Rule.DATE not in rules(line("45/67/2012"), known=None)


def test_phrases_follow_lines_and_gaps() -> None:
    words = line("SMITH", "JOHN") + line("LIVER", x=400) + line("01/02/1960", y=30)
    groups = phrases(words)
    texts = sorted(tuple(w.text for w in g) for g in groups)
    assert texts == [("01/02/1960",), ("LIVER",), ("SMITH", "JOHN")]


def test_phrase_scope_blanks_the_whole_line_of_demographics() -> None:
    words = line("DAVIDSON", "DOUGLAS", "[M]", "01.09.2012")
    known = KnownValues(names=("DAVIDSON^DOUGLAS",))
    phrase = find_identifiers(words, known)
    whole = Box(words[0].box.x0, words[0].box.y0, words[-1].box.x1, words[-1].box.y1)
    assert {f.box for f in phrase} == {whole}
    assert {f.rule for f in phrase} == {Rule.KNOWN_NAME, Rule.DATE}
    only_words = find_identifiers(words, known, scope=Scope.WORDS)
    assert words[2].box not in {f.box for f in only_words}  # [M] alone matches nothing


def test_vertical_words_form_their_own_phrase() -> None:
    column = [
        Word("SMITH", Box(5, 100, 17, 150), 0.9),
        Word("JOHN", Box(5, 40, 17, 90), 0.9),
    ]
    assert [len(g) for g in phrases(column)] == [2]
    assert Rule.KNOWN_NAME in rules(column)


def test_findings_never_hold_the_text() -> None:
    findings = find_identifiers(line("SMITH^JOHN", "943", "476", "5919"), KNOWN)
    assert findings and all(isinstance(f, Finding) for f in findings)
    for f in findings:
        assert "SMITH" not in repr(f) and "943" not in repr(f)
        assert 0.0 < f.score <= 1.0
    assert "SMITH" not in repr(KNOWN) and "9434765919" not in repr(KNOWN)


def test_rules_can_be_chosen_and_unknown_rules_are_refused() -> None:
    words = line("12/03/2024", "14:22:05")
    assert {f.rule for f in find_identifiers(words, rules=[Rule.DATE])} == {Rule.DATE}
    with pytest.raises(ValueError, match="no-such-rule"):
        find_identifiers(words, rules=["no-such-rule"])  # type: ignore[list-item]


def test_known_values_come_from_the_header() -> None:
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.PatientName = "KAUFMAN^SCOTT"
    ds.PatientID = "1234567"
    ds.OtherPatientIDs = ["943 476 5919", "RJ1234567"]
    ds.AccessionNumber = "A55"
    ds.PatientBirthDate = "19430722"
    known = KnownValues.from_header(ds)
    assert known.names == ("KAUFMAN^SCOTT",)
    assert known.identifiers == ("1234567", "943 476 5919", "RJ1234567", "A55")
    assert known.dates == (datetime.date(1943, 7, 22),)
    assert Rule.KNOWN_DATE in rules(line("DOB:", "07.22.1943"), known)
    assert KnownValues.from_header(Dataset()) == KnownValues()
