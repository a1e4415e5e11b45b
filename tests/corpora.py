"""One accessor for real DICOM test files made by others (installed from PyPI, read in place).

pydicom's ``get_testdata_files`` may try to download; these look only at installed files.
"""

from __future__ import annotations

from pathlib import Path

import pydicom

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def pydicom_file(name: str) -> Path:
    """One of the ~170 files pydicom ships, e.g. ``CT_small.dcm``."""
    path = PYDICOM_FILES / name
    if not path.is_file():
        raise FileNotFoundError(f"pydicom test file {name} not found in {PYDICOM_FILES}")
    return path


def pydicom_data_folder() -> Path:
    """Where ``pydicom-data`` installed its 68 files."""
    import data_store  # the import name of the pydicom-data package

    return Path(data_store.__file__).parent / "data"


def deid_data_folder() -> Path:
    """Where ``deid-data`` installed its files."""
    import deid_data

    return Path(deid_data.__file__).parent / "data"


def pydicom_charset_files() -> list[Path]:
    """pydicom's character-set test files (Latin-1, UTF-8, ISO 2022 Japanese and Korean,
    Arabic, Greek, Hebrew, Russian, ...)."""
    return sorted((PYDICOM_FILES.parent / "charset_files").glob("chr*.dcm"))
