"""The command line starts fast: its faces import only what their command needs."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("highdicom", "numpy", "sqlalchemy", "pynetdicom", "pydicom", "alembic", "PIL")


def loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def test_importing_the_cli_loads_no_dicom_or_database_library() -> None:
    assert loaded_after("import dicomhaven.cli") == set()


@pytest.mark.parametrize("argv", [["version"], ["--help"], ["scan", "--help"], ["deid", "--help"]])
def test_help_and_version_touch_no_dicom_or_database_library(argv: list[str]) -> None:
    code = (
        "import contextlib, io\n"
        "from dicomhaven.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert main({argv!r}) == 0\n"
    )
    assert loaded_after(code) == set()
