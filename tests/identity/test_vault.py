"""The pseudonym vault: stable random pseudonyms, sealed identifiers, per-project derivations."""

from __future__ import annotations

import datetime
import random
import re
import secrets
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dicomhaven.catalogue import make_engine
from dicomhaven.errors import InvalidIdentifier
from dicomhaven.identity import (
    MAX_DATE_SHIFT_DAYS,
    IdentityConflict,
    PatientIdentifier,
    ProjectKeys,
    Scheme,
    Vault,
    VaultKeyError,
    generate_nhs_number,
)

NHS_A = "999 000 0018"  # synthetic test-range numbers with valid check digits
NHS_B = "9990000026"


def nhs(value: str) -> PatientIdentifier:
    return PatientIdentifier(Scheme.NHS, value)


def local(value: str, issuer: str = "ZZ9") -> PatientIdentifier:
    return PatientIdentifier(Scheme.LOCAL, value, issuer)


@pytest.fixture
def key() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture
def vault(database_url: str, key: bytes) -> Vault:
    return Vault.create_or_open(make_engine(database_url), key)


def test_identifiers_are_validated_and_normalised() -> None:
    assert nhs(NHS_A).value == "9990000018"
    with pytest.raises(InvalidIdentifier, match="check digit") as info:
        nhs("999 000 0019")
    assert "9990000019" not in str(info.value)
    with pytest.raises(InvalidIdentifier, match="10 digits"):
        nhs("99900000")
    with pytest.raises(InvalidIdentifier, match="issuer"):
        PatientIdentifier(Scheme.LOCAL, "A123", "")
    assert local(" zz91234567 ", "zz9") == local("ZZ91234567")


def test_same_patient_gets_the_same_pseudonym(vault: Vault) -> None:
    first = vault.resolve([nhs(NHS_A), local("ZZ91234567")])
    assert re.fullmatch(r"[BCDFGHJKLMNPQRSTVWXZ]{12}", first)
    # Again, with spaces: the same.
    assert vault.resolve([nhs("9990000018")]) == first
    # From another hospital, by its own number plus the NHS number: the same, and the new
    # hospital number now finds the patient too.
    assert vault.resolve([nhs(NHS_A), local("H-77", issuer="OTHER")]) == first
    assert vault.find(local("H-77", issuer="OTHER")) == first
    # Another patient: another pseudonym.
    assert vault.resolve([nhs(NHS_B)]) != first
    assert vault.patient_count() == 2


def test_identifiers_of_two_patients_conflict(vault: Vault) -> None:
    vault.resolve([nhs(NHS_A)])
    vault.resolve([local("ZZ90000001")])
    with pytest.raises(IdentityConflict) as info:
        vault.resolve([nhs(NHS_A), local("ZZ90000001")])
    assert "9990000018" not in str(info.value) and "ZZ90000001" not in str(info.value)


def test_reidentification_returns_every_identifier(vault: Vault) -> None:
    pseudonym = vault.resolve([nhs(NHS_A), local("ZZ91234567")])
    assert set(vault.identifiers_of(pseudonym)) == {nhs(NHS_A), local("ZZ91234567")}
    assert vault.identifiers_of("BBBBBBBBBBBB") == []


def test_pseudonyms_are_random_not_derived(database_url: str, tmp_path: Path) -> None:
    one = Vault.create_or_open(make_engine(database_url), secrets.token_bytes(32))
    other = Vault.create_or_open(
        make_engine(f"sqlite:///{tmp_path / 'v2.db'}"), secrets.token_bytes(32)
    )
    assert one.resolve([nhs(NHS_A)]) != other.resolve([nhs(NHS_A)])


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32),
    born=st.dates(min_value=datetime.date(1900, 1, 1), max_value=datetime.date(2025, 12, 31)),
)
def test_pseudonyms_reveal_no_digit_of_the_nhs_number_or_birth_date(
    seed: int, born: datetime.date
) -> None:
    from dicomhaven.identity import new_pseudonym

    number = generate_nhs_number(random.Random(seed))
    pseudonym = new_pseudonym()
    project = ProjectKeys("p", seed.to_bytes(8, "big")).pseudonym(pseudonym)
    for value in (pseudonym, project):
        assert not any(c.isdigit() for c in value)
        for fragment in (number, born.strftime("%Y%m%d"), born.strftime("%d%m%y")):
            assert fragment not in value


def test_projects_derive_different_reproducible_values(vault: Vault) -> None:
    master = vault.resolve([nhs(NHS_A)])
    alpha = ProjectKeys("alpha", vault.project_secret("alpha"))
    beta = ProjectKeys("beta", vault.project_secret("beta"))
    assert alpha.pseudonym(master) != beta.pseudonym(master)
    assert alpha.pseudonym(master) != master
    assert alpha.uid("1.2.3.4") != beta.uid("1.2.3.4")
    again = ProjectKeys("alpha", vault.project_secret("alpha"))
    assert again.pseudonym(master) == alpha.pseudonym(master)
    assert again.uid("1.2.3.4") == alpha.uid("1.2.3.4")
    assert re.fullmatch(r"2\.25\.\d{1,39}", alpha.uid("1.2.3.4"))
    assert len(alpha.uid("1.2.3.4")) <= 64


def test_date_offsets_are_per_patient_bounded_and_keep_intervals(vault: Vault) -> None:
    keys = ProjectKeys("alpha", vault.project_secret("alpha"))
    patients = [vault.resolve([nhs(generate_nhs_number(random.Random(i)))]) for i in range(40)]
    offsets = [keys.date_offset_days(p) for p in patients]
    assert all(-MAX_DATE_SHIFT_DAYS <= o <= -1 for o in offsets)
    assert len(set(offsets)) > 20  # per patient, not one global shift
    first, second = datetime.date(2020, 1, 5), datetime.date(2021, 3, 17)
    shift = datetime.timedelta(days=keys.date_offset_days(patients[0]))
    assert (second + shift) - (first + shift) == second - first
    assert keys.date_offset_days(patients[0]) == offsets[0]


def test_wrong_key_cannot_open_the_vault(database_url: str, key: bytes) -> None:
    engine = make_engine(database_url)
    Vault.create_or_open(engine, key).resolve([nhs(NHS_A)])
    with pytest.raises(VaultKeyError, match="vault key is wrong"):
        Vault.create_or_open(engine, secrets.token_bytes(32))


def test_key_rotation_keeps_pseudonyms(database_url: str, key: bytes) -> None:
    engine = make_engine(database_url)
    vault = Vault.create_or_open(engine, key)
    pseudonym = vault.resolve([nhs(NHS_A), local("ZZ91234567")])
    vault.remember_details(pseudonym, {"name": "TESTER^ALICE"})
    secret = vault.project_secret("alpha")
    new_key = secrets.token_bytes(32)
    assert vault.rotate_key(new_key) == 4
    reopened = Vault.create_or_open(engine, new_key)
    assert reopened.find(nhs(NHS_A)) == pseudonym
    assert reopened.resolve([local("ZZ91234567")]) == pseudonym
    assert reopened.details_of(pseudonym) == {"name": ["TESTER^ALICE"]}
    assert reopened.project_secret("alpha") == secret
    with pytest.raises(VaultKeyError):
        Vault.create_or_open(engine, key)


def test_vault_file_alone_reveals_no_identifier(tmp_path: Path, key: bytes) -> None:
    path = tmp_path / "vault.db"
    vault = Vault.create_or_open(make_engine(f"sqlite:///{path}"), key)
    rng = random.Random(5)
    numbers = [generate_nhs_number(rng) for _ in range(30)]
    for i, number in enumerate(numbers):
        pseudonym = vault.resolve([nhs(number), local(f"ZZ9{i:07d}")])
        vault.remember_details(
            pseudonym, {"name": f"CANARYNAME{i}^ALICE", "birth_date": "19600102"}
        )
    vault.engine.dispose()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    for i, number in enumerate(numbers):
        spaced = f"{number[:3]} {number[3:6]} {number[6:]}"
        for needle in (number, spaced, f"ZZ9{i:07d}", f"CANARYNAME{i}"):
            assert needle.encode() not in raw
            assert needle.encode("utf-16-le") not in raw
    assert b"19600102" not in raw
