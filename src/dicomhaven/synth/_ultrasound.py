"""Ultrasound stills and cine loops with the patient's details burned into every frame.

Like real scanners, the fake "Sonaris Vista U7" draws the worklist details into a black
header above the sector, always at the same place, and sets Burned In Annotation to YES.
"""

from __future__ import annotations

import numpy as np
from pydicom.uid import UltrasoundImageStorage, UltrasoundMultiFrameImageStorage

from dicomhaven.synth._answer_key import Category, FileKind, IdentifierKind, PixelRegion
from dicomhaven.synth._derive import numpy_rng
from dicomhaven.synth._modules import common_modules, general_series
from dicomhaven.synth._pixels import U8, TextLayer, text_width, ultrasound_frame
from dicomhaven.synth._plan import Context, Target
from dicomhaven.synth._plants import Planter

__all__ = ["build_ultrasound", "header_lines"]

K = IdentifierKind

_FONT_SIZE = 13
_LINE = 16
_TEXT_RGB = (255, 255, 190)


def header_lines(
    ctx: Context, target: Target, cols: int
) -> tuple[list[tuple[int, int, str]], list[tuple[IdentifierKind, str] | None]]:
    """The header and footer text lines and, for each, the identifier it shows (if any)."""
    patient, study = target.patient, target.study
    nhs = patient.nhs_number
    name = f"{patient.name.family.upper()}, {patient.name.given[0]}"
    dob = patient.birth_date.strftime("%d/%m/%Y")
    institution = ctx.site.institutions[study.institution]
    spaced = f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}"
    right = cols - 8
    rows_bottom = ctx.sizes.us[0] - 22
    lines: list[tuple[int, int, str, tuple[IdentifierKind, str] | None]] = [
        (8, 4, name, (K.NAME, name)),
        (
            8,
            4 + _LINE,
            f"ID: {patient.hospital_number}",
            (K.HOSPITAL_NUMBER, patient.hospital_number),
        ),
        (8, 4 + 2 * _LINE, f"NHS: {spaced}", (K.NHS_NUMBER, spaced)),
        (8, 4 + 3 * _LINE, f"DOB: {dob}", (K.BIRTH_DATE, dob)),
        (right - text_width(institution, _FONT_SIZE), 4, institution, (K.INSTITUTION, institution)),
        (
            right - text_width("00/00/0000 00:00", _FONT_SIZE),
            4 + _LINE,
            f"{study.date:%d/%m/%Y} {study.time[:2]}:{study.time[2:4]}",
            None,
        ),
        (8, rows_bottom, "C5-1  ABD  MI 0.9  TIS 0.4  D 16cm", None),
    ]
    return [(x, y, text) for x, y, text, _ in lines], [ident for *_, ident in lines]


def build_ultrasound(ctx: Context, target: Target, p: Planter) -> None:
    """A still (US Image) or an 8-frame cine (US Multi-frame Image), text on every frame."""
    study = target.study
    cine = target.series.kind is FileKind.US_CINE
    colour = study.rng("colour").random() < 0.5
    sop_class = UltrasoundMultiFrameImageStorage if cine else UltrasoundImageStorage
    common_modules(p, ctx, target, sop_class, "US ABDOMEN")
    general_series(p, target, "US")

    rows, cols = ctx.sizes.us
    frames = ctx.sizes.us_frames if cine else 1
    lines, identifiers = header_lines(ctx, target, cols)
    layer = TextLayer.render((rows, cols), lines, _FONT_SIZE)
    noise = numpy_rng(ctx.seed, target.path)
    images: list[U8] = []
    for frame in range(frames):
        gray = ultrasound_frame(noise, rows, cols, phase=frame * 0.4 + target.number)
        base = np.repeat(gray[..., None], 3, axis=2) if colour else gray
        images.append(layer.blend(base, _TEXT_RGB if colour else (255,)))
    numbers = tuple(range(1, frames + 1))
    for ident, box in zip(identifiers, layer.boxes, strict=True):
        if ident is not None:
            p.pixels(Category.BURNED_IN_PIXELS, ident[0], ident[1], PixelRegion(numbers, box))

    p.put("ImageType", "CS", ["ORIGINAL", "PRIMARY", "ABDOMINAL", "0001"])
    p.put("InstanceNumber", "IS", target.number)
    p.put("ContentDate", "DA", study.date.strftime("%Y%m%d"))
    p.put("ContentTime", "TM", study.time)
    p.put("PatientOrientation", "CS", "")
    p.put("BodyPartExamined", "CS", "ABDOMEN")
    p.put("SamplesPerPixel", "US", 3 if colour else 1)
    p.put("PhotometricInterpretation", "CS", "RGB" if colour else "MONOCHROME2")
    if colour:
        p.put("PlanarConfiguration", "US", 0)
    p.put("Rows", "US", rows)
    p.put("Columns", "US", cols)
    p.put("BitsAllocated", "US", 8)
    p.put("BitsStored", "US", 8)
    p.put("HighBit", "US", 7)
    p.put("PixelRepresentation", "US", 0)
    if cine:
        p.put("NumberOfFrames", "IS", frames)
        p.put("FrameIncrementPointer", "AT", 0x00181063)
        p.put("FrameTime", "DS", 40)
        p.put("CineRate", "IS", 25)
    p.put("LossyImageCompression", "CS", "00")
    p.put("BurnedInAnnotation", "CS", "YES")
    p.put("PixelData", "OB", np.stack(images).tobytes())
