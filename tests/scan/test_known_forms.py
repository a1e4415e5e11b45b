"""Issue 22 #1: a hospital number with trailing junk in Patient ID, and the same number in
free text. The leak check looks for the value as DICOM means it (cut at the NUL), and the
site's hospital-number shape fails the number even where the vault does not know it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from dicomhaven.identity import ProjectKeys
from dicomhaven.scan import Action, Detector, KnownIdentifiers, Scanner, load_rules
from dicomhaven.scan._detect import local_number_pattern
from dicomhaven.settings import Settings

KEYS = ProjectKeys("zz-project", b"\x07" * 32)
PADDED_ID = "ZZ91139748\x00junk"  # PACS padding and a vendor's artefact after the NUL


def copy_with(tmp_path: Path, text: str) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.7")
    meta.MediaStorageSOPInstanceUID = UID(KEYS.uid("zz-instance"))
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID("1.2.826.0.1.3680043.8.498.1")
    meta.ImplementationVersionName = "DICOMHAVEN_0_1"
    ds = FileDataset("zz", Dataset(), file_meta=meta, preamble=b"\x00" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientID = "BCDFGHJKLMNP"
    ds.Modality = "OT"
    ds.StudyDescription = text
    path = tmp_path / "copy.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def actions(path: Path, known: KnownIdentifiers, shapes: tuple[str, ...] = ()) -> dict[str, str]:
    scanner = Scanner(
        load_rules([], level="publication"),
        made_uid=KEYS.made_uid,
        local_numbers=local_number_pattern(shapes),
    )
    result = scanner.scan_file(path, known)
    return {f.detector.value: f.action.value for f in result.findings}


def test_the_patients_padded_number_is_found_in_free_text(tmp_path: Path) -> None:
    path = copy_with(tmp_path, "review ZZ91139748 ***")
    found = actions(path, KnownIdentifiers.of([PADDED_ID]))
    assert found.get(Detector.KNOWN_VALUE.value) == Action.FAIL.value


def test_a_hospital_number_nobody_told_the_scanner_about_fails_by_its_shape(
    tmp_path: Path,
) -> None:
    path = copy_with(tmp_path, "Hosp no ZZ91139748, NHS ***")
    assert Detector.HOSPITAL_NUMBER.value not in actions(path, KnownIdentifiers())
    found = actions(path, KnownIdentifiers(), Settings().hospital_number_patterns)
    assert found.get(Detector.HOSPITAL_NUMBER.value) == Action.FAIL.value


@pytest.mark.parametrize("text", ["CT ABDOMEN PELVIS", "Series 12345", "W400 L40", "AB12345"])
def test_ordinary_text_is_not_a_hospital_number(tmp_path: Path, text: str) -> None:
    path = copy_with(tmp_path, text)
    found = actions(path, KnownIdentifiers(), Settings().hospital_number_patterns)
    assert Detector.HOSPITAL_NUMBER.value not in found
