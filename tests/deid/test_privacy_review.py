"""Regression tests for the outside privacy review (issue 12): each plants a synthetic
identifier where the reviewers found one surviving, and checks both paths of the engine
(pydicom's, ``deidentify`` + ``write_dataset``, and the byte path, ``rewrite_bytes`` +
``write_bytes``) for it."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from dicomhaven.deid import Profile, deidentify, load_profile, write_dataset
from dicomhaven.deid._stream import rewrite_bytes, write_bytes
from dicomhaven.identity import ProjectKeys
from tests.deid.conftest import context

KEYS = ProjectKeys("review", bytes(range(32)))
CTX = context(KEYS, "BCDFGHJKLMNP")
PROFILES = ["publication", "limited-access"]
CANARY_NAME = "ZZTEST^Canary"
CANARY_NHS = "9990001235"  # a valid NHS number from the test range


def _file(ds: Dataset, preamble: bytes | None = None) -> bytes:
    """``ds`` as a CT image file in Explicit VR Little Endian."""
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.setdefault("SOPInstanceUID", "1.2.826.0.1.3680043.9.9999.121")
    ds.setdefault("StudyInstanceUID", "1.2.826.0.1.3680043.9.9999.122")
    ds.setdefault("PatientName", CANARY_NAME)
    ds.setdefault("PatientID", "ZZ99001")
    meta = ds.file_meta if hasattr(ds, "file_meta") else FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.preamble = preamble
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _both(data: bytes, profile: Profile, tmp_path: Path) -> dict[str, bytes]:
    """The output of each path, as written to disk."""
    dataset = pydicom.dcmread(io.BytesIO(data))
    deidentify(dataset, profile, CTX)
    write_dataset(dataset, tmp_path / "engine.dcm")
    rewritten = rewrite_bytes(data, profile, CTX)
    assert rewritten is not None, "the byte path declined a plain explicit VR file"
    write_bytes(rewritten.parts, tmp_path / "bytes.dcm")
    return {p: (tmp_path / f"{p}.dcm").read_bytes() for p in ("engine", "bytes")}


def _read(data: bytes) -> Dataset:
    return pydicom.dcmread(io.BytesIO(data))


# --- 1: the preamble --------------------------------------------------------------------


@pytest.mark.parametrize("name", PROFILES)
def test_the_preamble_is_zeroed_not_copied(name: str, tmp_path: Path) -> None:
    planted = f"{CANARY_NAME} NHS {CANARY_NHS}".encode().ljust(128, b" ")
    data = _file(Dataset(), preamble=planted)
    assert data[:128] == planted
    for path, out in _both(data, load_profile(name), tmp_path).items():
        assert out[:128] == bytes(128), path
        assert b"ZZTEST" not in out and CANARY_NHS.encode() not in out, path


# --- 3: code meanings and coded text ------------------------------------------------------


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


@pytest.mark.parametrize("name", PROFILES)
def test_coded_text_holding_the_name_is_cleaned_and_standard_codes_kept(
    name: str, tmp_path: Path
) -> None:
    ds = Dataset()
    ds.AnatomicRegionSequence = [
        _code("ZZTEST", "99LOCAL", "Canary region"),  # a private scheme: value and meaning
        _code("113100", "DCM", "ZZTEST Canary"),  # a DCM code with someone else's meaning
        _code("Canary", "SCT", "Review of ZZTEST"),  # not an SCT code at all
        _code("RID123", "RADLEX", "Exam of ZZTEST"),  # a scheme we cannot check: the meaning
        _code("113100", "DCM", "Basic Application Confidentiality Profile"),  # a real one
    ]
    for path, out in _both(_file(ds), load_profile(name), tmp_path).items():
        items = _read(out).AnatomicRegionSequence
        text = " ".join(f"{i.CodeValue} {i.CodeMeaning}" for i in items)
        assert "zztest" not in text.lower() and "canary" not in text.lower(), (path, text)
        assert items[3].CodeValue == "RID123", path
        real = items[4]
        assert (real.CodeValue, real.CodingSchemeDesignator, real.CodeMeaning) == (
            "113100",
            "DCM",
            "Basic Application Confidentiality Profile",
        ), path


# --- 4: short name parts ----------------------------------------------------------------


@pytest.mark.parametrize("name", PROFILES)
def test_short_name_parts_are_cut_as_whole_words(name: str, tmp_path: Path) -> None:
    ds = Dataset()
    ds.PatientName = "LI^NA"
    ds.StudyDescription = "CT chest for li na, follow-up"
    ds.AdditionalPatientHistory = "Seen with NA LI before"
    for path, out in _both(_file(ds), load_profile(name), tmp_path).items():
        result = _read(out)
        assert result.StudyDescription == "CT chest for *** ***, follow-up", path
        assert "LI" not in str(result.get("AdditionalPatientHistory", "")).split(), path


# --- 5: UR and AE elements outside Table E.1-1 --------------------------------------------


def _with_addresses() -> Dataset:
    ds = Dataset()
    ds.RetrieveURL = f"https://zz:secret@pacs.example.org/wado?patientID=ZZ99001&name={CANARY_NAME}"
    item = Dataset()
    item.ContactURI = "mailto:zztest.canary@example.org"
    item.ContactDisplayName = "Records office"
    ds.MappingResourceIdentificationSequence = [item]  # any sequence the table keeps
    ds.add_new(0x00A00010, "UR", "https://example.org/lookup?mrn=ZZ99001")  # unknown public
    ds.add_new(0x00A00012, "AE", "ZZTEST")
    ds.add_new(0x00A00014, "UT", "see https://example.org/p?id=ZZ99001#ZZTEST")
    return ds


def test_urls_and_ae_titles_outside_the_table_go_at_publication(tmp_path: Path) -> None:
    for path, out in _both(_file(_with_addresses()), load_profile("publication"), tmp_path).items():
        result = _read(out)
        assert "RetrieveURL" not in result, path
        assert 0x00A00010 not in result and 0x00A00012 not in result, path
        assert b"ZZ99001" not in out and b"zztest" not in out.lower(), path


def test_urls_lose_query_and_userinfo_at_limited_access(tmp_path: Path) -> None:
    profile = load_profile("limited-access")
    for path, out in _both(_file(_with_addresses()), profile, tmp_path).items():
        result = _read(out)
        assert result.get("RetrieveURL", "") in ("", "https://pacs.example.org/wado"), path
        assert b"ZZ99001" not in out and b"zztest" not in out.lower(), path
        assert b"secret" not in out, path


# --- 6: the file meta -------------------------------------------------------------------


@pytest.mark.parametrize("name", PROFILES)
def test_file_meta_is_rebuilt_from_an_allow_list(name: str, tmp_path: Path) -> None:
    from dicomhaven.deid._engine import IMPLEMENTATION_CLASS_UID

    ds = Dataset()
    meta = FileMetaDataset()
    meta.SourceApplicationEntityTitle = "ZZTESTSRC"
    meta.SendingApplicationEntityTitle = "ZZTESTSEND"
    meta.ReceivingApplicationEntityTitle = "ZZTESTRECV"
    meta.SourcePresentationAddress = "dicom://zztest.example.org:104"
    meta.SendingPresentationAddress = "dicom://10.9.8.7:11112"
    meta.ReceivingPresentationAddress = "dicom://zztest-recv.example.org:104"
    meta.ImplementationClassUID = UID("1.2.826.0.1.3680043.9.9999.77")
    meta.ImplementationVersionName = "ZZTEST_V1"
    meta.PrivateInformationCreatorUID = UID("1.2.826.0.1.3680043.9.9999.78")
    meta.PrivateInformation = b"ZZTEST Canary\x00"
    meta.add_new(0x00020035, "SH", "ZZTESTFLOW")  # RTV Source Identifier
    ds.file_meta = meta
    allowed = {
        "FileMetaInformationGroupLength",
        "FileMetaInformationVersion",
        "MediaStorageSOPClassUID",
        "MediaStorageSOPInstanceUID",
        "TransferSyntaxUID",
        "ImplementationClassUID",
        "ImplementationVersionName",
    }
    for path, out in _both(_file(ds), load_profile(name), tmp_path).items():
        result = _read(out).file_meta
        assert {e.keyword for e in result} == allowed, path
        assert result.ImplementationClassUID == IMPLEMENTATION_CLASS_UID, path
        assert str(result.ImplementationVersionName).startswith("DICOMHAVEN"), path
        assert b"ZZTEST" not in out and b"10.9.8.7" not in out, path


# --- 11: kept private values are cleaned like public text --------------------------------


def test_kept_private_text_is_cleaned_like_public_text(tmp_path: Path) -> None:
    ds = Dataset()
    block = ds.private_block(0x0029, "EXAMPLE SITE 1.0", create=True)
    block.add_new(0x01, "LO", "Scan of ZZTEST Canary")
    block.add_new(0x02, "OB", f"NHS {CANARY_NHS} Canary".encode())
    block.add_new(0x03, "DS", "2.5")
    profile_path = tmp_path / "site.yaml"
    profile_path.write_text(
        "extends: limited-access\nsafe_private:\n"
        '  - (0029,"EXAMPLE SITE 1.0",01)\n  - (0029,"EXAMPLE SITE 1.0",02)\n'
        '  - (0029,"EXAMPLE SITE 1.0",03)\n'
    )
    for path, out in _both(_file(ds), load_profile(profile_path), tmp_path).items():
        kept = _read(out).private_block(0x0029, "EXAMPLE SITE 1.0")
        assert kept[0x01].value == "Scan of *** ***", path
        assert CANARY_NHS.encode() not in out and b"Canary" not in out, path
        assert kept[0x03].value == "2.5", path


# --- issue 22 #1: a padded hospital number ---------------------------------------------------


@pytest.mark.parametrize("name", PROFILES)
def test_a_hospital_number_with_trailing_junk_is_cut_from_free_text(
    name: str, tmp_path: Path
) -> None:
    ds = Dataset()
    ds.PatientID = "ZZ91139748\x00junk"  # PACS padding and a vendor's artefact after the NUL
    ds.StudyDescription = "review ZZ91139748 Todd"
    ds.AdditionalPatientHistory = "Hosp no ZZ-9113-9748, NHS pending"
    for path, out in _both(_file(ds), load_profile(name), tmp_path).items():
        assert b"ZZ91139748" not in out and b"ZZ-9113-9748" not in out, path
