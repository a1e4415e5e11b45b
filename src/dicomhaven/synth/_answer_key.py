"""The answer key: which fake patient each file belongs to and where every identifier was put.

Later stages test themselves against it (header de-identification, pixel redaction, the
residual-PII scanner), so it is plain JSON with a version number, and loading it back gives
exactly the object that was written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from dicomhaven.errors import ConfigError

__all__ = [
    "AnswerKey",
    "Category",
    "FileKind",
    "FileRecord",
    "IdentifierKind",
    "PatientRecord",
    "PixelRegion",
    "Plant",
]


class Category(StrEnum):
    """Where an identifier hides (see docs/stages/synth.md for the exact rule)."""

    STANDARD_ATTRIBUTE = "standard-attribute"
    FREE_TEXT = "free-text"
    NESTED_SEQUENCE = "nested-sequence"
    PRIVATE_TAG = "private-tag"
    BURNED_IN_PIXELS = "burned-in-pixels"
    OVERLAY = "overlay"


class IdentifierKind(StrEnum):
    """What an identifier is."""

    NAME = "name"
    NHS_NUMBER = "nhs_number"
    CHI_NUMBER = "chi_number"
    HOSPITAL_NUMBER = "hospital_number"
    BIRTH_DATE = "birth_date"
    ADDRESS = "address"
    POSTCODE = "postcode"
    PHONE = "phone"
    ACCESSION_NUMBER = "accession_number"
    INSTITUTION = "institution"
    CLINICIAN_NAME = "clinician_name"


class FileKind(StrEnum):
    """Which kind of object a file is."""

    MAMMO = "mammo"
    CT = "ct"
    US = "us"
    US_CINE = "us-cine"
    DOSE_SCREEN = "dose-screen"
    SR = "sr"


@dataclass(frozen=True, slots=True)
class PatientRecord:
    """One fake patient's identity, as the generator made it up."""

    index: int
    nhs_number: str
    chi_number: str | None
    hospital_number: str
    family_name: str
    given_names: tuple[str, ...]
    birth_date: str
    sex: str
    address: str
    postcode: str
    phone: str
    referring_clinician: str


@dataclass(frozen=True, slots=True)
class FileRecord:
    """One written DICOM file; ``path`` is relative to the site folder."""

    path: str
    sop_instance_uid: str
    sop_class_uid: str
    modality: str
    patient: int
    study_instance_uid: str
    series_instance_uid: str
    kind: FileKind


@dataclass(frozen=True, slots=True)
class PixelRegion:
    """Where text was drawn: 1-based frame numbers and a box (x, y, width, height) in pixels."""

    frames: tuple[int, ...]
    box: tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class Plant:
    """One identifier written into one file.

    ``location`` is a tag path such as ``(0040,0275)[0]/(0008,0050)`` for a data element,
    or a PixelRegion for burned-in text and overlays. ``value`` is the identifier exactly as
    written: for free text it is the substring, for pixels the text as drawn.
    """

    path: str
    patient: int
    category: Category
    kind: IdentifierKind
    value: str
    location: str | PixelRegion


@dataclass(frozen=True, slots=True)
class AnswerKey:
    """Everything :func:`generate_site` made: patients, files and planted identifiers."""

    GENERATOR: ClassVar[str] = "dicomhaven.synth"
    FORMAT: ClassVar[int] = 1

    seed: int
    full_size: bool
    patients: tuple[PatientRecord, ...]
    files: tuple[FileRecord, ...]
    plants: tuple[Plant, ...]

    def to_json(self) -> str:
        """The key as indented JSON, byte-identical for the same key."""
        document = {
            "generator": self.GENERATOR,
            "format": self.FORMAT,
            "seed": self.seed,
            "full_size": self.full_size,
            "patients": [_patient_to_json(p) for p in self.patients],
            "files": [_file_to_json(f) for f in self.files],
            "plants": [_plant_to_json(p) for p in self.plants],
        }
        return json.dumps(document, indent=1, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> AnswerKey:
        """Parse a key written by :meth:`to_json`; raises ConfigError on another format."""
        try:
            document = json.loads(text)
            if not isinstance(document, dict):
                raise TypeError("top level is not an object")
            generator, version = document.get("generator"), document.get("format")
            if generator != cls.GENERATOR or version != cls.FORMAT:
                raise ConfigError(
                    f"answer key must have generator {cls.GENERATOR!r} and format {cls.FORMAT},"
                    f" got {generator!r} and {version!r}; regenerate it with `dicomhaven synth`"
                )
            return cls(
                seed=int(document["seed"]),
                full_size=bool(document["full_size"]),
                patients=tuple(_patient_from_json(p) for p in document["patients"]),
                files=tuple(_file_from_json(f) for f in document["files"]),
                plants=tuple(_plant_from_json(p) for p in document["plants"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"answer key is malformed ({type(exc).__name__}: {exc});"
                " regenerate it with `dicomhaven synth`"
            ) from exc

    @classmethod
    def load(cls, path: Path) -> AnswerKey:
        """Read ``answer_key.json``; raises ConfigError when it is not a key of this format."""
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read answer key {path}: {exc.strerror}") from exc
        try:
            return cls.from_json(text)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from exc

    def file(self, path: str) -> FileRecord:
        """The record of the file at ``path`` (relative to the site folder)."""
        for record in self.files:
            if record.path == path:
                return record
        raise KeyError(path)

    def plants_in(self, path: str) -> tuple[Plant, ...]:
        """Every identifier planted in the file at ``path``."""
        return tuple(p for p in self.plants if p.path == path)

    def files_of_kind(self, kind: FileKind) -> tuple[FileRecord, ...]:
        """Every file of one kind, in the order written."""
        return tuple(f for f in self.files if f.kind is kind)


def _patient_to_json(p: PatientRecord) -> dict[str, Any]:
    return {
        "index": p.index,
        "nhs_number": p.nhs_number,
        "chi_number": p.chi_number,
        "hospital_number": p.hospital_number,
        "family_name": p.family_name,
        "given_names": list(p.given_names),
        "birth_date": p.birth_date,
        "sex": p.sex,
        "address": p.address,
        "postcode": p.postcode,
        "phone": p.phone,
        "referring_clinician": p.referring_clinician,
    }


def _patient_from_json(d: Mapping[str, Any]) -> PatientRecord:
    chi = d["chi_number"]
    return PatientRecord(
        index=int(d["index"]),
        nhs_number=str(d["nhs_number"]),
        chi_number=None if chi is None else str(chi),
        hospital_number=str(d["hospital_number"]),
        family_name=str(d["family_name"]),
        given_names=tuple(str(n) for n in d["given_names"]),
        birth_date=str(d["birth_date"]),
        sex=str(d["sex"]),
        address=str(d["address"]),
        postcode=str(d["postcode"]),
        phone=str(d["phone"]),
        referring_clinician=str(d["referring_clinician"]),
    )


def _file_to_json(f: FileRecord) -> dict[str, Any]:
    return {
        "path": f.path,
        "sop_instance_uid": f.sop_instance_uid,
        "sop_class_uid": f.sop_class_uid,
        "modality": f.modality,
        "patient": f.patient,
        "study_instance_uid": f.study_instance_uid,
        "series_instance_uid": f.series_instance_uid,
        "kind": f.kind.value,
    }


def _file_from_json(d: Mapping[str, Any]) -> FileRecord:
    return FileRecord(
        path=str(d["path"]),
        sop_instance_uid=str(d["sop_instance_uid"]),
        sop_class_uid=str(d["sop_class_uid"]),
        modality=str(d["modality"]),
        patient=int(d["patient"]),
        study_instance_uid=str(d["study_instance_uid"]),
        series_instance_uid=str(d["series_instance_uid"]),
        kind=FileKind(d["kind"]),
    )


def _plant_to_json(p: Plant) -> dict[str, Any]:
    location: str | dict[str, list[int]]
    if isinstance(p.location, PixelRegion):
        location = {"frames": list(p.location.frames), "box": list(p.location.box)}
    else:
        location = p.location
    return {
        "path": p.path,
        "patient": p.patient,
        "category": p.category.value,
        "kind": p.kind.value,
        "value": p.value,
        "location": location,
    }


def _plant_from_json(d: Mapping[str, Any]) -> Plant:
    raw = d["location"]
    location: str | PixelRegion
    if isinstance(raw, str):
        location = raw
    elif isinstance(raw, Mapping):
        box: Sequence[int] = raw["box"]
        if len(box) != 4:
            raise ValueError(f"a pixel box has 4 numbers (x, y, w, h), got {len(box)}")
        location = PixelRegion(
            frames=tuple(int(n) for n in raw["frames"]),
            box=(int(box[0]), int(box[1]), int(box[2]), int(box[3])),
        )
    else:
        raise TypeError("plant location must be a tag path or a pixel region")
    return Plant(
        path=str(d["path"]),
        patient=int(d["patient"]),
        category=Category(d["category"]),
        kind=IdentifierKind(d["kind"]),
        value=str(d["value"]),
        location=location,
    )
