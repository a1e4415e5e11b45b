"""Screening mammograms and CT series, the cross-sectional and projection images of the site.

A CT study's second series is a set of thick-slab averages of the first, naming its sources
in Source Image, Referenced Image and Referenced Series Sequences, so a UID-remapping stage
has references to keep consistent.
"""

from __future__ import annotations

import numpy as np
from pydicom.pixels.utils import pack_bits
from pydicom.uid import CTImageStorage, DigitalMammographyXRayImageStorageForPresentation

from dicomhaven.synth._answer_key import Category, IdentifierKind, PixelRegion
from dicomhaven.synth._derive import derived_uid, numpy_rng
from dicomhaven.synth._modules import code_sequence, common_modules, general_series
from dicomhaven.synth._pixels import U16, breast, ct_slice, text_bitmap, text_width
from dicomhaven.synth._plan import Context, Target
from dicomhaven.synth._plants import Planter
from dicomhaven.synth._text import Text, compose, name_variant, patient_line

__all__ = ["build_ct", "build_mammo", "ct_study_description"]

K = IdentifierKind

# View order within a screening study, and the Patient Orientation each is hung with
# (right breasts face left, left breasts face right).
_VIEWS = (("R", "CC"), ("L", "CC"), ("R", "MLO"), ("L", "MLO"))
_ORIENTATION = {
    ("R", "CC"): ["P", "L"],
    ("L", "CC"): ["A", "R"],
    ("R", "MLO"): ["P", "F"],
    ("L", "MLO"): ["A", "F"],
}
# SNOMED CT view codes of the Mammography Image Module (CID 4014).
_VIEW_CODES = {"CC": ("399162004", "cranio-caudal"), "MLO": ("399368009", "medio-lateral oblique")}

_SLICE_MM = 5.0
_SLAB = 3


def _pixel_module(p: Planter, pixels: U16, bits_stored: int) -> None:
    rows, cols = pixels.shape
    p.put("SamplesPerPixel", "US", 1)
    p.put("PhotometricInterpretation", "CS", "MONOCHROME2")
    p.put("Rows", "US", rows)
    p.put("Columns", "US", cols)
    p.put("BitsAllocated", "US", 16)
    p.put("BitsStored", "US", bits_stored)
    p.put("HighBit", "US", bits_stored - 1)
    p.put("PixelRepresentation", "US", 0)
    p.put("PixelData", "OW", pixels.astype("<u2").tobytes())


def _overlay(p: Planter, rows: int, cols: int, text: str) -> None:
    """Overlay Plane 6000 whose bitmap spells ``text``, as some PACS label images."""
    x, y = cols // 24, rows // 24
    size = max(14, rows // 24)
    while size > 8 and text_width(text, size) > cols - 2 * x:
        size -= 1  # long names on a small CT matrix must still fit whole
    bits, box = text_bitmap((rows, cols), x, y, text, size)
    p.put(0x60000010, "US", rows)
    p.put(0x60000011, "US", cols)
    p.put(0x60000022, "LO", "PACS label")
    p.put(0x60000040, "CS", "G")
    p.put(0x60000050, "SS", [1, 1])
    p.put(0x60000100, "US", 1)
    p.put(0x60000102, "US", 0)
    p.put(0x60003000, "OW", pack_bits(bits.ravel()))
    p.pixels(Category.OVERLAY, K.NAME, text, PixelRegion((1,), box))


def build_mammo(ctx: Context, target: Target, p: Planter) -> None:
    """One view of a four-view screening mammogram, For Presentation."""
    rng = target.rng()
    patient, study = target.patient, target.study
    laterality, view = _VIEWS[target.number - 1]
    sop_class = DigitalMammographyXRayImageStorageForPresentation
    common_modules(p, ctx, target, sop_class, "Screening mammography")
    general_series(p, target, "MG")

    # Each compression of the breast is its own frame of reference.
    p.put("FrameOfReferenceUID", "UI", derived_uid(ctx.seed, target.path, "frame-of-reference"))
    p.put("PositionReferenceIndicator", "LO", "")
    p.put("ImageType", "CS", ["ORIGINAL", "PRIMARY"])
    p.put("InstanceNumber", "IS", target.number)
    p.put("ContentDate", "DA", study.date.strftime("%Y%m%d"))
    p.put("ContentTime", "TM", study.time)
    p.put("AcquisitionDate", "DA", study.date.strftime("%Y%m%d"))
    p.put("AcquisitionTime", "TM", study.time)
    p.put("PresentationIntentType", "CS", "FOR PRESENTATION")
    p.put("PatientOrientation", "CS", _ORIENTATION[(laterality, view)])
    p.put("ImageLaterality", "CS", laterality)
    p.put("ViewPosition", "CS", view)
    p.put("BodyPartExamined", "CS", "BREAST")
    p.put("OrganExposed", "CS", "BREAST")
    code_sequence(p, "AnatomicRegionSequence", "76752008", "SCT", "Breast")
    code, meaning = _VIEW_CODES[view]
    view_item = code_sequence(p, "ViewCodeSequence", code, "SCT", meaning)
    view_item.dataset.add_new("ViewModifierCodeSequence", "SQ", [])
    p.put("PositionerType", "CS", "MAMMOGRAPHIC")
    p.put("PositionerPrimaryAngle", "DS", 0 if view == "CC" else (45 if laterality == "R" else -45))
    p.put("DetectorType", "CS", "DIRECT")
    rows, cols = ctx.sizes.mammo
    spacing = round(0.07 * 3328 / cols, 4)
    p.put("ImagerPixelSpacing", "DS", [spacing, spacing])
    p.put("KVP", "DS", 29)
    p.put("ExposureTime", "IS", 1100)
    p.put("XRayTubeCurrent", "IS", 120)
    p.put("BodyPartThickness", "DS", 52)
    p.put("CompressionForce", "DS", 98)
    p.put("DistanceSourceToDetector", "DS", 660)
    p.put("AnodeTargetMaterial", "CS", "TUNGSTEN")
    p.put("FilterMaterial", "CS", "RHODIUM")
    p.put("BreastImplantPresent", "CS", "NO")
    p.dataset.add_new("AcquisitionContextSequence", "SQ", [])

    pixels = breast(numpy_rng(ctx.seed, target.path), rows, cols, laterality, view)
    _pixel_module(p, pixels, 12)
    p.put("PixelIntensityRelationship", "CS", "LOG")
    p.put("PixelIntensityRelationshipSign", "SS", -1)
    p.put("RescaleIntercept", "DS", 0)
    p.put("RescaleSlope", "DS", 1)
    p.put("RescaleType", "LO", "US")
    p.put("PresentationLUTShape", "CS", "IDENTITY")
    p.put("WindowCenter", "DS", 2000)
    p.put("WindowWidth", "DS", 1600)
    p.put("LossyImageCompression", "CS", "00")
    p.put("BurnedInAnnotation", "CS", "NO")
    p.put("QualityControlImage", "CS", "NO")
    if target.number == 1 or rng.random() < 0.3:
        p.put_text("ImageComments", "LT", patient_line(rng, patient))
    if study.overlay and target.number == 1:
        _overlay(p, rows, cols, f"{patient.name.family.upper()} {patient.name.given[0]}")


def _ct_pixels(ctx: Context, target: Target, index: int) -> U16:
    """Slice ``index`` (0-based) of the study's axial series: the same for every reader."""
    rows, cols = ctx.sizes.ct
    rng = numpy_rng(ctx.seed, target.patient.index, target.study.number, "ct-slice", index)
    return ct_slice(rng, rows, cols, -index * _SLICE_MM)


def ct_study_description(target: Target) -> str | Text:
    """Half the CT studies were booked with the patient's name typed into the description."""
    rng = target.study.rng("description")
    if rng.random() < 0.5:
        return "CT CHEST"
    return compose("CT CHEST ", (K.NAME, name_variant(rng, target.patient.name)))


def build_ct(ctx: Context, target: Target, p: Planter) -> None:
    """An axial CT slice (series 1) or a thick-slab average of three (series 2)."""
    rng = target.rng()
    patient, study = target.patient, target.study
    common_modules(p, ctx, target, CTImageStorage, ct_study_description(target))
    general_series(p, target, "CT")

    rows, cols = ctx.sizes.ct
    spacing = round(350.0 / cols, 4)
    derived = target.series.number == 2
    if derived:
        first = (target.number - 1) * _SLAB
        sources = list(range(first, min(first + _SLAB, ctx.sizes.ct_slices)))
        stack = np.stack([_ct_pixels(ctx, target, i) for i in sources]).astype(np.float32)
        pixels = np.rint(stack.mean(axis=0)).astype(np.uint16)
        z = -float(np.mean(sources)) * _SLICE_MM
        thickness = _SLICE_MM * len(sources)
        _references(p, target, sources)
    else:
        pixels = _ct_pixels(ctx, target, target.number - 1)
        z = -(target.number - 1) * _SLICE_MM
        thickness = _SLICE_MM

    p.put("FrameOfReferenceUID", "UI", study.frame_of_reference)
    p.put("PositionReferenceIndicator", "LO", "")
    p.put("PatientPosition", "CS", "HFS")
    p.put("BodyPartExamined", "CS", "CHEST")
    image_type = ["DERIVED", "SECONDARY", "AXIAL"] if derived else ["ORIGINAL", "PRIMARY", "AXIAL"]
    p.put("ImageType", "CS", image_type)
    p.put("InstanceNumber", "IS", target.number)
    p.put("AcquisitionNumber", "IS", 1)
    p.put("ContentDate", "DA", study.date.strftime("%Y%m%d"))
    p.put("ContentTime", "TM", study.time)
    p.put("ImagePositionPatient", "DS", [-spacing * cols / 2, -spacing * rows / 2, z])
    p.put("ImageOrientationPatient", "DS", [1, 0, 0, 0, 1, 0])
    p.put("SliceLocation", "DS", z)
    p.put("SliceThickness", "DS", thickness)
    p.put("PixelSpacing", "DS", [spacing, spacing])
    p.put("KVP", "DS", 120)
    p.put("XRayTubeCurrent", "IS", 210)
    p.put("ConvolutionKernel", "SH", "STANDARD")
    _pixel_module(p, pixels, 12)
    p.put("RescaleIntercept", "DS", -1024)
    p.put("RescaleSlope", "DS", 1)
    p.put("RescaleType", "LO", "HU")
    p.put("WindowCenter", "DS", 40)
    p.put("WindowWidth", "DS", 400)
    p.put("BurnedInAnnotation", "CS", "NO")
    if target.number == 1 and rng.random() < 0.5:
        p.put_text("ImageComments", "LT", patient_line(rng, patient))
    if study.overlay and target.series.number == 1 and target.number == 1:
        _overlay(p, rows, cols, patient.name.family.upper())


def _references(p: Planter, target: Target, sources: list[int]) -> None:
    """Name the axial slices a slab was averaged from, three ways devices do it."""
    axial = target.study.series[0]
    source_uids = [axial.instance_uids[i] for i in sources]
    p.put("DerivationDescription", "ST", f"Average of {len(sources)} contiguous 5 mm slices")
    for item, uid in zip(
        p.sequence("SourceImageSequence", len(source_uids)), source_uids, strict=True
    ):
        item.put("ReferencedSOPClassUID", "UI", CTImageStorage)
        item.put("ReferencedSOPInstanceUID", "UI", uid)
    middle = p.sequence("ReferencedImageSequence")[0]
    middle.put("ReferencedSOPClassUID", "UI", CTImageStorage)
    middle.put("ReferencedSOPInstanceUID", "UI", source_uids[len(source_uids) // 2])
    series = p.sequence("ReferencedSeriesSequence")[0]
    series.put("SeriesInstanceUID", "UI", axial.uid)
    instances = series.sequence("ReferencedInstanceSequence", len(source_uids))
    for item, uid in zip(instances, source_uids, strict=True):
        item.put("ReferencedSOPClassUID", "UI", CTImageStorage)
        item.put("ReferencedSOPInstanceUID", "UI", uid)
