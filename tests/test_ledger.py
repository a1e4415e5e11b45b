"""The ledger invariant, on SQLite and PostgreSQL: verify finds every way it can break."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select, update

from dicomhaven.catalogue import (
    Job,
    LedgerEvent,
    LedgerObject,
    ObjectStatus,
    make_engine,
    make_sessionmaker,
)
from dicomhaven.cli import main
from dicomhaven.errors import LedgerError
from dicomhaven.ingest import import_paths, process_pending
from dicomhaven.intake import IntakeStore, receive_bytes
from dicomhaven.ledger import Ledger
from dicomhaven.pipeline import Outcome
from dicomhaven.site import Site
from tests.corpora import pydicom_file

# A report without a patient identifier (held by the identity stage), a CT slice (low risk:
# released without reading) and an RT plan (all headers: released).
FILES = ["reportsi.dcm", "CT_small.dcm", "rtplan.dcm"]
OUTCOMES = {"quarantined": 1, "released": 2}


def imported(site: Site) -> Ledger:
    import_paths(site, [pydicom_file(name) for name in FILES])
    return Ledger(make_engine(site.database_url))


def dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(proc.stdout)


def execute(site: Site, statement: object) -> None:
    with make_sessionmaker(make_engine(site.database_url)).begin() as session:
        session.execute(statement)  # type: ignore[call-overload]


def test_clean_import_verifies(site: Site) -> None:
    report = imported(site).verify(site.intake, check_content=True)
    assert report.consistent, report.problems
    assert {k: v for k, v in report.counts.items() if v} == OUTCOMES
    assert report.unaccounted == 0


def test_missing_intake_file_is_found(site: Site) -> None:
    ledger = imported(site)
    victim = next(site.intake.joinpath("dicom").rglob("*.dcm"))
    victim.unlink()
    report = ledger.verify(site.intake)
    assert not report.consistent
    assert any("is missing" in p for p in report.problems)
    assert main(["ledger", "--site", str(site.root)]) == 1


def test_changed_intake_content_is_found_by_deep_check(site: Site) -> None:
    ledger = imported(site)
    victim = next(site.intake.joinpath("dicom").rglob("*.dcm"))
    victim.write_bytes(victim.read_bytes()[:-1] + b"\x01")
    assert ledger.verify(site.intake).consistent
    report = ledger.verify(site.intake, check_content=True)
    assert any("does not match its hash" in p for p in report.problems)


def test_orphan_intake_file_is_unaccounted(site: Site) -> None:
    ledger = imported(site)
    store = IntakeStore(site.intake)
    receive_bytes(pydicom_file("JPEG2000.dcm").read_bytes(), store, site.site_key())
    report = ledger.verify(site.intake)
    assert report.unaccounted == 1
    assert any("in no ledger entry" in p for p in report.problems)
    # Re-importing the object accounts for it.
    import_paths(site, [pydicom_file("JPEG2000.dcm")])
    assert ledger.verify(site.intake).consistent


def test_status_edited_behind_the_ledgers_back_is_found(site: Site) -> None:
    ledger = imported(site)
    execute(site, update(LedgerObject).where(LedgerObject.id == 1).values(status="released"))
    report = ledger.verify(site.intake)
    assert any("does not match its last event" in p for p in report.problems)


def test_forged_event_breaks_the_history(site: Site) -> None:
    ledger = imported(site)
    with make_sessionmaker(make_engine(site.database_url)).begin() as session:
        first = session.scalars(select(LedgerEvent).order_by(LedgerEvent.id)).first()
        assert first is not None
        session.add(
            LedgerEvent(object_id=first.object_id, job_id=first.job_id, at=first.at,
                        stage="forged", from_status="received", to_status="released", reason="x")
        )  # fmt: skip
    report = ledger.verify(site.intake)
    assert any("broken transition" in p for p in report.problems)


def test_terminal_status_without_reason_is_found(site: Site) -> None:
    ledger = imported(site)
    execute(site, update(LedgerObject).where(LedgerObject.id == 2).values(reason=""))
    assert any("without a reason" in p for p in ledger.verify(site.intake).problems)


def test_interrupted_job_leaves_objects_unaccounted_until_processed(site: Site) -> None:
    ledger = Ledger(make_engine(site.database_url))
    job = ledger.start_job("import")
    store = IntakeStore(site.intake)
    receipts = [receive_bytes(pydicom_file(n).read_bytes(), store, site.site_key()) for n in FILES]
    _, pending = ledger.receive(job, "folder", receipts)
    assert len(pending) == 3
    # While the job's process lives, the objects are in flight, not lost.
    report = ledger.verify(site.intake)
    assert report.in_flight == 3 and report.consistent
    # The process dies before deciding: the objects become unaccounted.
    execute(site, update(Job).where(Job.id == job).values(pid=dead_pid()))
    report = ledger.verify(site.intake)
    assert report.unaccounted == 3 and not report.consistent
    assert process_pending(site).outcomes == OUTCOMES
    assert ledger.verify(site.intake).consistent


def test_reimport_after_a_crash_resumes_in_flight_objects(site: Site) -> None:
    ledger = Ledger(make_engine(site.database_url))
    job = ledger.start_job("import")
    store = IntakeStore(site.intake)
    receipts = [receive_bytes(pydicom_file("CT_small.dcm").read_bytes(), store, site.site_key())]
    ledger.receive(job, "folder", receipts)
    execute(site, update(Job).where(Job.id == job).values(pid=dead_pid()))
    summary = import_paths(site, [pydicom_file("CT_small.dcm")])
    assert summary.receipts == {"resumed": 1}
    assert summary.outcomes == {"released": 1}
    assert ledger.verify(site.intake).consistent


def test_disallowed_transition_is_refused(site: Site) -> None:
    ledger = imported(site)
    # rejected objects can never move again; quarantined ones (object 1) may be rejected.
    ledger.settle(1, [(1, Outcome(ObjectStatus.REJECTED, "reviewed: unusable", "review"))])
    with pytest.raises(LedgerError, match="not allowed"):
        ledger.settle(1, [(1, Outcome(ObjectStatus.RELEASED, "oops", "review"))])
    report = ledger.verify(site.intake)
    assert report.consistent and report.counts["rejected"] == 1


def test_outcome_must_be_terminal_and_reasoned() -> None:
    with pytest.raises(ValueError, match="terminal"):
        Outcome(ObjectStatus.RECEIVED, "x", "s")
    with pytest.raises(ValueError, match="reason"):
        Outcome(ObjectStatus.QUARANTINED, "", "s")


def test_ledger_json_output(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    imported(site)
    assert main(["ledger", "--site", str(site.root), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["consistent"] is True and data["total"] == 3
    assert {k: v for k, v in data["counts"].items() if v} == OUTCOMES


def test_ledger_on_missing_site_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ledger", "--site", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "is not a dicomhaven site" in err and "dicomhaven init" in err


def test_a_zombie_is_no_live_writer() -> None:
    """A worker killed with its import is reparented to PID 1; where PID 1 reaps nothing (a
    container), it stays a zombie, and its partial intake file was never removed."""
    from dicomhaven.ledger import pid_alive

    pid = os.fork()
    if pid == 0:
        os._exit(0)
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
            assert time.monotonic() < deadline, "the child did not end"
            time.sleep(0.01)  # waiting for another process to end, not timing anything
        assert not pid_alive(pid)
        assert pid_alive(os.getpid())
    finally:
        os.waitpid(pid, 0)
