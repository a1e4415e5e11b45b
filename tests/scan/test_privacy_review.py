"""Regression tests for the outside privacy review (issue 12), scanner side: each plants a
synthetic identifier directly in a file built with pydicom (never through the
de-identifier) and checks that the scanner finds it, and fails it where it must."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import UID, ExplicitVRLittleEndian

from dicomhaven.identity import ProjectKeys
from dicomhaven.scan import Action, Detector, Finding, KnownIdentifiers, Scanner, load_rules

KEYS = ProjectKeys("zz-project", b"\x07" * 32)
OTHER_KEYS = ProjectKeys("zz-other", b"\x09" * 32)
CANARY = KnownIdentifiers.of(["ZZTEST^Canary", "ZZTEST", "Canary", "ZZ7654321"])


def base(**meta: object) -> FileDataset:
    """A minimal de-identified-looking object: made UIDs, a pseudonym, our file meta."""
    file_meta = FileMetaDataset()
    file_meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.7")
    file_meta.MediaStorageSOPInstanceUID = UID(KEYS.uid("zz-instance"))
    file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    file_meta.ImplementationClassUID = UID("1.2.826.0.1.3680043.8.498.1")  # pydicom's
    file_meta.ImplementationVersionName = "DICOMHAVEN_0_1"
    for keyword, value in meta.items():
        setattr(file_meta, keyword, value)
    ds = FileDataset("zz", Dataset(), file_meta=file_meta, preamble=b"\x00" * 128)
    ds.SOPClassUID = file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = file_meta.MediaStorageSOPInstanceUID
    ds.PatientID = "BCDFGHJKLMNP"
    ds.Modality = "OT"
    return ds


def scan(
    tmp_path: Path,
    ds: FileDataset,
    *,
    level: str = "limited-access",
    known: KnownIdentifiers | None = CANARY,
    keys: tuple[ProjectKeys, ...] = (KEYS,),
) -> list[Finding]:
    path = tmp_path / "x.dcm"
    ds.save_as(path, enforce_file_format=True)
    made = (lambda uid: any(k.made_uid(uid) for k in keys)) if keys else None
    result = Scanner(load_rules([], level=level), made_uid=made).scan_file(path, known)
    assert result.error is None
    return result.findings


def at(findings: list[Finding], path: str) -> dict[Detector, Action]:
    return {f.detector: f.action for f in findings if f.tag_path == path}


def test_a_clean_object_passes(tmp_path: Path) -> None:
    """The base used below is clean at both levels, so every finding below is the plant's."""
    for level in ("limited-access", "publication"):
        findings = scan(tmp_path, base(), level=level)
        assert not [f for f in findings if f.action is Action.FAIL], findings


# -- 1. the preamble -----------------------------------------------------------------------
@pytest.mark.parametrize("level", ["limited-access", "publication"])
def test_text_in_the_preamble_fails(tmp_path: Path, level: str) -> None:
    ds = base()
    ds.preamble = b"\x00\x01ZZTEST^Canary nhs=9434765919\x00".ljust(128, b"\x00")
    found = at(scan(tmp_path, ds, level=level), "preamble")
    assert found[Detector.PREAMBLE] in (Action.REPORT, Action.FAIL)
    assert found[Detector.KNOWN_VALUE] is Action.FAIL
    assert found[Detector.NHS_NUMBER] is Action.FAIL


def test_a_non_zero_preamble_is_reported_and_a_tiff_header_is_not(tmp_path: Path) -> None:
    ds = base()
    ds.preamble = bytes(range(1, 129))
    assert at(scan(tmp_path, ds), "preamble")[Detector.PREAMBLE] is Action.REPORT
    ds.preamble = b"II*\x00\x08\x00\x00\x00".ljust(128, b"\x00")
    assert at(scan(tmp_path, ds), "preamble") == {}


# -- 3. code meanings and coded text ---------------------------------------------------------
def coded(**code: str) -> Dataset:
    concept = Dataset()
    for keyword, value in code.items():
        setattr(concept, keyword, value)
    item, outer = Dataset(), Dataset()
    item.ConceptNameCodeSequence = Sequence([concept])
    outer.ContentSequence = Sequence([item])
    return outer


@pytest.mark.parametrize(
    ("code", "detector"),
    [
        ({"CodeValue": "121071", "CodeMeaning": "HENDERSON^MARGARET", "CodingSchemeDesignator": "DCM"}, Detector.PERSON_NAME),
        ({"CodeValue": "121071", "CodeMeaning": "call 0113 496 0000", "CodingSchemeDesignator": "DCM"}, Detector.PHONE),
        ({"CodeValue": "Dr Henderson", "CodeMeaning": "Finding", "CodingSchemeDesignator": "99ZZ"}, Detector.PERSON_NAME),
        ({"CodeValue": "1", "CodeMeaning": "Finding", "CodingSchemeDesignator": "ZZTEST"}, Detector.KNOWN_VALUE),
    ],
)  # fmt: skip
def test_identifiers_in_coded_text_at_depth_fail(
    tmp_path: Path, code: dict[str, str], detector: Detector
) -> None:
    ds = base()
    ds.ContentSequence = Sequence([coded(**code)])
    findings = scan(tmp_path, ds)
    hits = [f for f in findings if f.detector is detector and "(0040,A043)" in f.tag_path]
    assert hits and all(f.action is Action.FAIL for f in hits), findings


# -- 4. short name parts; other people's names -----------------------------------------------
def test_short_parts_of_the_patients_name_are_found_as_whole_words(tmp_path: Path) -> None:
    known = KnownIdentifiers.of(["LI^NA", "LI", "NA", "O^BRIEN", "O"])
    ds = base()
    ds.StudyDescription = "follow-up for LI"
    ds.SeriesDescription = "O brien knee"
    ds.ImageComments = "ALIGN NASAL OBLIQUE"  # no whole word: not a finding
    findings = scan(tmp_path, ds, known=known)
    assert at(findings, "(0008,1030)")[Detector.KNOWN_VALUE] is Action.FAIL
    assert at(findings, "(0008,103E)")[Detector.KNOWN_VALUE] is Action.FAIL
    assert Detector.KNOWN_VALUE not in at(findings, "(0020,4000)")


def test_another_persons_name_in_text_fails_at_publication(tmp_path: Path) -> None:
    ds = base()
    ds.ImageComments = "son of Margaret Jones"
    assert at(scan(tmp_path, ds), "(0020,4000)")[Detector.PERSON_NAME] is Action.REPORT
    published = at(scan(tmp_path, ds, level="publication"), "(0020,4000)")
    assert published[Detector.PERSON_NAME] is Action.FAIL


# -- 5. UR and AE values ----------------------------------------------------------------------
@pytest.mark.parametrize("level", ["limited-access", "publication"])
def test_identifying_urls_fail(tmp_path: Path, level: str) -> None:
    ds = base()
    ds.RetrieveURL = "https://pacs.example.org/wado?requestType=WADO&patientID=ZZ0000001"
    ds.ContactURI = "mailto:zz.canary@example.org"
    ds.StorageURL = "https://zzuser:secret@files.example.org/x"
    findings = scan(tmp_path, ds, level=level, known=None)
    assert at(findings, "(0008,1190)")[Detector.URL_IDENTIFIER] is Action.FAIL
    assert at(findings, "(0074,100A)")[Detector.EMAIL] is Action.FAIL
    assert at(findings, "(0040,4073)")[Detector.URL_IDENTIFIER] is Action.FAIL


def test_any_public_ur_or_ae_value_fails_at_publication(tmp_path: Path) -> None:
    ds = base()
    ds.RetrieveURI = "https://example.org/studies/x"
    ds.RetrieveAETitle = "ZZPACS"
    for level, action in (("limited-access", Action.REPORT), ("publication", Action.FAIL)):
        findings = scan(tmp_path, ds, level=level, known=None)
        assert at(findings, "(0040,E010)")[Detector.NETWORK_ATTRIBUTE] is action
        assert at(findings, "(0008,0054)")[Detector.NETWORK_ATTRIBUTE] is action


# -- 6. network addresses and the file meta ---------------------------------------------------
@pytest.mark.parametrize(
    "text",
    ["sent from 10.20.30.40 today", "host fe80::1ff:fe23:4567:890a", "via pacs01.trust.nhs.uk",
     "from 2001:db8:0:0:0:0:0:1", "node zzpacs.radiology.local"],
)  # fmt: skip
def test_network_addresses_in_text_fail(tmp_path: Path, text: str) -> None:
    ds = base()
    ds.ImageComments = text
    assert (
        at(scan(tmp_path, ds, known=None), "(0020,4000)")[Detector.NETWORK_ADDRESS] is Action.FAIL
    )


def test_file_meta_addresses_rtv_and_a_foreign_implementation_are_findings(
    tmp_path: Path,
) -> None:
    ds = base(
        SourcePresentationAddress="dicom://zzpacs:104",
        SendingPresentationAddress="dicom://10.0.0.7:11112",
        RTVSourceIdentifier=b"ZZSOURCE",
        RTVFlowRTPSamplingRate=90000,
        ImplementationClassUID="1.2.276.0.7230010.3.0.3.6.4",
        ImplementationVersionName="ZZVENDOR_361",
    )
    for level, action in (("limited-access", Action.REPORT), ("publication", Action.FAIL)):
        findings = scan(tmp_path, ds, level=level, known=None)
        for path in ("(0002,0026)", "(0002,0027)", "(0002,0035)", "(0002,0037)"):
            assert at(findings, path)[Detector.NETWORK_ATTRIBUTE] is action, path
        assert at(findings, "(0002,0012)")[Detector.IMPLEMENTATION] is action
        assert at(findings, "(0002,0013)")[Detector.IMPLEMENTATION] is action


# -- 10. verifiable UIDs; every byte of binary values -----------------------------------------
def test_made_uids_verify_under_their_key_only() -> None:
    uid = KEYS.uid("1.2.3.4.5")
    assert uid.startswith("2.25.") and len(uid) <= 64 and uid == KEYS.uid("1.2.3.4.5")
    assert KEYS.made_uid(uid)
    assert not OTHER_KEYS.made_uid(uid)
    assert not KEYS.made_uid(f"2.25.{uuid.uuid4().int}")
    assert (
        not KEYS.made_uid("1.2.3.4.5")
        and not KEYS.made_uid("2.25.x")
        and not KEYS.made_uid("2.25.0123")
    )


def test_an_original_uuid_uid_fails_with_keys_and_is_reported_without(tmp_path: Path) -> None:
    ds = base()
    ds.StudyInstanceUID = f"2.25.{uuid.UUID(int=0x1234_5678_9ABC_DEF0_1234_5678_9ABC_DEF0).int}"
    ds.SeriesInstanceUID = KEYS.uid("zz-series")
    findings = scan(tmp_path, ds)
    assert at(findings, "(0020,000D)") == {Detector.ORIGINAL_UID: Action.FAIL}
    assert at(findings, "(0020,000E)") == {}
    unverified = scan(tmp_path, ds, keys=())
    assert not [f for f in unverified if f.action is Action.FAIL]
    assert {f.detector for f in unverified} == {Detector.UNVERIFIED_UID}


def test_every_byte_of_a_large_binary_value_is_read(tmp_path: Path) -> None:
    ds = base()
    block = ds.private_block(0x0029, "ZZ VENDOR", create=True)
    block.add_new(0x01, "OB", b"\x00" * (200 * 1024) + b"\x01ZZTEST^Canary 9434765919\x02")
    block.add_new(0x02, "OB", b"\x00" * 1000 + b"\x01LI^NA\x02")  # a short value: 5 letters
    ds.RedPaletteColorLookupTableData = b"\x00\x00" * 100_000 + "ZZ7654321".encode("utf-16-le")
    known = KnownIdentifiers.of(
        ["ZZTEST^Canary", "ZZTEST", "Canary", "LI^NA", "LI", "NA", "ZZ7654321"]
    )
    findings = scan(tmp_path, ds, known=known)
    assert {Detector.NHS_NUMBER, Detector.KNOWN_VALUE} <= set(at(findings, "(0029,1001)"))
    assert at(findings, "(0029,1002)")[Detector.KNOWN_VALUE] is Action.FAIL
    assert at(findings, "(0028,1201)")[Detector.KNOWN_VALUE] is Action.FAIL


# -- 11. kept (safe) private elements are searched like any value -----------------------------
@pytest.mark.parametrize(
    ("vr", "value"),
    [("DS", "9434765919"), ("CS", "NHS 9434765919"), ("SL", b"9434765919\x00\x00"),
     ("FD", b"9434765919\x00\x00\x00\x00\x00\x00"), ("UN", b"\x00\x009434765919")],
)  # fmt: skip
def test_every_kept_private_value_goes_through_the_detectors(
    tmp_path: Path, vr: str, value: str | bytes
) -> None:
    ds = base()
    ds.private_block(0x0019, "SIEMENS MR HEADER", create=True)  # a safe-private creator
    raw = value if isinstance(value, bytes) else value.encode().ljust(len(value) + len(value) % 2)
    # Written byte for byte as a device would, whatever its VR says.
    ds[0x0019100C] = RawDataElement(Tag(0x0019100C), vr, len(raw), raw, 0, False, True)
    found = at(scan(tmp_path, ds, known=None), "(0019,100C)")
    assert found[Detector.NHS_NUMBER] is Action.FAIL
    assert found[Detector.PRIVATE_ELEMENT] is Action.REPORT
