"""The catalogue of released objects (issue 13 item 4): filled by the release gate from the
copies it writes, rebuilt from ``store/``, keyed by made UIDs and the master pseudonym only."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pydicom
import pytest
from sqlalchemy import select

from dicomhaven.catalogue import (
    CatalogueInstance,
    CatalogueSeries,
    CatalogueStudy,
    ClinicalRecord,
    make_engine,
    make_sessionmaker,
)
from dicomhaven.catalogue._query import age_band, clinical_for, facet_counts, series_page
from dicomhaven.cli import main
from dicomhaven.ingest import import_paths
from dicomhaven.scan._stage import index_released, reset_gate_services
from dicomhaven.services import LocalOperator
from dicomhaven.services.catalogue import rebuild_catalogue
from dicomhaven.site import Site
from dicomhaven.synth import FileKind
from tests.scan.test_gate import batch, weakened
from tests.synth.generated import GeneratedSite

MODELS = (CatalogueStudy, CatalogueSeries, CatalogueInstance)


@pytest.fixture(autouse=True)
def _fresh_gate_services() -> Iterator[None]:
    reset_gate_services()
    yield
    reset_gate_services()


def released(site: Site, synth: GeneratedSite, tmp_path: Path) -> Site:
    folder = batch(synth, FileKind.MAMMO, 0, tmp_path / "mammo")
    batch(synth, FileKind.CT, 0, folder / "ct")
    import_paths(site, [folder])
    return site


def table_rows(site: Site) -> dict[str, list[dict[str, Any]]]:
    with make_sessionmaker(make_engine(site.database_url))() as session:
        return {
            model.__tablename__: sorted(
                (
                    {c.key: getattr(row, c.key) for c in model.__table__.columns}
                    for row in session.scalars(select(model))
                ),
                key=lambda r: json.dumps(r, sort_keys=True, default=str),
            )
            for model in MODELS
        }


def store_headers(site: Site) -> list[pydicom.Dataset]:
    return [
        pydicom.dcmread(p, stop_before_pixels=True) for p in (site.root / "store").rglob("*.dcm")
    ]


def test_a_released_mammogram_and_ct_carry_their_filter_and_calibration_values(
    sqlite_site: Site, synth_site: GeneratedSite, tmp_path: Path
) -> None:
    site = released(sqlite_site, synth_site, tmp_path)
    headers = store_headers(site)
    assert {h.Modality for h in headers} >= {"MG", "CT"}
    rows = table_rows(site)
    instances = {r["sop_uid"]: r for r in rows["catalogue_instances"]}
    assert set(instances) == {str(h.SOPInstanceUID) for h in headers}
    series = {r["series_uid"]: r for r in rows["catalogue_series"]}
    for header in headers:
        row, of = instances[str(header.SOPInstanceUID)], series[str(header.SeriesInstanceUID)]
        acquisition = json.loads(row["acquisition"])
        assert of["pseudonym"] == header.PatientID and of["modality"] == header.Modality
        assert of["study_year"] == int(header.StudyDate[:4])
        if header.Modality == "MG":
            assert (row["kvp"], row["compression_force"]) == (29.0, 98.0)
            assert (row["anode"], row["filter"]) == ("TUNGSTEN", "RHODIUM")
            assert acquisition["KVP"] == 29.0 and acquisition["FilterMaterial"] == "RHODIUM"
            assert row["laterality"] in {"L", "R"} and row["view_position"] in {"CC", "MLO"}
            assert of["body_part_code"]  # the vocabulary's code for the breast
        if header.Modality == "CT":
            assert row["convolution_kernel"] == "STANDARD"
            assert row["slice_thickness"] == float(header.SliceThickness)
            assert acquisition["ConvolutionKernel"] == "STANDARD"
    assert Counter(h.SeriesInstanceUID for h in headers) == {
        uid: r["instances"] for uid, r in series.items()
    }


def test_a_held_object_is_not_in_the_catalogue(
    sqlite_site: Site, synth_site: GeneratedSite, tmp_path: Path
) -> None:
    site = weakened(sqlite_site, "accession-kept")
    import_paths(site, [batch(synth_site, FileKind.CT, 0, tmp_path / "ct")])
    assert not list((site.root / "store").rglob("*.dcm"))
    assert table_rows(site) == {m.__tablename__: [] for m in MODELS}


def test_rebuild_gives_the_same_rows(
    sqlite_site: Site, synth_site: GeneratedSite, tmp_path: Path
) -> None:
    site = released(sqlite_site, synth_site, tmp_path)
    before = table_rows(site)
    assert before["catalogue_instances"]
    (site.root / "store" / "stray.txt").write_text("not a copy")  # counted, not indexed
    with make_sessionmaker(make_engine(site.database_url)).begin() as session:
        session.execute(CatalogueInstance.__table__.delete())  # as if indexing had failed
    seen: list[tuple[int, int]] = []
    report = rebuild_catalogue(LocalOperator(), site, lambda d, t: seen.append((d, t)))
    assert table_rows(site) == before
    assert report.instances == len(before["catalogue_instances"])
    assert report.failed and sum(report.failed.values()) == 1
    assert seen[-1] == (report.files, report.files)


def test_no_original_uid_or_planted_identifier_in_any_row(
    sqlite_site: Site, synth_site: GeneratedSite, tmp_path: Path
) -> None:
    site = released(sqlite_site, synth_site, tmp_path)
    key = synth_site.key
    patient = key.patients[0]
    originals: set[str] = set()
    for record in key.files:
        if record.patient == 0:
            originals |= {
                record.sop_instance_uid,
                record.study_instance_uid,
                record.series_instance_uid,
            }
            originals |= {str(p.value) for p in key.plants_in(record.path) if str(p.value)}
    identity = [patient.nhs_number, patient.hospital_number, patient.family_name, patient.phone]
    planted = {v for v in originals | set(identity) | set(patient.given_names) if len(v) >= 4}
    cells = [
        str(value)
        for rows in table_rows(site).values()
        for row in rows
        for value in row.values()
        if value is not None
    ]
    assert cells and planted
    leaks = [v for v in planted if any(v in cell for cell in cells)]
    assert leaks == [], f"{len(leaks)} planted values in catalogue rows"


def test_facet_counts_and_pages_match_the_store(
    sqlite_site: Site, synth_site: GeneratedSite, tmp_path: Path
) -> None:
    site = released(sqlite_site, synth_site, tmp_path)
    headers = store_headers(site)
    by_modality = Counter(h.Modality for h in headers)
    series_by_modality = Counter(
        m for m, _s in {(h.Modality, h.SeriesInstanceUID) for h in headers}
    )
    with make_sessionmaker(make_engine(site.database_url))() as session:
        facets = {f.value: f for f in facet_counts(session, "modality")}
        assert {v: f.instances for v, f in facets.items()} == dict(by_modality)
        assert {v: f.series for v, f in facets.items()} == dict(series_by_modality)
        assert all(f.patients == 1 for f in facets.values())
        only_ct = facet_counts(session, "modality", {"modality": ["CT"]})
        assert [(f.value, f.instances) for f in only_ct] == [("CT", by_modality["CT"])]
        total, page = series_page(session, {"modality": ["MG"]}, limit=1)
        assert total == series_by_modality["MG"] and len(page) == 1
        assert page[0]["modality"] == "MG"
        with pytest.raises(ValueError, match="not a filter column"):
            facet_counts(session, "acquisition")
        pseudonym = page[0]["pseudonym"]
        session.add(
            ClinicalRecord(
                pseudonym=pseudonym,
                data=json.dumps({"grade": "2"}),
                source="grades.csv",
                imported_at=datetime.now(UTC),
            )
        )
        session.flush()
        assert clinical_for(session, [pseudonym, "P-nobody"]) == {
            pseudonym: [{"grade": "2"}],
            "P-nobody": [],
        }


def test_a_failure_to_index_is_logged_by_kind_and_leaves_nothing(
    sqlite_site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    sessions = make_sessionmaker(make_engine(sqlite_site.database_url))
    with caplog.at_level(logging.WARNING):
        assert index_released(sessions, "x/y.dcm", b"not a dicom file SECRET-1234") is False
    assert "SECRET" not in caplog.text and "rebuild" in caplog.text
    assert table_rows(sqlite_site) == {m.__tablename__: [] for m in MODELS}


@pytest.mark.parametrize(
    ("age", "birth", "study", "band"),
    [
        ("045Y", "", "", "40-49"),
        ("", "19700615", "20200614", "40-49"),
        ("", "19700615", "20200615", "50-59"),
        ("006M", "", "", "0-9"),
        ("", "", "20200615", ""),
    ],
)
def test_age_bands(age: str, birth: str, study: str, band: str) -> None:
    assert age_band(age, birth, study) == band


def test_the_rebuild_command_reports_what_it_indexed(
    sqlite_site: Site,
    synth_site: GeneratedSite,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    site = released(sqlite_site, synth_site, tmp_path)
    capsys.readouterr()
    copies = len(list((site.root / "store").rglob("*.dcm")))
    assert main(["catalogue", "rebuild", "--json", "--site", str(site.root)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["instances"] == copies == report["files"] and report["failed"] == {}
