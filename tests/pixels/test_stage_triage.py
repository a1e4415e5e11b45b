"""The pixel stage triages on the header as received, not on the copy the header stage has
already de-identified: a CT "Dose report" page whose Series Description the profile
removes is still read, and the name burned into it is blanked before release."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom
import pytest
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from sqlalchemy import select

import dicomhaven.deid
from dicomhaven.catalogue import LedgerObject, make_engine, make_sessionmaker
from dicomhaven.ingest import import_paths
from dicomhaven.pixels import AWAITS_DEFACING
from dicomhaven.site import init_site, open_site
from tests.peers import require_tool

pytestmark = pytest.mark.integration

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
ROOT = "1.2.826.0.1.3680043.9.9999.13."
BASE_PROFILE = Path(dicomhaven.deid.__file__).parent / "profiles" / "base.yaml"


def dose_page(path: Path, description: str = "Dose report") -> tuple[int, int, int, int]:
    """A CT slice that is really a dose page saved as an image: only its Series
    Description says so. Writes it to ``path``; the box (x0, y0, x1, y1) of the name."""
    blank = Image.new("L", (256, 256), 0)
    page = blank.copy()
    ImageDraw.Draw(page).text(
        (20, 30), "ZZTEST CANARY", fill=255, font=ImageFont.truetype(FONT, 18)
    )
    ink: npt.NDArray[np.bool_] = np.asarray(page) != np.asarray(blank)
    ys, xs = np.nonzero(ink)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = sop = generate_uid(ROOT)
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(ROOT), generate_uid(ROOT)
    ds.FrameOfReferenceUID = generate_uid(ROOT)
    ds.Modality, ds.ImageType = "CT", ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SeriesDescription = description  # removed by the Basic Profile
    ds.PatientName, ds.PatientID = "ZZTEST^CANARY", "ZZ0000013"
    ds.PatientBirthDate, ds.PatientSex = "19500102", "O"
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber = "20260101", "120000", "ZZACC13"
    ds.Manufacturer = "ZZ Devices"
    ds.InstanceNumber, ds.SeriesNumber = 1, 1
    ds.Rows, ds.Columns = 256, 256
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.PixelData = (np.asarray(page, np.uint16) * 16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def test_a_dose_page_whose_description_the_profile_removes_is_still_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_tool("tesseract")
    # The Basic Profile with no options removes Series Description (the site's default,
    # with the Clean Descriptors Option, keeps "Dose report").
    monkeypatch.setenv("DICOMHAVEN_DEID_PROFILE", str(BASE_PROFILE))
    export = tmp_path / "export"
    export.mkdir()
    x0, y0, x1, y1 = dose_page(export / "page.dcm")
    site = init_site(tmp_path / "site")
    import_paths(site, [export])
    (copy,) = [*site.zone("store").rglob("*.dcm"), *site.zone("quarantine").rglob("*.dcm")]
    output = pydicom.dcmread(copy)
    assert "SeriesDescription" not in output  # the header stage did remove it
    assert (output.pixel_array[y0:y1, x0:x1] == 0).all()  # and the name is blanked


def test_a_head_slice_whose_description_the_profile_removes_still_waits_for_defacing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Face triage too decides on the header as received: only "CT head" says it is a head."""
    monkeypatch.setenv("DICOMHAVEN_DEID_PROFILE", str(BASE_PROFILE))
    export = tmp_path / "export"
    export.mkdir()
    dose_page(export / "slice.dcm", description="CT head")
    site = init_site(tmp_path / "site")
    # the import leaves its series open (it would decide the series itself otherwise)
    (site.root / "dicomhaven.yaml").write_text("import_series_quiet_seconds: 300\n")
    import_paths(open_site(site.root), [export])
    with make_sessionmaker(make_engine(site.database_url))() as session:
        (obj,) = session.scalars(select(LedgerObject))
    assert obj.reason == AWAITS_DEFACING
