"""Filling and reading the catalogue of released objects.

:func:`index_copy` writes one released copy's rows (idempotent on its SOP Instance UID);
:func:`facet_counts`, :func:`series_page` and :func:`clinical_for` are what the directory
and faceted search read. Counts are raw: small-number suppression wraps them elsewhere.
Only the released copy's header is read, so every UID here is a made one and the patient
is named by the master pseudonym only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence
from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.orm import Session

from dicomhaven.catalogue._index_models import (
    FILTER_COLUMNS,
    CatalogueInstance,
    CatalogueSeries,
    CatalogueStudy,
)
from dicomhaven.catalogue._models import ClinicalRecord

__all__ = [
    "ACQUISITION_KEYWORDS",
    "Facet",
    "Filters",
    "clear_catalogue",
    "clinical_for",
    "facet_counts",
    "index_copy",
    "series_page",
]

#: The technical attributes the de-identification profile keeps that calibration across
#: centres needs; whichever of them a copy holds go into its acquisition record.
ACQUISITION_KEYWORDS = (
    "KVP",
    "Exposure",
    "ExposureInuAs",
    "ExposureInmAs",
    "ExposureTime",
    "XRayTubeCurrent",
    "XRayTubeCurrentInuA",
    "AnodeTargetMaterial",
    "FilterMaterial",
    "FilterType",
    "FilterThicknessMinimum",
    "FilterThicknessMaximum",
    "CompressionForce",
    "BodyPartThickness",
    "DetectorID",
    "DetectorType",
    "DetectorConfiguration",
    "DetectorBinning",
    "PixelSpacing",
    "ImagerPixelSpacing",
    "FocalSpots",
    "Grid",
    "DistanceSourceToDetector",
    "DistanceSourceToPatient",
    "PositionerPrimaryAngle",
    "RelativeXRayExposure",
    "EntranceDoseInmGy",
    "OrganDose",
    "ExposureIndex",
    "TargetExposureIndex",
    "DeviationIndex",
    "ExposureControlMode",
    "ConvolutionKernel",
    "SliceThickness",
    "SpacingBetweenSlices",
    "ReconstructionDiameter",
    "CTDIvol",
    "SpiralPitchFactor",
    "TotalCollimationWidth",
    "SingleCollimationWidth",
    "RevolutionTime",
    "DataCollectionDiameter",
    "Rows",
    "Columns",
    "BitsStored",
    "PhotometricInterpretation",
    "RescaleSlope",
    "RescaleIntercept",
    "WindowCenter",
    "WindowWidth",
    "PresentationLUTShape",
    "ProcessingFunction",
    "PresentationIntentType",
)

#: Filters: an indexed column's name -> the values any of which a series may have.
Filters = Mapping[str, Sequence[str | int]]


@dataclass(frozen=True)
class Facet:
    """One value of a facet and the raw numbers behind it."""

    value: str | int | None
    series: int
    instances: int
    patients: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "series": self.series,
            "instances": self.instances,
            "patients": self.patients,
        }


def _text(header: Dataset, keyword: str) -> str:
    value = header.get(keyword)
    if value is None or value == "":
        return ""
    if isinstance(value, MultiValue):
        value = "\\".join(str(v) for v in value)
    return str(value).strip()


def _number(header: Dataset, keyword: str) -> float | None:
    value = header.get(keyword)
    if isinstance(value, MultiValue):
        value = value[0] if len(value) else None
    try:
        return float(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


def _plain(value: Any) -> Any:
    """A header value as JSON: numbers stay numbers, multiple values become lists."""
    if isinstance(value, MultiValue | list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, int | float):
        return int(value) if isinstance(value, int) else float(value)
    return str(value).strip()


def acquisition_record(header: Dataset) -> dict[str, Any]:
    """Every acquisition attribute the copy holds, by keyword."""
    record: dict[str, Any] = {}
    for keyword in ACQUISITION_KEYWORDS:
        element = header.get(keyword)
        if element is None or element == "" or isinstance(element, DicomSequence | Dataset):
            continue
        try:
            record[keyword] = _plain(element)
        except (TypeError, ValueError):  # a value pydicom cannot convert: left out
            continue
    return record


def _date(text: str) -> date | None:
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except (ValueError, IndexError):
        return None


def age_band(patient_age: str, birth: str, study: str) -> str:
    """The 10-year band ("40-49") of Patient's Age, or of the (shifted) dates."""
    years: int | None = None
    if len(patient_age) == 4 and patient_age[:3].isdigit():
        years = int(patient_age[:3]) if patient_age[3] == "Y" else 0
    else:
        born, seen = _date(birth), _date(study)
        if born and seen and seen >= born:
            years = seen.year - born.year - ((seen.month, seen.day) < (born.month, born.day))
    if years is None:
        return ""
    low = years // 10 * 10
    return f"{low}-{low + 9}"


def index_copy(session: Session, header: Dataset, relpath: str) -> None:
    """Write (or overwrite) one released copy's instance, series and study rows."""
    from dicomhaven.vocabulary import normalise

    sop, series_uid, study_uid = (
        _text(header, k) for k in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID")
    )
    if not (sop and series_uid and study_uid):
        raise ValueError("a released copy without its UIDs")
    study_date = _text(header, "StudyDate")
    year = _date(study_date).year if _date(study_date) else None  # type: ignore[union-attr]
    band = age_band(_text(header, "PatientAge"), _text(header, "PatientBirthDate"), study_date)
    sex = _text(header, "PatientSex")[:2]
    pseudonym = _text(header, "PatientID")
    codes = normalise(header)
    laterality = (_text(header, "ImageLaterality") or _text(header, "Laterality"))[:4]
    view = _text(header, "ViewPosition")[:16]
    session.merge(
        CatalogueStudy(
            study_uid=study_uid, pseudonym=pseudonym, study_year=year, age_band=band, sex=sex
        )
    )
    session.merge(
        CatalogueSeries(
            series_uid=series_uid,
            study_uid=study_uid,
            pseudonym=pseudonym,
            modality=_text(header, "Modality")[:16],
            body_part_code=codes.body_part.value if codes.body_part else "",
            body_part_meaning=codes.body_part.meaning[:128] if codes.body_part else "",
            procedure_code=codes.procedure.value if codes.procedure else "",
            procedure_meaning=codes.procedure.meaning[:128] if codes.procedure else "",
            laterality=laterality,
            view_position=view,
            manufacturer=_text(header, "Manufacturer")[:64],
            model=_text(header, "ManufacturerModelName")[:64],
            study_year=year,
            age_band=band,
            sex=sex,
            presentation_intent=_text(header, "PresentationIntentType")[:16],
            instances=0,
        )
    )
    session.flush()
    session.merge(
        CatalogueInstance(
            sop_uid=sop,
            series_uid=series_uid,
            path=relpath,
            laterality=laterality,
            view_position=view,
            kvp=_number(header, "KVP"),
            exposure=_number(header, "Exposure"),
            anode=_text(header, "AnodeTargetMaterial")[:16],
            filter=_text(header, "FilterMaterial")[:16],
            compression_force=_number(header, "CompressionForce"),
            body_part_thickness=_number(header, "BodyPartThickness"),
            slice_thickness=_number(header, "SliceThickness"),
            convolution_kernel=_text(header, "ConvolutionKernel")[:32],
            ctdi_vol=_number(header, "CTDIvol"),
            acquisition=json.dumps(acquisition_record(header), sort_keys=True),
        )
    )
    session.flush()
    _summarise_series(session, series_uid)


def _summarise_series(session: Session, series_uid: str) -> None:
    """A series' instance count, laterality and view from its instances, whatever order
    they were indexed in: one value, or the distinct values sorted and joined by ``\\``
    (a mammography series holding both breasts or several views)."""
    row = session.get(CatalogueSeries, series_uid)
    assert row is not None
    of = CatalogueInstance.series_uid == series_uid
    row.instances = session.scalar(select(func.count()).where(of)) or 0
    for name, width in (("laterality", 4), ("view_position", 16)):
        column = getattr(CatalogueInstance, name)
        values = sorted(v for v in session.scalars(select(column).where(of).distinct()) if v)
        setattr(row, name, "\\".join(values)[:width])


def clear_catalogue(session: Session) -> None:
    """Empty the index (a rebuild refills it from ``store/``)."""
    for model in (CatalogueInstance, CatalogueSeries, CatalogueStudy):
        session.execute(delete(model))


def _where(filters: Filters) -> list[ColumnElement[bool]]:
    conditions = []
    for name, values in filters.items():
        if name not in FILTER_COLUMNS:
            raise ValueError(f"not a filter column: {name}")
        conditions.append(getattr(CatalogueSeries, name).in_(list(values)))
    return conditions


def facet_counts(session: Session, column: str, filters: Filters | None = None) -> list[Facet]:
    """Series, instances and patients per value of ``column``, among series matching
    ``filters`` (commonest first). Raw counts: suppression is the caller's."""
    if column not in FILTER_COLUMNS:
        raise ValueError(f"not a filter column: {column}")
    group = getattr(CatalogueSeries, column)
    query = (
        select(
            group,
            func.count(),
            func.coalesce(func.sum(CatalogueSeries.instances), 0),
            func.count(func.distinct(CatalogueSeries.pseudonym)),
        )
        .where(*_where(filters or {}))
        .group_by(group)
        .order_by(func.count().desc(), group)
    )
    return [Facet(v, s, int(i), p) for v, s, i, p in session.execute(query)]


def series_page(
    session: Session, filters: Filters | None = None, *, offset: int = 0, limit: int = 50
) -> tuple[int, list[dict[str, Any]]]:
    """The number of series matching ``filters`` and one page of them (by study, series)."""
    conditions = _where(filters or {})
    total = session.scalar(select(func.count()).select_from(CatalogueSeries).where(*conditions))
    rows = session.scalars(
        select(CatalogueSeries)
        .where(*conditions)
        .order_by(CatalogueSeries.study_uid, CatalogueSeries.series_uid)
        .offset(offset)
        .limit(limit)
    )
    columns = [c.key for c in CatalogueSeries.__table__.columns]
    return total or 0, [{c: getattr(r, c) for c in columns} for r in rows]


def clinical_for(session: Session, pseudonyms: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """The linked clinical rows of each pseudonym (joined by the master pseudonym)."""
    wanted = sorted(set(pseudonyms))
    found: dict[str, list[dict[str, Any]]] = {p: [] for p in wanted}
    if not wanted:
        return found
    query = select(ClinicalRecord).where(ClinicalRecord.pseudonym.in_(wanted))
    for record in session.scalars(query.order_by(ClinicalRecord.id)):
        found[record.pseudonym].append(json.loads(record.data))
    return found
