"""A crash at any point leaves nothing lost and nothing orphaned, once ``process`` has run
(issue 22 #5).

On main, ``kill -9`` of ``import`` during intake left 192 files in intake with no ledger
entry, which ``process`` did not see (only a re-import repaired it), and the pool's workers
lived on, orphaned, ~0.5 GB each. A full disk said only "internal error (OSError)" and left
intake files orphaned. Here the import is a real subprocess, killed with SIGKILL at a phase
observed from outside (intake files, ledger counts, store files); the disk is a real tmpfs
mounted over one zone and filled (root only: CI runs as root), then grown again.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import update

from dicomhaven.catalogue import Job, dispose_engines, make_engine, make_sessionmaker
from dicomhaven.cli import main
from dicomhaven.ingest import RECOVERED_SOURCE, process_pending
from dicomhaven.intake import IntakeStore, receive_bytes
from dicomhaven.ledger import Ledger, LedgerReport
from dicomhaven.site import Site, permission_problems
from tests.corpora import pydicom_file
from tests.peers import missing_peer

FILES = ["reportsi.dcm", "CT_small.dcm", "rtplan.dcm"]
OUTCOMES = {"quarantined": 1, "released": 2}
SLICES = 150
DEADLINE = 120.0  # seconds a phase or the workers' end may take on a loaded machine


def series(folder: Path, count: int, base: str = "1.2.826.0.1.3680043.8.498.7001") -> Path:
    """``count`` copies of pydicom's CT slice, each its own instance (synthetic UIDs)."""
    folder.mkdir(parents=True)
    template = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    for number in range(1, count + 1):
        uid = f"{base}.{number}"
        template.SOPInstanceUID = uid
        template.file_meta.MediaStorageSOPInstanceUID = uid
        template.InstanceNumber = number
        template.save_as(folder / f"IM{number:04d}.dcm", enforce_file_format=True)
    return folder


def ledger_report(site: Site, *, modes: bool = True) -> LedgerReport:
    """``dicomhaven ledger --deep``: the invariant, every intake file re-hashed, and (for
    what the command line wrote, under its umask) the zones' modes."""
    report = Ledger(make_engine(site.database_url)).verify(site.intake, check_content=True)
    if modes:
        report.problems.extend(permission_problems(site))
    return report


def intake_files(site: Site) -> int:
    return len(IntakeStore(site.intake).iter_files())


def partial_files(site: Site) -> list[Path]:
    folder = site.intake / ".partial"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(proc.stdout)


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dicomhaven.cli", *args], capture_output=True,
                          text=True, env=env)  # fmt: skip


# -- recovery, in process -----------------------------------------------------------------------
def test_process_records_intake_files_that_no_ledger_entry_names(site: Site) -> None:
    """What a job killed between writing a file and recording it leaves: ``process`` records
    it, as intake would have, and finishes it."""
    store = IntakeStore(site.intake)
    for name in FILES:
        receive_bytes(pydicom_file(name).read_bytes(), store, site.site_key())
    before = ledger_report(site, modes=False)
    assert before.unaccounted == len(FILES)
    assert all("run 'dicomhaven process'" in p for p in before.problems)
    summary = process_pending(site)
    assert summary.recovered == len(FILES)
    assert summary.outcomes == OUTCOMES
    report = ledger_report(site, modes=False)
    assert report.consistent, report.problems
    assert report.total == len(FILES)
    assert process_pending(site).outcomes == {}  # nothing twice


def test_objects_in_flight_under_an_interrupted_job_are_finished(site: Site) -> None:
    """An import stopped between receiving a batch and deciding it (Ctrl-C, a full disk)
    marks its job interrupted; ``process`` must finish its objects, not only those of jobs
    whose process died."""
    ledger = Ledger(make_engine(site.database_url))
    job = ledger.start_job("import")
    store = IntakeStore(site.intake)
    receipts = [receive_bytes(pydicom_file(n).read_bytes(), store, site.site_key()) for n in FILES]
    ledger.receive(job, "folder", receipts)
    ledger.finish_job(job, {}, interrupted=True)
    assert ledger_report(site, modes=False).unaccounted == len(FILES)
    assert process_pending(site).outcomes == OUTCOMES
    assert ledger_report(site, modes=False).consistent


def test_process_removes_partial_files_of_dead_writers_only(sqlite_site: Site) -> None:
    folder = sqlite_site.intake / ".partial"
    folder.mkdir(exist_ok=True)
    dead = folder / f"{dead_pid()}.0.part"
    live = folder / f"{os.getpid()}.0.part"
    for path in (dead, live):
        path.write_bytes(b"half a file")
    summary = process_pending(sqlite_site)
    assert summary.partials_removed == 1
    assert partial_files(sqlite_site) == [live]


def test_dead_jobs_are_marked_interrupted_by_process(sqlite_site: Site) -> None:
    ledger = Ledger(make_engine(sqlite_site.database_url))
    job = ledger.start_job("import")
    with make_sessionmaker(ledger.engine).begin() as session:
        session.execute(update(Job).where(Job.id == job).values(pid=dead_pid()))
    process_pending(sqlite_site)
    with make_sessionmaker(ledger.engine)() as session:
        found = session.get(Job, job)
        assert found is not None and found.state == "interrupted"


def test_recovered_objects_are_recorded_as_recovered(sqlite_site: Site) -> None:
    store = IntakeStore(sqlite_site.intake)
    receive_bytes(pydicom_file("CT_small.dcm").read_bytes(), store, sqlite_site.site_key())
    process_pending(sqlite_site)
    db = sqlite_site.root / "catalogue" / "catalogue.db"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT source FROM ledger_objects").fetchall() == [(RECOVERED_SOURCE,)]


# -- kill -9 at each phase ----------------------------------------------------------------------
@dataclass(frozen=True)
class Seen:
    """What the outside can see of a running import."""

    intake: int
    received: int
    decided: int
    store: int


def seen(site: Site) -> Seen:
    db = site.root / "catalogue" / "catalogue.db"
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as conn:
        counts = dict(conn.execute("SELECT status, count(*) FROM ledger_objects GROUP BY status"))
    received = counts.pop("received", 0)
    store = sum(1 for p in (site.root / "store").rglob("*") if p.is_file())
    return Seen(intake_files(site), received, sum(counts.values()), store)


PHASES: dict[str, tuple[int, Callable[[Seen], bool]]] = {
    # phase: (ledger batch size, the moment to kill)
    "intake": (1000, lambda s: s.intake >= 20 and s.received + s.decided == 0),
    "stage": (40, lambda s: s.received > 0 and s.decided == 0 and s.store == 0),
    "gate": (40, lambda s: s.store > 0 and s.decided == 0),
}


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (the pool's forkserver and its workers among them)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; only its exit status is left


def kill_at(site: Site, folder: Path, phase: str) -> set[int]:
    """Start ``import --workers 2``, SIGKILL it when ``phase`` is seen; its descendants."""
    batch, moment = PHASES[phase]
    env = os.environ | {"DICOMHAVEN_LEDGER_BATCH_SIZE": str(batch)}
    command = [sys.executable, "-m", "dicomhaven.cli", "import", "--site", str(site.root),
               "--workers", "2", str(folder)]  # fmt: skip
    importer = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + DEADLINE
    try:
        while not moment(seen(site)):
            if importer.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"import ended or stalled before the {phase} phase was seen")
            time.sleep(0.005)  # polling another process's progress, not timing anything
        below = descendants(importer.pid)
        importer.send_signal(signal.SIGKILL)
        importer.wait()
    finally:
        if importer.poll() is None:
            importer.kill()
            importer.wait()
    return below


@pytest.mark.integration
@pytest.mark.parametrize("phase", list(PHASES))
def test_kill_9_at_each_phase_loses_nothing_and_orphans_nothing(
    sqlite_site: Site, tmp_path: Path, phase: str
) -> None:
    folder = series(tmp_path / "in", SLICES)
    workers = kill_at(sqlite_site, folder, phase)
    assert len(workers) >= 2  # the pool was running (forkserver and workers)
    # The pool dies with the import, at once and without help (on main they lived on).
    deadline = time.monotonic() + DEADLINE
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [pid for pid in workers if alive(pid)]
    for pid in left:  # never leave them running, even when the test fails
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"{len(left)} worker processes outlived the import"

    in_intake = intake_files(sqlite_site)
    crashed = ledger_report(sqlite_site)
    assert not crashed.consistent  # the crash left something to do: the test saw a phase
    done = cli("process", "--site", str(sqlite_site.root), "--json")
    assert done.returncode == 0, done.stderr
    report = ledger_report(sqlite_site)
    assert report.consistent, report.problems
    assert report.total == in_intake  # everything that reached intake is accounted for
    assert partial_files(sqlite_site) == []
    store = sum(1 for p in (sqlite_site.root / "store").rglob("*") if p.is_file())
    assert store == report.counts["released"]  # a copy per released object, none twice
    again = cli("import", "--site", str(sqlite_site.root), str(folder))
    assert again.returncode == 0, again.stderr
    report = ledger_report(sqlite_site)
    assert report.consistent and report.total == SLICES, report.problems


# -- disk full in each zone ---------------------------------------------------------------------
def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode != 0:
        missing_peer(f"cannot mount a tmpfs (needs root): {done.stderr.strip()}")


@contextlib.contextmanager
def small_disk(zone: Path, room: int) -> Iterator[Path]:
    """A tmpfs over ``zone`` (its contents copied in), filled but for ``room`` bytes. The
    context's value is the filler; deleting part of it frees space, as an operator would."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        missing_peer("mounting a small tmpfs needs root and mount(8)")
    dispose_engines()  # SQLite checkpoints on close: the zone's files are whole when copied
    saved = zone.parent.parent / f"{zone.name}.saved"  # outside the site
    shutil.copytree(zone, saved, symlinks=True)
    _mount("-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(zone))
    try:
        shutil.copytree(saved, zone, symlinks=True, dirs_exist_ok=True)
        filler = zone / ".filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        finally:
            os.close(fd)
        os.truncate(filler, max(0, filler.stat().st_size - room))
        yield filler
    finally:
        subprocess.run(["umount", "-l", str(zone)], capture_output=True)


#: zone: (bytes left free, workers). Intake leaves room for a few files, the others none
#: or a little, so each import meets the full disk part-way.
ZONES = {"intake": (160_000, "2"), "quarantine": (0, "1"), "store": (90_000, "1"),
         "catalogue": (48_000, "1")}  # fmt: skip


@pytest.mark.integration
@pytest.mark.parametrize("zone", list(ZONES))
def test_disk_full_in_each_zone_is_named_and_process_finishes_after(
    sqlite_site: Site, tmp_path: Path, zone: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    folder = series(tmp_path / "in", 40)
    room, workers = ZONES[zone]
    monkeypatch.setenv("DICOMHAVEN_LEDGER_BATCH_SIZE", "10")
    with small_disk(sqlite_site.root / zone, room) as filler:
        code = main(["import", "--site", str(sqlite_site.root), "--workers", workers, str(folder)])
        err = capsys.readouterr().err
        assert code == 74, err
        assert "disk full" in err and zone in err and "internal error" not in err
        filler.unlink()  # the operator frees space
        assert main(["process", "--site", str(sqlite_site.root)]) == 0, capsys.readouterr()
        report = ledger_report(sqlite_site)
        assert report.consistent, report.problems
        assert report.total == intake_files(sqlite_site)
        assert main(["import", "--site", str(sqlite_site.root), str(folder)]) == 0
        report = ledger_report(sqlite_site)
        assert report.consistent and report.total == 40, report.problems
