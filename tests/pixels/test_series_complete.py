"""Head series complete themselves, and the pipeline defaces them without a person running
``dicomhaven deface``: when every instance a pull announced has arrived, or when no slice has
arrived for the quiet period (``head_series_quiet_seconds``; 0: when the command that
received them ends). Two runs at once decide a series once; what a person must see is
listed once per series.

Series here are the synthetic head of ``head_phantom``: all 90 slices where the defacing
itself is under test, 8 of them (too few to show a face, so released without defacing, in a
second or two) where only the series' completeness is.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid
from sqlalchemy import select

from dicomhaven.catalogue import (
    LedgerEvent,
    LedgerObject,
    ObjectStatus,
    make_engine,
    make_sessionmaker,
)
from dicomhaven.catalogue._models import SeriesRecord
from dicomhaven.cli import main
from dicomhaven.collect import PullJobs
from dicomhaven.collect._jobs import keyed
from dicomhaven.errors import ConfigError
from dicomhaven.ingest import import_paths
from dicomhaven.intake import dicom_object_key
from dicomhaven.pixels import AWAITS_DEFACING
from dicomhaven.pixels import _deface_held as deface_module
from dicomhaven.pixels._deface_held import DefaceSummary, DefaceWhen, deface_held
from dicomhaven.pixels._series_complete import DefaceTask, HeadSeriesWatch
from dicomhaven.settings import load_settings
from dicomhaven.site import Site, open_site
from tests.pixels.head_phantom import head_phantom, slices

STUDY = "1.2.826.0.1.3680043.9.9999.78"
FEW = slice(40, 48)  # 8 slices through the middle of the head: a series too short for a face


def with_quiet(site: Site, seconds: float) -> Site:
    """The site with ``head_series_quiet_seconds`` (and the import's own quiet period) set
    in its settings file (worker processes read the file, not this test's environment)."""
    (site.root / "dicomhaven.yaml").write_text(
        f"head_series_quiet_seconds: {seconds}\nimport_series_quiet_seconds: {seconds}\n"
    )
    return open_site(site.root)


def head_series(folder: Path, rows: slice = FEW, *, only: Callable[[int], bool] = bool) -> Path:
    """Slices of the synthetic head CT (one series), those whose Instance Number ``only``
    admits; ``folder`` is made and returned."""
    folder.mkdir(parents=True)
    phantom = head_phantom("CT")
    for ds in slices(phantom.values[rows], "CT"):
        if only(ds.InstanceNumber):
            ds.StudyInstanceUID = STUDY
            ds.save_as(folder / f"{ds.InstanceNumber:03d}.dcm", enforce_file_format=True)
    return folder


def objects(site: Site) -> list[LedgerObject]:
    with make_sessionmaker(make_engine(site.database_url))() as session:
        return list(session.scalars(select(LedgerObject).order_by(LedgerObject.id)))


def releases(site: Site) -> list[int]:
    """The object id of every ledger event that released an object."""
    with make_sessionmaker(make_engine(site.database_url))() as session:
        return list(
            session.scalars(
                select(LedgerEvent.object_id).where(LedgerEvent.to_status == "released")
            )
        )


def stored(site: Site) -> list[Path]:
    return sorted(site.zone("store").rglob("*.dcm"))


def last_arrival(site: Site) -> datetime:
    newest = max(o.received_at for o in objects(site))
    return newest if newest.tzinfo is not None else newest.replace(tzinfo=UTC)


def consistent(site: Site) -> bool:
    return main(["ledger", "--site", str(site.root)]) == 0


@pytest.mark.integration
def test_import_with_quiet_zero_defaces_and_releases_a_head_series_by_itself(
    sqlite_site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = with_quiet(sqlite_site, 0)
    phantom = head_phantom("CT")
    folder = head_series(tmp_path / "head", slice(None))
    summary = import_paths(site, [folder])  # and nothing else: no 'dicomhaven deface'
    count = phantom.values.shape[0]
    assert summary.defaced is not None
    assert (summary.defaced.defaced, summary.defaced.objects_released) == (1, count)
    [decided] = summary.defaced.decisions
    assert decided["complete"] == "the import that brought it has ended"
    assert summary.as_dict()["defaced"]["defaced"] == 1  # type: ignore[index]
    assert {o.status for o in objects(site)} == {"released"}
    assert all("; face: defaced and verified (" in o.reason for o in objects(site))
    released = [pydicom.dcmread(p) for p in stored(site)]
    assert len(released) == count
    assert all(ds.RecognizableVisualFeatures == "NO" for ds in released)
    by_z = sorted(released, key=lambda ds: float(ds.ImagePositionPatient[2]))
    volume = np.stack([ds.pixel_array.astype(np.float32) - 1024 for ds in by_z])
    assert (volume[phantom.nose] < -900).all()  # the nose is air
    assert consistent(site)

    # The before/after render shows the face: a person sees it, listed once for the series.
    capsys.readouterr()
    assert main(["review", "faces", "--site", str(site.root), "--json"]) == 0
    [review] = json.loads(capsys.readouterr().out)
    assert (review["kind"], review["objects"]) == ("render", count)
    assert review["render"].startswith("quarantine/") and (site.root / review["render"]).is_file()
    assert main(["review", "--site", str(site.root)]) == 0
    assert review["series"] in capsys.readouterr().out


def test_quiet_period_holds_a_series_until_the_clock_passes_it(
    sqlite_site: Site, tmp_path: Path
) -> None:
    site = with_quiet(sqlite_site, 300)
    summary = import_paths(site, [head_series(tmp_path / "head")])
    assert summary.defaced is not None and summary.defaced.waiting == 1
    assert {(o.status, o.reason) for o in objects(site)} == {("quarantined", AWAITS_DEFACING)}

    arrived = last_arrival(site)
    early = deface_held(site, now=arrived + timedelta(seconds=299))
    assert (early.series, early.waiting) == (0, 1)  # no job, nothing moved
    assert {(o.status, o.reason) for o in objects(site)} == {("quarantined", AWAITS_DEFACING)}

    late = deface_held(site, now=arrived + timedelta(seconds=301))
    assert (late.series, late.released_without, late.objects_released) == (1, 1, 8)
    assert late.decisions[0]["complete"] == "no new slice for 300 s"
    assert {o.status for o in objects(site)} == {"released"}
    assert len(stored(site)) == 8 and consistent(site)


def test_a_folder_import_completes_its_series_when_it_ends_by_default(
    sqlite_site: Site, tmp_path: Path
) -> None:
    """A data manager imports a folder, trusts, releases: the receiver's quiet period (300 s)
    does not keep an imported series waiting, since a folder holds what it holds."""
    (sqlite_site.root / "dicomhaven.yaml").write_text("head_series_quiet_seconds: 300\n")
    site = open_site(sqlite_site.root)
    assert site.settings.import_series_quiet_seconds == 0
    summary = import_paths(site, [head_series(tmp_path / "head")])
    assert summary.defaced is not None and summary.defaced.waiting == 0
    assert summary.defaced.decisions[0]["complete"] == "the import that brought it has ended"
    assert {o.status for o in objects(site)} == {"released"}


def test_pulled_series_completes_when_its_last_instance_arrives_and_not_before(
    sqlite_site: Site, tmp_path: Path
) -> None:
    """A pull announced the series' instances (8 slices and a localizer): the series is
    complete when all of them are in the ledger and out of flight, the localizer (released
    on its own) counted; the quiet period has not passed."""
    site = with_quiet(sqlite_site, 300)
    folder = head_series(tmp_path / "head", only=lambda n: n < 8)  # slice 8 is late
    header = pydicom.dcmread(folder / "001.dcm")
    localizer = header.copy()
    localizer.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    localizer.SOPInstanceUID = localizer.file_meta.MediaStorageSOPInstanceUID = generate_uid(
        entropy_srcs=["head", "localizer"]
    )
    localizer.save_as(folder / "localizer.dcm", enforce_file_format=True)
    last = head_series(tmp_path / "last", only=lambda n: n == 8)
    uids = [str(pydicom.dcmread(p).SOPInstanceUID) for p in [*folder.iterdir(), *last.iterdir()]]
    # What run_pull records while planning: the work item's promised instances, and the
    # count the PACS gave (Number of Series Related Instances).
    jobs = PullJobs(make_engine(site.database_url))
    job = jobs.create("move", "PACS@127.0.0.1:104", {}, "f" * 64)
    key = keyed(site.site_key(), "series", str(header.SeriesInstanceUID))
    jobs.add_item(job, "s" * 64, key, "CT", [dicom_object_key(site.site_key(), u) for u in uids])
    jobs.announce(key, len(uids))
    jobs.announce(key, 3)  # a smaller answer later never lowers it

    first = import_paths(site, [folder])
    assert first.defaced is not None and first.defaced.waiting == 1
    assert sorted(o.status for o in objects(site)) == ["quarantined"] * 7 + ["released"]

    second = import_paths(site, [last])
    assert second.defaced is not None and second.defaced.series == 1
    assert second.defaced.decisions[0]["complete"] == (
        "all 9 instances its source announced have arrived"
    )
    assert {o.status for o in objects(site)} == {"released"}
    assert len(stored(site)) == 9 and consistent(site)


def run_inside(monkeypatch: pytest.MonkeyPatch, name: str, other: Callable[[], Any]) -> list[Any]:
    """Make the first call of ``_deface_held.<name>`` run ``other`` (a second run) before it
    goes on as itself: two runs interleaved at that point, deterministically."""
    real = getattr(deface_module, name)
    calls: list[int] = []
    seen: list[Any] = []

    def interleaved(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:  # the first run's call; the second run's own goes straight on
            seen.append(other())
        return real(*args, **kwargs)

    monkeypatch.setattr(deface_module, name, interleaved)
    return seen


def test_a_run_that_starts_while_another_decides_a_series_leaves_it(
    sqlite_site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import_paths(with_quiet(sqlite_site, 300), [head_series(tmp_path / "head")])
    # The second run starts while the first decides the series (its face triage).
    inner = run_inside(monkeypatch, "face_triage", lambda: deface_held(sqlite_site))
    outer = deface_held(sqlite_site, when=DefaceWhen.NOW)
    [second] = inner
    assert isinstance(second, DefaceSummary) and second.series == 0  # in flight: not held
    assert (outer.series, outer.objects_released) == (1, 8)
    ids = [o.id for o in objects(sqlite_site)]
    assert sorted(releases(sqlite_site)) == ids  # each slice released once
    assert len(stored(sqlite_site)) == 8 and consistent(sqlite_site)


def test_of_two_runs_that_found_a_series_one_claims_it(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both runs listed the series; the second claims and decides it before the first
    claims, so the first finds it taken (on SQLite and PostgreSQL)."""
    import_paths(with_quiet(site, 300), [head_series(tmp_path / "head")])
    inner = run_inside(monkeypatch, "claim", lambda: deface_held(site, when=DefaceWhen.NOW))
    outer = deface_held(site, when=DefaceWhen.NOW)
    [second] = inner
    assert (second.series, second.objects_released) == (1, 8)
    assert (outer.series, outer.taken, outer.objects_released) == (0, 1, 0)
    assert sorted(releases(site)) == [o.id for o in objects(site)]
    assert {o.status for o in objects(site)} == {"released"} and consistent(site)


def test_a_slice_after_its_series_was_decided_is_held_for_review(
    sqlite_site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = with_quiet(sqlite_site, 0)
    summary = import_paths(site, [head_series(tmp_path / "head")])
    assert summary.defaced is not None and summary.defaced.objects_released == 8
    # A ninth slice of the same series: it cannot join the released ones unchecked.
    late = import_paths(site, [head_series(tmp_path / "late", slice(40, 49),
                                           only=lambda n: n == 9)])  # fmt: skip
    assert late.defaced is not None and late.defaced.objects_released == 0
    [held] = [o for o in objects(site) if o.status == ObjectStatus.QUARANTINED]
    assert held.reason.startswith("held for review: 1 slices arrived after their series")
    with make_sessionmaker(make_engine(site.database_url))() as session:
        [record] = session.scalars(select(SeriesRecord))
    assert (record.decision, record.slices) == ("not needed", 8)

    capsys.readouterr()
    assert main(["review", "faces", "--site", str(site.root), "--json"]) == 0
    [review] = json.loads(capsys.readouterr().out)
    assert (review["kind"], review["objects"], review["render"]) == ("held", 1, None)
    assert review["reason"] == held.reason
    assert main(["deface", "--site", str(site.root)]) == 0  # nothing waits: it is for a person
    assert consistent(site)


def test_a_receiver_looks_for_complete_series_every_so_often(
    sqlite_site: Site, tmp_path: Path
) -> None:
    site = with_quiet(sqlite_site, 0)
    now = [0.0]
    watch = HeadSeriesWatch(site.root, make_engine(site.database_url), every=30.0,
                            clock=lambda: now[0])  # fmt: skip
    tasks: list[DefaceTask] = []
    assert not watch.poll(tasks.append) and watch.seconds_left() == 30.0  # not due
    now[0] = 31.0
    assert not watch.poll(tasks.append)  # due, but no head slice is held: nothing to run
    import_paths(with_quiet(site, 300), [head_series(tmp_path / "head")])
    now[0] = 45.0
    assert not watch.poll(tasks.append)  # held, but the next look is due at 61 s
    now[0] = 62.0
    assert watch.poll(tasks.append)
    assert tasks == [DefaceTask(site.root)]
    with_quiet(site, 0)  # what the task reads, as a worker process would
    done = tasks[0]()
    assert (done["series"], done["objects_released"]) == (1, 8)
    assert {o.status for o in objects(site)} == {"released"}


def test_the_quiet_period_is_a_validated_setting() -> None:
    assert load_settings(None, {}).head_series_quiet_seconds == 300.0
    env = {"DICOMHAVEN_HEAD_SERIES_QUIET_SECONDS": "0"}
    assert load_settings(None, env).head_series_quiet_seconds == 0.0
    with pytest.raises(ConfigError, match="head_series_quiet_seconds"):
        load_settings(None, {"DICOMHAVEN_HEAD_SERIES_QUIET_SECONDS": "-1"})
