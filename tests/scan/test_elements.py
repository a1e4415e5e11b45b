"""The scanner's own reader agrees with pydicom: on every real test file it can read, a scan
through it finds what a scan of pydicom's data set finds."""

from __future__ import annotations

import warnings

import pydicom
import pytest

from dicomhaven.scan import Scanner, load_rules
from dicomhaven.scan._elements import Unreadable, raw_elements
from tests.deid.test_corpora import corpus
from tests.peers import shared_data


def findings(result: object) -> set[tuple[str, str, str, str]]:
    return {(f.tag_path, f.detector.value, f.shape, f.action.value) for f in result.findings}  # type: ignore[attr-defined]


def test_the_raw_reader_finds_what_pydicom_finds() -> None:
    scanner = Scanner(load_rules([], level="publication"))
    files = corpus() + sorted(shared_data("openrem").glob("*.dcm"))
    read, differences = 0, []
    for path in files:
        try:
            raw_elements(path.read_bytes())
        except Unreadable:
            continue  # the scanner reads these with pydicom
        read += 1
        raw = findings(scanner.scan_file(path))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reference = findings(scanner.scan(pydicom.dcmread(path, force=True)))
        # Allowed: pydicom judging an unprintable byte as a UID; the raw reader seeing a
        # private element that pydicom's reading of a vendor sequence does not show.
        missing = {f for f in reference - raw if f[2].isprintable()}
        extra = {f for f in raw - reference if f[1] != "private-element"}
        if missing or extra:
            differences.append((path.name, sorted(missing)[:2], sorted(extra)[:2]))
    assert read > 170
    assert differences == []


@pytest.mark.parametrize("cut", [140, 200, -7])
def test_a_damaged_file_is_unreadable_not_misread(cut: int) -> None:
    from tests.corpora import pydicom_file

    data = pydicom_file("CT_small.dcm").read_bytes()
    with pytest.raises(Unreadable, match=r"cut short|past the end"):
        raw_elements(data[:cut])
