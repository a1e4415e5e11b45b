"""Canaries where the outside review found leaks (issue 12): short name parts, the preamble,
the file meta's network elements, code meanings, URLs, and a padded hospital number. Each
is planted in real synthetic CT slices, which go through both paths to an output that a
researcher may see: ``dicomhaven deid --profile publication`` and the pipeline's store.
Nothing planted may survive, and the independent scanner must pass every output."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from dicomhaven.access import Role, Users
from dicomhaven.catalogue import make_engine
from dicomhaven.cli import main
from dicomhaven.site import Site, init_site
from dicomhaven.synth import FileKind
from tests.synth.generated import GeneratedSite

HOSPITAL_NUMBER = "ZZ44123456"
PADDED_ID = HOSPITAL_NUMBER + "\x00junk"
HOST = "pacs01.zzcanary-hospital.nhs.uk"
ADDRESS = "192.0.2.55"  # TEST-NET-1: documentation only, never routed
PREAMBLE = f"ZZCANARY preamble LI NA {HOSPITAL_NUMBER}".encode().ljust(128, b"\x00")
#: Long canaries: none may appear anywhere in an output's bytes.
LONG = (HOSPITAL_NUMBER, HOST, ADDRESS, "ZZCANARY", "zzcanary")


def plant(synth: GeneratedSite, into: Path, count: int = 3) -> list[Path]:
    """``count`` CT slices of one synthetic patient, with the review's canaries planted."""
    records = [r for r in synth.key.files if r.kind is FileKind.CT and r.patient == 1][:count]
    assert len(records) == count
    into.mkdir(parents=True)
    files = []
    for index, record in enumerate(records):
        ds = pydicom.dcmread(synth.root / record.path)
        ds.preamble = PREAMBLE
        ds.OtherPatientNames = "LI^NA"  # two-letter name parts of the patient's own name
        ds.PatientID = PADDED_ID
        ds.IssuerOfPatientID = "ZZ HOSPITAL"
        ds.StudyDescription = f"review {HOSPITAL_NUMBER} for Li Na"
        ds.file_meta.SourcePresentationAddress = f"dicom://{HOST}:104"
        ds.file_meta.SendingPresentationAddress = f"dicom://{ADDRESS}:11112"
        ds.file_meta.ImplementationVersionName = "ZZCANARYPACS"
        code = Dataset()
        code.CodeValue = "ZZX1"
        code.CodingSchemeDesignator = "99ZZLOCAL"
        code.CodeMeaning = f"CT head for Li Na {HOSPITAL_NUMBER}"
        ds.ProcedureCodeSequence = Sequence([code])
        ds.RetrieveURL = f"https://{HOST}/wado?patientID={HOSPITAL_NUMBER}&requestType=WADO"
        target = into / f"planted-{index}.dcm"
        ds.save_as(target)
        files.append(target)
    return files


def survivors(path: Path) -> list[str]:
    """What of the canaries an output still holds (by name of the canary, never printed
    from the file)."""
    data = path.read_bytes()
    found = [c for c in LONG if c.encode() in data]
    if data[:128] != b"\x00" * 128:
        found.append("preamble")
    ds = pydicom.dcmread(path)
    texts = [
        str(e.value)
        for e in ds.iterall()
        if e.VR in ("LO", "SH", "ST", "LT", "UT", "PN", "UC", "UR")
    ]
    texts += [str(e.value) for e in ds.file_meta]
    if any(re.search(r"\b(LI|NA)\b", t, re.IGNORECASE) for t in texts):
        found.append("short name part")
    for keyword in ("SourcePresentationAddress", "SendingPresentationAddress"):
        if keyword in ds.file_meta:
            found.append(keyword)
    return found


def manager_token(site: Site) -> str:
    return Users(make_engine(site.database_url)).add("dana", Role.DATA_MANAGER, by="(test)")


@pytest.mark.integration
def test_deid_to_publication_leaves_no_canary(
    synth_site: GeneratedSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DICOMHAVEN_DATABASE_URL", raising=False)
    site = init_site(tmp_path / "site")
    files = plant(synth_site, tmp_path / "in")
    out = tmp_path / "out"
    code = main(["deid", str(tmp_path / "in"), str(out), "--profile", "publication",
                 "--site", str(site.root), "--token", manager_token(site)])  # fmt: skip
    assert code in (0, 1)
    written = [p for p in out.rglob("*.dcm") if "held" not in p.relative_to(out).parts]
    assert len(written) == len(files), "the planted slices are made safe, not given up"
    assert {str(p): survivors(p) for p in written} == {str(p): [] for p in written}
    assert main(["scan", *map(str, written), "--level", "publication"]) == 0


@pytest.mark.integration
def test_the_pipeline_releases_no_canary(
    synth_site: GeneratedSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DICOMHAVEN_DATABASE_URL", raising=False)
    site = init_site(tmp_path / "site")
    plant(synth_site, tmp_path / "in")
    assert main(["import", "--site", str(site.root), str(tmp_path / "in")]) in (0, 1)
    released = sorted((site.root / "store").rglob("*.dcm"))
    assert released, "the slices are released once clean (the device gate is off in tests)"
    assert {str(p): survivors(p) for p in released} == {str(p): [] for p in released}
    copies = tmp_path / "copies"
    shutil.copytree(site.root / "store", copies)
    assert main(["scan", str(copies), "--site", str(site.root)]) == 0
