"""The catalogue of released objects: pseudonym -> study -> series -> instance.

Every row is keyed by the *made* UIDs of the released copy in ``store/`` and the master
pseudonym; no original UID or identifier is ever written here. The filter columns are
denormalised onto the series (the directory and faceted search count series, ~100 times
fewer rows than instances); an instance keeps its own calibration columns and the whole
acquisition record as JSON.
"""

from __future__ import annotations

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from dicomhaven.catalogue._models import Base

__all__ = ["FILTER_COLUMNS", "CatalogueInstance", "CatalogueSeries", "CatalogueStudy"]

#: The series columns researchers filter and count on (the directory's facets).
FILTER_COLUMNS = (
    "modality",
    "body_part_code",
    "procedure_code",
    "laterality",
    "view_position",
    "manufacturer",
    "model",
    "study_year",
    "age_band",
    "sex",
    "presentation_intent",
)


class CatalogueStudy(Base):
    """A released study, under its made Study Instance UID."""

    __tablename__ = "catalogue_studies"

    study_uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    pseudonym: Mapped[str] = mapped_column(String(16), index=True)
    study_year: Mapped[int | None] = mapped_column(Integer, index=True)
    age_band: Mapped[str] = mapped_column(String(8), index=True)  # "40-49", "" when unknown
    sex: Mapped[str] = mapped_column(String(2), index=True)


class CatalogueSeries(Base):
    """A released series with every filter value (copied from its study so a facet count
    reads one table)."""

    __tablename__ = "catalogue_series"
    __table_args__ = (
        Index("ix_catalogue_series_modality_body", "modality", "body_part_code"),
        Index("ix_catalogue_series_modality_year", "modality", "study_year"),
    )

    series_uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    study_uid: Mapped[str] = mapped_column(ForeignKey("catalogue_studies.study_uid"), index=True)
    pseudonym: Mapped[str] = mapped_column(String(16), index=True)
    modality: Mapped[str] = mapped_column(String(16), index=True)
    body_part_code: Mapped[str] = mapped_column(String(32), index=True)
    body_part_meaning: Mapped[str] = mapped_column(String(128))
    procedure_code: Mapped[str] = mapped_column(String(32), index=True)
    procedure_meaning: Mapped[str] = mapped_column(String(128))
    laterality: Mapped[str] = mapped_column(String(4), index=True)
    view_position: Mapped[str] = mapped_column(String(16), index=True)
    manufacturer: Mapped[str] = mapped_column(String(64), index=True)
    model: Mapped[str] = mapped_column(String(64), index=True)
    study_year: Mapped[int | None] = mapped_column(Integer, index=True)
    age_band: Mapped[str] = mapped_column(String(8), index=True)
    sex: Mapped[str] = mapped_column(String(2), index=True)
    presentation_intent: Mapped[str] = mapped_column(String(16), index=True)
    instances: Mapped[int] = mapped_column(Integer)


class CatalogueInstance(Base):
    """A released instance: its copy in ``store/`` and its acquisition record."""

    __tablename__ = "catalogue_instances"

    sop_uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    series_uid: Mapped[str] = mapped_column(ForeignKey("catalogue_series.series_uid"), index=True)
    path: Mapped[str] = mapped_column(String(255))  # relative to store/
    laterality: Mapped[str] = mapped_column(String(4))
    view_position: Mapped[str] = mapped_column(String(16))
    kvp: Mapped[float | None] = mapped_column(Float, index=True)
    exposure: Mapped[float | None] = mapped_column(Float)
    anode: Mapped[str] = mapped_column(String(16), index=True)
    filter: Mapped[str] = mapped_column(String(16))
    compression_force: Mapped[float | None] = mapped_column(Float)
    body_part_thickness: Mapped[float | None] = mapped_column(Float)
    slice_thickness: Mapped[float | None] = mapped_column(Float, index=True)
    convolution_kernel: Mapped[str] = mapped_column(String(32), index=True)
    ctdi_vol: Mapped[float | None] = mapped_column(Float)
    acquisition: Mapped[str] = mapped_column(Text)  # JSON object: keyword -> value
