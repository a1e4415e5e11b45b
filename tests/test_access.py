"""Users, roles, re-identification and the hash-chained audit log, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import delete, update

from dicomhaven.access import AuditLog
from dicomhaven.catalogue import AuditEntry, make_engine, make_sessionmaker
from dicomhaven.cli import main
from dicomhaven.identity import PatientIdentifier, Scheme
from dicomhaven.site import Site

NHS = "9990000018"


def add_user(
    site: Site, name: str, role: str, token: str | None, capsys: pytest.CaptureFixture[str]
) -> str:
    args = ["users", "add", name, "--role", role, "--site", str(site.root)]
    if token:
        args += ["--token", token]
    assert main(args) == 0
    return capsys.readouterr().out.strip().splitlines()[-1]


@pytest.fixture
def people(site: Site, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    manager = add_user(site, "alice", "data-manager", None, capsys)
    return {
        "manager": manager,
        "clinician": add_user(site, "bob", "clinician", manager, capsys),
        "researcher": add_user(site, "rita", "researcher", manager, capsys),
        "auditor": add_user(site, "audrey", "auditor", manager, capsys),
    }


def reidentify(site: Site, token: str | None, pseudonym: str, reason: str) -> list[str]:
    args = ["reidentify", pseudonym, "--reason", reason, "--site", str(site.root), "--json"]
    return args + (["--token", token] if token else [])


def entries(site: Site) -> list[AuditEntry]:
    return AuditLog(make_engine(site.database_url)).entries(1000)


def test_clinician_may_reidentify_and_it_is_audited(
    site: Site, people: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    pseudonym = site.open_vault().resolve([PatientIdentifier(Scheme.NHS, NHS)])
    assert main(reidentify(site, people["clinician"], pseudonym, "marking lesions for ALPHA")) == 0
    found = json.loads(capsys.readouterr().out)
    assert found == [{"scheme": "nhs", "issuer": "", "value": NHS}]
    last = entries(site)[-1]
    assert (last.actor, last.action, last.target, last.outcome) == (
        "bob",
        "reidentify",
        pseudonym,
        "allowed",
    )
    assert NHS not in last.reason


def test_researcher_is_refused_and_the_refusal_is_audited(
    site: Site, people: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    pseudonym = site.open_vault().resolve([PatientIdentifier(Scheme.NHS, NHS)])
    assert main(reidentify(site, people["researcher"], pseudonym, "just curious, sorry")) == 1
    captured = capsys.readouterr()
    assert NHS not in captured.out + captured.err
    assert "may not reidentify" in captured.err
    last = entries(site)[-1]
    assert (last.actor, last.role, last.outcome) == ("rita", "researcher", "refused")


def test_bad_token_is_refused_and_audited(
    site: Site, people: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(reidentify(site, "bob.wrong-secret", "BBBBBBBBBBBB", "a good long reason")) == 1
    assert main(reidentify(site, None, "BBBBBBBBBBBB", "a good long reason")) == 1
    refused = [e for e in entries(site) if e.action == "reidentify"]
    assert [e.actor for e in refused] == ["(not authenticated)"] * 2
    assert all(e.outcome == "refused" for e in refused)


def test_reason_must_be_given_and_hold_no_identifier(
    site: Site, people: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    before = len(entries(site))
    assert main(reidentify(site, people["clinician"], "BBBBBBBBBBBB", "why")) == 1
    assert (
        main(
            reidentify(
                site,
                people["clinician"],
                "BBBBBBBBBBBB",
                f"patient {NHS[:3]} {NHS[3:6]} {NHS[6:]} called",
            )
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "at least 10 characters" in err and "NHS or CHI number" in err
    assert NHS not in err
    assert len(entries(site)) == before


def test_only_data_managers_add_users(
    site: Site, people: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["users", "add", "eve", "--role", "data-manager", "--site", str(site.root)]
    assert main([*args, "--token", people["clinician"]]) == 1
    assert main(args) == 1  # no token once users exist
    assert "eve" not in {n for n, *_ in _names(site, capsys)}


def test_unknown_role_is_a_usage_error(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["users", "add", "zed", "--role", "superuser", "--site", str(site.root)]
    assert main(args) == 2
    assert "unknown role 'superuser'; choose one of: data-manager" in capsys.readouterr().err


def _names(site: Site, capsys: pytest.CaptureFixture[str]) -> list[tuple[str, str]]:
    capsys.readouterr()
    assert main(["users", "list", "--site", str(site.root), "--json"]) == 0
    return [(u["name"], u["role"]) for u in json.loads(capsys.readouterr().out)]


def test_revoked_token_stops_working(
    site: Site, people: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    root = str(site.root)
    assert main(["users", "revoke", "bob", "--site", root, "--token", people["manager"]]) == 0
    assert main(reidentify(site, people["clinician"], "BBBBBBBBBBBB", "a good long reason")) == 1


def test_audit_verify_catches_an_edited_entry(
    site: Site, people: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    root = str(site.root)
    assert main(["audit", "verify", "--site", root]) == 0
    capsys.readouterr()
    sessions = make_sessionmaker(make_engine(site.database_url))
    with sessions.begin() as session:
        session.execute(
            update(AuditEntry).where(AuditEntry.id == 2).values(reason="nothing to see")
        )
    assert main(["audit", "verify", "--site", root, "--json"]) == 1
    report = json.loads(
        capsys.readouterr().out.splitlines()[-1] if False else capsys.readouterr().out
    )
    assert report["problems"] == [
        {"entry_id": 2, "problem": "its content was changed after it was written"}
    ]


def test_audit_verify_catches_a_removed_entry(
    site: Site, people: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    with make_sessionmaker(make_engine(site.database_url)).begin() as session:
        session.execute(delete(AuditEntry).where(AuditEntry.id == 3))
    assert main(["audit", "verify", "--site", str(site.root)]) == 1
    assert "entry 4: does not follow" in capsys.readouterr().err


def test_only_auditors_and_managers_read_the_audit_log(
    site: Site, people: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    root = str(site.root)
    assert main(["audit", "show", "--site", root, "--token", people["auditor"], "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown and shown[-1]["action"] == "read-audit"
    assert main(["audit", "show", "--site", root, "--token", people["researcher"]]) == 1


def test_vault_key_rotation_keeps_pseudonyms(
    site: Site, people: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    pseudonym = site.open_vault().resolve([PatientIdentifier(Scheme.NHS, NHS)])
    old_key = site.vault_key_path.read_bytes()
    root = str(site.root)
    assert main(["vault", "rotate-key", "--site", root, "--token", people["clinician"]]) == 1
    assert main(["vault", "rotate-key", "--site", root, "--token", people["manager"]]) == 0
    assert site.vault_key_path.read_bytes() != old_key
    assert not Path(str(site.vault_key_path) + ".new").exists()
    assert site.open_vault().find(PatientIdentifier(Scheme.NHS, NHS)) == pseudonym
