"""The identity stage in a real import: pseudonyms per patient, consent, bad identifiers."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import select

from dicomhaven.catalogue import ConsentStatus, LedgerObject, make_engine, make_sessionmaker
from dicomhaven.consent import ConsentRegister
from dicomhaven.deid import RELEASED_REASON
from dicomhaven.identity import PatientIdentifier, Scheme
from dicomhaven.ingest import import_paths
from dicomhaven.site import Site
from tests.synth.generated import GeneratedSite


def objects(site: Site) -> list[LedgerObject]:
    with make_sessionmaker(make_engine(site.database_url))() as session:
        return list(session.scalars(select(LedgerObject).order_by(LedgerObject.id)))


def key_of(site: Site) -> dict[str, LedgerObject]:
    return {o.sha256: o for o in objects(site)}


def test_every_patient_gets_one_pseudonym(site: Site, synth_patients: GeneratedSite) -> None:
    import hashlib

    import_paths(site, [synth_patients.root / "export"])
    by_sha = key_of(site)
    pseudonym_of_patient: dict[int, set[str]] = {}
    for record in synth_patients.key.files:
        data = (synth_patients.root / record.path).read_bytes()
        obj = by_sha[hashlib.sha256(data).hexdigest()]
        # Images end as the pixel stage decides (see tests/pixels/test_stage.py); a report's
        # de-identified headers are all there is, so it is released.
        assert obj.status in ("released", "quarantined") and obj.reason
        if b"\xe0\x7f\x10\x00" not in data:
            assert obj.status == "released" and obj.reason == RELEASED_REASON
        assert obj.pseudonym
        pseudonym_of_patient.setdefault(record.patient, set()).add(obj.pseudonym)
    assert all(len(p) == 1 for p in pseudonym_of_patient.values())
    distinct = {next(iter(p)) for p in pseudonym_of_patient.values()}
    assert len(distinct) == len(synth_patients.key.patients)
    vault = site.open_vault()
    for patient in synth_patients.key.patients:
        (pseudonym,) = pseudonym_of_patient[patient.index]
        assert vault.find(PatientIdentifier(Scheme.NHS, patient.nhs_number)) == pseudonym
        assert (
            vault.find(PatientIdentifier(Scheme.LOCAL, patient.hospital_number, "ZZ9")) == pseudonym
        )


def rewrite(source: Path, target: Path, **changes: object) -> Path:
    ds = pydicom.dcmread(source)
    for keyword, value in changes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    target.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(target)
    return target


def first_file(synth_site: GeneratedSite, patient: int = 0) -> Path:
    record = next(f for f in synth_site.key.files if f.patient == patient)
    return synth_site.root / record.path


def test_another_hospital_same_nhs_number_same_pseudonym(
    sqlite_site: Site, synth_site: GeneratedSite, tmp_path: Path
) -> None:
    original = first_file(synth_site)
    import_paths(sqlite_site, [original])
    other = rewrite(
        original,
        tmp_path / "other" / "a.dcm",
        SOPInstanceUID=pydicom.uid.generate_uid(),
        PatientID="H-000123",
        IssuerOfPatientID="OTHER HOSPITAL",
    )
    import_paths(sqlite_site, [other])
    first, second = objects(sqlite_site)
    assert first.pseudonym == second.pseudonym


def test_withdrawn_patient_is_quarantined(sqlite_site: Site, synth_patients: GeneratedSite) -> None:
    patient = synth_patients.key.patients[1]
    pseudonym = sqlite_site.open_vault().resolve(
        [PatientIdentifier(Scheme.NHS, patient.nhs_number)]
    )
    ConsentRegister(make_engine(sqlite_site.database_url)).record(
        [pseudonym], ConsentStatus.WITHDRAWN, source="test", actor="tester"
    )
    import_paths(sqlite_site, [synth_patients.root / "export"])
    withdrawn = [o for o in objects(sqlite_site) if o.pseudonym == pseudonym]
    assert withdrawn and all(o.reason == "consent withdrawn" for o in withdrawn)
    others = [o for o in objects(sqlite_site) if o.pseudonym != pseudonym]
    assert others and all(o.reason and o.reason != "consent withdrawn" for o in others)


def test_invalid_nhs_number_is_quarantined_without_quoting_it(
    sqlite_site: Site, synth_site: GeneratedSite, tmp_path: Path
) -> None:
    source = first_file(synth_site)
    ds = pydicom.dcmread(source)
    item = next(i for i in ds.OtherPatientIDsSequence if i.IssuerOfPatientID == "NHS")
    good = item.PatientID
    item.PatientID = good[:-1] + str((int(good[-1]) + 1) % 10)
    target = tmp_path / "bad" / "x.dcm"
    target.parent.mkdir()
    ds.save_as(target)
    import_paths(sqlite_site, [target])
    (obj,) = objects(sqlite_site)
    assert obj.status == "quarantined"
    assert obj.reason.startswith("invalid patient identifier: Other Patient IDs Sequence")
    assert "check digit" in obj.reason
    assert item.PatientID not in obj.reason and good not in obj.reason
    assert obj.pseudonym is None


def test_object_without_patient_id_is_quarantined(
    sqlite_site: Site, synth_site: GeneratedSite, tmp_path: Path
) -> None:
    target = rewrite(
        first_file(synth_site),
        tmp_path / "anon" / "x.dcm",
        PatientID="",
        OtherPatientIDsSequence=None,
    )
    import_paths(sqlite_site, [target])
    (obj,) = objects(sqlite_site)
    assert obj.reason.startswith("no patient identifier")


def test_pydicom_files_without_issuer_are_local_numbers(sqlite_site: Site, tmp_path: Path) -> None:
    from tests.corpora import pydicom_file

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm"):
        shutil.copy(pydicom_file(name), folder / name)
    import_paths(sqlite_site, [folder])
    assert all(o.pseudonym for o in objects(sqlite_site))
    vault = sqlite_site.open_vault()
    assert vault.find(PatientIdentifier(Scheme.LOCAL, "1CT1", "UNSPECIFIED")) is not None


@pytest.mark.integration
def test_two_workers_give_each_patient_one_pseudonym(
    sqlite_site: Site, synth_patients: GeneratedSite
) -> None:
    import_paths(sqlite_site, [synth_patients.root / "export"], workers=2)
    pseudonyms = {o.pseudonym for o in objects(sqlite_site)}
    assert len(pseudonyms) == len(synth_patients.key.patients)
    assert sqlite_site.open_vault().patient_count() == len(synth_patients.key.patients)
