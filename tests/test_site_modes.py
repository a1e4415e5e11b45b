"""Every folder of a site is 0700 and every file 0600, from whoever writes it (issue 12 #7).

The zones hold identifiable originals, held copies that failed a check and face renders;
a default umask of 022 made quarantine/ 0755 and its files 0644. The command line now runs
with umask 077, the pipeline's workers too, site folders are made 0700, ``init`` puts an
existing site right and ``ledger --deep`` reports any group or other bit.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomhaven.cli import main
from dicomhaven.ingest import import_paths
from dicomhaven.site import open_site
from tests.corpora import pydicom_file


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def open_to_others(root: Path) -> list[str]:
    """Folders and files under ``root`` (itself included) with a group or other bit."""
    found = [root] if mode(root) & 0o077 else []
    for path in root.rglob("*"):
        if not path.is_symlink() and mode(path) & 0o077:
            found.append(path)
    return [f"{p.relative_to(root)} {mode(p):04o}" for p in found]


@pytest.fixture
def loose_umask(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The usual umask 022, under which files were world-readable before the fix."""
    monkeypatch.delenv("DICOMHAVEN_DATABASE_URL", raising=False)
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def held_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(pydicom_file("CT_small.dcm"), folder / "ct.dcm")
    shutil.copy(pydicom_file("MR_small.dcm"), folder / "mr.dcm")
    return folder


def test_init_makes_every_folder_and_file_owner_only(tmp_path: Path, loose_umask: None) -> None:
    root = tmp_path / "site"
    assert main(["init", str(root)]) == 0
    assert mode(root) == 0o700
    for zone in ("intake", "quarantine", "store", "vault", "keys", "catalogue", "logs"):
        assert mode(root / zone) == 0o700, zone
    for name in ("dicomhaven.yaml", "keys/site.key", "keys/vault.key", "vault/vault.db",
                 "catalogue/catalogue.db"):  # fmt: skip
        assert mode(root / name) == 0o600, name
    assert open_to_others(root) == []


@pytest.mark.integration
def test_quarantined_copy_of_a_real_import_is_0600_in_a_0700_folder(
    tmp_path: Path, loose_umask: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DICOMHAVEN_DEVICE_GATE", "true")  # a new device's copies are held
    root = tmp_path / "site"
    assert main(["init", str(root)]) == 0
    assert main(["import", "--site", str(root), str(held_folder(tmp_path))]) == 0
    held = [p for p in (root / "quarantine").rglob("*") if p.is_file()]
    assert held, "the import held no copy in quarantine"
    for path in held:
        assert mode(path) == 0o600, path
        for folder in path.relative_to(root).parents:
            assert mode(root / folder) == 0o700, folder
    assert open_to_others(root) == []
    assert main(["ledger", "--deep", "--site", str(root)]) == 0


@pytest.mark.integration
def test_workers_write_owner_only_files_whatever_the_parents_umask(
    tmp_path: Path, loose_umask: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The library, not the command line, starts the pool here: the umask is the parent's
    022, so only the workers' own start can make their files owner-only."""
    monkeypatch.setenv("DICOMHAVEN_DEVICE_GATE", "true")
    root = tmp_path / "site"
    assert main(["init", str(root)]) == 0
    import_paths(open_site(root), [held_folder(tmp_path)], workers=2)
    zones = ("intake", "quarantine", "store")
    written = [p for z in zones for p in (root / z).rglob("*") if p.is_file()]
    # A worker wrote each copy: held in quarantine, or released to the store when the pool's
    # start predates this test's device-gate setting (a forkserver keeps its environment).
    assert any(p.relative_to(root).parts[0] != "intake" for p in written)
    assert {mode(p) for p in written} == {0o600}


def test_ledger_deep_reports_group_or_other_access_and_init_repairs_it(
    tmp_path: Path, loose_umask: None, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "site"
    assert main(["init", str(root)]) == 0
    assert main(["ledger", "--deep", "--site", str(root)]) == 0
    (root / "quarantine").chmod(0o755)
    planted = root / "quarantine" / "copied-in.dcm"
    planted.write_bytes(b"ZZTEST^Canary")
    planted.chmod(0o644)
    (root / "keys" / "vault.key").chmod(0o640)
    capsys.readouterr()
    assert main(["ledger", "--site", str(root)]) == 0  # the quick check reads no modes
    assert main(["ledger", "--deep", "--site", str(root)]) == 1
    err = capsys.readouterr().err
    assert "quarantine is mode 0755" in err
    assert "quarantine/copied-in.dcm is mode 0644" in err
    assert "keys/vault.key is mode 0640" in err
    assert main(["init", str(root)]) == 0
    assert (mode(root / "quarantine"), mode(planted)) == (0o700, 0o600)
    assert mode(root / "keys" / "vault.key") == 0o600
    assert main(["ledger", "--deep", "--site", str(root)]) == 0
