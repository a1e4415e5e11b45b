"""Device templates in use: an approved template blanks without reading; the sampled image
that is still read revokes a template that no longer covers the text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from dicomhaven.pixels import PixelOutcome, TemplateStore, clean_pixels
from dicomhaven.pixels._clean import _sampled
from tests.peers import require_tool

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def ultrasound(uid: str, text_at: tuple[int, int]) -> Dataset:
    """A 240 x 320 greyscale 'ultrasound' with a fake patient name drawn at ``text_at``."""
    image = Image.new("L", (320, 240), 0)
    draw = ImageDraw.Draw(image)
    draw.ellipse((100, 80, 220, 200), fill=90)  # something to look at
    draw.text(text_at, "EXAMPLESON JANE", fill=255, font=ImageFont.truetype(FONT, 16))
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"
    ds.SOPInstanceUID = uid
    ds.Modality = "US"
    ds.Manufacturer, ds.ManufacturerModelName, ds.SoftwareVersions = "Sonaris", "Vista", "7"
    ds.PatientName = "EXAMPLESON^JANE"
    ds.Rows, ds.Columns = 240, 320
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.asarray(image, dtype=np.uint8).tobytes()
    return ds


def uids(sampled: bool, count: int) -> list[str]:
    found = []
    n = 0
    while len(found) < count:
        uid = f"1.2.826.0.1.3680043.9.9999.5.{n}"
        probe = Dataset()
        probe.SOPInstanceUID = uid
        if _sampled(probe, 10) is sampled:
            found.append(uid)
        n += 1
    return found


def test_approved_template_blanks_without_reading_and_a_sample_revokes_it(tmp_path: Path) -> None:
    require_tool("tesseract")
    store = TemplateStore(tmp_path / "templates")
    first = ultrasound(uids(False, 1)[0], (10, 10))
    learned = clean_pixels(first, None, original=first, templates=store)
    assert learned.outcome is PixelOutcome.REDACTED and not learned.template_used
    (proposed,) = store.all()
    store.approve(proposed.device, "manager1")

    plain, sampled = uids(False, 2)[1], uids(True, 1)[0]
    second = ultrasound(plain, (12, 11))
    used = clean_pixels(second, None, original=second, templates=store)
    assert used.outcome is PixelOutcome.REDACTED and used.template_used
    assert (second.pixel_array[8:30, 8:170] == 0).all()  # the name is gone

    moved = ultrasound(sampled, (150, 210))  # a software update moved the text
    checked = clean_pixels(moved, None, original=moved, templates=store)
    assert checked.outcome is PixelOutcome.REDACTED and not checked.template_used
    assert not store.get(proposed.device).in_use  # type: ignore[union-attr]
