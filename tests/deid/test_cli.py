"""``dicomhaven deid IN OUT``: a folder de-identified through the vault, named by pseudonym."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest

from dicomhaven.access import Role, Users
from dicomhaven.catalogue import make_engine
from dicomhaven.cli import main
from dicomhaven.identity import PatientIdentifier, Scheme
from dicomhaven.site import Site
from tests.synth.generated import GeneratedSite


def manager_token(site: Site) -> str:
    """A data manager's token: deid writes copies only for one (see test_deid_safe_path)."""
    return Users(make_engine(site.database_url)).add("dana", Role.DATA_MANAGER, by="(test)")


def test_deid_folder_through_the_vault(
    sqlite_site: Site, synth_site: GeneratedSite, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "junk.txt").write_text("not dicom")
    args = ["deid", str(synth_site.root / "export"), str(tmp_path / "in"), str(out),
            "--profile", "limited-access", "--site", str(sqlite_site.root), "--json",
            "--headers-only", "--token", manager_token(sqlite_site)]  # fmt: skip
    assert main(args) == 1  # the junk file was skipped
    summary = json.loads(capsys.readouterr().out)
    assert summary["written"] == len(synth_site.key.files)
    assert [s["reason"][:7] for s in summary["skipped"]] == ["not DIC"]
    assert summary["held"] == []
    assert summary["pixels_not_checked"] == sum(
        1 for r in synth_site.key.files if r.kind.value != "sr"
    )
    results = summary["results"]
    assert len(results) == summary["files"] == len(synth_site.key.files) + 1
    assert {r["status"] for r in results} == {"written", "skipped"}
    assert not (out / "held").exists()
    for result in results:
        if result["status"] == "written":
            assert (out / result["output"]).is_file()
    assert sum(summary["profiles"].values()) == summary["written"]
    vault = sqlite_site.open_vault()
    masters = {
        vault.find(PatientIdentifier(Scheme.NHS, p.nhs_number)) for p in synth_site.key.patients
    }
    assert {p.name for p in out.iterdir()} == masters
    written = list(out.rglob("*.dcm"))
    assert len(written) == len(synth_site.key.files)
    names = "\n".join(str(p) for p in written)
    for patient in synth_site.key.patients:
        assert patient.nhs_number not in names and patient.family_name not in names
    sample = pydicom.dcmread(written[0], stop_before_pixels=True)
    assert sample.PatientID == written[0].parts[-3]
    assert sample.PatientIdentityRemoved == "YES"


def test_deid_with_a_project_uses_project_pseudonyms(
    sqlite_site: Site, synth_site: GeneratedSite, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = synth_site.key.files[0]
    token = manager_token(sqlite_site)
    for project, out in (("alpha", tmp_path / "a"), ("beta", tmp_path / "b")):
        args = ["deid", str(synth_site.root / record.path), str(out), "--project", project,
                "--site", str(sqlite_site.root), "--headers-only", "--token", token]  # fmt: skip
        assert main(args) == 0
    (a,) = (tmp_path / "a").rglob("*.dcm")
    (b,) = (tmp_path / "b").rglob("*.dcm")
    first, second = pydicom.dcmread(a), pydicom.dcmread(b)
    assert first.PatientID != second.PatientID
    assert first.StudyInstanceUID != second.StudyInstanceUID


def test_deid_needs_an_output(sqlite_site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deid", "only-one", "--site", str(sqlite_site.root)]) == 2
    assert "give at least one input and the output folder" in capsys.readouterr().err
