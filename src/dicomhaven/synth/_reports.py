"""The two non-image objects of a CT study: the dose screen capture and the radiology report.

The dose screen is a Secondary Capture of the scanner's dose page, with the patient's name,
hospital number and accession number rendered into its pixels. The report is a
Comprehensive SR whose content tree names the patient and the clinicians at several depths
and references one of the study's CT slices.
"""

from __future__ import annotations

import numpy as np
from pydicom.uid import ComprehensiveSRStorage, CTImageStorage, SecondaryCaptureImageStorage

from dicomhaven.synth._answer_key import Category, FileKind, IdentifierKind, PixelRegion
from dicomhaven.synth._images import ct_study_description
from dicomhaven.synth._modules import code_sequence, common_modules, general_series
from dicomhaven.synth._pixels import TextLayer, blank
from dicomhaven.synth._plan import Context, Target
from dicomhaven.synth._plants import Planter
from dicomhaven.synth._text import MONTHS, compose, date_variant, name_variant, nhs_variant

__all__ = ["build_dose_screen", "build_report"]

K = IdentifierKind
_FONT_SIZE = 14
_LINE = 20
_COLUMNS = (16, 86, 176, 306, 426)


def build_dose_screen(ctx: Context, target: Target, p: Planter) -> None:
    """The scanner's dose page (CTDIvol, DLP) saved as a Secondary Capture image."""
    rng = target.rng()
    patient, study = target.patient, target.study
    common_modules(p, ctx, target, SecondaryCaptureImageStorage, ct_study_description(target))
    general_series(p, target, "CT")

    name = f"{patient.name.family.upper()}^{patient.name.given[0].upper()}"
    institution = ctx.site.institutions[study.institution]
    ctdi = round(rng.uniform(6.0, 12.0), 2)
    length = round(rng.uniform(28.0, 36.0), 1)
    header: list[tuple[str, tuple[IdentifierKind, str] | None]] = [
        ("Dose Report", None),
        (f"Name: {name}", (K.NAME, name)),
        (f"ID: {patient.hospital_number}", (K.HOSPITAL_NUMBER, patient.hospital_number)),
        (f"Accession: {study.accession}", (K.ACCESSION_NUMBER, study.accession)),
        (f"Exam: {study.date.day} {MONTHS[study.date.month - 1]} {study.date.year}", None),
        (institution, (K.INSTITUTION, institution)),
    ]
    lines = [(16, 14 + i * _LINE, text) for i, (text, _) in enumerate(header)]
    identifiers = [ident for _, ident in header]
    table = [
        ("Series", "Type", "CTDIvol (mGy)", "DLP (mGy-cm)", "Phantom"),
        ("1", "Scout", "-", "-", "-"),
        ("2", "Helical", f"{ctdi:.2f}", f"{ctdi * length:.1f}", "Body 32"),
    ]
    top = 14 + (len(header) + 1) * _LINE
    for row, cells in enumerate(table):
        for x, cell in zip(_COLUMNS, cells, strict=True):
            lines.append((x, top + row * _LINE, cell))
            identifiers.append(None)
    lines.append(
        (16, top + len(table) * _LINE, f"Total Exam DLP: {ctdi * length + 1.2:.1f} mGy-cm")
    )
    identifiers.append(None)
    rows, cols = ctx.sizes.dose_screen
    layer = TextLayer.render((rows, cols), lines, _FONT_SIZE)
    pixels = layer.blend(blank(rows, cols, 0), (235,))
    for ident, box in zip(identifiers, layer.boxes, strict=True):
        if ident is not None:
            p.pixels(Category.BURNED_IN_PIXELS, ident[0], ident[1], PixelRegion((1,), box))

    p.put("ConversionType", "CS", "WSD")
    p.put("BodyPartExamined", "CS", "CHEST")
    p.put("ImageType", "CS", ["DERIVED", "SECONDARY", "SCREEN SAVE"])
    p.put("InstanceNumber", "IS", target.number)
    p.put("ContentDate", "DA", study.date.strftime("%Y%m%d"))
    p.put("ContentTime", "TM", study.time)
    p.put("PatientOrientation", "CS", "")
    p.put("DateOfSecondaryCapture", "DA", study.date.strftime("%Y%m%d"))
    p.put("TimeOfSecondaryCapture", "TM", study.time)
    p.put("SamplesPerPixel", "US", 1)
    p.put("PhotometricInterpretation", "CS", "MONOCHROME2")
    p.put("Rows", "US", rows)
    p.put("Columns", "US", cols)
    p.put("BitsAllocated", "US", 8)
    p.put("BitsStored", "US", 8)
    p.put("HighBit", "US", 7)
    p.put("PixelRepresentation", "US", 0)
    p.put("BurnedInAnnotation", "CS", "YES")
    p.put("LossyImageCompression", "CS", "00")
    p.put("PixelData", "OB", np.ascontiguousarray(pixels).tobytes())


def _item(p: Planter, relationship: str, value_type: str, concept: tuple[str, str, str]) -> None:
    p.put("RelationshipType", "CS", relationship)
    p.put("ValueType", "CS", value_type)
    code_sequence(p, "ConceptNameCodeSequence", *concept)


def build_report(ctx: Context, target: Target, p: Planter) -> None:
    """A verified Comprehensive SR report on the study's CT, naming the patient in its text."""
    rng = target.rng()
    patient, study = target.patient, target.study
    radiologist = ctx.site.radiologists[rng.randrange(len(ctx.site.radiologists))]
    institution = ctx.site.institutions[study.institution]
    axial = study.series_of_kind(FileKind.CT)
    image_uid = axial.instance_uids[len(axial.instance_uids) // 2]
    date, time = study.date.strftime("%Y%m%d"), study.time

    common_modules(p, ctx, target, ComprehensiveSRStorage, ct_study_description(target))

    # SR Document Series Module
    p.put("Modality", "CS", "SR")
    p.put("SeriesInstanceUID", "UI", target.series.uid)
    p.put("SeriesNumber", "IS", target.series.number)
    p.put("SeriesDate", "DA", date)
    p.put("SeriesTime", "TM", time)
    p.put("SeriesDescription", "LO", target.series.description)
    p.dataset.add_new("ReferencedPerformedProcedureStepSequence", "SQ", [])

    # SR Document General Module
    p.put("InstanceNumber", "IS", target.number)
    p.put("CompletionFlag", "CS", "COMPLETE")
    p.put("VerificationFlag", "CS", "VERIFIED")
    p.put("ContentDate", "DA", date)
    p.put("ContentTime", "TM", time)
    verifier = p.sequence("VerifyingObserverSequence")[0]
    verifier.put_id("VerifyingObserverName", "PN", K.CLINICIAN_NAME, radiologist.pn)
    verifier.put_id("VerifyingOrganization", "LO", K.INSTITUTION, institution)
    verifier.put("VerificationDateTime", "DT", f"{date}{time}")
    verifier.dataset.add_new("VerifyingObserverIdentificationCodeSequence", "SQ", [])
    request = p.sequence("ReferencedRequestSequence")[0]
    request.put("StudyInstanceUID", "UI", study.uid)
    request.put_id("AccessionNumber", "SH", K.ACCESSION_NUMBER, study.accession)
    request.dataset.add_new("ReferencedStudySequence", "SQ", [])
    request.put_id("RequestedProcedureID", "SH", K.ACCESSION_NUMBER, study.accession)
    request.put("RequestedProcedureDescription", "LO", "CT CHEST")
    request.dataset.add_new("RequestedProcedureCodeSequence", "SQ", [])
    request.put("PlacerOrderNumberImagingServiceRequest", "LO", "")
    request.put("FillerOrderNumberImagingServiceRequest", "LO", "")
    p.dataset.add_new("PerformedProcedureCodeSequence", "SQ", [])
    evidence = p.sequence("CurrentRequestedProcedureEvidenceSequence")[0]
    evidence.put("StudyInstanceUID", "UI", study.uid)
    series = evidence.sequence("ReferencedSeriesSequence")[0]
    series.put("SeriesInstanceUID", "UI", axial.uid)
    sop = series.sequence("ReferencedSOPSequence")[0]
    sop.put("ReferencedSOPClassUID", "UI", CTImageStorage)
    sop.put("ReferencedSOPInstanceUID", "UI", image_uid)

    # SR Document Content Module: the root container and its tree
    p.put("ValueType", "CS", "CONTAINER")
    code_sequence(p, "ConceptNameCodeSequence", "18748-4", "LN", "Diagnostic imaging report")
    p.put("ContinuityOfContent", "CS", "SEPARATE")
    observer_type, observer, subject, history, findings, impression = p.sequence(
        "ContentSequence", 6
    )
    _item(observer_type, "HAS OBS CONTEXT", "CODE", ("121005", "DCM", "Observer Type"))
    code_sequence(observer_type, "ConceptCodeSequence", "121006", "DCM", "Person")
    _item(observer, "HAS OBS CONTEXT", "PNAME", ("121008", "DCM", "Person Observer Name"))
    observer.put_id("PersonName", "PN", K.CLINICIAN_NAME, radiologist.pn)
    _item(subject, "HAS OBS CONTEXT", "PNAME", ("121029", "DCM", "Subject Name"))
    subject.put_id("PersonName", "PN", K.NAME, patient.name.pn)

    _item(history, "CONTAINS", "CONTAINER", ("121060", "DCM", "History"))
    history.put("ContinuityOfContent", "CS", "SEPARATE")
    (history_text,) = history.sequence("ContentSequence")
    _item(history_text, "CONTAINS", "TEXT", ("121060", "DCM", "History"))
    history_text.put_text(
        "TextValue",
        "UT",
        compose(
            (K.NAME, name_variant(rng, patient.name)),
            " (DOB ",
            (K.BIRTH_DATE, date_variant(rng, patient.birth_date)),
            ", NHS ",
            (K.NHS_NUMBER, nhs_variant(rng, patient.nhs_number)),
            ") referred by ",
            (K.CLINICIAN_NAME, patient.clinician.display),
            " with a persistent cough.",
        ),
    )

    _item(findings, "CONTAINS", "CONTAINER", ("121070", "DCM", "Findings"))
    findings.put("ContinuityOfContent", "CS", "SEPARATE")
    (finding,) = findings.sequence("ContentSequence")
    _item(finding, "CONTAINS", "TEXT", ("121071", "DCM", "Finding"))
    finding.put_text(
        "TextValue",
        "UT",
        compose(
            "Lungs clear. No mass or effusion. Compared with prior imaging of ",
            (K.NAME, name_variant(rng, patient.name)),
            " (hospital no ",
            (K.HOSPITAL_NUMBER, patient.hospital_number),
            ").",
        ),
    )
    (image,) = finding.sequence("ContentSequence")
    _item(image, "INFERRED FROM", "IMAGE", ("121200", "DCM", "Illustration of Finding"))
    ref = image.sequence("ReferencedSOPSequence")[0]
    ref.put("ReferencedSOPClassUID", "UI", CTImageStorage)
    ref.put("ReferencedSOPInstanceUID", "UI", image_uid)

    _item(impression, "CONTAINS", "CONTAINER", ("121072", "DCM", "Impression"))
    impression.put("ContinuityOfContent", "CS", "SEPARATE")
    (summary,) = impression.sequence("ContentSequence")
    _item(summary, "CONTAINS", "TEXT", ("121073", "DCM", "Impression"))
    summary.put_text(
        "TextValue",
        "UT",
        compose(
            "Normal CT chest. Result phoned to ",
            (K.CLINICIAN_NAME, patient.clinician.display),
            "; patient contact ",
            (K.PHONE, patient.phone),
            ".",
        ),
    )
