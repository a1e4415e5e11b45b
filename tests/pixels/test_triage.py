"""Triage from the header: the images that may carry burned-in text are read; the others are
not, and every decision says why."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from dicomhaven.pixels import Risk, triage
from dicomhaven.synth import FileKind
from tests.corpora import deid_data_folder, pydicom_data_folder, pydicom_file
from tests.peers import shared_data
from tests.synth.generated import GeneratedSite


def header(path: Path) -> Dataset:
    return pydicom.dcmread(path, stop_before_pixels=False, force=True)


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm"])
def test_scanner_slices_are_low_risk(name: str) -> None:
    decision = triage(header(pydicom_file(name)))
    assert decision.risk is Risk.LOW and decision.reasons


def test_real_burned_in_ultrasounds_are_high_risk() -> None:
    ultrasounds = sorted(pydicom_data_folder().glob("OBXXXX1A*.dcm"))
    ultrasounds += [
        p
        for p in sorted(deid_data_folder().rglob("*.dcm"))
        if "dicom-cleaner" in str(p) or "ultrasound" in str(p).lower()
    ]
    assert len(ultrasounds) >= 2
    for path in ultrasounds:
        decision = triage(header(path))
        assert decision.risk is Risk.HIGH, (path.name, decision.reasons)


def test_presidio_and_openrem_screen_captures_are_high_risk() -> None:
    for path in sorted(shared_data("presidio").glob("*.dcm")):
        assert triage(header(path)).risk is Risk.HIGH, path.name
    capture = header(shared_data("openrem", "CT-SC-Philips_Brilliance16P.dcm"))
    capture.PixelData = b""  # OpenREM keeps the header of this dose screen only
    assert "secondary capture" in triage(capture).reasons


def test_synthetic_site_triage_matches_what_was_planted(synth_site: GeneratedSite) -> None:
    """Ultrasound and dose screens carry planted burned-in text: all high risk. Mammograms
    and CT slices carry none: all low risk."""
    for record in synth_site.key.files:
        ds = pydicom.dcmread(synth_site.root / record.path, stop_before_pixels=True)
        if "PixelData" not in pydicom.dcmread(
            synth_site.root / record.path, specific_tags=["PixelData"]
        ):
            continue
        ds.PixelData = b""  # triage reads the header; it only needs to know pixels exist
        risky = record.kind in (FileKind.US, FileKind.US_CINE, FileKind.DOSE_SCREEN)
        assert triage(ds).risk is (Risk.HIGH if risky else Risk.LOW), (
            record.kind,
            triage(ds).reasons,
        )


def test_burned_in_annotation_no_is_believed_only_on_a_trusted_device() -> None:
    ds = header(pydicom_file("CT_small.dcm"))
    ds.Modality = "US"
    ds.BurnedInAnnotation = "NO"
    assert triage(ds).risk is Risk.HIGH
    assert triage(ds, trusted_device=True).risk is Risk.LOW
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"  # a screen capture is text by nature
    assert triage(ds, trusted_device=True).risk is Risk.HIGH
    ds = header(pydicom_file("CT_small.dcm"))
    ds.BurnedInAnnotation = "YES"  # always believed
    assert triage(ds).risk is Risk.HIGH


def test_objects_without_pixels_are_low_risk() -> None:
    assert triage(header(pydicom_file("rtplan.dcm"))).reasons == ("no pixel data",)


def test_a_single_valued_image_type_is_read_as_one_value() -> None:
    from dicomhaven.pixels import head_volume_slice

    ds = header(pydicom_file("CT_small.dcm"))
    ds.BodyPartExamined = "HEAD"
    assert head_volume_slice(ds) is not None
    ds.ImageType = "LOCALIZER"  # one value, not a list of letters
    assert head_volume_slice(ds) is None
