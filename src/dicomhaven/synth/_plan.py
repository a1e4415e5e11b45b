"""What each fake patient had done: studies, series, instances, their UIDs and file paths.

The whole site is planned before any pixel is made, so the total file count is known for
progress reports and cross-references (a CT reformat naming its source slices, a report
naming a CT image) can point at UIDs of files not yet written.
"""

from __future__ import annotations

import datetime
import random
from dataclasses import dataclass
from enum import StrEnum

from pydicom.uid import UID

from dicomhaven.synth._answer_key import FileKind
from dicomhaven.synth._derive import derived_rng, derived_uid
from dicomhaven.synth._people import Patient, Person, Site

__all__ = ["Context", "Series", "Sizes", "Study", "StudyKind", "Target", "plan_site", "targets"]

_FIRST_DAY = datetime.date(2018, 1, 1)
_LAST_DAY = datetime.date(2024, 12, 31)


class StudyKind(StrEnum):
    MAMMO = "MG"
    CT = "CT"
    US = "US"


@dataclass(frozen=True, slots=True)
class Sizes:
    """Pixel matrix sizes as (rows, columns)."""

    mammo: tuple[int, int]
    ct: tuple[int, int]
    ct_slices: int
    us: tuple[int, int] = (480, 640)
    us_frames: int = 8
    dose_screen: tuple[int, int] = (512, 512)

    @classmethod
    def for_run(cls, full_size: bool) -> Sizes:
        if full_size:
            return cls(mammo=(4096, 3328), ct=(512, 512), ct_slices=8)
        return cls(mammo=(512, 416), ct=(128, 128), ct_slices=8)


@dataclass(frozen=True, slots=True)
class Series:
    number: int
    uid: UID
    kind: FileKind
    description: str
    instance_uids: tuple[UID, ...]


@dataclass(frozen=True, slots=True)
class Study:
    seed: int
    patient: Patient
    number: int
    kind: StudyKind
    uid: UID
    frame_of_reference: UID
    accession: str
    date: datetime.date
    time: str
    institution: int
    operator: Person
    reconciled: bool
    overlay: bool
    series: tuple[Series, ...]

    @property
    def folder(self) -> str:
        return f"ST{self.number:02d}"

    def series_of_kind(self, kind: FileKind) -> Series:
        return next(s for s in self.series if s.kind is kind)

    def rng(self, *role: object) -> random.Random:
        """A stream for study-level choices, so every file of the study agrees on them."""
        return derived_rng(self.seed, self.patient.index, "study", self.number, *role)


@dataclass(frozen=True, slots=True)
class Target:
    """One file to write: instance ``number`` (1-based) of a series."""

    study: Study
    series: Series
    number: int

    @property
    def patient(self) -> Patient:
        return self.study.patient

    @property
    def uid(self) -> UID:
        return self.series.instance_uids[self.number - 1]

    @property
    def path(self) -> str:
        """Relative to the site folder; built from indexes only, never identifiers."""
        return (
            f"export/{self.patient.folder}/{self.study.folder}/SE{self.series.number:03d}/"
            f"IM{self.number:04d}.dcm"
        )

    def rng(self, *role: object) -> random.Random:
        """A stream for choices made per file."""
        return derived_rng(self.study.seed, self.path, *role)


@dataclass(frozen=True, slots=True)
class Context:
    """What every builder needs besides its target."""

    seed: int
    site: Site
    sizes: Sizes


def _time_of_day(rng: random.Random) -> str:
    """HHMMSS within working hours."""
    return f"{rng.randrange(8, 18):02d}{rng.randrange(60):02d}{rng.randrange(60):02d}"


def _random_date(rng_value: float) -> datetime.date:
    span = (_LAST_DAY - _FIRST_DAY).days
    return _FIRST_DAY + datetime.timedelta(days=int(rng_value * span))


def _choose_kinds(patient: Patient, roll: list[float]) -> list[StudyKind]:
    if patient.index == 0:
        return [StudyKind.MAMMO, StudyKind.MAMMO, StudyKind.CT, StudyKind.US]
    age = 2022 - patient.birth_date.year
    mammo_chance = 0.02 if patient.sex == "M" else (0.9 if age >= 47 else 0.15)
    kinds: list[StudyKind] = []
    if roll[0] < mammo_chance:
        kinds.append(StudyKind.MAMMO)
        if roll[1] < 0.35:
            kinds.append(StudyKind.MAMMO)
    if roll[2] < 0.6:
        kinds.append(StudyKind.CT)
    if roll[3] < 0.6 or not kinds:
        kinds.append(StudyKind.US)
    return kinds


def plan_site(seed: int, site: Site, patients: list[Patient], sizes: Sizes) -> list[Study]:
    """Every study of every patient, in patient then date order."""
    studies: list[Study] = []
    used_accessions: set[str] = set()
    for patient in patients:
        rng = derived_rng(seed, "patient", patient.index, "studies")
        kinds = _choose_kinds(patient, [rng.random() for _ in range(4)])
        dates = sorted(_random_date(rng.random()) for _ in kinds)
        cine = patient.index == 0 or rng.random() < 0.35
        overlay = patient.index == 0 or rng.random() < 0.35
        reconciled_study = 0 if patient.index == 0 else rng.randrange(len(kinds) + 2)
        overlay_done = False
        for number, (kind, date) in enumerate(zip(kinds, dates, strict=True), start=1):
            wants_overlay = overlay and not overlay_done and kind is not StudyKind.US
            overlay_done = overlay_done or wants_overlay
            while True:
                accession = f"{kind.value}{date:%y}{rng.randrange(10**6):06d}"
                if accession not in used_accessions:
                    used_accessions.add(accession)
                    break
            parts = (patient.index, "study", number)
            studies.append(
                Study(
                    seed=seed,
                    patient=patient,
                    number=number,
                    kind=kind,
                    uid=derived_uid(seed, *parts),
                    frame_of_reference=derived_uid(seed, *parts, "frame-of-reference"),
                    accession=accession,
                    date=date,
                    time=_time_of_day(rng),
                    institution=rng.randrange(len(site.institutions)),
                    operator=rng.choice(site.operators),
                    reconciled=number - 1 == reconciled_study,
                    overlay=wants_overlay,
                    series=tuple(_plan_series(seed, parts, kind, sizes, cine, rng.randrange(2, 5))),
                )
            )
    return studies


def _series(
    seed: int, parts: tuple[object, ...], number: int, kind: FileKind, text: str, count: int
) -> Series:
    uid = derived_uid(seed, *parts, "series", number)
    instances = tuple(
        derived_uid(seed, *parts, "series", number, "instance", i) for i in range(count)
    )
    return Series(number, uid, kind, text, instances)


def _plan_series(
    seed: int, parts: tuple[object, ...], kind: StudyKind, sizes: Sizes, cine: bool, us_images: int
) -> list[Series]:
    if kind is StudyKind.MAMMO:
        return [_series(seed, parts, 1, FileKind.MAMMO, "Screening mammography", 4)]
    if kind is StudyKind.CT:
        slabs = -(-sizes.ct_slices // 3)
        return [
            _series(seed, parts, 1, FileKind.CT, "Chest 5mm axial", sizes.ct_slices),
            _series(seed, parts, 2, FileKind.CT, "Chest 15mm average", slabs),
            _series(seed, parts, 3, FileKind.DOSE_SCREEN, "Dose Report", 1),
            _series(seed, parts, 4, FileKind.SR, "Radiology report", 1),
        ]
    series = [_series(seed, parts, 1, FileKind.US, "Abdomen", us_images)]
    if cine:
        series.append(_series(seed, parts, 2, FileKind.US_CINE, "Abdomen cine", 1))
    return series


def targets(studies: list[Study]) -> list[Target]:
    """Every file of the site, in the order they are written."""
    return [
        Target(study, series, number)
        for study in studies
        for series in study.series
        for number in range(1, len(series.instance_uids) + 1)
    ]
