"""Tolerant reading: whole DICOM is parsed; everything else gets a reason, never an exception."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from dicomhaven.intake import ParsedObject, Rejection, parse_object
from tests.corpora import deid_data_folder, pydicom_data_folder, pydicom_file

CT = pydicom_file("CT_small.dcm").read_bytes()


def test_whole_file_is_parsed_with_its_facts() -> None:
    parsed = parse_object(CT)
    assert isinstance(parsed, ParsedObject)
    assert parsed.sop_class_uid == "1.2.840.10008.5.1.4.1.1.2"
    assert parsed.modality == "CT"
    assert parsed.transfer_syntax_uid == "1.2.840.10008.1.2.1"


@pytest.mark.parametrize(
    ("cut", "expected"),
    [
        (0, "empty file"),
        (100, "not DICOM"),
        (1000, "truncated DICOM: element (0010,1002)"),
        (len(CT) - 5000, "truncated DICOM: element (7FE0,0010)"),
        (len(CT) - 1, "truncated DICOM"),
    ],
)
def test_truncated_or_empty_bytes_are_rejected_with_a_reason(cut: int, expected: str) -> None:
    result = parse_object(CT[:cut])
    assert isinstance(result, Rejection)
    assert result.reason.startswith(expected)


def test_truncation_inside_a_tag_header_is_caught() -> None:
    # Cut a few bytes into the header of the element that follows (0008,0023).
    full = parse_object(CT)
    assert isinstance(full, ParsedObject)
    result = parse_object(CT[:600])
    assert isinstance(result, Rejection)
    assert "incomplete element" in result.reason


def test_encapsulated_pixel_data_without_delimiter_is_truncated() -> None:
    data = pydicom_file("JPEG2000.dcm").read_bytes()
    assert isinstance(parse_object(data), ParsedObject)
    result = parse_object(data[:-8])
    assert isinstance(result, Rejection)
    assert result.reason.startswith("truncated DICOM")


def test_png_is_not_dicom() -> None:
    buffer = io.BytesIO()
    Image.new("L", (16, 16)).save(buffer, format="PNG")
    result = parse_object(buffer.getvalue())
    assert isinstance(result, Rejection)
    assert result.reason.startswith("not DICOM")


def test_dataset_without_sop_instance_uid_is_rejected() -> None:
    result = parse_object(pydicom_file("nested_priv_SQ.dcm").read_bytes())
    assert isinstance(result, Rejection)
    assert "SOP Instance UID (0008,0018)" in result.reason


def test_preamble_less_dataset_is_read_tolerantly() -> None:
    # An implicit VR data set with no preamble and no file meta, as old exports write them.
    from pydicom import dcmread, dcmwrite

    ds = dcmread(pydicom_file("CT_small.dcm"))
    del ds.file_meta
    ds.preamble = None
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, implicit_vr=True, little_endian=True)
    data = buffer.getvalue()
    assert data[128:132] != b"DICM"
    result = parse_object(data)
    assert isinstance(result, ParsedObject)
    assert result.sop_instance_uid == ds.SOPInstanceUID


def test_rejection_reasons_never_quote_values() -> None:
    # A file whose SOP Instance UID is not a UID: the reason names the tag, not the value.
    from pydicom import dcmread

    ds = dcmread(pydicom_file("CT_small.dcm"))
    buffer = io.BytesIO()
    with pytest.warns(UserWarning):
        ds.SOPInstanceUID = "NOT-A-UID-SMITH"
        ds.save_as(buffer, enforce_file_format=True)
    result = parse_object(buffer.getvalue())
    assert isinstance(result, Rejection)
    assert "SMITH" not in result.reason


def test_every_installed_corpus_file_gives_an_answer_not_an_exception() -> None:
    folders = [pydicom_file("CT_small.dcm").parent, pydicom_data_folder(), deid_data_folder()]
    files = [p for folder in folders for p in folder.rglob("*") if p.is_file()]
    assert len(files) > 200
    parsed = 0
    for path in files:
        result = parse_object(path.read_bytes())
        assert isinstance(result, (ParsedObject, Rejection)), path
        parsed += isinstance(result, ParsedObject)
    assert parsed > 150


def test_exactly_the_known_truncated_corpus_files_are_called_truncated() -> None:
    folders = [pydicom_file("CT_small.dcm").parent, pydicom_data_folder()]
    truncated = {
        path.name
        for folder in folders
        for path in folder.rglob("*.dcm")
        if isinstance(r := parse_object(path.read_bytes()), Rejection)
        and r.reason.startswith("truncated")
    }
    assert truncated == {
        "MR_truncated.dcm",
        "rtplan_truncated.dcm",
        "emri_small_jpeg_2k_lossless_too_short.dcm",
    }
