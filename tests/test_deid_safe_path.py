"""``dicomhaven deid IN... OUT`` is the whole safe path: consent, authorisation, headers,
pixels, defacing and the independent scan; OUT receives only copies that passed."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pydicom
import pytest

from dicomhaven.access import Role, Users
from dicomhaven.catalogue import make_engine
from dicomhaven.cli import main
from dicomhaven.deid._safe_path import HEADERS_ONLY_METHOD
from dicomhaven.identity import PatientIdentifier, Scheme
from dicomhaven.site import Site
from dicomhaven.synth import FileKind
from tests.synth.generated import GeneratedSite

CANARY_NAME = "ZZTEST^Canary"
CANARY_ID = "ZZCANARY0001"


def tokens(site: Site) -> tuple[str, str]:
    """A data manager's token and a researcher's."""
    users = Users(make_engine(site.database_url))
    manager = users.add("dana", Role.DATA_MANAGER, by="(test)")
    return manager, users.add("rosa", Role.RESEARCHER, by="dana")


def pick(synth: GeneratedSite, into: Path, patient: int, kinds: dict[FileKind, int]) -> list[Path]:
    """Copy ``kinds[kind]`` files of each kind of one synthetic patient into ``into``,
    named by a counter (the export's own names are not the point here)."""
    copied: list[Path] = []
    wanted = dict(kinds)
    for record in synth.key.files:
        if record.patient == patient and wanted.get(record.kind, 0) > 0:
            wanted[record.kind] -= 1
            target = into / f"p{patient}-{len(copied):03d}.dcm"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(synth.root / record.path, target)
            copied.append(target)
    return copied


def withdraw(site: Site, synth: GeneratedSite, patient: int, manager: str, tmp: Path) -> str:
    """Record the national opt-out of one patient; their master pseudonym."""
    nhs = synth.key.patients[patient].nhs_number
    optout = tmp / "optout.txt"
    optout.write_text(nhs + "\n")
    assert main(["consent", "import-optout", str(optout), "--site", str(site.root),
                 "--token", manager]) == 0  # fmt: skip
    found = site.open_vault().find(PatientIdentifier(Scheme.NHS, nhs))
    assert found is not None
    return found


def deid(site: Site, inputs: list[Path], out: Path, *extra: str) -> list[str]:
    return ["deid", *map(str, inputs), str(out), "--site", str(site.root), "--json", *extra]


def written(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*.dcm") if "held" not in p.relative_to(out).parts)


def test_no_token_is_bad_usage_and_nothing_is_written(
    sqlite_site: Site, synth_site: GeneratedSite, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = pick(synth_site, tmp_path / "in", 0, {FileKind.SR: 1})
    out = tmp_path / "out"
    assert main(deid(sqlite_site, inputs, out, "--headers-only")) == 2
    assert "needs a data manager's token" in capsys.readouterr().err
    assert not out.exists() or written(out) == []
    assert (
        sqlite_site.open_vault().find(
            PatientIdentifier(Scheme.NHS, synth_site.key.patients[0].nhs_number)
        )
        is None
    )  # no patient entered the vault without authorisation


def test_a_researcher_is_refused_and_the_refusal_audited(
    sqlite_site: Site, synth_site: GeneratedSite, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, researcher = tokens(sqlite_site)
    inputs = pick(synth_site, tmp_path / "in", 0, {FileKind.SR: 1})
    out = tmp_path / "out"
    assert main(deid(sqlite_site, inputs, out, "--headers-only", "--token", researcher)) == 1
    assert "may not export-copies" in capsys.readouterr().err
    assert not out.exists() or written(out) == []
    entries = Users(make_engine(sqlite_site.database_url)).audit.entries(10)
    assert any(e.action == "export-copies" and e.outcome == "refused" for e in entries)


def test_consent_withdrawn_patients_are_not_written(
    sqlite_site: Site, synth_site: GeneratedSite, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Regression: deid wrote a withdrawn patient's copies (consent was never asked)."""
    manager, _ = tokens(sqlite_site)
    withdrawn = withdraw(sqlite_site, synth_site, 1, manager, tmp_path)
    kinds = {FileKind.SR: 1, FileKind.CT: 2}
    inputs = pick(synth_site, tmp_path / "in", 0, kinds) + pick(
        synth_site, tmp_path / "in", 1, kinds
    )
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(deid(sqlite_site, inputs, out, "--headers-only", "--token", manager)) == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["written"] == 3, summary["held"]
    skipped = summary["skipped"]
    assert len(skipped) == 3 and {s["reason"] for s in skipped} == {"consent withdrawn"}
    assert {s["stage"] for s in skipped} == {"identity"}
    assert all(Path(s["path"]).name.startswith("p1-") for s in skipped)
    assert withdrawn not in {p.name for p in out.iterdir()}
    for copy in written(out):
        assert pydicom.dcmread(copy, stop_before_pixels=True).PatientID != withdrawn
    entries = Users(make_engine(sqlite_site.database_url)).audit.entries(5)
    done = [e for e in entries if e.action == "export-copies" and e.outcome.startswith("done")]
    assert len(done) == 1 and "3 written" in done[0].reason and "3 skipped" in done[0].reason
    assert synth_site.key.patients[1].nhs_number not in done[0].reason


def test_headers_only_copies_say_their_pixels_were_not_checked(
    sqlite_site: Site, synth_site: GeneratedSite, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manager, _ = tokens(sqlite_site)
    inputs = pick(synth_site, tmp_path / "in", 0, {FileKind.US: 1, FileKind.SR: 1})
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(deid(sqlite_site, inputs, out, "--headers-only", "--token", manager)) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["pixels_not_checked"] == 1 and summary["written"] == 2
    images = [pydicom.dcmread(p) for p in written(out)]
    (image,) = [ds for ds in images if "PixelData" in ds]
    assert HEADERS_ONLY_METHOD in list(image.DeidentificationMethod)
    assert image.get("BurnedInAnnotation") != "NO"
    assert not any(HEADERS_ONLY_METHOD in str(ds.DeidentificationMethod) for ds in images
                   if "PixelData" not in ds)  # fmt: skip


def test_a_copy_the_scanner_fails_is_held_not_written(
    sqlite_site: Site, synth_site: GeneratedSite, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Regression: deid wrote copies nobody scanned. A profile that keeps Study Description
    lets a planted name through the header engine; the scanner must hold it."""
    manager, _ = tokens(sqlite_site)
    (source,) = pick(synth_site, tmp_path / "src", 0, {FileKind.SR: 1})
    ds = pydicom.dcmread(source)
    ds.PatientName, ds.PatientID = CANARY_NAME, CANARY_ID
    ds.IssuerOfPatientID = "ZZHOSPITAL"
    ds.StudyDescription = "Follow-up ZZTEST Canary"
    planted = tmp_path / "in" / "planted.dcm"
    planted.parent.mkdir()
    ds.save_as(planted)
    leaky = tmp_path / "leaky.yaml"
    leaky.write_text("name: leaky\nextends: limited-access\nkeep: [StudyDescription]\n")
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(deid(sqlite_site, [planted], out, "--profile", str(leaky), "--headers-only",
                     "--token", manager)) == 1  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    assert summary["written"] == 0
    (held,) = summary["held"]
    assert held["stage"] == "scan" and held["reason"].startswith("scan failed")
    assert written(out) == []
    copy = out / held["held_as"]
    reason = json.loads(copy.with_name(f"{copy.stem}.reason.json").read_text())
    assert reason["stage"] == "scan" and reason["findings"]
    assert all(set(f) >= {"rule", "shape", "tag_path"} for f in reason["findings"])
    text = json.dumps(reason) + "\n".join(str(p) for p in out.rglob("*"))
    for value in ("ZZTEST", "Canary", CANARY_ID, "planted"):
        assert value not in text
    assert stat.S_IMODE((out / "held").stat().st_mode) == 0o700
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600


@pytest.mark.integration
def test_pixels_with_burned_in_text_are_blanked_or_held_never_written_raw(
    sqlite_site: Site, synth_site: GeneratedSite, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Regression: deid wrote copies whose pixels were never read. The synthetic
    ultrasound carries the patient's name burned in."""
    manager, _ = tokens(sqlite_site)
    (us,) = pick(synth_site, tmp_path / "in", 0, {FileKind.US: 1})
    out = tmp_path / "out"
    capsys.readouterr()
    main(deid(sqlite_site, [us], out, "--token", manager))
    summary = json.loads(capsys.readouterr().out)
    source = pydicom.dcmread(us)
    for copy in written(out):
        ds = pydicom.dcmread(copy)
        assert ds.BurnedInAnnotation == "NO"
        assert ds.PixelData != source.PixelData  # blanked
    if not written(out):
        (held,) = summary["held"]
        assert held["stage"] in ("pixels", "scan")
    assert summary["pixels"].get("not-read", 0) == 0


@pytest.mark.integration
def test_deid_on_the_synthetic_site_is_the_whole_safe_path(
    sqlite_site: Site, synth_site: GeneratedSite, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manager, _ = tokens(sqlite_site)
    withdrawn = withdraw(sqlite_site, synth_site, 2, manager, tmp_path)
    inputs = pick(synth_site, tmp_path / "in", 0,
                  {FileKind.MAMMO: 1, FileKind.CT: 3, FileKind.SR: 1, FileKind.DOSE_SCREEN: 1,
                   FileKind.US: 1})  # fmt: skip
    inputs += pick(synth_site, tmp_path / "in", 1, {FileKind.MAMMO: 1, FileKind.CT: 2})
    inputs += pick(synth_site, tmp_path / "in", 2, {FileKind.CT: 2, FileKind.SR: 1})
    (tmp_path / "in" / "notes.txt").write_text("not dicom")
    out = tmp_path / "out"
    capsys.readouterr()
    code = main(deid(sqlite_site, [tmp_path / "in"], out, "--token", manager))
    summary = json.loads(capsys.readouterr().out)
    assert code == 1  # the text file and the withdrawn patient's files were skipped
    assert summary["files"] == len(inputs) + 1
    assert summary["written"] + len(summary["held"]) + len(summary["skipped"]) == summary["files"]
    reasons = {s["reason"] for s in summary["skipped"] if s["stage"] == "identity"}
    assert reasons == {"consent withdrawn"}
    assert len([s for s in summary["skipped"] if s["stage"] == "identity"]) == 3
    assert withdrawn not in {p.name for p in out.iterdir()}
    outputs = written(out)
    assert len(outputs) == summary["written"] >= 8
    # Every output passes the scanner on its own, at the publication level.
    assert main(["scan", *map(str, outputs), "--level", "publication"]) == 0
    # The held folder explains each held file.
    held = [p for p in (out / "held").rglob("*.dcm")] if (out / "held").exists() else []
    assert len(held) == len(summary["held"])
    for copy in held:
        reason = json.loads(copy.with_name(f"{copy.stem}.reason.json").read_text())
        assert reason["stage"] and reason["reason"]
    # No identifier in a name in OUT, nor in a reason file.
    values = set()
    for patient in synth_site.key.patients[:3]:
        values |= {patient.nhs_number, patient.family_name, patient.hospital_number}
    text = "\n".join(str(p.relative_to(out)) for p in out.rglob("*"))
    text += "".join(p.read_text() for p in out.rglob("*.reason.json"))
    for value in values:
        assert value not in text
    entries = Users(make_engine(sqlite_site.database_url)).audit.entries(5)
    assert any(e.action == "export-copies" and e.outcome.startswith("done") for e in entries)


@pytest.mark.integration
def test_a_head_ct_series_is_defaced_as_a_volume(
    sqlite_site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pydicom.uid import generate_uid

    from tests.pixels.head_phantom import head_phantom, slices

    manager, _ = tokens(sqlite_site)
    phantom = head_phantom("CT")
    folder = tmp_path / "in"
    folder.mkdir()
    study = generate_uid(entropy_srcs=["head study"])
    originals = {}
    for k, ds in enumerate(slices(phantom.values, "CT")):
        ds.StudyInstanceUID = study
        ds.PatientName, ds.PatientID, ds.IssuerOfPatientID = CANARY_NAME, CANARY_ID, "ZZHOSP"
        ds.save_as(folder / f"s{k:03d}.dcm", enforce_file_format=True)
        originals[int(ds.InstanceNumber)] = ds.PixelData
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(deid(sqlite_site, [folder], out, "--token", manager)) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["defaced_series"] == 1 and summary["written"] == len(originals)
    changed = 0
    for copy in written(out):
        ds = pydicom.dcmread(copy)
        assert ds.RecognizableVisualFeatures == "NO"
        changed += ds.PixelData != originals[int(ds.InstanceNumber)]
    assert changed > 0
    (review,) = (out / "held").rglob("face-review-*.png")  # it shows the face: kept in held/
    assert stat.S_IMODE(review.stat().st_mode) == 0o600
