"""Identifiers hidden where a header-only tool does not look (text inside binary values), and
the publication level's age bands."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from dicomhaven.deid import deidentify, load_profile
from dicomhaven.deid._engine import _band_age
from dicomhaven.errors import ConfigError, UnsafeContent
from dicomhaven.identity import ProjectKeys
from tests.deid.conftest import context

KEYS = ProjectKeys("p", bytes(32))
MASTER = "BCDFGHJKLMNP"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
TWELVE_LEAD_ECG = "1.2.840.10008.5.1.4.1.1.9.1.1"


def dataset(sop_class: str) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.9.9999.40"
    ds.PatientName = "EXAMPLESON^EXAMPLE"
    return ds


@pytest.mark.parametrize(
    "blob",
    [
        b"\x00\x01vendor blob: EXAMPLESON\x00\xff",  # the patient's name, single-byte
        "note EXAMPLESON".encode("utf-16-le") + b"\x00\x00",  # and as UTF-16
        b"\x02\x03NHS 9990001219\x00",  # an NHS number, whoever's it is
    ],
)
def test_binary_value_hiding_text_is_removed(blob: bytes) -> None:
    ds = dataset("1.2.840.10008.5.1.4.1.1.2")  # CT: ICC Profile is not in its IOD
    ds.ICCProfile = blob
    deidentify(ds, load_profile("publication"), context(KEYS, MASTER))
    assert "ICCProfile" not in ds


def test_binary_value_without_text_is_kept_byte_for_byte() -> None:
    ds = dataset("1.2.840.10008.5.1.4.1.1.2")
    blob = bytes(range(32)) * 8 + b"sRGB IEC61966-2.1"
    ds.ICCProfile = blob
    deidentify(ds, load_profile("publication"), context(KEYS, MASTER))
    assert ds.ICCProfile == blob


def test_required_binary_value_hiding_text_holds_the_object() -> None:
    ds = dataset(TWELVE_LEAD_ECG)
    waveform = Dataset()
    waveform.WaveformData = b"\x00\x10EXAMPLESON\x00\x10"
    ds.WaveformSequence = Sequence([waveform])
    with pytest.raises(UnsafeContent, match="WaveformData") as caught:
        deidentify(ds, load_profile("publication"), context(KEYS, MASTER))
    assert "EXAMPLESON" not in str(caught.value)


@pytest.mark.parametrize(
    ("age", "band"),
    [("047Y", "045Y"), ("045Y", "045Y"), ("004Y", "000Y"), ("011M", "000Y"), ("003W", "000Y"),
     ("089Y", "085Y"), ("090Y", "090Y"), ("103Y", "090Y"), ("47", ""), ("", "")],
)  # fmt: skip
def test_ages_fall_into_five_year_bands(age: str, band: str) -> None:
    assert _band_age(age, 5) == band


def test_publication_bands_the_age_and_base_removes_it() -> None:
    for profile, expected in (("publication", "045Y"), ("base", None)):
        ds = dataset("1.2.840.10008.5.1.4.1.1.2")
        ds.PatientAge = "047Y"
        deidentify(ds, load_profile(profile), context(KEYS, MASTER))
        assert ds.get("PatientAge") == expected or (expected is None and not ds.PatientAge)


@pytest.mark.parametrize("value", ["-1", "five", "true", "31"])
def test_bad_age_band_is_refused_with_file_and_line(tmp_path: Path, value: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(f"extends: base\nband_ages: {value}\n")
    with pytest.raises(ConfigError, match=r"p\.yaml:2: 'band_ages'"):
        load_profile(path)
