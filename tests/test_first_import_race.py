"""The first import of a fresh site with several workers: no worker may trip over another
creating what every worker needs (the site's project secret, the patient, the device).

Issue 21 #3: with two workers, both created the site's project row at once and one object
ended 'failed' with IntegrityError. Each run here starts from a fresh site, so the race is
met every time, not only on the first run of the session.
"""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from sqlalchemy import event

from dicomhaven.catalogue import make_engine
from dicomhaven.cli import main
from dicomhaven.identity import SITE_PROJECT
from dicomhaven.identity._crypto import VaultCipher
from dicomhaven.identity._vault import Vault
from dicomhaven.ledger import Ledger
from dicomhaven.site import init_site
from dicomhaven.synth import FileKind, generate_site

SLICES = 40
REPEATS = 20  # as the issue asks: twenty fresh sites per worker count


@pytest.fixture(scope="module")
def one_patient_series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 CT slices of one new synthetic patient in one series (made from the generator's
    slice, each with its own SOP Instance UID)."""
    root = tmp_path_factory.mktemp("one-patient")
    key = generate_site(root / "synth", patients=1, seed=3)
    ct = next(f for f in key.files if f.kind is FileKind.CT)
    template = pydicom.dcmread(root / "synth" / ct.path)
    folder = root / "series"
    folder.mkdir()
    base = str(template.SOPInstanceUID)
    for number in range(1, SLICES + 1):
        uid = f"{base}.{number}"
        template.SOPInstanceUID = uid
        template.file_meta.MediaStorageSOPInstanceUID = uid
        template.InstanceNumber = number
        template.save_as(folder / f"IM{number:04d}.dcm", enforce_file_format=True)
    return folder


@pytest.mark.integration
@pytest.mark.parametrize("workers", [2, 4])
def test_first_import_with_workers_fails_no_object(
    one_patient_series: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    monkeypatch.delenv("DICOMHAVEN_DATABASE_URL", raising=False)
    for run in range(REPEATS):
        root = tmp_path / f"site{run}"
        assert main(["init", str(root)]) == 0
        code = main(["import", "--site", str(root), "--workers", str(workers),
                     "--json", str(one_patient_series)])  # fmt: skip
        site = init_site(root)
        counts = Ledger(make_engine(site.database_url)).counts()
        assert counts["failed"] == 0, f"run {run}: {counts}"
        assert sum(counts.values()) == SLICES and code == 0, f"run {run}: {counts}"


def test_project_secret_made_by_another_worker_meanwhile_is_used(
    database_url: str,
) -> None:
    """Deterministic form of the race: another worker creates the project's row between
    this worker's look-up and its insert. Both must end with the one secret."""
    master = bytes(range(32))
    ours = Vault.create_or_open(make_engine(database_url), master)
    theirs = Vault(make_engine(database_url), VaultCipher.from_master(master))
    made: list[bytes] = []

    def other_worker_first(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO VAULT_PROJECTS") and not made:
            made.append(theirs.project_secret(SITE_PROJECT))

    event.listen(ours.engine, "before_cursor_execute", other_worker_first)
    secret = ours.project_secret(SITE_PROJECT)
    assert made and secret == made[0]
    assert ours.project_secret(SITE_PROJECT) == secret == theirs.project_secret(SITE_PROJECT)


def test_init_creates_the_site_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What every worker needs exists before any worker starts."""
    monkeypatch.delenv("DICOMHAVEN_DATABASE_URL", raising=False)
    site = init_site(tmp_path / "site")
    statements: list[str] = []
    vault = site.open_vault()
    event.listen(
        vault.engine,
        "before_cursor_execute",
        lambda conn, cursor, statement, *rest: statements.append(statement),
    )
    vault.project_secret(SITE_PROJECT)
    assert not any("INSERT" in s.upper() for s in statements), statements
