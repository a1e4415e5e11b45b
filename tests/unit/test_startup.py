"""The command line starts fast: its faces import only what their command needs."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

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


LAZY_PACKAGES = ("deid", "identity", "scan", "collect", "intake", "vocabulary")


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_a_package_loads_no_dicom_or_database_library_until_a_name_is_used(package: str) -> None:
    assert loaded_after(f"import dicomhaven.{package}") == set()


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_every_public_name_of_a_lazy_package_is_its_module_s_own(package: str) -> None:
    module = importlib.import_module(f"dicomhaven.{package}")
    for name in module.__all__:
        assert name in dir(module)
        value = getattr(module, name)
        defined_in = importlib.import_module(f"dicomhaven.{package}.{module._EXPORTS[name]}")
        assert value is getattr(defined_in, name)
    with pytest.raises(AttributeError):
        module.no_such_name  # noqa: B018 - the lookup is the test


def test_the_header_path_of_deid_loads_no_pixel_step_nor_network_library() -> None:
    """``deid --headers-only`` never reads pixels: the pixel step (OCR engines, defacing)
    and the receiver's DICOM networking stay unloaded."""
    loaded = loaded_after(
        "import dicomhaven.deid._folder, dicomhaven.deid._safe_path\n"
        "from dicomhaven.deid import load_profile\n"
        "import sys\n"
        "assert not [m for m in sys.modules if m.startswith('dicomhaven.pixels')], 'pixels'\n"
    )
    assert "pynetdicom" not in loaded and "highdicom" not in loaded


def test_loading_a_profile_opens_no_database_library() -> None:
    assert "sqlalchemy" not in loaded_after("from dicomhaven.deid import load_profile\n"
                                            "load_profile('publication')")  # fmt: skip


def test_text_without_two_words_is_scanned_without_reading_the_census_lists() -> None:
    from dicomhaven.scan import _detect

    _detect._census.cache_clear()
    assert _detect.detect_text("ORIGINAL\\PRIMARY\\AXIAL 1.25 HEAD") == []
    assert _detect._census.cache_info().currsize == 0
    assert _detect.detect_text("seen by Dr John Smith")  # a name: the lists are read
    assert _detect._census.cache_info().currsize == 1


# -- what a command loads once it runs (issue 19: start-up budget of deid, scan, import) ------

#: Loaded only when a schema is behind its head (Alembic), a token of an earlier version is
#: checked (argon2), pixels are read by OCR, or DICOM networking starts.
NOT_UNTIL_NEEDED = ("alembic", "argon2", "rapidocr", "onnxruntime", "highdicom", "pynetdicom")


def loaded_by(argv: list[str]) -> set[str]:
    """Which of :data:`NOT_UNTIL_NEEDED` a fresh process has loaded after ``main(argv)``."""
    code = (
        "import contextlib, io, sys\n"
        "from dicomhaven.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
        f"    code = main({argv!r})\n"
        "assert code in (0, 1), code\n"
        f"print(' '.join(m for m in {NOT_UNTIL_NEEDED!r} if m in sys.modules))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DICOMHAVEN_")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    return set(done.stdout.split())


@pytest.fixture
def one_file(tmp_path: Path) -> Path:
    """A folder holding pydicom's small CT slice (its Patient ID is a local number)."""
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), folder / "ct.dcm")  # type: ignore[arg-type]
    return folder


@pytest.fixture
def site_and_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """A site at its schema's head, and a data manager's token made by this version."""
    from dicomhaven.access import Role, Users
    from dicomhaven.catalogue import make_engine
    from dicomhaven.site import init_site

    monkeypatch.delenv("DICOMHAVEN_DATABASE_URL", raising=False)
    site = init_site(tmp_path / "site")
    token = Users(make_engine(site.database_url)).add("dana", Role.DATA_MANAGER, by="(t)")
    return site.root, token


def test_deid_on_a_site_at_its_head_loads_neither_alembic_nor_argon2(
    one_file: Path, site_and_token: tuple[Path, str], tmp_path: Path
) -> None:
    """Regression: every open of the vault imported Alembic (~0.1 s, and more to read its
    scripts) to find nothing to do, and every token was checked by argon2 (~0.2 s, 64 MiB)."""
    site, token = site_and_token
    argv = ["deid", str(one_file), str(tmp_path / "out"), "--site", str(site), "--token", token,
            "--headers-only"]  # fmt: skip
    assert loaded_by(argv) == set()


def test_scanning_files_without_a_site_loads_no_migration_nor_ocr(one_file: Path) -> None:
    assert loaded_by(["scan", str(one_file)]) == set()


@pytest.mark.integration  # the whole import pipeline in a fresh process
def test_import_on_a_site_at_its_head_loads_no_alembic(
    one_file: Path, site_and_token: tuple[Path, str]
) -> None:
    site, _ = site_and_token
    assert "alembic" not in loaded_by(["import", "--site", str(site), str(one_file)])


def test_scanning_files_without_a_site_loads_no_database_library(one_file: Path) -> None:
    """Regression: the folder walk imported intake, and with it SQLAlchemy (0.2 s), for a
    scan that opens no site."""
    code = (
        "import contextlib, io, sys\n"
        "from dicomhaven.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    main(['scan', {str(one_file)!r}])\n"
        "print('sqlalchemy' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DICOMHAVEN_")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert done.stdout.split()[-1] == "False"
