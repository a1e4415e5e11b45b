"""The command line through the services: a refusal comes first and is audited, whoever asks.

Each test fails on the command line as it was before the service layer, where some
commands read the vault or the registry before deciding, and attempts without a valid
token went unaudited.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from dicomhaven.catalogue import AuditEntry, DeviceState, make_engine, make_sessionmaker
from dicomhaven.cli import main
from dicomhaven.identity import PatientIdentifier, Scheme
from dicomhaven.scan._devices import DeviceIdentity, DeviceRegistry
from dicomhaven.site import Site

NHS = "9990000018"  # synthetic


def tokens(site: Site, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    root = str(site.root)
    assert main(["users", "add", "dana", "--role", "data-manager", "--site", root]) == 0
    manager = capsys.readouterr().out.strip().splitlines()[-1]
    add = ["users", "add", "rita", "--role", "researcher", "--site", root, "--token", manager]
    assert main(add) == 0
    return {"manager": manager, "researcher": capsys.readouterr().out.strip().splitlines()[-1]}


def audit(site: Site) -> list[AuditEntry]:
    with make_sessionmaker(make_engine(site.database_url))() as session:
        return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def test_consent_by_nhs_number_without_a_user_touches_no_vault(
    sqlite_site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    tokens(sqlite_site, capsys)
    args = ["consent", "record", "--nhs", NHS, "--status", "withdrawn"]
    assert main([*args, "--site", str(sqlite_site.root)]) == 1
    assert "needs a user token" in capsys.readouterr().err
    assert sqlite_site.open_vault().find(PatientIdentifier(Scheme.NHS, NHS)) is None
    [refused] = [e for e in audit(sqlite_site) if e.outcome == "refused"]
    assert (refused.actor, refused.action) == ("(not authenticated)", "record-consent")
    assert NHS not in refused.target + refused.reason


@pytest.mark.parametrize(
    ("command", "action"),
    [
        (["vault", "rotate-key"], "rotate-vault-key"),
        (["consent", "purge", "BBBBBBBBBBBB"], "purge"),
        (["audit", "show"], "read-audit"),
        (["users", "revoke", "rita"], "manage-users"),
    ],
)
def test_an_attempt_without_a_valid_token_is_audited(
    sqlite_site: Site, capsys: pytest.CaptureFixture[str], command: list[str], action: str
) -> None:
    tokens(sqlite_site, capsys)
    key = sqlite_site.vault_key_path.read_bytes()
    for token in ([], ["--token", "dana.forged"]):
        assert main([*command, "--site", str(sqlite_site.root), *token]) == 1
    refused = [e for e in audit(sqlite_site) if e.outcome == "refused"]
    assert [(e.actor, e.action) for e in refused] == [("(not authenticated)", action)] * 2
    assert sqlite_site.vault_key_path.read_bytes() == key


@pytest.mark.parametrize(
    "command",
    [
        ["review", "decide", "g-0000000000", "--allow", "--reason", "a false alarm"],
        ["templates", "approve", "device-0000"],
        ["devices", "show", "dev-0000"],
    ],
)
def test_a_researcher_learns_nothing_about_what_exists(
    sqlite_site: Site, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    researcher = tokens(sqlite_site, capsys)["researcher"]
    assert main([*command, "--site", str(sqlite_site.root), "--token", researcher]) == 1
    err = capsys.readouterr().err
    assert "may not" in err and "no " not in err.split("may not")[0]


def test_a_reason_holding_an_nhs_number_is_refused_before_anything_is_written(
    sqlite_site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    manager = tokens(sqlite_site, capsys)["manager"]
    identity = DeviceIdentity("Northwind", "Aurora 64", "SN-1", "ZZSTATION", "VX12")
    registry = DeviceRegistry(make_engine(sqlite_site.database_url))
    device = registry.register(identity, sqlite_site.site_key()).id
    before = len(audit(sqlite_site))
    reason = f"reviewed the scans of {NHS[:3]} {NHS[3:6]} {NHS[6:]}"
    args = ["devices", "trust", device, "--reason", reason, "--site", str(sqlite_site.root)]
    assert main([*args, "--token", manager]) == 1
    err = capsys.readouterr().err
    assert "NHS or CHI number" in err and NHS[6:] not in err
    assert len(audit(sqlite_site)) == before
    assert registry.get(device).state is DeviceState.UNTRUSTED


def test_a_token_given_to_a_site_without_users_is_not_ignored(
    sqlite_site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    add = ["users", "add", "dana", "--role", "data-manager", "--site", str(sqlite_site.root)]
    assert main([*add, "--token", "olga.from-another-site"]) == 1
    assert "matches no active user" in capsys.readouterr().err
    assert main(add) == 0
