"""IOD modules shared by every synthetic object, with identifiers planted where devices put them.

Function names follow the module names of DICOM PS3.3 (Patient, General Study, General
Series, General Equipment, SOP Common); :data:`DEVICES` says which optional identifying
attributes each fake device writes, since real ones differ exactly there.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.uid import UID

from dicomhaven.synth._answer_key import FileKind
from dicomhaven.synth._answer_key import IdentifierKind as K
from dicomhaven.synth._people import HOSPITAL_PREFIX, Site
from dicomhaven.synth._plan import Context, Target
from dicomhaven.synth._plants import Planter
from dicomhaven.synth._text import Text, compose, date_variant, name_variant, nhs_variant

__all__ = [
    "DEVICES",
    "PRIVATE_CREATOR",
    "Device",
    "code_sequence",
    "common_modules",
    "general_equipment",
    "general_series",
    "general_study",
    "patient_module",
    "private_block",
    "sop_common",
]

#: The fake PACS that stamps every object it stores with its own private block.
PRIVATE_CREATOR = "ACME PACS 1.0"
PRIVATE_GROUP = 0x0029


@dataclass(frozen=True, slots=True)
class Device:
    """A fake device model and what it copies from the worklist into its objects."""

    manufacturer: str
    model: str
    station: str
    software: str
    serial: str
    other_ids: bool
    demographics: bool


_MAMMO_UNIT = Device(
    "Meridian Imaging", "Lumina M3", f"{HOSPITAL_PREFIX}MAMMO01", "4.2.1", "MI-30041", True, True
)
_CT_SCANNER = Device(
    "Northwind Medical Systems",
    "Aurora 64",
    f"{HOSPITAL_PREFIX}CT02",
    "VX12",
    "NW-6402",
    True,
    False,
)
_US_SCANNER = Device(
    "Sonaris", "Vista U7", f"{HOSPITAL_PREFIX}US03", "7.0.3", "SV-7719", False, True
)
_REPORTING = Device(
    "ACME Reporting", "ReportStation", f"{HOSPITAL_PREFIX}REP01", "5.1", "AR-0001", True, False
)

#: The device that made each kind of file (the CT scanner also saves the dose screen).
DEVICES: dict[FileKind, Device] = {
    FileKind.MAMMO: _MAMMO_UNIT,
    FileKind.CT: _CT_SCANNER,
    FileKind.DOSE_SCREEN: _CT_SCANNER,
    FileKind.US: _US_SCANNER,
    FileKind.US_CINE: _US_SCANNER,
    FileKind.SR: _REPORTING,
}


def common_modules(
    p: Planter, ctx: Context, target: Target, sop_class: UID, description: str | Text
) -> None:
    """The modules every object has: Patient, General Study, General Equipment, SOP Common,
    and the private block the PACS adds on the way in."""
    device = DEVICES[target.series.kind]
    patient_module(p, target, device)
    general_study(p, target, description)
    general_equipment(p, target, device, ctx.site)
    sop_common(p, target, sop_class)
    private_block(p, target)


def code_sequence(p: Planter, tag: str, value: str, scheme: str, meaning: str) -> Planter:
    """A one-item sequence holding a code (Code Sequence Macro); returns the item."""
    item = p.sequence(tag)[0]
    item.put("CodeValue", "SH", value)
    item.put("CodingSchemeDesignator", "SH", scheme)
    item.put("CodeMeaning", "LO", meaning)
    return item


def patient_module(p: Planter, target: Target, device: Device) -> None:
    """Patient Module, plus the demographics some devices copy from the worklist."""
    patient = target.patient
    rng = target.study.rng("patient")
    p.put("SpecificCharacterSet", "CS", "ISO_IR 100")
    p.put_id("PatientName", "PN", K.NAME, patient.name.pn)
    p.put_id("PatientID", "LO", K.HOSPITAL_NUMBER, patient.hospital_number)
    p.put_id("IssuerOfPatientID", "LO", K.INSTITUTION, HOSPITAL_PREFIX)
    p.put_id("PatientBirthDate", "DA", K.BIRTH_DATE, patient.birth_date.strftime("%Y%m%d"))
    p.put("PatientSex", "CS", patient.sex)
    if device.other_ids:
        others = [("NHS", K.NHS_NUMBER, patient.nhs_number)]
        if patient.chi_number is not None:
            others.append(("CHI", K.CHI_NUMBER, patient.chi_number))
        for item, (issuer, kind, number) in zip(
            p.sequence("OtherPatientIDsSequence", len(others)), others, strict=True
        ):
            item.put_id("PatientID", "LO", kind, number)
            item.put("IssuerOfPatientID", "LO", issuer)
            item.put("TypeOfPatientID", "CS", "TEXT")
    if device.demographics:
        p.put(
            "PatientAddress",
            "LO",
            f"{patient.address}, {patient.postcode}",
            [(K.ADDRESS, patient.address), (K.POSTCODE, patient.postcode)],
        )
        p.put_id("PatientTelephoneNumbers", "SH", K.PHONE, patient.phone)
        if rng.random() < 0.5:
            p.put_text(
                "PatientComments",
                "LT",
                compose(
                    "Contact tel ",
                    (K.PHONE, patient.phone),
                    ". Lives at ",
                    (K.ADDRESS, patient.address),
                    " ",
                    (K.POSTCODE, patient.postcode),
                ),
            )


def general_study(p: Planter, target: Target, description: str | Text) -> None:
    """General Study and Patient Study Modules; free text often names the patient."""
    study, patient = target.study, target.patient
    rng = study.rng("general-study")
    p.put("StudyInstanceUID", "UI", study.uid)
    p.put("StudyDate", "DA", study.date.strftime("%Y%m%d"))
    p.put("StudyTime", "TM", study.time)
    p.put_id("ReferringPhysicianName", "PN", K.CLINICIAN_NAME, patient.clinician.pn)
    p.put("StudyID", "SH", f"{study.number}")
    p.put_id("AccessionNumber", "SH", K.ACCESSION_NUMBER, study.accession)
    if isinstance(description, Text):
        p.put_text("StudyDescription", "LO", description)
    else:
        p.put("StudyDescription", "LO", description)
    age = (
        study.date.year
        - patient.birth_date.year
        - ((study.date.month, study.date.day) < (patient.birth_date.month, patient.birth_date.day))
    )
    p.put("PatientAge", "AS", f"{age:03d}Y")
    if rng.random() < 0.6:
        history = compose(
            "Referred by ",
            (K.CLINICIAN_NAME, patient.clinician.display),
            ". Hosp no ",
            (K.HOSPITAL_NUMBER, patient.hospital_number),
            ", NHS ",
            (K.NHS_NUMBER, nhs_variant(rng, patient.nhs_number)),
            ". Previous imaging at this site.",
        )
        p.put_text("AdditionalPatientHistory", "LT", history)


def general_series(p: Planter, target: Target, modality: str) -> None:
    """General Series Module with the order details in Request Attributes Sequence."""
    study, series = target.study, target.series
    rng = study.rng("series", series.number)
    p.put("Modality", "CS", modality)
    p.put("SeriesInstanceUID", "UI", series.uid)
    p.put("SeriesNumber", "IS", series.number)
    p.put("SeriesDate", "DA", study.date.strftime("%Y%m%d"))
    p.put("SeriesTime", "TM", study.time)
    p.put("SeriesDescription", "LO", series.description)
    p.put_id("OperatorsName", "PN", K.CLINICIAN_NAME, study.operator.pn)
    request = p.sequence("RequestAttributesSequence")[0]
    request.put_id("AccessionNumber", "SH", K.ACCESSION_NUMBER, study.accession)
    request.put_id("RequestedProcedureID", "SH", K.ACCESSION_NUMBER, study.accession)
    request.put(
        "ScheduledProcedureStepID",
        "SH",
        f"{study.accession}-1",
        [(K.ACCESSION_NUMBER, study.accession)],
    )
    request.put("StudyInstanceUID", "UI", study.uid)
    patient = target.patient
    name = name_variant(rng, patient.name)
    request.put_text(
        "RequestedProcedureDescription",
        "LO",
        compose(f"{series.description[:24]} ", (K.NAME, name)),
    )


def general_equipment(p: Planter, target: Target, device: Device, site: Site) -> None:
    """General Equipment Module: the hospital and the station name give the site away."""
    index = target.study.institution
    p.put("Manufacturer", "LO", device.manufacturer)
    p.put_id("InstitutionName", "LO", K.INSTITUTION, site.institutions[index])
    p.put_id("InstitutionAddress", "ST", K.INSTITUTION, site.institution_addresses[index])
    p.put_id("StationName", "SH", K.INSTITUTION, device.station)
    p.put("ManufacturerModelName", "LO", device.model)
    p.put("DeviceSerialNumber", "LO", device.serial)
    p.put("SoftwareVersions", "LO", device.software)


def sop_common(p: Planter, target: Target, sop_class: UID) -> None:
    """SOP Common Module; a reconciled study keeps the referral's details in Original Attributes."""
    p.put("SOPClassUID", "UI", sop_class)
    p.put("SOPInstanceUID", "UI", target.uid)
    p.put("InstanceCreationDate", "DA", target.study.date.strftime("%Y%m%d"))
    p.put("InstanceCreationTime", "TM", target.study.time)
    if not target.study.reconciled:
        return
    patient, study = target.patient, target.study
    original = p.sequence("OriginalAttributesSequence")[0]
    modified = original.sequence("ModifiedAttributesSequence")[0]
    modified.put_id(
        "PatientName",
        "PN",
        K.NAME,
        f"{patient.name.family.upper()}^{patient.name.given[0].upper()}",
    )
    modified.put_id("PatientID", "LO", K.NHS_NUMBER, patient.nhs_number)
    modified.put_id("PatientBirthDate", "DA", K.BIRTH_DATE, patient.birth_date.strftime("%Y%m%d"))
    original.put("AttributeModificationDateTime", "DT", f"{study.date:%Y%m%d}{study.time}")
    original.put("ModifyingSystem", "LO", "ACME PACS")
    original.put("ReasonForTheAttributeModification", "CS", "COERCE")
    original.put("SourceOfPreviousValues", "LO", "")


def private_block(p: Planter, target: Target) -> None:
    """The fake PACS's private block: a name as LO, an NHS number in OB, details as UN."""
    patient = target.patient
    rng = target.study.rng("private")
    p.put(PRIVATE_GROUP << 16 | 0x0010, "LO", PRIVATE_CREATOR)
    p.put_id(PRIVATE_GROUP << 16 | 0x1010, "LO", K.NAME, patient.name.pn)
    nhs = nhs_variant(rng, patient.nhs_number)
    p.put(
        PRIVATE_GROUP << 16 | 0x1011,
        "OB",
        _even(f"NHS={nhs}".encode("ascii")),
        [(K.NHS_NUMBER, nhs)],
    )
    dob = date_variant(rng, patient.birth_date)
    details = _even(f"MRN={patient.hospital_number};DOB={dob}".encode("ascii"))
    p.put(
        PRIVATE_GROUP << 16 | 0x1012,
        "UN",
        details,
        [(K.HOSPITAL_NUMBER, patient.hospital_number), (K.BIRTH_DATE, dob)],
    )


def _even(data: bytes) -> bytes:
    return data if len(data) % 2 == 0 else data + b"\x00"
