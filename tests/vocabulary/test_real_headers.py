"""Real headers made by others (pydicom's test files, pydicom-data, deid-data, OpenREM's
test files) normalise to the codes a radiographer would give them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydicom
import pytest

from dicomhaven.vocabulary import normalise
from tests.corpora import deid_data_folder, pydicom_data_folder, pydicom_file
from tests.peers import shared_data


def _path(corpus: str, name: str) -> Path:
    if corpus == "pydicom":
        return pydicom_file(name)
    if corpus == "pydicom-data":
        return pydicom_data_folder() / name
    if corpus == "deid-data":
        return deid_data_folder() / name
    return shared_data("openrem", name)


HEAD, CHEST, BREAST = "69536005", "816094009", "76752008"
HEAD_CT, BRAIN_MRI, XR = ("LN", "24725-4"), ("LN", "24590-2"), ("LN", "43468-8")
MAMMOGRAPHY = ("SCT", "71651007")
#: (corpus, file) -> (SCT body part, procedure (scheme, value) or None, a part of matched_by)
EXPECTED: dict[tuple[str, str], tuple[str | None, tuple[str, str] | None, str]] = {
    ("pydicom", "dicomdirtests/77654033/CT2/17106"): (HEAD, HEAD_CT, "BodyPartExamined"),
    ("pydicom", "J2K_pixelrep_mismatch.dcm"): (HEAD, HEAD_CT, "ct-head-by-modality"),
    ("pydicom", "dicomdirtests/77654033/CR1/6154"): ("122494005", XR, "BodyPartExamined"),
    ("pydicom", "dicomdirtests/98892003/MR1/4919"): ("12738006", BRAIN_MRI, "brain"),
    ("pydicom", "dicomdirtests/98892003/MR1/15820"): ("69105007", ("LN", "25056-3"), "carotid"),
    ("pydicom", "dicomdirtests/98892001/CT5N/2062"): ("41801008", ("SCT", "426005005"), "score"),
    ("pydicom", "JPEG-lossy.dcm"): ("38266002", ("LN", "42175-0"), "whole-body-nm"),
    ("pydicom-data", "RG1_J2KI.dcm"): (CHEST, XR, "BodyPartExamined"),
    ("pydicom-data", "MR2_J2KI.dcm"): ("16982005", ("LN", "25056-3"), "shoulder"),
    ("pydicom-data", "explicit_VR-UN.dcm"): ("15776009", ("LN", "25045-6"), "BodyPartExamined"),
    ("deid-data", "humans/ctbrain1.dcm"): (HEAD, HEAD_CT, "BodyPartExamined"),
    ("deid-data", "animals/cat.dcm"): (CHEST, XR, "retired-thorax (AnatomicRegionSequence)"),
    ("deid-data", "ultrasounds/ultrasound-multiframe.dcm"): ("80891009", ("SCT", "40701008"), "echo"),
    ("deid-data", "ultrasounds/GREYSCALE_IMAGE.dcm"): ("64033007", None, "kidneys"),
    ("openrem", "MG-Im-GE-SenDS-scaled.dcm"): (BREAST, MAMMOGRAPHY, "AnatomicRegionSequence (SNM3)"),
    ("openrem", "MG-RDSR-Hologic_2D.dcm"): (BREAST, ("LN", "36626-0"), "bilateral-mammography"),
    ("openrem", "DX-Im-Carestream_DRX.dcm"): (CHEST, XR, "retired-thorax"),
    ("openrem", "DX-Im-GE_XR220-1.dcm"): ("818981001", XR, "retired-abdomen"),
    ("openrem", "CT-RDSR-Siemens_Flash-TAP-SS.dcm"): ("416775004", ("LN", "25045-6"), "chest-abdomen-pelvis"),
    ("openrem", "CT-ESR-GE_VCT.dcm"): ("91397008", None, "facial-bones"),
}  # fmt: skip


def _read(corpus: str, name: str) -> pydicom.Dataset:
    return pydicom.dcmread(_path(corpus, name), stop_before_pixels=True, force=True)


@pytest.mark.parametrize(("corpus", "name"), sorted(EXPECTED))
def test_a_real_header_gets_its_codes(corpus: str, name: str) -> None:
    body_part, procedure, source = EXPECTED[(corpus, name)]
    found = normalise(_read(corpus, name))
    assert (found.body_part.value if found.body_part else None) == body_part, found
    assert found.body_part is None or found.body_part.scheme == "SCT"
    got = (found.procedure.scheme, found.procedure.value) if found.procedure else None
    assert got == procedure, found
    assert source in found.matched_by


def _as_row(dataset: pydicom.Dataset) -> dict[str, Any]:
    """What a catalogue keeps of a header: keywords to plain values."""
    row: dict[str, Any] = {}
    for keyword in ("Modality", "BodyPartExamined", "StudyDescription", "SeriesDescription",
                    "ProtocolName", "RequestedProcedureDescription",
                    "PerformedProcedureStepDescription"):  # fmt: skip
        if dataset.get(keyword) is not None:
            row[keyword] = str(dataset.get(keyword))
    for keyword in ("AnatomicRegionSequence", "ProcedureCodeSequence"):
        row[keyword] = [
            {
                k: str(item.get(k, ""))
                for k in ("CodingSchemeDesignator", "CodeValue", "CodeMeaning")
            }
            for item in dataset.get(keyword, [])
        ]
    return row


@pytest.mark.parametrize(("corpus", "name"), sorted(EXPECTED))
def test_a_catalogue_row_normalises_as_its_data_set(corpus: str, name: str) -> None:
    dataset = _read(corpus, name)
    assert normalise(_as_row(dataset)) == normalise(dataset)
