"""The command line starts fast: its faces import only what their command needs."""

from __future__ import annotations

import importlib
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
