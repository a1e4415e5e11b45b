"""The Clean Structured Content Option: SR content items cleaned by their concept names
(PS3.15 Table E.3.4-1), with the other options changing what each item keeps."""

from __future__ import annotations

import datetime
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from dicomhaven.deid import deidentify, load_profile
from dicomhaven.identity import ProjectKeys
from tests.deid.conftest import context

KEYS = ProjectKeys("p", bytes(32))
MASTER = "BCDFGHJKLMNP"
IMAGE_UID = "1.2.826.0.1.3680043.9.9999.21"
COMMENT = "Mr Exampleson phoned 9990001219 about the lesion"  # synthetic name, test NHS number


def item(value_type: str, scheme: str, code: str, meaning: str, **values: object) -> Dataset:
    ds = Dataset()
    ds.RelationshipType = "CONTAINS"
    ds.ValueType = value_type
    name = Dataset()
    name.CodeValue = code
    name.CodingSchemeDesignator = scheme
    name.CodeMeaning = meaning
    ds.ConceptNameCodeSequence = Sequence([name])
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def report() -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.22"  # Enhanced SR
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.9.9999.20"
    ds.PatientName = "EXAMPLESON^EXAMPLE"
    ds.ValueType = "CONTAINER"
    reference = Dataset()
    reference.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    reference.ReferencedSOPInstanceUID = IMAGE_UID
    ds.ContentSequence = Sequence(
        [
            item("TEXT", "DCM", "121022", "Accession Number", TextValue="ACC12345"),
            item("TEXT", "DCM", "121106", "Comment", TextValue=COMMENT),
            item("TEXT", "DCM", "121016", "Device Observer Serial Number", TextValue="SN-4471"),
            item("PNAME", "DCM", "121008", "Person Observer Name", PersonName="OBSERVER^ANNE"),
            item("DATETIME", "DCM", "111526", "DateTime Started", DateTime="20240305101500"),
            item("IMAGE", "DCM", "113795", "Acquired Image", ReferencedSOPSequence=[reference]),
            item("TEXT", "99TEST", "T1", "A concept the table does not name", TextValue=COMMENT),
        ]
    )
    return ds


def run(tmp_path: Path, *options: str) -> dict[str, Dataset]:
    path = tmp_path / "p.yaml"
    path.write_text(f"extends: base\noptions: [clean_structured_content, {', '.join(options)}]\n")
    ds = report()
    deidentify(ds, load_profile(path), context(KEYS, MASTER))
    return {i.ConceptNameCodeSequence[0].CodeMeaning: i for i in ds.ContentSequence}


def test_items_follow_table_e_3_4_1_under_the_basic_profile(tmp_path: Path) -> None:
    items = run(tmp_path)
    assert "Accession Number" not in items  # X: the item goes
    assert "Comment" not in items  # X without Clean Descriptors
    assert "Device Observer Serial Number" not in items
    assert items["Person Observer Name"].PersonName == "ANONYMOUS"  # D
    assert items["DateTime Started"].DateTime == "19000101000000"  # X/D: a dummy keeps the template
    image = items["Acquired Image"].ReferencedSOPSequence[0]
    assert image.ReferencedSOPInstanceUID == KEYS.uid(IMAGE_UID)  # remapped, still resolves
    unnamed = str(items["A concept the table does not name"].TextValue)
    assert "Exampleson" not in unnamed and "9990001219" not in unnamed and "lesion" in unnamed


def test_other_options_change_what_an_item_keeps(tmp_path: Path) -> None:
    items = run(
        tmp_path,
        "clean_descriptors",
        "retain_device_identity",
        "retain_longitudinal_modified_dates",
    )
    comment = str(items["Comment"].TextValue)
    assert "Exampleson" not in comment and "9990001219" not in comment and "lesion" in comment
    assert items["Device Observer Serial Number"].TextValue == "SN-4471"
    moved = datetime.date(2024, 3, 5) + datetime.timedelta(days=KEYS.date_offset_days(MASTER))
    assert items["DateTime Started"].DateTime == moved.strftime("%Y%m%d") + "101500"


def test_without_the_option_report_text_becomes_a_dummy_but_codes_stay(tmp_path: Path) -> None:
    ds = report()
    deidentify(ds, load_profile("base"), context(KEYS, MASTER))
    assert len(ds.ContentSequence) == 7  # Content Sequence: D, structure kept
    for content in ds.ContentSequence:
        assert content.ConceptNameCodeSequence[0].CodeMeaning != "ANONYMOUS"
        if content.ValueType == "TEXT":
            assert content.TextValue == "ANONYMOUS"
