"""The catalogue of released objects at scale: directory facet counts and faceted search.

    .venv/bin/python benchmarks/catalogue.py [--instances N] [--postgres [URL]] [--queries Q]

Builds a catalogue of N synthetic instances (default 1,000,000; ~100 per series, a few
series per study) directly into the tables, by bulk insert after ``migrate`` (the real
schema and indexes), with realistic skews: modality (MG, CT, MR, CR, US, DX), the body parts
and devices that go with each, study years 2005-2026, age bands, sex, For Presentation /
For Processing for mammography. Then times Q (default 200) varied queries with
``time.perf_counter``: a facet count (series, instances, patients per value of a random
filter column) under 0-3 random filters, and every fifth one a page of matching series.
Goal (issue 13): p95 < 100 ms at 1M instances on SQLite. ``--postgres`` runs on a throwaway
server of ``tests/postgres.py`` (or the URL given) as well. Only synthetic values exist here.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from dicomhaven.catalogue import (  # noqa: E402
    FILTER_COLUMNS,
    CatalogueInstance,
    CatalogueSeries,
    CatalogueStudy,
    make_engine,
    make_sessionmaker,
    migrate,
)
from dicomhaven.catalogue._query import facet_counts, series_page  # noqa: E402

# modality -> (weight, body parts, devices, instances per series (low, high))
MODALITIES: dict[str, tuple[int, list[str], list[tuple[str, str]], tuple[int, int]]] = {
    "MG": (
        40,
        ["76752008"],
        [
            ("HOLOGIC", "Selenia Dimensions"),
            ("GE", "Senographe Pristina"),
            ("SIEMENS", "MAMMOMAT Revelation"),
            ("FUJIFILM", "AMULET"),
        ],
        (1, 8),
    ),
    "CT": (
        25,
        ["51185008", "69536005", "818981001", "91726006"],
        [("SIEMENS", "SOMATOM Force"), ("GE", "Revolution"), ("CANON", "Aquilion ONE")],
        (80, 400),
    ),
    "MR": (
        15,
        ["69536005", "72696002", "421060004"],
        [("SIEMENS", "MAGNETOM Vida"), ("PHILIPS", "Ingenia")],
        (60, 240),
    ),
    "CR": (8, ["51185008", "72696002"], [("CARESTREAM", "DRX-1"), ("AGFA", "DX-D 600")], (1, 3)),
    "DX": (7, ["51185008", "85050009"], [("PHILIPS", "DigitalDiagnost")], (1, 3)),
    "US": (5, ["818981001", "76752008"], [("GE", "LOGIQ E10"), ("PHILIPS", "EPIQ 7")], (5, 40)),
}
BANDS = ["20-29", "30-39", "40-49", "50-59", "60-69", "70-79", "80-89", ""]
BAND_WEIGHTS = [3, 6, 14, 24, 24, 17, 9, 3]


def _uid(kind: str, n: int) -> str:
    return f"2.25.{kind}{n:012d}"


def build(engine: Engine, instances: int, seed: int = 13) -> dict[str, float]:
    """Fill the three tables with about ``instances`` rows of instances; the seconds taken."""
    rng = random.Random(seed)
    names = list(MODALITIES)
    weights = [MODALITIES[m][0] for m in names]
    studies: list[dict[str, Any]] = []
    series: list[dict[str, Any]] = []
    made = s_n = st_n = 0
    started = time.perf_counter()
    chunk: list[dict[str, Any]] = []
    with engine.begin() as connection:
        while made < instances:
            study_uid = _uid("1", st_n)
            st_n += 1
            band = rng.choices(BANDS, BAND_WEIGHTS)[0]
            sex = rng.choice("FFM")
            year = rng.randint(2005, 2026)
            pseudonym = f"P{rng.randrange(instances // 300 + 1):011d}"
            studies.append(
                dict(
                    study_uid=study_uid,
                    pseudonym=pseudonym,
                    study_year=year,
                    age_band=band,
                    sex=sex,
                )
            )
            modality = rng.choices(names, weights)[0]
            _w, parts, devices, (low, high) = MODALITIES[modality]
            manufacturer, model = rng.choice(devices)
            for _ in range(rng.randint(1, 4)):
                count = min(rng.randint(low, high), instances - made)
                if count <= 0:
                    break
                series_uid = _uid("2", s_n)
                s_n += 1
                laterality = rng.choice("LR") if modality == "MG" else ""
                view = rng.choice(["CC", "MLO"]) if modality == "MG" else ""
                series.append(
                    dict(
                        series_uid=series_uid,
                        study_uid=study_uid,
                        pseudonym=pseudonym,
                        modality=modality,
                        body_part_code=rng.choice(parts),
                        body_part_meaning="",
                        procedure_code="",
                        procedure_meaning="",
                        laterality=laterality,
                        view_position=view,
                        manufacturer=manufacturer,
                        model=model,
                        study_year=year,
                        age_band=band,
                        sex=sex,
                        presentation_intent=rng.choice(["FOR PRESENTATION", "FOR PROCESSING"])
                        if modality == "MG"
                        else "",
                        instances=count,
                    )
                )
                kvp = {"MG": 29.0, "CT": 120.0}.get(modality, 80.0)
                for _i in range(count):
                    chunk.append(
                        dict(
                            sop_uid=_uid("3", made),
                            series_uid=series_uid,
                            path=f"s/{made}.dcm",
                            laterality=laterality,
                            view_position=view,
                            kvp=kvp,
                            exposure=rng.uniform(5, 200),
                            anode="TUNGSTEN" if modality == "MG" else "",
                            filter="RHODIUM" if modality == "MG" else "",
                            compression_force=rng.uniform(50, 150) if modality == "MG" else None,
                            body_part_thickness=rng.uniform(20, 80) if modality == "MG" else None,
                            slice_thickness=rng.choice([0.625, 1.25, 5.0])
                            if modality == "CT"
                            else None,
                            convolution_kernel=rng.choice(["STANDARD", "BONE", "Br40"])
                            if modality == "CT"
                            else "",
                            ctdi_vol=rng.uniform(2, 20) if modality == "CT" else None,
                            acquisition=json.dumps({"KVP": kvp}),
                        )
                    )
                    made += 1
                if len(chunk) >= 50_000:
                    _flush(connection, studies, series, chunk)
        _flush(connection, studies, series, chunk)
    return {"seconds": time.perf_counter() - started, "series": s_n}


def _flush(
    connection: Any,
    studies: list[dict[str, Any]],
    series: list[dict[str, Any]],
    chunk: list[dict[str, Any]],
) -> None:
    for model, rows in (
        (CatalogueStudy, studies),
        (CatalogueSeries, series),
        (CatalogueInstance, chunk),
    ):
        if rows:
            connection.execute(insert(model), rows)
            rows.clear()


VALUES = {
    "modality": list(MODALITIES),
    "sex": ["F", "M"],
    "age_band": BANDS[:-1],
    "study_year": list(range(2005, 2027)),
    "body_part_code": ["76752008", "51185008"],
    "presentation_intent": ["FOR PRESENTATION"],
    "laterality": ["L", "R"],
    "manufacturer": ["SIEMENS", "GE", "HOLOGIC"],
}


def queries(count: int, seed: int = 5) -> Iterator[tuple[str, str, dict[str, list[Any]]]]:
    rng = random.Random(seed)
    for n in range(count):
        filters = {
            c: rng.sample(VALUES[c], min(len(VALUES[c]), rng.randint(1, 2)))
            for c in rng.sample(sorted(VALUES), rng.randint(0, 3))
        }
        yield ("page" if n % 5 == 4 else "facet"), rng.choice(FILTER_COLUMNS), filters


def time_queries(engine: Engine, count: int) -> dict[str, float]:
    sessions = make_sessionmaker(engine)
    took: list[float] = []
    with sessions() as session:
        facet_counts(session, "modality")  # warm the cache: the directory is always open
        for kind, column, filters in queries(count):
            started = time.perf_counter()
            if kind == "page":
                series_page(session, filters, offset=0, limit=50)
            else:
                facet_counts(session, column, filters)
            took.append((time.perf_counter() - started) * 1000)
    took.sort()
    return {
        "p50_ms": statistics.median(took),
        "p95_ms": took[int(len(took) * 0.95) - 1],
        "max_ms": took[-1],
    }


def run(url: str, label: str, instances: int, count: int) -> None:
    engine = make_engine(url)
    migrate(engine)
    built = build(engine, instances)
    print(
        f"{label}: built {instances:,} instances, {built['series']:,} series "
        f"in {built['seconds']:.0f} s",
        flush=True,
    )
    figures = time_queries(engine, count)
    print(
        f"{label}: {count} queries  p50 {figures['p50_ms']:.1f} ms  "
        f"p95 {figures['p95_ms']:.1f} ms  max {figures['max_ms']:.1f} ms",
        flush=True,
    )
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--postgres", nargs="?", const="server", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run(f"sqlite:///{tmp}/catalogue.db", "sqlite", args.instances, args.queries)
    if args.postgres == "server":
        from tests.postgres import postgres_server

        with postgres_server() as server:
            run(server.create_database("bench"), "postgresql", args.instances, args.queries)
    elif args.postgres:
        run(args.postgres, "postgresql", args.instances, args.queries)


if __name__ == "__main__":
    main()
