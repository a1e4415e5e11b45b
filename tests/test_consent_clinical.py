"""Consent from the national opt-out list, and linked clinical data under pseudonyms."""

from __future__ import annotations

import csv
import datetime
import json
from pathlib import Path

import pytest

from dicomhaven.catalogue import make_engine
from dicomhaven.cli import main
from dicomhaven.consent import ConsentRegister
from dicomhaven.identity import SITE_PROJECT, PatientIdentifier, ProjectKeys, Scheme
from dicomhaven.ingest import import_paths
from dicomhaven.site import Site
from tests.synth.generated import GeneratedSite


@pytest.fixture
def manager(sqlite_site: Site, capsys: pytest.CaptureFixture[str]) -> str:
    args = ["users", "add", "alice", "--role", "data-manager", "--site", str(sqlite_site.root)]
    assert main(args) == 0
    return capsys.readouterr().out.strip().splitlines()[-1]


def test_optout_list_withdraws_patients_and_reports_bad_lines(
    sqlite_site: Site,
    synth_site: GeneratedSite,
    manager: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    opted = synth_site.key.patients[0]
    bad = "999 000 0019"  # check digit wrong
    listing = tmp_path / "optout.txt"
    listing.write_text(f"# national data opt-out\n{opted.nhs_number}\n\n{bad}\nnot a number\n")
    root = str(sqlite_site.root)
    code = main(["consent", "import-optout", str(listing), "--site", root, "--token", manager])
    captured = capsys.readouterr()
    assert code == 1
    assert "1 patients recorded as withdrawn" in captured.out
    assert f"{listing}:4: NHS number check digit" in captured.err
    assert f"{listing}:5:" in captured.err
    assert bad not in captured.err and bad.replace(" ", "") not in captured.err

    summary = import_paths(sqlite_site, [synth_site.root / "export"])
    assert summary.outcomes["quarantined"] + summary.outcomes["released"] == len(
        synth_site.key.files
    )
    pseudonym = sqlite_site.open_vault().find(PatientIdentifier(Scheme.NHS, opted.nhs_number))
    assert pseudonym is not None
    register = ConsentRegister(make_engine(sqlite_site.database_url))
    assert register.excluded(pseudonym)
    assert main(["patient", pseudonym, "--site", root, "--json"]) == 0
    view = json.loads(capsys.readouterr().out)
    assert view["consent"] == "withdrawn"


def test_consent_needs_a_data_manager(
    sqlite_site: Site, manager: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = str(sqlite_site.root)
    assert (
        main(["users", "add", "rita", "--role", "researcher", "--site", root, "--token", manager])
        == 0
    )
    researcher = capsys.readouterr().out.strip().splitlines()[-1]
    args = ["consent", "record", "--nhs", "9990000018", "--status", "withdrawn", "--site", root]
    assert main([*args, "--token", researcher]) == 1
    assert main([*args, "--token", manager]) == 0
    capsys.readouterr()
    assert main(["consent", "status", "--site", root, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"consented": 0, "refused": 0, "withdrawn": 1}


def test_clinical_rows_land_under_pseudonyms_with_shifted_dates(
    sqlite_site: Site,
    synth_site: GeneratedSite,
    manager: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = synth_site.root / "clinical"
    root = str(sqlite_site.root)
    args = ["clinical", "import", str(folder / "clinical.csv"), "--site", root, "--token", manager]
    assert main([*args, "--mapping", str(folder / "mapping.yaml"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result == {
        "rows": len(synth_site.key.patients),
        "stored": len(synth_site.key.patients),
        "invalid": [],
    }

    vault = sqlite_site.open_vault()
    keys = ProjectKeys(SITE_PROJECT, vault.project_secret(SITE_PROJECT))
    with (folder / "clinical.csv").open(newline="") as handle:
        source = {row["NHS No"].replace(" ", ""): row for row in csv.DictReader(handle)}
    for patient in synth_site.key.patients:
        pseudonym = vault.find(PatientIdentifier(Scheme.NHS, patient.nhs_number))
        assert pseudonym is not None
        assert main(["patient", pseudonym, "--site", root, "--json"]) == 0
        (record,) = json.loads(capsys.readouterr().out)["clinical"]
        original = datetime.datetime.strptime(
            source[patient.nhs_number]["Screen date"], "%d/%m/%Y"
        ).date()
        shift = datetime.timedelta(days=keys.date_offset_days(pseudonym))
        assert record["episode_date"] == (original + shift).isoformat()
        assert "nhs_number" not in record and "Comments" not in record
        if record.get("outcome_date"):
            out = datetime.date.fromisoformat(record["outcome_date"])
            orig_out = datetime.datetime.strptime(
                source[patient.nhs_number]["Outcome date"], "%d/%m/%Y"
            ).date()
            assert out - datetime.date.fromisoformat(record["episode_date"]) == orig_out - original

    # The catalogue holds none of what the CSV said about who the patients are.
    raw = b"".join(p.read_bytes() for p in (sqlite_site.root / "catalogue").iterdir())
    for patient in synth_site.key.patients:
        assert patient.nhs_number.encode() not in raw
        assert patient.family_name.encode() not in raw


def test_unknown_column_is_refused_with_a_clear_message(
    sqlite_site: Site, manager: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "c.csv"
    table.write_text("nhs_number,shoe_size\n9990000018,9\n")
    args = ["clinical", "import", str(table), "--site", str(sqlite_site.root), "--token", manager]
    assert main(args) == 2
    assert "unknown column(s) 'shoe_size'" in capsys.readouterr().err
    mapping = tmp_path / "m.yaml"
    mapping.write_text("columns:\n  nhs_number: nhs_number\n  shoe_size: shoes\n")
    assert main([*args, "--mapping", str(mapping)]) == 2
    assert (
        f"{mapping}:3: column 'shoe_size' maps to unknown field 'shoes'" in capsys.readouterr().err
    )


def test_invalid_nhs_rows_are_reported_not_dropped_silently(
    sqlite_site: Site, manager: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "c.csv"
    table.write_text("nhs_number,outcome\n9990000018,treated\n9990000019,recall\n,recall\n")
    args = ["clinical", "import", str(table), "--site", str(sqlite_site.root), "--token", manager]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert "1 of 3 rows stored" in captured.out
    assert "row 3: NHS number check digit" in captured.err and "row 4:" in captured.err
    assert "9990000019" not in captured.err


def test_purge_holds_every_object_and_is_audited(
    sqlite_site: Site,
    synth_site: GeneratedSite,
    manager: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from dicomhaven.access import AuditLog
    from dicomhaven.consent import PURGE_REASON
    from dicomhaven.ledger import Ledger

    import_paths(sqlite_site, [synth_site.root / "export"])
    patient = synth_site.key.patients[0]
    pseudonym = sqlite_site.open_vault().find(PatientIdentifier(Scheme.NHS, patient.nhs_number))
    assert pseudonym is not None
    root = str(sqlite_site.root)
    purge = ["consent", "purge", pseudonym, "--site", root, "--token", manager]
    assert main(purge) == 1  # consent not withdrawn yet
    assert "record the withdrawal first" in capsys.readouterr().err
    copies = sqlite_site.zone("store") / pseudonym
    copies.mkdir(exist_ok=True)  # released reports are there already
    (copies / "copy.dcm").write_bytes(b"de-identified copy")
    record = ["consent", "record", "--pseudonym", pseudonym, "--status", "withdrawn"]
    assert main([*record, "--site", root, "--token", manager]) == 0
    held = sqlite_site.zone("quarantine") / pseudonym
    assert held.is_dir()  # the header stage's limited-access copies
    assert main(purge) == 0
    assert not copies.exists() and not held.exists()
    ledger = Ledger(make_engine(sqlite_site.database_url))
    mine = ledger.objects_of(pseudonym)
    expected = sum(1 for f in synth_site.key.files if f.patient == 0)
    assert len(mine) == expected
    from sqlalchemy import select

    from dicomhaven.catalogue import LedgerEvent, LedgerObject, make_sessionmaker

    with make_sessionmaker(make_engine(sqlite_site.database_url))() as session:
        reasons = session.scalars(
            select(LedgerObject.reason).where(LedgerObject.pseudonym == pseudonym)
        ).all()
        purge_events = session.scalars(
            select(LedgerEvent).where(LedgerEvent.reason == PURGE_REASON)
        ).all()
    assert set(reasons) == {PURGE_REASON}
    assert len(purge_events) == expected
    audit = AuditLog(make_engine(sqlite_site.database_url)).entries()
    assert any(
        e.action == "purge" and e.target == pseudonym and e.outcome == "allowed" for e in audit
    )
    assert ledger.verify(sqlite_site.intake).consistent
