"""Several importers of one site at once, on SQLite and PostgreSQL (issue 22 #5).

Two ``import --workers 2`` of folders sharing files ended one of them with "internal error
(IntegrityError)" in ``Ledger.receive`` in 2 of 4 trials: it read the ledger, another
importer entered the same objects, and its insert collided. The files it had written were
then in intake with no ledger entry, and ``process`` said "nothing to do".
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from dicomhaven.catalogue import make_engine
from dicomhaven.intake import IntakeStore, Receipt, receive_bytes
from dicomhaven.ledger import Ledger, ReceiptResult
from dicomhaven.site import Site
from tests.corpora import pydicom_file
from tests.test_crash_recovery import ledger_report, series

FILES = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "JPEG2000.dcm"]


def receipts_of(site: Site) -> list[Receipt]:
    store = IntakeStore(site.intake)
    return [receive_bytes(pydicom_file(n).read_bytes(), store, site.site_key()) for n in FILES]


def impatient(engine: Any) -> Any:
    """An engine whose SQLite connections do not wait for a lock: a writer that finds the
    write lock taken fails at once instead of waiting (in one thread, it would wait for
    itself)."""

    def no_wait(dbapi_connection: Any, _record: Any) -> None:
        if engine.dialect.name == "sqlite":
            dbapi_connection.execute("PRAGMA busy_timeout=0")

    event.listen(engine, "connect", no_wait)
    return engine


def test_an_object_another_importer_entered_meanwhile_is_a_re_receipt(site: Site) -> None:
    """The race, made to happen every time: the moment our receive has read the ledger,
    another importer enters the same objects. Ours must count them as re-receipts (or, on
    SQLite, hold the write lock from before its read so the other waits), never fail."""
    ours = Ledger(make_engine(site.database_url))
    theirs = Ledger(impatient(make_engine(site.database_url)))
    receipts = receipts_of(site)
    our_job, their_job = ours.start_job("import"), theirs.start_job("import")
    their_results: list[list[ReceiptResult]] = []
    waited: list[bool] = []

    def they_enter_them_now(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        read = statement.lstrip().upper().startswith("SELECT") and "LEDGER_OBJECTS" in (
            statement.upper()
        )
        if read and not their_results and not waited:
            try:
                their_results.append(theirs.receive(their_job, "folder", receipts)[0])
            except OperationalError:  # SQLite: our write lock is held; they go after us
                waited.append(True)

    event.listen(ours.engine, "after_cursor_execute", they_enter_them_now)
    our_results, pending = ours.receive(our_job, "folder", receipts)
    event.remove(ours.engine, "after_cursor_execute", they_enter_them_now)
    if waited:
        assert site.database_url.startswith("sqlite")
        their_results.append(theirs.receive(their_job, "folder", receipts)[0])
        assert our_results == [ReceiptResult.NEW] * len(FILES)
        assert their_results[0] == [ReceiptResult.DUPLICATE] * len(FILES)
    else:
        assert their_results[0] == [ReceiptResult.NEW] * len(FILES)
        assert our_results == [ReceiptResult.DUPLICATE] * len(FILES)
        assert pending == []  # theirs to process: their job lives
    report = ours.verify(site.intake)
    assert report.total == len(FILES) and report.problems == []


def test_a_failed_object_is_claimed_by_one_process_only(site: Site) -> None:
    """Two ``process`` runs (or a process and an import) that meet the same failed object:
    one claims it and processes it; the other leaves it alone."""
    ledger = Ledger(make_engine(site.database_url))
    job = ledger.start_job("import")
    from dicomhaven.catalogue import ObjectStatus
    from dicomhaven.pipeline import Outcome

    _, pending = ledger.receive(job, "folder", receipts_of(site))
    ledger.settle(
        job, [(p.object_id, Outcome(ObjectStatus.FAILED, "retry me", "x")) for p in pending]
    )
    ledger.finish_job(job, {})
    failed = next(ledger.pending())
    first, second = ledger.start_job("process"), ledger.start_job("process")
    assert ledger.reopen(first, failed) == failed
    assert ledger.reopen(second, failed) == []
    # The first job's claim holds: the objects are in flight under it, each once.
    assert ledger.verify(site.intake).in_flight == len(FILES)


@pytest.mark.integration
def test_two_importers_of_overlapping_folders_account_for_every_object(
    sqlite_site: Site, tmp_path: Path
) -> None:
    """The issue's run: two ``import --workers 2`` at once, folders sharing half their
    files. Both succeed, each object is entered once, and the ledger holds."""
    files = sorted(series(tmp_path / "all", 120).iterdir())
    folders = []
    for name, part in (("a", files[:80]), ("b", files[40:])):
        folder = tmp_path / name
        folder.mkdir()
        for path in part:
            (folder / path.name).hardlink_to(path)
        folders.append(folder)
    command = [sys.executable, "-m", "dicomhaven.cli", "import", "--site",
               str(sqlite_site.root), "--workers", "2", "--json"]  # fmt: skip
    importers = [
        subprocess.Popen(
            [*command, str(folder)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for folder in folders
    ]
    outputs = [p.communicate() for p in importers]
    for process, (_out, err) in zip(importers, outputs, strict=True):
        assert process.returncode == 0, err
        assert "internal error" not in err
    report = ledger_report(sqlite_site)
    assert report.consistent, report.problems
    assert report.total == len(files)
