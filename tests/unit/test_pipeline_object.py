"""``PipelineObject.leading_header``: the patient and device attributes without reading a
large report whole, and the whole header when the byte path cannot read the file."""

from __future__ import annotations

import pydicom
import pytest

from dicomhaven.pipeline import PipelineObject
from tests.corpora import pydicom_file
from tests.peers import shared_data

KEYWORDS = ("PatientID", "PatientName", "PatientBirthDate", "Modality", "Manufacturer",
            "ManufacturerModelName", "SoftwareVersions")  # fmt: skip


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm"])
def test_leading_header_has_what_the_stages_decide_on(name: str) -> None:
    path = pydicom_file(name)
    obj = PipelineObject(1, "k", path)
    leading = obj.leading_header()
    full = pydicom.dcmread(path, stop_before_pixels=True)
    for keyword in KEYWORDS:
        assert leading.get(keyword) == full.get(keyword), keyword
    assert "PixelData" not in leading


def test_a_large_report_is_not_read_whole() -> None:
    path = shared_data("openrem", "RF-Pat-Orientation-Modifier-Missing.dcm")
    leading = PipelineObject(1, "k", path).leading_header()
    assert "ContentSequence" not in leading and leading.PatientID


def test_big_endian_falls_back_to_the_whole_header() -> None:
    path = pydicom_file("MR_small_bigendian.dcm")
    leading = PipelineObject(1, "k", path).leading_header()
    assert leading.PatientID == pydicom.dcmread(path).PatientID
    assert "Rows" in leading  # read whole (but the pixels)
