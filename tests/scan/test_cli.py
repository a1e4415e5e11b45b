"""``dicomhaven scan`` on any files: exit status, JSON, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dicomhaven.cli import main
from dicomhaven.synth import FileKind
from tests.synth.generated import GeneratedSite


def test_an_original_fails_and_names_rules_not_values(
    synth_site: GeneratedSite, capsys: pytest.CaptureFixture[str]
) -> None:
    [record, *_] = synth_site.key.files_of_kind(FileKind.SR)
    path = synth_site.root / record.path
    assert main(["scan", str(path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert (report["files"], report["failed"]) == (1, 1)
    [result] = report["results"]
    assert {"health-number", "person-name-element"} <= {f["rule"] for f in result["findings"]}
    text = json.dumps(result)
    patient = synth_site.key.patients[record.patient]
    assert patient.nhs_number not in text and patient.family_name not in text


def test_clean_files_pass_and_the_text_report_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = "2.25.1"
    ds.PatientID = "BCDFGHJKLMNP"
    ds.StudyDescription = "CT HEAD"
    ds.save_as(tmp_path / "a.dcm", implicit_vr=False, little_endian=True)
    assert main(["scan", str(tmp_path)]) == 0
    assert "1 files scanned, 0 failed" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["scan", "/no/such/folder"], "not found"),
        (["scan", ".", "--level", "secret"], "--level is limited-access or publication"),
    ],
)
def test_bad_usage_is_a_clear_error(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    assert message in capsys.readouterr().err
