"""Scheduled collection: a declarative spec (YAML) that pulls what is new, run after run.

::

    name: ct-weekly            # the collection's name (default: the file's name)
    method: move               # move, get or dicomweb
    pacs_host: 10.0.0.9        # move and get (defaults: the site's pacs_* settings)
    receive_port: 11112        # move: run the receiver in this process
    dicomweb: http://pacs:8042/dicom-web   # dicomweb
    modality: CT               # criteria, as for dicomhaven pull
    last_days: 7               # studies of the last 7 days (or from:/to: dates)
    every: 1h                  # run again after this long (s, m, h, d); none: run once

Each run is a pull job recorded with the collection's name. A study whose every series an
earlier run of the same collection brought completely is not pulled again, so each run
fetches only what is new (and finishes what an earlier run left short). Unknown keys and
bad values are refused with the file and line.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dicomhaven._yaml import read_yaml
from dicomhaven.catalogue import make_engine
from dicomhaven.collect._criteria import Criteria, read_id_column
from dicomhaven.collect._jobs import PullJobs
from dicomhaven.collect._pull import PullSummary, pull_options, run_pull
from dicomhaven.collect._sources import SourceMethod, SourceOptions, open_source
from dicomhaven.errors import ConfigError

if TYPE_CHECKING:
    from dicomhaven.site import Site

__all__ = ["CollectionSpec", "load_spec", "run_collection"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_INTERVAL = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class CollectionSpec(BaseModel):
    """A collection as its YAML file declares it."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = ""
    method: SourceMethod = SourceMethod.MOVE
    pacs_host: str | None = None
    pacs_port: int | None = Field(default=None, ge=1, le=65535)
    pacs_ae: str | None = None
    calling_ae: str | None = None
    destination: str | None = None
    receive_port: int | None = Field(default=None, ge=0, le=65535)
    dicomweb: str | None = None
    modality: str | None = None
    date_from: date | None = Field(default=None, alias="from")
    date_to: date | None = Field(default=None, alias="to")
    last_days: int | None = Field(default=None, ge=1, le=36500)
    accessions_csv: Path | None = None
    patients_csv: Path | None = None
    every: str | None = None
    max_moves: int | None = Field(default=None, ge=1, le=16)
    pause_seconds: float | None = Field(default=None, ge=0)
    max_attempts: int | None = Field(default=None, ge=1, le=100)
    backoff_seconds: float | None = Field(default=None, ge=0)

    def interval_seconds(self) -> float | None:
        if self.every is None:
            return None
        found = _INTERVAL.match(self.every.strip())
        assert found is not None  # checked by load_spec
        return float(found.group(1)) * _UNIT_SECONDS[found.group(2)]

    def criteria(self, today: date) -> Criteria:
        """The criteria of a run on ``today`` (``last_days`` counts back from it)."""
        start = self.date_from
        if self.last_days is not None:
            start = today - timedelta(days=self.last_days)
        accessions = (
            read_id_column(self.accessions_csv, "AccessionNumber", ("accession_number",))
            if self.accessions_csv is not None
            else ()
        )
        patients = (
            read_id_column(self.patients_csv, "PatientID", ("patient_id",))
            if self.patients_csv is not None
            else ()
        )
        return Criteria(
            modality=self.modality.upper() if self.modality else None,
            date_from=start,
            date_to=self.date_to,
            accession_numbers=accessions,
            patient_ids=patients,
        )

    def source_options(self, drain_seconds: float) -> SourceOptions:
        return SourceOptions(
            method=self.method, pacs_host=self.pacs_host, pacs_port=self.pacs_port,
            pacs_ae=self.pacs_ae, calling_ae=self.calling_ae, destination=self.destination,
            receive_port=self.receive_port, dicomweb_url=self.dicomweb,
            drain_seconds=drain_seconds,
        )  # fmt: skip


def load_spec(path: Path) -> CollectionSpec:
    """Read and check a collection spec; errors name ``path:line`` and the key."""
    data, lines = read_yaml(path, "collection spec")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: expected a mapping of keys to values (see docs/stages/pull.md)")  # fmt: skip
    try:
        spec = CollectionSpec.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            key = str(error["loc"][0]) if error["loc"] else "?"
            where = f"{path}:{lines.get(key, 1)}"
            if error["type"] == "extra_forbidden":
                known = ", ".join(f.alias or n for n, f in CollectionSpec.model_fields.items())
                problems.append(f"{where}: unknown key '{key}' (known keys: {known})")
            else:
                problems.append(f"{where}: '{key}': {error['msg']}")
        raise ConfigError("; ".join(problems)) from None
    checks: list[tuple[str, bool, str]] = [
        ("name", not spec.name or bool(_NAME.match(spec.name)),
         "letters, digits, '.', '_' and '-', up to 128"),
        ("every", spec.every is None or bool(_INTERVAL.match(spec.every.strip())),
         "a number and a unit: s, m, h or d (e.g. 30m, 1h, 1d)"),
        ("last_days", spec.last_days is None or spec.date_from is None,
         "give either last_days or from, not both"),
    ]  # fmt: skip
    for key, ok, expected in checks:
        if not ok:
            raise ConfigError(f"{path}:{lines.get(key, 1)}: '{key}': expected {expected}")
    updates: dict[str, Any] = {"name": spec.name or path.stem}
    for key in ("accessions_csv", "patients_csv"):
        value = getattr(spec, key)
        if value is not None and not value.is_absolute():
            updates[key] = path.parent / value  # relative to the spec file
    return spec.model_copy(update=updates)


def run_collection(
    site: Site,
    spec: CollectionSpec,
    *,
    once: bool = False,
    stop: threading.Event | None = None,
    drain_seconds: float = 60.0,
    on_run: Callable[[PullSummary], None] | None = None,
    today: Callable[[], date] = date.today,
) -> list[PullSummary]:
    """Run a collection: one pull now and, unless ``once`` or the spec has no ``every``,
    one more each interval (counted from each run's start) until ``stop`` is set."""
    stop = stop or threading.Event()
    jobs = PullJobs(make_engine(site.database_url))
    options = pull_options(
        site.settings, max_moves=spec.max_moves, pause_seconds=spec.pause_seconds,
        max_attempts=spec.max_attempts, backoff=spec.backoff_seconds,
    )  # fmt: skip
    interval = None if once else spec.interval_seconds()
    summaries: list[PullSummary] = []
    with open_source(site, spec.source_options(drain_seconds)) as source:
        while True:
            started = time.monotonic()
            summary = run_pull(
                site, source, spec.criteria(today()), options, stop=stop, spec=spec.name,
                skip_studies=frozenset(jobs.studies_pulled(spec.name)),
            )  # fmt: skip
            summaries.append(summary)
            if on_run is not None:
                on_run(summary)
            if interval is None or stop.is_set():
                return summaries
            if stop.wait(max(0.0, interval - (time.monotonic() - started))):
                return summaries
