"""Synthetic MR slices with a fake patient's name, NHS number and birth date burned into
their top-left corner, as some MR consoles stamp them: made here with Pillow, no patient
involved. The NHS number is the NHS's published test number (it passes the check digit).

:func:`burned_in_mr` writes a series and returns the mask of the pixels the text set, so a
test can tell whether the text is still in a copy: every one of those pixels blanked, or
what an OCR engine reads there naming none of the values.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from dicomhaven.pixels import KnownValues

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
ROOT = "1.2.826.0.1.3680043.9.9999.21."
SIZE = 256
LINES = ("CANARY, ZZTEST", "NHS 943 476 5919", "DOB 02/01/1950")
#: What the text says, as the verifier looks for it.
KNOWN = KnownValues(("ZZTEST", "CANARY"), ("9434765919",), (datetime.date(1950, 1, 2),))

Mask = npt.NDArray[np.bool_]


def ink(lines: Sequence[str] = LINES) -> Mask:
    """The pixels the burned-in text sets (the same on every slice)."""
    page = Image.new("L", (SIZE, SIZE), 0)
    draw = ImageDraw.Draw(page)
    font = ImageFont.truetype(FONT, 14)
    for i, line in enumerate(lines):
        draw.text((4, 4 + 18 * i), line, fill=255, font=font)
    mask: Mask = np.asarray(page) > 0
    return mask


def burned_in_mr(
    folder: Path,
    description: str,
    *,
    count: int = 1,
    burned_in_annotation: str | None = "YES",
    patient: str = "ZZ0000021",
    seed: int = 21,
    institution: str | None = None,
    lines: Sequence[str] = LINES,
    spacing: float = 1.0,
) -> Mask:
    """Write ``count`` axial MR slices of one series to ``folder`` (Study Description
    ``description``: "MR BRAIN" makes them a head), ``lines`` burned in (none: plain
    slices); the text's mask. ``spacing`` is the pixel spacing in mm: at 1 mm the field of
    view (256 mm) fits a head whatever the description says, at 0.4 mm (102 mm) it is a
    knee's."""
    folder.mkdir(parents=True, exist_ok=True)
    study, series, frame = (generate_uid(ROOT, [description, patient, w]) for w in "sef")
    yy, xx = np.mgrid[:SIZE, :SIZE]
    body = ((yy - 140) / 100.0) ** 2 + ((xx - 128) / 85.0) ** 2 <= 1  # clear of the text
    text = ink(lines)
    rng = np.random.default_rng(seed)
    for k in range(count):
        pixels = np.where(body, 450 + rng.normal(0, 20, body.shape), 0)
        pixels = np.where(text, 1000, pixels).clip(0, 4095).astype("<u2")
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
        sop = generate_uid(ROOT, [description, patient, str(k)])
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, sop
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.Modality, ds.ImageType = "MR", ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.StudyDescription = description
        if burned_in_annotation is not None:
            ds.BurnedInAnnotation = burned_in_annotation
        ds.PatientName, ds.PatientID = "ZZTEST^CANARY", patient
        ds.PatientBirthDate, ds.PatientSex = "19500102", "O"
        ds.StudyDate, ds.StudyTime, ds.AccessionNumber = "20260101", "120000", "ZZACC21"
        ds.Manufacturer, ds.ManufacturerModelName = "ZZ Devices", "ZZ MR 21"
        if institution is not None:
            ds.InstitutionName = institution
        ds.InstanceNumber, ds.SeriesNumber = k + 1, 1
        ds.ImagePositionPatient = [-128.0, -128.0, 5.0 * k]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.SliceThickness = [spacing, spacing], 5.0
        ds.Rows = ds.Columns = SIZE
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = pixels.tobytes()
        ds.save_as(folder / f"{k + 1:03d}.dcm", enforce_file_format=True)
    return text
