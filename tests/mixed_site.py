"""A hospital-like mix made from real test files (issue 18): every file pydicom reads from
pydicom's own test files, pydicom-data, deid-data and the OpenREM samples, one object per
SOP Instance UID, each given a fake UK patient with identifiers planted where hospitals'
files hold them, and a dozen plain images (header: Burned In Annotation NO) given the
patient's name, NHS number and birth date burned into their top-left corner.

Nothing here comes from the product: the patients are the synthetic generator's (names,
NHS numbers with valid check digits), the UIDs are new (so pydicom's copies of one image in
several transfer syntaxes are separate objects, as in a hospital), and the text is drawn
with Pillow. :class:`MixedSite` keeps what a test needs to look for leaks: every planted
value and, per burned-in image, the mask of the pixels its text set.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset, FileDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, generate_uid

from dicomhaven.synth._people import Patient, make_patients, make_site
from tests.corpora import PYDICOM_FILES, deid_data_folder, pydicom_data_folder

OPENREM = Path(__file__).resolve().parents[2] / "shared" / "data" / "openrem"
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf"
ROOT = "1.2.826.0.1.3680043.9.9999.18."
SEED = 1818
PATIENTS = 24
#: Modalities whose plain images are stamped (as consoles and screen grabs stamp them).
STAMPED = {"CT", "MR", "PT", "NM", "MG", "CR", "DX", "OT", "RF", "XA"}
UID_KEYWORDS = ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID")

Mask = npt.NDArray[np.bool_]


@dataclass
class BurnedIn:
    """One image with text in its pixels: whose, where, and what it says."""

    name: str  # the file's name in the export (never an identifier)
    sop_instance_uid: str
    patient: Patient
    mask: Mask
    lines: tuple[str, ...]


@dataclass
class MixedSite:
    folder: Path
    files: dict[str, Path] = field(default_factory=dict)  # new SOP Instance UID -> file
    patient_of: dict[str, Patient] = field(default_factory=dict)  # SOP UID -> patient
    burned: list[BurnedIn] = field(default_factory=list)
    sources: dict[str, int] = field(default_factory=dict)  # source -> objects
    unwritable: int = 0  # files pydicom reads but cannot write back, left out

    def values(self) -> set[str]:
        """Every planted value a de-identified copy must not hold, as text."""
        found: set[str] = set()
        for patient in set(self.patient_of.values()):
            found |= patient_values(patient)
        return found


def patient_values(patient: Patient) -> set[str]:
    nhs = patient.nhs_number
    values = {
        patient.name.family, patient.hospital_number, nhs, f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}",
        patient.birth_date.strftime("%Y%m%d"), patient.birth_date.strftime("%d/%m/%Y"),
        patient.postcode, patient.phone, patient.clinician.family,
        patient.address.split(",")[0],
    }  # fmt: skip
    if patient.chi_number:
        values.add(patient.chi_number)
    return {v for v in values if len(v) >= 5}


def sources() -> dict[str, Path]:
    found = {
        "pydicom": PYDICOM_FILES,
        "pydicom-data": pydicom_data_folder(),
        "deid-data": deid_data_folder(),
    }
    if OPENREM.is_dir():
        found["openrem"] = OPENREM
    return found


def _read(path: Path) -> FileDataset | None:
    """A file pydicom reads as DICOM and that names its object; else None (the hostile
    corpus, not this mix, is for files that are not)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path)
    except Exception:
        return None
    if not all(k in ds for k in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID")):
        return None
    if "TransferSyntaxUID" not in ds.file_meta:
        return None
    return ds


def real_objects() -> Iterator[tuple[str, Path, FileDataset]]:
    """(source, path, dataset) of every distinct object, in a stable order."""
    seen: set[str] = set()
    for source, root in sources().items():
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            ds = _read(path)
            if ds is None or str(ds.SOPInstanceUID) in seen:
                continue
            seen.add(str(ds.SOPInstanceUID))
            yield source, path, ds


def _uid(*parts: str) -> UID:
    return generate_uid(ROOT, list(parts))


def _pick(patients: list[Patient], study_uid: str) -> Patient:
    digest = hashlib.sha256(study_uid.encode()).digest()
    return patients[int.from_bytes(digest[:4], "big") % len(patients)]


def plant_header(ds: Dataset, patient: Patient, institution: str, index: int) -> None:
    """The identifiers where hospitals' files hold them: the patient module, other IDs
    (the NHS number), the request, free-text comments and history."""
    nhs = patient.nhs_number
    spaced = f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}"
    ds.PatientName = patient.name.pn
    ds.PatientID = patient.hospital_number
    other = Dataset()
    other.PatientID, other.IssuerOfPatientID = nhs, "NHS"
    ds.OtherPatientIDsSequence = Sequence([other])
    ds.PatientBirthDate = patient.birth_date.strftime("%Y%m%d")
    ds.PatientSex = patient.sex
    ds.PatientAddress = f"{patient.address}, {patient.postcode}"
    ds.PatientTelephoneNumbers = patient.phone
    ds.ReferringPhysicianName = patient.clinician.pn
    ds.AccessionNumber = f"RX{index:08d}"
    ds.InstitutionName = institution
    ds.ImageComments = f"{patient.name.display} NHS {spaced} ref {patient.hospital_number}"
    ds.AdditionalPatientHistory = f"Seen by {patient.clinician.display}; DOB " + (
        patient.birth_date.strftime("%d/%m/%Y")
    )


def _stampable(ds: Dataset) -> bool:
    """A plain native greyscale image big enough to read text on."""
    if "PixelData" not in ds or not ds.file_meta.TransferSyntaxUID.is_little_endian:
        return False
    if str(ds.get("Modality", "")) not in STAMPED or int(ds.get("SamplesPerPixel", 1)) != 1:
        return False
    if str(ds.get("PhotometricInterpretation", "")) not in ("MONOCHROME1", "MONOCHROME2"):
        return False
    if int(ds.get("NumberOfFrames", 1) or 1) != 1 or int(ds.get("BitsAllocated", 0)) not in (8, 16):
        return False
    if str(ds.get("BurnedInAnnotation", "NO")).upper() == "YES":
        return False
    least = 128 if ds.Modality in ("CT", "MR", "PT", "NM") else 256
    return least <= int(ds.Rows) <= 4096 and least <= int(ds.Columns) <= 4096


def stamp(ds: Dataset, lines: tuple[str, ...]) -> Mask:
    """Burn ``lines`` into the top-left corner, light text on a dark box as a console
    does (dark on light for MONOCHROME1); the mask of the text's pixels."""
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        ds.decompress()  # stamped as a native copy: the text must be exact
    pixels = np.asarray(ds.pixel_array)
    rows, cols = pixels.shape
    size = max(12, min(rows, cols) // 22)
    font = ImageFont.truetype(FONT, size)
    page = Image.new("L", (cols, rows), 0)
    draw = ImageDraw.Draw(page)
    y = x = max(4, size // 2)
    box = Image.new("L", (cols, rows), 0)
    box_draw = ImageDraw.Draw(box)
    for line in lines:
        draw.text((x, y), line, fill=255, font=font)
        left, top, right, bottom = draw.textbbox((x, y), line, font=font)
        box_draw.rectangle((left - 3, top - 3, right + 3, bottom + 3), fill=255)
        y += int(size * 1.4)
    mask: Mask = np.asarray(page) > 127
    dark_area: Mask = np.asarray(box) > 0
    lo, hi = int(pixels.min()), int(pixels.max())
    if hi - lo < 64:  # a flat image: use the stored range
        hi = lo + (1 << min(int(ds.BitsStored), 12)) - 1
    if str(ds.PhotometricInterpretation) == "MONOCHROME1":
        lo, hi = hi, lo
    out = pixels.copy()
    out[dark_area] = lo
    out[mask] = hi
    ds.PixelData = out.astype(pixels.dtype.newbyteorder("<")).tobytes()
    ds.BurnedInAnnotation = "NO"
    return mask


def _new_uids(ds: Dataset, source: str, path: Path, uids: dict[str, UID]) -> None:
    for keyword in UID_KEYWORDS:
        if keyword in ds:
            old = f"{source}:{ds.get(keyword)}:{keyword}"
            uids.setdefault(old, _uid(old))
            setattr(ds, keyword, uids[old])
    sop = _uid("sop", source, path.name)
    ds.SOPInstanceUID = sop
    ds.file_meta.MediaStorageSOPInstanceUID = sop


def build_mixed_site(folder: Path, *, burn: int = 14) -> MixedSite:
    """Write the mix into ``folder`` (one file per object, named by its position only)."""
    folder.mkdir(parents=True, exist_ok=True)
    hospital = make_site(SEED)
    objects = list(real_objects())
    patients = _unshared(make_patients(SEED, PATIENTS, hospital), [ds for *_, ds in objects])
    mix = MixedSite(folder)
    uids: dict[str, UID] = {}
    stamped_by_source: dict[str, int] = {}
    for index, (source, path, ds) in enumerate(objects):
        _new_uids(ds, source, path, uids)
        patient = _pick(patients, str(ds.StudyInstanceUID))
        plant_header(ds, patient, hospital.institutions[index % 2], index)
        name = f"{index:04d}.dcm"
        if (
            len(mix.burned) < burn
            and stamped_by_source.get(source, 0) < burn // 2
            and _stampable(ds)
        ):
            nhs = patient.nhs_number
            lines = (
                f"{patient.name.family.upper()}, {patient.name.given[0]}",
                f"NHS {nhs[:3]} {nhs[3:6]} {nhs[6:]}",
                f"DOB {patient.birth_date:%d/%m/%Y}",
            )
            try:
                mask: Mask | None = stamp(ds, lines)
            except Exception:  # pixels pydicom cannot give as an array: leave them
                mask = None
            if mask is not None:
                mix.burned.append(BurnedIn(name, str(ds.SOPInstanceUID), patient, mask, lines))
                stamped_by_source[source] = stamped_by_source.get(source, 0) + 1
        target = folder / name
        try:
            ds.save_as(target)
        except Exception:  # pydicom reads it but cannot write it back: not in the mix
            target.unlink(missing_ok=True)
            mix.unwritable += 1
            mix.burned = [b for b in mix.burned if b.name != name]
            continue
        mix.files[str(ds.SOPInstanceUID)] = target
        mix.patient_of[str(ds.SOPInstanceUID)] = patient
        mix.sources[source] = mix.sources.get(source, 0) + 1
    return mix


def _unshared(patients: list[Patient], datasets: list[FileDataset]) -> list[Patient]:
    """Patients none of whose values a real file already holds (a family name that is also
    a word in some file's text would be found as a leak it is not)."""
    text = " ".join(_all_text(ds) for ds in datasets).lower()
    kept = [
        p
        for p in patients
        if not any(re.search(rf"(?<![a-z0-9]){re.escape(v.lower())}(?![a-z0-9])", text)
                   for v in patient_values(p))
    ]  # fmt: skip
    assert len(kept) >= PATIENTS // 2, "too many synthetic values occur in the real files"
    return kept


def _all_text(ds: Dataset) -> str:
    parts: list[str] = []
    for element in ds.iterall():
        if element.VR in ("OB", "OW", "OF", "OD", "OL", "OV", "UN", "SQ"):
            continue
        parts.append(str(element.value))
    return " ".join(parts)
