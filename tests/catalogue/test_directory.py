"""The directory's published cells (issue 13 item 6): small-number suppression, rounding,
totals from published cells, complementary suppression, and a differencing attempt.

The catalogue is built through ``index_copy`` from synthetic headers: made-up pseudonyms
and UIDs under a test root, no value from any real file.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from pydicom.dataset import Dataset
from sqlalchemy.orm import Session

from dicomhaven.catalogue import make_engine, make_sessionmaker
from dicomhaven.catalogue._directory import (
    CROSS_TABS,
    DIMENSIONS,
    TOTAL,
    DirectoryView,
    NotPublic,
    NotPublished,
    publish_directory,
    read_cells,
    read_public_cells,
)
from dicomhaven.catalogue._query import index_copy
from dicomhaven.services import LocalOperator
from dicomhaven.services import directory as directory_services
from dicomhaven.site import Site

ROOT = "2.25.999"  # a synthetic UID root

#: (modality, body part, sex, year, patients): CT CHEST is the small cell (3 patients).
GROUPS = (
    ("MG", "BREAST", "F", "20200101", 23),
    ("CT", "CHEST", "M", "20210101", 3),
    ("CT", "HEAD", "M", "20210101", 14),
    ("MR", "HEAD", "F", "20220101", 11),
)
SECRET = 3


def header(n: int, modality: str, body: str, sex: str, study_date: str) -> Dataset:
    ds = Dataset()
    ds.PatientID = f"PSEUDO{n:010d}"
    ds.StudyInstanceUID = f"{ROOT}.1.{n}"
    ds.SeriesInstanceUID = f"{ROOT}.2.{n}"
    ds.SOPInstanceUID = f"{ROOT}.3.{n}"
    ds.Modality = modality
    ds.BodyPartExamined = body
    ds.PatientSex = sex
    ds.StudyDate = study_date
    ds.PatientAge = "050Y"
    ds.Manufacturer = "ACME"
    ds.ManufacturerModelName = f"{modality}-1"
    return ds


@pytest.fixture
def session(sqlite_site: Site) -> Iterator[Session]:
    with make_sessionmaker(make_engine(sqlite_site.database_url))() as session:
        n = itertools.count()
        for modality, body, sex, day, patients in GROUPS:
            for _ in range(patients):
                i = next(n)
                index_copy(session, header(i, modality, body, sex, day), f"{i}.dcm")
        session.commit()
        yield session


def tables(session: Session) -> list[DirectoryView]:
    return [read_cells(session, d) for d in DIMENSIONS] + [
        read_cells(session, d, b) for d, b in CROSS_TABS
    ]


def cells(view: DirectoryView) -> dict[tuple[str, str], int | None]:
    return {(c.value, c.by_value): c.patients for c in view.cells}


def test_a_cell_below_the_threshold_is_published_without_a_number(session: Session) -> None:
    publish_directory(session, threshold=10, rounding=5)
    modality = cells(read_cells(session, "modality"))
    assert modality[("MG", "")] == 25 and modality[("MR", "")] == 10  # 23 and 11, rounded
    assert modality[("CT", "")] == 15  # 3 + 14 patients
    by_body = read_cells(session, "modality", "body_part")
    suppressed = [c for c in by_body.cells if c.value == "CT" and c.by_value != TOTAL]
    assert len(suppressed) == 2 and all(c.patients is None and c.series is None for c in suppressed)
    assert (by_body.threshold, by_body.rounding) == (10, 5)


def test_every_published_number_is_a_multiple_of_the_rounding(session: Session) -> None:
    publish_directory(session, threshold=2, rounding=5)
    numbers = [
        n for v in tables(session) for c in v.cells for n in (c.patients, c.series) if n is not None
    ]
    assert numbers and all(n % 5 == 0 for n in numbers)
    assert SECRET not in numbers  # 3 rounds to 5 even when not suppressed


def test_totals_are_the_sums_of_the_published_cells(session: Session) -> None:
    publish_directory(session, threshold=10, rounding=5)
    for view in tables(session):
        if view.by is None:
            values = [c.patients for c in view.cells if c.value != TOTAL]
            [total] = [c.patients for c in view.cells if c.value == TOTAL]
            assert total == sum(p or 0 for p in values), view.dimension
        else:
            for value in {c.value for c in view.cells}:
                row = [c.patients for c in view.cells if c.value == value and c.by_value != TOTAL]
                [margin] = [
                    c.patients for c in view.cells if c.value == value and c.by_value == TOTAL
                ]
                assert margin == sum(p or 0 for p in row), (view.dimension, value)
    assert cells(read_cells(session, "modality"))[(TOTAL, "")] == 25 + 15 + 10


def test_no_published_number_or_difference_of_two_reveals_the_small_cell(
    session: Session,
) -> None:
    publish_directory(session, threshold=10, rounding=5)
    numbers = [
        n for v in tables(session) for c in v.cells for n in (c.patients, c.series) if n is not None
    ]
    assert len(numbers) > 20
    assert SECRET not in numbers
    differences = {abs(a - b) for a, b in itertools.combinations(numbers, 2)}
    assert SECRET not in differences
    # The overlapping queries a differencer would try: CT's total minus its visible cells.
    ct_total = cells(read_cells(session, "modality"))[("CT", "")]
    ct_row = cells(read_cells(session, "modality", "body_part"))
    visible = sum(p or 0 for (v, b), p in ct_row.items() if v == "CT" and b != TOTAL)
    assert ct_total is not None and ct_total - visible != SECRET


def test_a_line_with_one_suppressed_cell_gets_a_complementary_suppression(
    session: Session,
) -> None:
    publish_directory(session, threshold=10, rounding=5)
    by_body = {k: p for k, p in cells(read_cells(session, "modality", "body_part")).items()}
    ct = {b: p for (v, b), p in by_body.items() if v == "CT" and b != TOTAL}
    assert len(ct) == 2 and list(ct.values()) == [None, None]  # CT HEAD has 14 patients
    body = cells(read_cells(session, "body_part"))
    hidden = [k for k, p in body.items() if p is None]
    assert len(hidden) == 2  # CHEST and one more, though only CHEST is below the threshold
    # The HEAD column then had one suppressed cell (CT): MR HEAD (11 patients) goes too.
    assert [p for (v, b), p in by_body.items() if v == "MR" and b != TOTAL] == [None]
    # Below the threshold only: nothing is complemented when no line has a single gap.
    publish_directory(session, threshold=2, rounding=1)
    assert None not in cells(read_cells(session, "modality", "body_part")).values()


def test_a_query_that_is_not_a_published_table_is_refused(session: Session) -> None:
    with pytest.raises(NotPublished, match="not been published"):
        read_cells(session, "modality")
    publish_directory(session, threshold=10, rounding=5)
    for dimension, by in (("modality", "sex"), ("pseudonym", None), ("body_part", "modality")):
        with pytest.raises(NotPublished, match="is not published"):
            read_cells(session, dimension, by)


def test_the_public_setting_gates_anonymous_browsing(sqlite_site: Site, session: Session) -> None:
    publish_directory(session, threshold=10, rounding=5)
    assert sqlite_site.settings.directory_public is False
    with pytest.raises(NotPublic):
        read_public_cells(session, sqlite_site.settings.directory_public, "modality")
    public = sqlite_site.settings.model_copy(update={"directory_public": True})
    view = read_public_cells(session, public.directory_public, "modality")
    assert view == read_cells(session, "modality")


def test_the_services_publish_under_the_site_settings_and_browse(
    sqlite_site: Site, session: Session
) -> None:
    operator = LocalOperator()
    assert directory_services.publish(operator, sqlite_site) > 0
    view = directory_services.browse(operator, sqlite_site, "modality", by="study_year")
    assert (view.threshold, view.rounding) == (10, 5)
    assert view.as_dict()["cells"]
