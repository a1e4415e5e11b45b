"""Pull jobs without a PACS: the work-item state machine, back-off, criteria and CSV lists,
and a pull run against a fake source (the PACS seam) that under-delivers."""

from __future__ import annotations

import json
import threading
from datetime import date
from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from dicomhaven.catalogue import ItemState, PullState, make_engine
from dicomhaven.cli import main
from dicomhaven.collect import (
    ITEM_TRANSITIONS,
    Criteria,
    PullJobs,
    PullOptions,
    RetrieveResult,
    backoff_seconds,
    load_spec,
    read_id_column,
    run_pull,
)
from dicomhaven.errors import ConfigError, PullError
from dicomhaven.intake import IntakeStore, dicom_object_key, receive_bytes
from dicomhaven.ledger import Ledger
from dicomhaven.site import Site

# -- back-off ---------------------------------------------------------------------------------


def test_backoff_doubles_from_the_base_and_is_capped() -> None:
    assert [backoff_seconds(n, 2.0) for n in range(5)] == [0.0, 2.0, 4.0, 8.0, 16.0]
    assert backoff_seconds(40, 2.0) == 600.0
    assert backoff_seconds(3, 2.0, cap=5.0) == 5.0
    assert backoff_seconds(1000, 1.0) == 600.0  # no overflow on absurd attempt counts


# -- the job table and its state machine -------------------------------------------------------


@pytest.fixture
def jobs(site: Site) -> PullJobs:
    return PullJobs(make_engine(site.database_url))


def _job(jobs: PullJobs) -> int:
    return jobs.create("move", "PACS@host:104", {"modality": "CT"}, "f" * 64)


def test_item_moves_only_along_the_state_machine(jobs: PullJobs) -> None:
    job = _job(jobs)
    item = jobs.add_item(job, "study", "series", "CT", ["k1", "k2"])
    assert (item.state, item.expected, item.attempts) == (ItemState.PENDING, 2, 0)
    moving = jobs.transition(item.id, ItemState.MOVING, attempts=1)
    assert (moving.state, moving.attempts) == (ItemState.MOVING, 1)
    done = jobs.transition(item.id, ItemState.DONE, received=2)
    assert (done.state, done.received) == (ItemState.DONE, 2)
    for state in (ItemState.PENDING, ItemState.MOVING, ItemState.FAILED):
        with pytest.raises(PullError, match="done → "):
            jobs.transition(item.id, state)
    assert ITEM_TRANSITIONS[ItemState.DONE] == frozenset()


def test_failed_item_goes_back_to_pending_only(jobs: PullJobs) -> None:
    job = _job(jobs)
    item = jobs.add_item(job, "study", "series", "CT", ["k1"])
    jobs.transition(item.id, ItemState.FAILED, error="short")
    with pytest.raises(PullError, match="failed → done is not allowed"):
        jobs.transition(item.id, ItemState.DONE)
    assert jobs.transition(item.id, ItemState.PENDING).state is ItemState.PENDING


def test_claim_resets_moving_and_failed_items_and_counts_runs(jobs: PullJobs) -> None:
    job = _job(jobs)
    a = jobs.add_item(job, "study", "series-a", "CT", ["a"])
    b = jobs.add_item(job, "study", "series-b", "CT", ["b"])
    c = jobs.add_item(job, "study", "series-c", "CT", ["c"])
    jobs.transition(a.id, ItemState.MOVING)  # a run killed mid-move
    jobs.transition(b.id, ItemState.FAILED, error="short")
    jobs.transition(c.id, ItemState.DONE)
    assert jobs.claim(job).runs == 1
    assert [i.state for i in jobs.items(job)] == [
        ItemState.PENDING,
        ItemState.PENDING,
        ItemState.DONE,
    ]
    assert jobs.claim(job).runs == 2  # the same process may claim again


def test_replanning_keeps_progress_and_adds_new_instances(jobs: PullJobs) -> None:
    job = _job(jobs)
    item = jobs.add_item(job, "study", "series", "CT", ["k1", "k2"])
    jobs.transition(item.id, ItemState.DONE, received=2)
    again = jobs.add_item(job, "study", "series", "CT", ["k1", "k2"])
    assert (again.id, again.state, again.expected) == (item.id, ItemState.DONE, 2)
    grown = jobs.add_item(job, "study", "series", "CT", ["k1", "k2", "k3"])
    assert (grown.state, grown.expected) == (ItemState.PENDING, 3)
    assert jobs.promised(item.id) == {"k1", "k2", "k3"}


def test_missing_is_what_the_ledger_does_not_hold(site: Site, jobs: PullJobs) -> None:
    store = IntakeStore(site.intake)
    key = site.site_key()
    data = _part10("1.2.3.4.1")
    receipt = receive_bytes(data, store, key)
    ledger = Ledger(make_engine(site.database_url))
    ledger.receive(ledger.start_job("test"), "test", [receipt])
    job = _job(jobs)
    keys = [dicom_object_key(key, "1.2.3.4.1"), dicom_object_key(key, "1.2.3.4.2")]
    item = jobs.add_item(job, "study", "series", "CT", keys)
    assert jobs.missing(item.id) == {keys[1]}


def test_unknown_job_is_a_clear_error(jobs: PullJobs) -> None:
    with pytest.raises(PullError, match="no pull job 99; 'dicomhaven pull-status' lists them"):
        jobs.get(99)


# -- criteria and lists -------------------------------------------------------------------------


def test_criteria_make_one_study_query_per_listed_value() -> None:
    criteria = Criteria(modality="CT", date_from=date(2022, 1, 1), accession_numbers=("A1", "A2"))
    queries = criteria.study_queries()
    assert [q.AccessionNumber for q in queries] == ["A1", "A2"]
    assert {q.StudyDate for q in queries} == {"20220101-"}
    assert {q.ModalitiesInStudy for q in queries} == {"CT"}
    assert len(Criteria(modality="MR").study_queries()) == 1


def test_criteria_recheck_the_answers() -> None:
    criteria = Criteria(modality="CT", date_to=date(2022, 12, 31), patient_ids=("P1",))
    answer = Dataset()
    answer.PatientID = "P1"
    answer.StudyDate = "20221220"
    answer.ModalitiesInStudy = ["CT", "SR"]
    assert criteria.matches(answer)
    answer.StudyDate = "20230101"
    assert not criteria.matches(answer)
    answer.StudyDate = "20221220"
    answer.ModalitiesInStudy = "MG"
    assert not criteria.matches(answer)


def test_criteria_refuse_wildcards_and_bad_modalities() -> None:
    with pytest.raises(ConfigError, match="wildcard"):
        Criteria(accession_numbers=("A*",))
    with pytest.raises(ConfigError, match="modality code"):
        Criteria(modality="ct scan")
    with pytest.raises(ConfigError, match="--from is after --to"):
        Criteria(date_from=date(2023, 1, 1), date_to=date(2022, 1, 1))


def test_fingerprint_is_keyed_and_ignores_list_order() -> None:
    one = Criteria(patient_ids=("A", "B"))
    assert one.fingerprint(b"k" * 32) == Criteria(patient_ids=("B", "A")).fingerprint(b"k" * 32)
    assert one.fingerprint(b"k" * 32) != one.fingerprint(b"j" * 32)
    assert one.fingerprint(b"k" * 32) != Criteria(patient_ids=("A",)).fingerprint(b"k" * 32)
    assert "A" not in str(one.describe())


def test_csv_list_is_read_by_header_without_repeats(tmp_path: Path) -> None:
    path = tmp_path / "patients.csv"
    path.write_text("name,Patient ID\nx,ZZ1\n\ny,ZZ2\nz,ZZ1\n")
    assert read_id_column(path, "PatientID", ("patient_id", "PatientID")) == ("ZZ1", "ZZ2")


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("", ":1", "the file is empty"),
        ("name,mrn\nx,1\n", ":1", "no column named patient_id"),
        ("patient_id\n\n  \n", None, "no PatientID values"),  # blank lines only
        ("patient_id\nZZ1\nZZ*9\n", ":3", "wildcard"),
        ("patient_id\nZZ1\n" + "9" * 65 + "\n", ":3", "at most 64"),
        ("name,patient_id\nx,ZZ1\ny\n", ":3", "the row has 1 columns"),
        ("patient_id,name\n,x\n", ":2", "empty PatientID"),
    ],
)
def test_csv_errors_name_file_and_line_not_the_value(
    tmp_path: Path, text: str, where: str | None, message: str
) -> None:
    path = tmp_path / "patients.csv"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as raised:
        read_id_column(path, "PatientID", ("patient_id", "PatientID"))
    assert str(path) in str(raised.value)
    if where is not None:
        assert f"{path}{where}" in str(raised.value)
    assert "ZZ*9" not in str(raised.value) and "9" * 65 not in str(raised.value)


def test_unreadable_csv_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        read_id_column(tmp_path / "absent.csv", "PatientID", ("patient_id",))
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"patient_id\n\xff\xfe\x00\n")
    with pytest.raises(ConfigError, match="not a readable CSV"):
        read_id_column(binary, "PatientID", ("patient_id",))


# -- a run against a fake PACS that delivers by storing into intake and the ledger --------------


def _part10(sop_uid: str) -> bytes:
    from io import BytesIO

    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

    ds = Dataset()
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.Modality = "OT"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


class FakePacs:
    """One study of two series; it drops the first ``short`` instances it is asked to send,
    and answers success every time (a PACS that says success and sends nothing)."""

    kind = "move"

    def __init__(self, site: Site, short: int) -> None:
        self.site = site
        self.short = short
        self.requests: list[list[str] | None] = []
        self.series_uids = {"1.9.1": [f"1.9.1.{i}" for i in range(3)], "1.9.2": ["1.9.2.0"]}
        self._ledger = Ledger(make_engine(site.database_url))
        self._job = self._ledger.start_job("fake")
        self._store = IntakeStore(site.intake)  # one per process: it names partial files

    def describe(self) -> str:
        return "FAKE@nowhere:104"

    def studies(self, query: Dataset) -> list[Dataset]:
        answer = Dataset()
        answer.StudyInstanceUID = "1.9"
        answer.ModalitiesInStudy = "OT"
        answer.PatientID = "P1"
        return [answer]

    def series(self, study_uid: str) -> list[Dataset]:
        found = []
        for uid in self.series_uids:
            answer = Dataset()
            answer.SeriesInstanceUID = uid
            answer.Modality = "OT"
            found.append(answer)
        return found

    def instances(self, study_uid: str, series_uid: str) -> list[str]:
        return list(self.series_uids[series_uid])

    def retrieve(
        self, study_uid: str, series_uid: str, sop_uids: list[str] | None
    ) -> RetrieveResult:
        self.requests.append(sop_uids)
        wanted = sop_uids if sop_uids is not None else self.series_uids[series_uid]
        receipts = []
        for uid in wanted:
            if self.short > 0:
                self.short -= 1
                continue
            receipts.append(receive_bytes(_part10(uid), self._store, self.site.site_key()))
        if receipts:
            self._ledger.receive(self._job, "fake", receipts)
        return RetrieveResult("0x0000", completed=len(receipts))


FAST = PullOptions(max_attempts=3, backoff_seconds=0.0, settle_seconds=0.0)


def test_short_delivery_is_retried_for_the_missing_instances_only(sqlite_site: Site) -> None:
    pacs = FakePacs(sqlite_site, short=2)
    summary = run_pull(sqlite_site, pacs, Criteria(modality="OT"), FAST)
    assert summary.complete and summary.state == PullState.COMPLETE.value
    assert (summary.expected, summary.received, summary.items) == (4, 4, 2)
    # Series 1: all three asked, two dropped; the retry asks for exactly the two missing.
    assert pacs.requests[0] is None
    assert pacs.requests[1] is not None and len(pacs.requests[1]) == 2
    items = PullJobs(make_engine(sqlite_site.database_url)).items(summary.job_id)
    assert [(i.state, i.attempts, i.received) for i in items] == [
        (ItemState.DONE, 2, 3),
        (ItemState.DONE, 1, 1),
    ]


def test_two_retrievals_at_once_bring_everything_once(sqlite_site: Site) -> None:
    pacs = FakePacs(sqlite_site, short=0)
    options = PullOptions(max_moves=2, backoff_seconds=0.0, settle_seconds=0.0)
    summary = run_pull(sqlite_site, pacs, Criteria(modality="OT"), options)
    assert summary.complete and summary.received == 4 and summary.retrievals == 2


def test_pulling_again_makes_a_new_job_that_moves_nothing(sqlite_site: Site) -> None:
    pacs = FakePacs(sqlite_site, short=0)
    first = run_pull(sqlite_site, pacs, Criteria(modality="OT"), FAST)
    again = run_pull(sqlite_site, pacs, Criteria(modality="OT"), FAST)
    assert first.complete and again.complete and again.job_id != first.job_id
    assert (again.retrievals, again.expected, again.received) == (0, 4, 4)
    assert len(pacs.requests) == 2  # one per series, all in the first job


def test_success_with_nothing_sent_fails_the_item_after_its_attempts(sqlite_site: Site) -> None:
    pacs = FakePacs(sqlite_site, short=100)
    summary = run_pull(sqlite_site, pacs, Criteria(modality="OT"), FAST)
    assert not summary.complete and summary.state == PullState.FAILED.value
    assert summary.received == 0 and len(summary.failures) == 2
    assert "answered 0x0000 (0 sent, 0 failed) but 3 of 3 promised" in summary.failures[0][1]
    assert len(pacs.requests) == 2 * FAST.max_attempts
    # Run again: the same criteria resume the failed job, and this time the PACS delivers.
    pacs.short = 0
    again = run_pull(sqlite_site, pacs, Criteria(modality="OT"), FAST)
    assert again.resumed and again.job_id == summary.job_id and again.complete


def test_resume_needs_the_same_criteria(sqlite_site: Site) -> None:
    pacs = FakePacs(sqlite_site, short=100)
    first = run_pull(sqlite_site, pacs, Criteria(patient_ids=("P1",)), FAST)
    with pytest.raises(PullError, match="other criteria"):
        run_pull(sqlite_site, pacs, Criteria(patient_ids=("P2",)), FAST, resume=first.job_id)
    with pytest.raises(PullError, match="list of patient IDs or accession numbers"):
        run_pull(sqlite_site, pacs, Criteria(), FAST, resume=first.job_id)


def test_a_stopped_run_leaves_the_job_resumable(sqlite_site: Site) -> None:
    stop = threading.Event()
    stop.set()
    pacs = FakePacs(sqlite_site, short=0)
    summary = run_pull(sqlite_site, pacs, Criteria(modality="OT"), FAST, stop=stop)
    assert summary.interrupted and not summary.complete and pacs.requests == []
    resumed = run_pull(sqlite_site, pacs, Criteria(), FAST, resume=summary.job_id)
    assert resumed.complete and resumed.received == 4


# -- collection specs ---------------------------------------------------------------------------


def test_collection_spec_reads_criteria_and_schedule(tmp_path: Path) -> None:
    (tmp_path / "ids.csv").write_text("patient_id\nZZ1\n")
    path = tmp_path / "weekly-ct.yaml"
    path.write_text(
        "method: move\npacs_host: 10.0.0.9\nreceive_port: 11112\nmodality: ct\n"
        "last_days: 7\npatients_csv: ids.csv\nevery: 1.5h\n"
    )
    spec = load_spec(path)
    assert spec.name == "weekly-ct" and spec.interval_seconds() == 5400.0
    criteria = spec.criteria(date(2026, 11, 22))
    assert criteria.modality == "CT" and criteria.date_from == date(2026, 11, 15)
    assert criteria.patient_ids == ("ZZ1",)  # the CSV is found beside the spec


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("modality: CT\nevry: 1h\n", 2, "unknown key 'evry'"),
        ("modality: CT\nevery: hourly\n", 2, "a number and a unit"),
        ("method: carrier-pigeon\n", 1, "'method'"),
        ("modality: CT\nfrom: 2024-01-01\nlast_days: 3\n", 3, "either last_days or from"),
        ("- a list\n", 1, "expected a mapping"),
    ],
)
def test_collection_spec_errors_name_file_and_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as raised:
        load_spec(path)
    assert f"{path}:{line}:" in str(raised.value)


def test_collection_runs_skip_studies_an_earlier_run_brought(sqlite_site: Site) -> None:
    path = sqlite_site.root / "fake.yaml"
    path.write_text("modality: OT\nreceive_port: 0\n")
    spec = load_spec(path)
    pacs = FakePacs(sqlite_site, short=0)
    first = run_pull(sqlite_site, pacs, spec.criteria(date.today()), FAST, spec=spec.name)
    assert first.complete and first.studies == 1
    pulled = PullJobs(make_engine(sqlite_site.database_url)).studies_pulled(spec.name)
    assert len(pulled) == 1
    again = run_pull(
        sqlite_site, pacs, spec.criteria(date.today()), FAST, spec=spec.name,
        skip_studies=frozenset(pulled),
    )  # fmt: skip
    assert again.complete and again.job_id != first.job_id
    assert (again.studies, again.skipped_studies, again.items) == (0, 1, 0)
    assert len(pacs.requests) == 2  # only the first run retrieved


# -- the command line, without a PACS -------------------------------------------------------------


def test_pull_refuses_bad_options_before_touching_the_pacs(
    sqlite_site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["pull", "--site", str(sqlite_site.root)]
    pacs = ["--pacs-host", "127.0.0.1"]
    bad = tmp_path / "ids.csv"
    bad.write_text("patient_id\nZZ1\nZZ?\n")
    cases = [
        (pacs, "give at least one criterion"),
        (["--modality", "CT"], "no PACS to pull from: give --pacs-host"),
        ([*pacs, "--from", "22/11/2026"], "--from '22/11/2026': expected a date as YYYY-MM-DD"),
        ([*pacs, "--patients-csv", str(bad)], f"{bad}:3: column patient_id"),
        ([*pacs, "--modality", "CT", "--method", "fax"], "unknown --method 'fax'"),
        (["--modality", "CT", "--dicomweb", "ftp://x"], "expected the service's base URL"),
        ([*pacs, "--modality", "CT", "--dicomweb", "http://x/dicom-web"],
         "--pacs-host: not used with the dicomweb method"),
        ([*pacs, "--modality", "CT", "--calling-ae", "X" * 17],
         "--calling-ae: an AE title has 1 to 16"),
    ]  # fmt: skip
    for args, message in cases:
        capsys.readouterr()
        assert main([*base, *args]) == 2, args
        assert message in capsys.readouterr().err, args


def test_pull_status_lists_jobs_and_their_series(
    sqlite_site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = run_pull(sqlite_site, FakePacs(sqlite_site, short=100), Criteria(modality="OT"), FAST)
    capsys.readouterr()
    assert main(["pull-status", "--site", str(sqlite_site.root), "--json"]) == 0
    jobs = json.loads(capsys.readouterr().out)
    assert [(j["job"], j["state"], j["criteria"]["modality"]) for j in jobs] == [
        (summary.job_id, "failed", "OT")
    ]
    assert (
        main(["pull-status", str(summary.job_id), "--site", str(sqlite_site.root), "--json"]) == 0
    )
    items = json.loads(capsys.readouterr().out)["items"]
    assert [(i["state"], i["expected"], i["received"]) for i in items] == [
        ("failed", 3, 0),
        ("failed", 1, 0),
    ]
    assert main(["pull-status", "99", "--site", str(sqlite_site.root)]) == 1
