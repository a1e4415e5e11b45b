"""``dicomhaven redact IN OUT``: pixels of a folder made safe, one line of outcome per file.

It is ``dicomhaven deid``'s safe path with the header step skipped (see
tests/test_deid_safe_path.py): a data manager's token, consent, the held folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
import pytest

from dicomhaven.access import Role, Users
from dicomhaven.catalogue import make_engine
from dicomhaven.cli import main
from dicomhaven.pixels import KnownValues, engine_named, find_identifiers
from dicomhaven.pixels._clean import VERIFY_RULES, _images
from dicomhaven.site import Site
from tests.corpora import pydicom_data_folder, pydicom_file
from tests.peers import require_tool


@pytest.mark.integration
def test_redact_folder_blanks_burned_in_text_and_reports_each_file(
    sqlite_site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_tool("tesseract")
    folder = tmp_path / "in"
    folder.mkdir()
    ultrasound = pydicom_data_folder() / "OBXXXX1A.dcm"  # a patient ID burned into the pixels
    shutil.copy(ultrasound, folder / "us.dcm")
    shutil.copy(pydicom_file("CT_small.dcm"), folder / "ct.dcm")
    (folder / "notes.txt").write_text("not dicom")
    out = tmp_path / "out"
    token = Users(make_engine(sqlite_site.database_url)).add("dana", Role.DATA_MANAGER, by="(t)")
    args = ["redact", str(folder), str(out), "--json", "--site", str(sqlite_site.root),
            "--token", token]  # fmt: skip
    assert main(args) == 1  # the text file is skipped
    summary = json.loads(capsys.readouterr().out)
    by_name = {Path(r["path"]).name: r for r in summary["results"]}
    assert by_name["ct.dcm"]["status"] == "written"
    assert by_name["us.dcm"]["status"] == "written"
    assert by_name["notes.txt"]["status"] == "skipped"
    assert summary["pixels"] == {"not-read": 1, "redacted": 1}
    source = pydicom.dcmread(ultrasound)
    output = pydicom.dcmread(out / by_name["us.dcm"]["output"])
    assert output.BurnedInAnnotation == "NO"
    assert output.PatientID == source.PatientID  # headers are deid's business, not redact's
    known = KnownValues.from_header(source)
    for image in _images(output, range(int(output.get("NumberOfFrames", 1) or 1))):
        assert (
            find_identifiers(engine_named("tesseract").read(image), known, rules=VERIFY_RULES) == []
        )
    assert {p.name for p in out.iterdir()} == {
        by_name["us.dcm"]["output"],
        by_name["ct.dcm"]["output"],
    }  # nothing held


def test_redact_needs_a_token(
    sqlite_site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    args = ["redact", str(pydicom_file("CT_small.dcm")), str(out), "--site", str(sqlite_site.root)]
    assert main(args) == 2
    assert "needs a data manager's token" in capsys.readouterr().err
    assert not out.exists() or not any(out.rglob("*.dcm"))


def test_redact_refuses_an_unknown_engine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["redact", str(pydicom_file("CT_small.dcm")), str(tmp_path), "--detector", "magic"])
    assert code == 2
    assert "unknown OCR engine 'magic'" in capsys.readouterr().err
