"""dicom3tools' dciodvfy: de-identification adds no error the original lacked.

Each output is compared with its original error for error: the errors are counted by kind
and attribute, with the values in the messages (which de-identification changes, that is
the point) and item numbers (an SR content item removed renumbers the ones after it)
normalised away. Every error of the output must be one the original had as often; no kind
of error is excused wholesale.
"""

from __future__ import annotations

import io
import re
import subprocess
import warnings
from collections import Counter
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from dicomhaven.deid import deidentify, load_profile
from dicomhaven.identity import ProjectKeys
from tests.corpora import pydicom_file
from tests.deid.conftest import DeidentifiedSite, context
from tests.peers import require_tool, shared_data

#: Errors a de-identified file may have that its original lacked, each by its exact
#: normalised message, with why it is inherent and harmless. None is needed today.
ALLOWED: frozenset[str] = frozenset()

#: A value, as dciodvfy quotes it (to the line's end, when the value holds a line break).
_VALUE = re.compile(r"= <[^>]*(?:>|$)")
_ITEM = re.compile(r"\[\d+\]")  # an item number in an attribute's path


def errors(path: Path) -> Counter[str]:
    """dciodvfy's errors for ``path``, by kind and attribute, without values."""
    dciodvfy = require_tool("dciodvfy")
    proc = subprocess.run(
        [dciodvfy, "-new", str(path)], capture_output=True, text=True, errors="replace"
    )
    lines = (proc.stdout + proc.stderr).splitlines()
    return Counter(
        _ITEM.sub("[]", _VALUE.sub("= <>", line)) for line in lines if line.startswith("Error")
    )


def new_errors(before: Path, after: Path) -> list[str]:
    """The errors of ``after`` that ``before`` did not have (as often), but the allowed."""
    added = errors(after) - errors(before)
    return sorted(kind for kind in added if kind not in ALLOWED)


def _ct_with_study_date(path: Path, value: str) -> Path:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.9.9999.131"
    ds.StudyDate = value
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.integration
def test_the_comparison_sees_a_new_value_invalid_error(tmp_path: Path) -> None:
    """The check can fail: an invalid date that only the second file has is a new error."""
    good = _ct_with_study_date(tmp_path / "good.dcm", "20240102")
    bad = _ct_with_study_date(tmp_path / "bad.dcm", "2024XX02")
    found = new_errors(good, bad)
    assert any("StudyDate" in kind and "Value invalid" in kind for kind in found), found


@pytest.mark.integration
def test_no_new_errors_on_each_kind_of_synthetic_file(
    publication_site: DeidentifiedSite, tmp_path: Path
) -> None:
    limited = load_profile("limited-access")
    seen: set[str] = set()
    problems = {}
    for record in publication_site.source.key.files:
        if record.kind.value in seen:
            continue
        seen.add(record.kind.value)
        source = publication_site.source.root / record.path
        found = new_errors(source, publication_site.output(record.path))
        # The site's default profile too, on the same file.
        ds = pydicom.dcmread(source)
        deidentify(ds, limited, context(publication_site.keys, "BCDFGHJKLMNP"))
        ds.save_as(tmp_path / "limited.dcm", enforce_file_format=True)
        found += new_errors(source, tmp_path / "limited.dcm")
        if found:
            problems[record.kind.value] = found
    assert problems == {}
    assert len(seen) >= 5


def _real_files() -> list[Path]:
    files = [pydicom_file(n) for n in ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm",
                                       "rtdose.dcm", "test-SR.dcm", "JPEG2000.dcm")]  # fmt: skip
    return files + sorted(shared_data("openrem").glob("*.dcm"))


@pytest.mark.integration
@pytest.mark.parametrize("name", ["publication", "limited-access"])
def test_no_new_errors_on_real_files(name: str, tmp_path: Path) -> None:
    profile = load_profile(name)
    keys = ProjectKeys("dciodvfy", bytes(range(32)))
    problems = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # test files with deliberately odd values
        for path in _real_files():
            ds = pydicom.dcmread(path)
            deidentify(ds, profile, context(keys, "BCDFGHJKLMNP"))
            buffer = io.BytesIO()
            ds.save_as(buffer, enforce_file_format=True)
            (tmp_path / "out.dcm").write_bytes(buffer.getvalue())
            found = new_errors(path, tmp_path / "out.dcm")
            if found:
                problems[path.name] = found
    assert problems == {}
