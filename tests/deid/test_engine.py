"""Header de-identification invariants on the synthetic site and real test files."""

from __future__ import annotations

import datetime
import io
from collections import defaultdict
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from dicomhaven.deid import AttributeType, attribute_types, deidentify, load_profile
from dicomhaven.identity import ProjectKeys
from dicomhaven.synth import Category
from tests.corpora import pydicom_file
from tests.deid.conftest import DeidentifiedSite, context

HEADER_CATEGORIES = {
    Category.STANDARD_ATTRIBUTE,
    Category.FREE_TEXT,
    Category.NESTED_SEQUENCE,
    Category.PRIVATE_TAG,
}


def all_uids(dataset: Dataset) -> list[tuple[str, str]]:
    found = []
    for element in dataset.iterall():
        if element.VR == "UI" and element.value:
            values = element.value if element.VM > 1 else [element.value]
            found.extend((element.keyword, str(v)) for v in values)
    return found


def header_text(path: Path) -> str:
    """Every byte of the output but the pixel data (where short values occur by chance)."""
    buffer = io.BytesIO()
    pydicom.dcmread(path, stop_before_pixels=True).save_as(buffer)
    return buffer.getvalue().decode("latin-1").lower()


def test_no_planted_header_identifier_survives(publication_site: DeidentifiedSite) -> None:
    leaks = []
    for record in publication_site.source.key.files:
        data = header_text(publication_site.output(record.path))
        for plant in publication_site.source.key.plants_in(record.path):
            if plant.category in HEADER_CATEGORIES and plant.value.lower() in data:
                leaks.append(
                    (record.path, plant.category.value, plant.kind.value, str(plant.location))
                )
    assert leaks == []


def test_no_original_uid_survives_and_uids_map_consistently(
    publication_site: DeidentifiedSite,
) -> None:
    originals: set[str] = set()
    study_map: dict[str, set[str]] = defaultdict(set)
    outputs: list[str] = []
    for record in publication_site.source.key.files:
        source = pydicom.dcmread(
            publication_site.source.root / record.path, stop_before_pixels=True
        )
        result = pydicom.dcmread(publication_site.output(record.path), stop_before_pixels=True)
        originals.update(v for k, v in all_uids(source) if not k.endswith("ClassUID"))
        study_map[record.study_instance_uid].add(str(result.StudyInstanceUID))
        outputs.append(str(result.SOPInstanceUID))
        assert str(result.SOPClassUID) == record.sop_class_uid
        assert result.file_meta.MediaStorageSOPInstanceUID == result.SOPInstanceUID
        text = publication_site.output(record.path).read_bytes()
        for uid in {record.sop_instance_uid, record.study_instance_uid, record.series_instance_uid}:
            assert uid.encode() not in text
    assert all(len(v) == 1 for v in study_map.values())
    assert len(set(outputs)) == len(outputs)
    keys = publication_site.keys
    assert all(keys.uid(uid) != uid for uid in list(originals)[:20])


def test_references_that_resolved_still_resolve(publication_site: DeidentifiedSite) -> None:
    def referenced(ds: Dataset) -> set[str]:
        return {
            str(e.value)
            for e in ds.iterall()
            if e.keyword == "ReferencedSOPInstanceUID" and e.value
        }

    before_ids, after_ids, before_refs, after_refs = set(), set(), set(), set()
    for record in publication_site.source.key.files:
        source = pydicom.dcmread(
            publication_site.source.root / record.path, stop_before_pixels=True
        )
        result = pydicom.dcmread(publication_site.output(record.path), stop_before_pixels=True)
        before_ids.add(str(source.SOPInstanceUID))
        after_ids.add(str(result.SOPInstanceUID))
        before_refs |= referenced(source)
        after_refs |= referenced(result)
    resolved_before = before_refs & before_ids
    assert resolved_before, "the synthetic site has references to check"
    assert len(after_refs & after_ids) == len(resolved_before)


def test_type_1_and_2_attributes_are_kept(publication_site: DeidentifiedSite) -> None:
    for record in publication_site.source.key.files:
        source = pydicom.dcmread(
            publication_site.source.root / record.path, stop_before_pixels=True
        )
        result = pydicom.dcmread(publication_site.output(record.path), stop_before_pixels=True)
        types = attribute_types(record.sop_class_uid)
        for element in source:
            kind = types.get((element.keyword,))
            if kind in (AttributeType.TYPE_1, AttributeType.TYPE_2):
                assert element.keyword in result, (record.path, element.keyword)
                if kind is AttributeType.TYPE_1 and element.value not in (None, ""):
                    assert result[element.tag].value not in (None, ""), element.keyword


def test_patient_identity_dates_and_markers(publication_site: DeidentifiedSite) -> None:
    keys = publication_site.keys
    for record in publication_site.source.key.files[:40]:
        source = pydicom.dcmread(
            publication_site.source.root / record.path, stop_before_pixels=True
        )
        result = pydicom.dcmread(publication_site.output(record.path), stop_before_pixels=True)
        master = publication_site.masters[record.patient]
        assert result.PatientID == keys.pseudonym(master) == str(result.PatientName)
        assert "OtherPatientIDsSequence" not in result
        assert result.PatientIdentityRemoved == "YES"
        assert publication_site.profile.sha256[:16] in result.DeidentificationMethod
        codes = {item.CodeValue for item in result.DeidentificationMethodCodeSequence}
        assert {"113100", "113105", "113104", "113107"} <= codes
        assert result.LongitudinalTemporalInformationModified == "MODIFIED"
        if source.get("StudyDate"):
            shift = datetime.timedelta(days=keys.date_offset_days(master))
            before = datetime.datetime.strptime(source.StudyDate, "%Y%m%d").date()
            assert result.StudyDate == (before + shift).strftime("%Y%m%d")
        assert not any(e.tag.is_private for e in result.iterall())


def test_descriptions_are_cleaned_not_blanked(publication_site: DeidentifiedSite) -> None:
    kept = 0
    for record in publication_site.source.key.files:
        result = pydicom.dcmread(publication_site.output(record.path), stop_before_pixels=True)
        if result.get("StudyDescription"):
            kept += 1
    assert kept > len(publication_site.source.key.files) // 2


@pytest.mark.parametrize(
    "name",
    ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "JPEG2000.dcm", "SC_rgb_small_odd.dcm",
     "reportsi.dcm", "rtdose.dcm", "test-SR.dcm"],
)  # fmt: skip
@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")  # some test files carry one
def test_pydicom_files_deidentify_and_write(name: str) -> None:
    source = pydicom.dcmread(pydicom_file(name))
    original_uid = str(source.get("SOPInstanceUID", ""))
    ds = pydicom.dcmread(pydicom_file(name))
    deidentify(
        ds, load_profile("publication"), context(ProjectKeys("p", bytes(32)), "BCDFGHJKLMNP")
    )
    buffer = io.BytesIO()
    ds.save_as(buffer)
    again = pydicom.dcmread(io.BytesIO(buffer.getvalue()))
    assert not any(e.tag.is_private for e in again.iterall())
    if original_uid:
        assert original_uid.encode() not in buffer.getvalue()
    names = {str(e.value) for e in source.iterall() if e.VR == "PN" and e.value}
    for element in again.iterall():
        if element.VR == "PN" and element.value:
            assert str(element.value) not in names, element.keyword


def test_character_sets_survive_and_names_go() -> None:
    from tests.corpora import pydicom_charset_files

    files = pydicom_charset_files()
    assert len(files) >= 15
    for path in files:
        source = pydicom.dcmread(path)
        ds = pydicom.dcmread(path)
        deidentify(
            ds, load_profile("publication"), context(ProjectKeys("p", bytes(32)), "BCDFGHJKLMNP")
        )
        buffer = io.BytesIO()
        ds.save_as(buffer)
        again = pydicom.dcmread(io.BytesIO(buffer.getvalue()))
        assert again.get("SpecificCharacterSet") == source.get("SpecificCharacterSet"), path.name
        names = [str(e.value) for e in source.iterall() if e.VR == "PN" and e.value]
        values = " ".join(str(e.value) for e in again.iterall() if e.VR not in ("OB", "OW", "SQ"))
        for name in names:
            for part in name.replace("^", " ").replace("=", " ").split():
                if len(part) >= 3:
                    assert part not in values, (path.name, part)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20240101", "20231120"),
        ("20240101-20240201", "20231120-20231221"),  # a range: both ends move
        ("-20240201", "-20231221"),
        ("20240101-", "20231120-"),
        ("20240101120000-0500", "20231120120000-0500"),  # a time zone, not a range
        ("2024xx01-20240101", ""),  # unreadable: removed, never half-moved
    ],
)
def test_dates_and_date_ranges_move_by_the_offset(value: str, expected: str) -> None:
    from dicomhaven.deid._engine import _shift_date

    assert _shift_date(value, datetime.timedelta(days=-42)) == expected


def test_retained_identity_is_not_cut_from_free_text_and_ae_titles_are_cleaned(
    tmp_path: Path,
) -> None:
    def run(options: str) -> Dataset:
        ds = Dataset()
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ds.SOPInstanceUID = "1.2.826.0.1.3680043.9.9999.30"
        ds.PatientName = "EXAMPLESON^EXAMPLE"
        ds.InstitutionName = "Exampleford General"
        ds.StationAETitle = "EXAMPLESON"  # an AE title that happens to hold the name
        ds.StudyDescription = "Exampleford General protocol"
        path = tmp_path / "p.yaml"
        path.write_text(f"extends: base\noptions: [clean_descriptors, {options}]\n")
        deidentify(ds, load_profile(path), context(ProjectKeys("p", bytes(32)), "BCDFGHJKLMNP"))
        return ds

    plain = run("")
    assert "Exampleford" not in plain.StudyDescription
    kept = run("retain_institution_identity, retain_device_identity")
    assert kept.InstitutionName == "Exampleford General"
    assert kept.StudyDescription == "Exampleford General protocol"
    assert "EXAMPLESON" not in str(kept.StationAETitle)  # C: cleaned, not kept verbatim
