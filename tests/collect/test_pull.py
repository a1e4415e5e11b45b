"""``dicomhaven pull`` against a real PACS: Debian's Orthanc, loaded with a synthetic
hospital, in a private network namespace (see tests/orthanc.py). Every dicomhaven process
runs inside the namespace too, as a real command line.

The invariant under test: when a pull says complete, every instance the PACS holds for the
criteria is in the ledger exactly once (one receipt each), and nothing else is; a pull
killed mid-transfer resumes to the same end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid
from sqlalchemy import select

from dicomhaven.catalogue import ItemState, LedgerObject, PullItem, make_engine, make_sessionmaker
from dicomhaven.cli import main
from dicomhaven.intake import dicom_object_key
from dicomhaven.site import Site
from tests.collect.conftest import RECEIVER_PORT
from tests.orthanc import DICOM_PORT, ORTHANC_AE, Netns, Orthanc

pytestmark = pytest.mark.integration

PULL_SECONDS = 120.0


def pull_command(site: Site, *args: str, receiver: bool = True) -> list[str]:
    """``dicomhaven pull`` against the test PACS; with ``receiver``, the pull runs our
    receiver in its own process (--receive-port), as the PACS expects it."""
    command = [
        sys.executable, "-m", "dicomhaven", "pull", "--site", str(site.root),
        "--pacs-host", "127.0.0.1", "--pacs-port", str(DICOM_PORT), "--pacs-ae", ORTHANC_AE,
        "--drain-seconds", "0", "--backoff", "0.2", "--json", *args,
    ]  # fmt: skip
    if receiver:
        command += ["--receive-port", str(RECEIVER_PORT)]
    return command


def pull(
    netns: Netns, site: Site, *args: str, receiver: bool = True
) -> tuple[int, dict[str, object], str]:
    """Run ``dicomhaven pull`` in the namespace: exit code, JSON summary, stderr."""
    done = netns.run(*pull_command(site, *args, receiver=receiver), timeout=PULL_SECONDS)
    summary = json.loads(done.stdout) if done.stdout.strip() else {}
    return done.returncode, summary, done.stderr


def ledger_exit_code(site: Site) -> int:
    """``dicomhaven ledger``: 0 when every object is accounted for (no PACS needed)."""
    return main(["ledger", "--site", str(site.root), "--json"])


def ledger_receipts(site: Site) -> dict[str, int]:
    with make_sessionmaker(make_engine(site.database_url))() as session:
        rows = session.execute(select(LedgerObject.object_key, LedgerObject.receipts))
        return {key: receipts for key, receipts in rows}


def keys_of(site: Site, instances: list[dict[str, object]]) -> set[str]:
    uids = [str(i["MainDicomTags"]["SOPInstanceUID"]) for i in instances]  # type: ignore[index]
    return {dicom_object_key(site.site_key(), uid) for uid in uids}


def study_tags(orthanc: Orthanc) -> list[dict[str, str]]:
    studies = orthanc.rest("POST", "/tools/find", {"Level": "Study", "Query": {}, "Expand": True})
    return [s["MainDicomTags"] | s["PatientMainDicomTags"] for s in studies]


def test_pull_by_modality_brings_every_instance_exactly_once(
    netns: Netns, orthanc: Orthanc, sqlite_site: Site
) -> None:
    code, summary, stderr = pull(netns, sqlite_site, "--modality", "CT")
    assert code == 0, stderr
    expected = keys_of(sqlite_site, orthanc.find_instances({"Modality": "CT"}))
    assert len(expected) > 20  # the synthetic hospital's CT series, not a trivial set
    receipts = ledger_receipts(sqlite_site)
    assert set(receipts) == expected  # nothing missing, nothing extra (no SR of CT studies)
    assert set(receipts.values()) == {1}
    assert summary["complete"] is True and summary["state"] == "complete"
    assert summary["expected"] == summary["received"] == len(expected)


def test_pull_by_accession_list_and_patient_list(
    netns: Netns, orthanc: Orthanc, sqlite_site: Site, tmp_path: Path
) -> None:
    studies = study_tags(orthanc)
    chosen = [s for s in studies if s["AccessionNumber"].startswith(("MG", "US"))][:2]
    csv = tmp_path / "accessions.csv"
    csv.write_text(
        "accession_number,note\n" + "".join(f"{s['AccessionNumber']},x\n" for s in chosen)
    )
    code, summary, stderr = pull(netns, sqlite_site, "--accessions-csv", str(csv))
    assert code == 0, stderr
    expected: set[str] = set()
    for study in chosen:
        expected |= keys_of(
            sqlite_site, orthanc.find_instances({"StudyInstanceUID": study["StudyInstanceUID"]})
        )
    assert set(ledger_receipts(sqlite_site)) == expected
    assert summary["studies"] == 2 and summary["received"] == len(expected)

    # A patient list: every study of that patient, all modalities.
    patient = chosen[0]["PatientID"]
    patients = tmp_path / "patients.csv"
    patients.write_text(f"patient_id\n{patient}\n")
    code, summary, stderr = pull(netns, sqlite_site, "--patients-csv", str(patients))
    assert code == 0, stderr
    expected |= keys_of(sqlite_site, orthanc.find_instances({"PatientID": patient}))
    receipts = ledger_receipts(sqlite_site)
    assert set(receipts) == expected and set(receipts.values()) == {1}
    # Identifiers went to the PACS in queries, never into the catalogue or the logs.
    written = b"".join(
        path.read_bytes()
        for folder in ("catalogue", "logs")
        for path in (sqlite_site.root / folder).iterdir()
        if path.is_file()
    )
    identifiers = {v for s in chosen for v in (s["AccessionNumber"], s["PatientID"])}
    for instance in orthanc.find_instances({"PatientID": patient}):
        tags = instance["MainDicomTags"]
        identifiers |= {tags["SOPInstanceUID"], tags.get("SeriesInstanceUID", "")} - {""}
    identifiers |= {s["StudyInstanceUID"] for s in chosen}
    assert len(identifiers) > 10
    leaked = [value for value in identifiers if value.encode() in written]
    assert leaked == []


def test_unknown_criterion_returns_nothing_and_says_so(
    netns: Netns, orthanc: Orthanc, sqlite_site: Site
) -> None:
    known = next(s for s in study_tags(orthanc) if s["AccessionNumber"].startswith("CT"))
    code, summary, _ = pull(
        netns, sqlite_site, "--accession", "NOSUCH1", "--accession", known["AccessionNumber"],
        "--modality", "SR",  # the study's report only: a light pull
    )  # fmt: skip
    assert code == 1
    assert summary["unmatched"] == {"accession_numbers": [1]}
    assert summary["studies"] == 1 and summary["received"] == 1  # pulled all the same
    command = pull_command(sqlite_site, "--modality", "XA", receiver=False)
    text = netns.run(*[a for a in command if a != "--json"])
    assert text.returncode == 1 and "no study matched the criteria" in text.stdout
    assert "0 studies, 0 series, 0 of 0 instances" in text.stdout


def test_a_caller_the_pacs_does_not_know_is_told_why(
    netns: Netns, orthanc: Orthanc, sqlite_site: Site
) -> None:
    code, _, stderr = pull(
        netns, sqlite_site, "--modality", "CT", "--calling-ae", "STRANGER", receiver=False
    )
    assert code == 1
    assert "could not open an association" in stderr and "as STRANGER" in stderr
    assert ledger_receipts(sqlite_site) == {}


def test_killed_pull_resumes_with_no_duplicate_and_no_loss(
    netns: Netns, orthanc: Orthanc, sqlite_site: Site
) -> None:
    # One series at a time with a pause between: the kill lands with some series done.
    proc = netns.popen(
        *pull_command(sqlite_site, "--modality", "CT", "--pause", "0.25"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sessions = make_sessionmaker(make_engine(sqlite_site.database_url))
    deadline = time.monotonic() + PULL_SECONDS
    done = 0
    try:
        while done == 0:
            assert proc.poll() is None, "the pull ended before it could be killed"
            assert time.monotonic() < deadline, "no series was done in time"
            time.sleep(0.05)
            with sessions() as session:
                states = list(session.scalars(select(PullItem.state)))
            done = states.count(ItemState.DONE.value)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=PULL_SECONDS)
    with sessions() as session:
        states = list(session.scalars(select(PullItem.state)))
    assert 0 < states.count(ItemState.DONE.value) < len(states)  # killed mid-pull
    before = ledger_receipts(sqlite_site)

    code, summary, stderr = pull(netns, sqlite_site, "--resume", "1")
    assert code == 0, stderr
    assert summary["resumed"] is True and summary["job"] == 1 and summary["complete"] is True
    expected = keys_of(sqlite_site, orthanc.find_instances({"Modality": "CT"}))
    receipts = ledger_receipts(sqlite_site)
    assert set(receipts) == expected  # no loss
    assert set(receipts.values()) == {1}  # no duplicate: only missing instances were moved
    assert set(before) < expected


def test_dicomweb_pull_stores_every_instance_through_intake_and_the_ledger(
    netns: Netns, orthanc: Orthanc, sqlite_site: Site, pacs_files: list[Path]
) -> None:
    command = [
        sys.executable, "-m", "dicomhaven", "pull", "--site", str(sqlite_site.root),
        "--dicomweb", f"{orthanc.url}/dicom-web", "--modality", "MG", "--drain-seconds", "0",
        "--json",
    ]  # fmt: skip
    done = netns.run(*command, timeout=PULL_SECONDS)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    expected = keys_of(sqlite_site, orthanc.find_instances({"Modality": "MG"}))
    receipts = ledger_receipts(sqlite_site)
    assert len(expected) >= 8 and set(receipts) == expected and set(receipts.values()) == {1}
    assert summary["complete"] is True and summary["received"] == len(expected)
    assert summary["source"] == f"{orthanc.url}/dicom-web"
    # What intake holds is what the PACS was given: same data set, same pixel data.
    originals = {}
    for path in pacs_files:
        dataset = pydicom.dcmread(path)
        originals[dicom_object_key(sqlite_site.site_key(), dataset.SOPInstanceUID)] = dataset
    with make_sessionmaker(make_engine(sqlite_site.database_url))() as session:
        rows = session.execute(select(LedgerObject.object_key, LedgerObject.intake_path))
        stored = {key: path for key, path in rows}
    for key in expected:
        copy = pydicom.dcmread(sqlite_site.intake / stored[key])
        assert copy == originals[key] and copy.PixelData == originals[key].PixelData
    assert ledger_exit_code(sqlite_site) == 0


def test_pull_into_a_separately_running_receiver(
    netns: Netns, orthanc: Orthanc, sqlite_site: Site
) -> None:
    scp = netns.popen(
        sys.executable, "-m", "dicomhaven", "scp", "--site", str(sqlite_site.root),
        "--port", str(RECEIVER_PORT), "--allow", f"{ORTHANC_AE}@127.0.0.1",
        "--drain-seconds", "0", "--json", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert scp.stderr is not None
        while "listening on" not in (line := scp.stderr.readline()):
            assert line, "dicomhaven scp exited before it listened"
        command = pull_command(sqlite_site, "--modality", "SR", receiver=False)
        done = netns.run(*command, timeout=PULL_SECONDS)
        assert done.returncode == 0, done.stderr
        assert "receiving on" not in done.stderr  # no receiver of its own
    finally:
        scp.send_signal(signal.SIGTERM)
        out, _ = scp.communicate(timeout=PULL_SECONDS)
    expected = keys_of(sqlite_site, orthanc.find_instances({"Modality": "SR"}))
    receipts = ledger_receipts(sqlite_site)
    assert expected and set(receipts) == expected and set(receipts.values()) == {1}
    assert json.loads(out)["stored"] == len(expected)


def test_c_get_pull_needs_no_receiver(
    netns: Netns, orthanc: Orthanc, sqlite_site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    command = pull_command(sqlite_site, "--method", "get", "--modality", "MG", receiver=False)
    done = netns.run(*command, timeout=PULL_SECONDS)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    expected = keys_of(sqlite_site, orthanc.find_instances({"Modality": "MG"}))
    receipts = ledger_receipts(sqlite_site)
    assert expected and set(receipts) == expected and set(receipts.values()) == {1}
    assert summary["complete"] is True and summary["received"] == len(expected)
    assert ledger_exit_code(sqlite_site) == 0
    # An option that C-GET would ignore is refused, not silently dropped (no PACS needed).
    capsys.readouterr()
    refused = main([*pull_command(sqlite_site, "--method", "get", "--modality", "MG")[3:]])
    assert refused == 2
    assert "--receive-port: not used with the get method" in capsys.readouterr().err


def test_collection_run_pulls_only_what_is_new(
    netns: Netns, orthanc: Orthanc, sqlite_site: Site, pacs_files: list[Path], tmp_path: Path
) -> None:
    spec = tmp_path / "sr-collection.yaml"
    spec.write_text(
        f"method: move\npacs_host: 127.0.0.1\npacs_port: {DICOM_PORT}\npacs_ae: {ORTHANC_AE}\n"
        f"receive_port: {RECEIVER_PORT}\nmodality: SR\nevery: 1h\nbackoff_seconds: 0.2\n"
    )
    command = [
        sys.executable, "-m", "dicomhaven", "collect", "run", str(spec), "--site",
        str(sqlite_site.root), "--once", "--drain-seconds", "0", "--json",
    ]  # fmt: skip
    first = netns.run(*command, timeout=PULL_SECONDS)
    assert first.returncode == 0, first.stderr
    run = json.loads(first.stdout)
    assert run["complete"] and run["studies"] >= 1 and run["skipped_studies"] == 0
    # A new SR study reaches the PACS: the next run brings it, and only it.
    source = next(p for p in pacs_files if pydicom.dcmread(p).Modality == "SR")
    new = pydicom.dcmread(source)
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        setattr(new, keyword, generate_uid(entropy_srcs=["collect-test", keyword]))
    new.file_meta.MediaStorageSOPInstanceUID = new.SOPInstanceUID
    new.save_as(tmp_path / "new.dcm", enforce_file_format=True)
    assert orthanc.upload([tmp_path / "new.dcm"]) == 1
    try:
        second = netns.run(*command, timeout=PULL_SECONDS)
        assert second.returncode == 0, second.stderr
        run2 = json.loads(second.stdout)
        assert (run2["studies"], run2["skipped_studies"]) == (1, run["studies"])
        assert run2["expected"] == run2["received"] == 1
        expected = keys_of(sqlite_site, orthanc.find_instances({"Modality": "SR"}))
        receipts = ledger_receipts(sqlite_site)
        assert set(receipts) == expected and set(receipts.values()) == {1}
    finally:
        found = orthanc.rest(
            "POST",
            "/tools/find",
            {"Level": "Study", "Query": {"StudyInstanceUID": new.StudyInstanceUID}},
        )
        for study in found:
            orthanc.rest("DELETE", f"/studies/{study}")
