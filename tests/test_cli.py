"""The command line: help, exit codes, JSON, and clear errors instead of tracebacks."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from dicomhaven import __version__
from dicomhaven.cli import main
from dicomhaven.site import RESTRICTED_ZONES, ZONES, open_site


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for command in ("init", "import", "ledger", "process", "settings", "synth", "version"):
        assert command in text


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == __version__


def test_unknown_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import", "--no-such-option"]) == 2


def test_init_creates_zones_keys_and_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "site"
    assert main(["init", str(root), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["zones"] == list(ZONES)
    for zone in ZONES:
        assert (root / zone).is_dir()
    for zone in RESTRICTED_ZONES:
        assert stat.S_IMODE((root / zone).stat().st_mode) == 0o700
    key = root / "keys" / "site.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_bytes()) == 32
    assert (root / "catalogue" / "catalogue.db").is_file()
    # Running init again keeps the key and the settings file.
    before = key.read_bytes()
    (root / "dicomhaven.yaml").write_text("workers: 2\n")
    assert main(["init", str(root)]) == 0
    assert key.read_bytes() == before
    assert open_site(root).settings.workers == 2


def test_bad_settings_file_is_reported_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "site"
    assert main(["init", str(root)]) == 0
    (root / "dicomhaven.yaml").write_text("workers: 1\nintake_fsink: false\n")
    capsys.readouterr()
    assert main(["ledger", "--site", str(root)]) == 2
    err = capsys.readouterr().err
    assert f"{root / 'dicomhaven.yaml'}:2: unknown setting 'intake_fsink'" in err
    assert "Traceback" not in err


def test_module_entry_point_runs(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dicomhaven", "version"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and proc.stdout.strip() == __version__


def test_vault_key_inside_the_vault_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "site"
    assert main(["init", str(root)]) == 0
    assert main(["users", "add", "dana", "--role", "data-manager", "--site", str(root)]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    (root / "dicomhaven.yaml").write_text(f"vault_key_file: {root / 'vault' / 'vault.key'}\n")
    assert main(["reidentify", "BBBBBBBBBBBB", "--reason", "checking the key rule", "--site",
                 str(root), "--token", token]) == 2  # fmt: skip
    assert "inside the vault folder" in capsys.readouterr().err
