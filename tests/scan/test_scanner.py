"""The scanner against the synthetic site's answer key: every planted identifier in an
un-de-identified copy is found (recall per category), with the patient's values as the vault
would know them; and structural checks on real files."""

from __future__ import annotations

import collections
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from dicomhaven.identity import ProjectKeys
from dicomhaven.scan import Action, Detector, KnownIdentifiers, Scanner, load_rules
from dicomhaven.synth import AnswerKey, Category, FileKind
from tests.corpora import pydicom_file
from tests.synth.generated import GeneratedSite

HEADER_CATEGORIES = {
    Category.STANDARD_ATTRIBUTE, Category.FREE_TEXT, Category.NESTED_SEQUENCE, Category.PRIVATE_TAG,
}  # fmt: skip


def known_of(key: AnswerKey, patient: int) -> KnownIdentifiers:
    """What the vault knows of a patient: names, identifiers, birth date, address."""
    p = key.patients[patient]
    values = [p.nhs_number, p.hospital_number, p.family_name, *p.given_names, p.birth_date]
    return KnownIdentifiers.of([*values, *([p.chi_number] if p.chi_number else [])])


def recall(found: collections.Counter[str], total: collections.Counter[str]) -> dict[str, str]:
    return {c: f"{found[c]}/{total[c]}" for c in sorted(total)}


def test_every_planted_identifier_in_the_headers_is_found(synth_site: GeneratedSite) -> None:
    key = synth_site.key
    scanner = Scanner(load_rules([], level="publication"))
    total: collections.Counter[str] = collections.Counter()
    found: collections.Counter[str] = collections.Counter()
    missed = []
    for record in key.files:
        result = scanner.scan_file(synth_site.root / record.path, known_of(key, record.patient))
        paths = {f.tag_path for f in result.findings}
        assert result.failed
        for plant in key.plants_in(record.path):
            if plant.category not in HEADER_CATEGORIES:
                continue
            total[plant.category.value] += 1
            if plant.location in paths:
                found[plant.category.value] += 1
            else:
                missed.append((record.path, plant.kind.value, plant.location))
    print("recall per category:", recall(found, total))
    assert set(total) == {c.value for c in HEADER_CATEGORIES}
    assert missed == []


def test_pixel_plants_are_found_by_reading_the_pixels(synth_site: GeneratedSite) -> None:
    """One image of each kind that carries burned-in text or an overlay, read with OCR."""
    key = synth_site.key
    scanner = Scanner(load_rules([], level="publication"), ocr=True)
    checked = collections.Counter[str]()
    for kind in (FileKind.US, FileKind.US_CINE, FileKind.DOSE_SCREEN, FileKind.MAMMO):
        for record in key.files_of_kind(kind):
            plants = [
                p for p in key.plants_in(record.path)
                if p.category in (Category.BURNED_IN_PIXELS, Category.OVERLAY)
            ]  # fmt: skip
            if not plants:
                continue
            result = scanner.scan_file(synth_site.root / record.path, known_of(key, record.patient))
            detectors = {(f.tag_path, f.detector) for f in result.findings}
            for plant in plants:
                if plant.category is Category.OVERLAY:
                    assert any(d is Detector.OVERLAY for _, d in detectors), record.path
                else:
                    assert result.ocr_read
                    assert any(path == "(7FE0,0010)" for path, _ in detectors), record.path
                checked[plant.category.value] += 1
            break
    print("pixel plants checked:", dict(checked))
    assert checked[Category.BURNED_IN_PIXELS.value] >= 2


def test_text_hidden_in_a_private_binary_value_is_found(tmp_path: Path) -> None:
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    block = ds.private_block(0x0031, "HIDDEN TEXT 1.0", create=True)
    block.add_new(0x01, "OB", b"\x00\x01name=HENDERSON^MARGARET;nhs=9434765919\x00")
    block.add_new(0x02, "UN", "MRN RX123456".encode("utf-16-le"))
    known = KnownIdentifiers.of(["RX123456"])
    findings = Scanner(load_rules([])).scan(ds, known).findings
    by_path = collections.defaultdict(set)
    for f in findings:
        by_path[f.tag_path].add(f.detector)
    assert {Detector.NHS_NUMBER, Detector.PERSON_NAME} <= by_path["(0031,1001)"]
    assert Detector.KNOWN_VALUE in by_path["(0031,1002)"]


def test_original_uids_are_found_and_class_and_made_uids_are_not() -> None:
    keys = ProjectKeys("zz", b"\x01" * 32)
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = keys.uid("1.2.3.4")
    ds.StudyInstanceUID = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"
    [finding] = Scanner(load_rules([]), made_uid=keys.made_uid).scan(ds).findings
    assert (finding.detector, finding.keyword, finding.rule) == (
        Detector.ORIGINAL_UID, "StudyInstanceUID", "original-uid"
    )  # fmt: skip
    # Without the key the made UID cannot be verified: reported, not failed.
    unverified = Scanner(load_rules([])).scan(ds).findings
    assert {(f.detector, f.action) for f in unverified if f.keyword == "SOPInstanceUID"} == {
        (Detector.UNVERIFIED_UID, Action.REPORT)
    }


@pytest.mark.parametrize("content", [b"not dicom at all" * 3, b""])
def test_a_file_that_cannot_be_read_fails_with_a_reason(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.dcm"
    path.write_bytes(content)
    result = Scanner(load_rules([])).scan_file(path)
    assert result.failed and result.error and result.error.startswith("not readable as DICOM")
