"""The release gate in the pipeline: device trust, weakened profiles caught, reviews that
write rules, and ``dicomhaven release``; the ledger consistent at every step."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from dicomhaven.catalogue import (
    AuditEntry,
    DeviceState,
    LedgerObject,
    ScanFinding,
    make_engine,
    make_sessionmaker,
)
from dicomhaven.cli import main
from dicomhaven.ingest import import_paths
from dicomhaven.ledger import Ledger
from dicomhaven.scan import DeviceRegistry
from dicomhaven.scan._stage import reset_gate_services
from dicomhaven.site import Site, open_site
from dicomhaven.synth import FileKind
from tests.synth.generated import GeneratedSite

WEAKENED = {
    # Someone kept the accession number: the hospital's own identifier. (A private block
    # declared safe no longer leaks: the de-identifier cleans the text of kept private
    # values, and the scanner's own check of them is tests/scan/test_privacy_review.py.)
    "accession-kept": "extends: limited-access\nkeep: [AccessionNumber]\n",
    "institution-kept": "extends: limited-access\nkeep: [InstitutionName]\n",
}


@pytest.fixture(autouse=True)
def _fresh_gate_services() -> Iterator[None]:
    reset_gate_services()
    yield
    reset_gate_services()


def rows(site: Site) -> list[LedgerObject]:
    with make_sessionmaker(make_engine(site.database_url))() as session:
        return list(session.scalars(select(LedgerObject).order_by(LedgerObject.id)))


def batch(synth: GeneratedSite, kind: FileKind, patient: int, folder: Path) -> Path:
    """The files of one kind of one synthetic patient, copied to ``folder``."""
    folder.mkdir(parents=True)
    for record in synth.key.files_of_kind(kind):
        if record.patient == patient:
            shutil.copy(synth.root / record.path, folder / Path(record.path).name)
    assert any(folder.iterdir())
    return folder


def reconfigure(site: Site, **settings: str) -> Site:
    lines = [f"{key}: {json.dumps(value)}" for key, value in settings.items()]
    (site.root / "dicomhaven.yaml").write_text("\n".join(lines) + "\n")
    reset_gate_services()
    return open_site(site.root)


def weakened(site: Site, name: str) -> Site:
    profile = site.root / f"{name}.yaml"
    profile.write_text(WEAKENED[name])
    return reconfigure(site, deid_profile=str(profile))


def manager(site: Site, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["users", "add", "dana", "--role", "data-manager", "--site", str(site.root)]) == 0
    return capsys.readouterr().out.strip().splitlines()[-1]


def consistent(site: Site) -> bool:
    return Ledger(make_engine(site.database_url)).verify(site.intake).consistent


@pytest.mark.parametrize("name", sorted(WEAKENED))
def test_a_weakened_profile_is_caught_and_nothing_is_released(
    sqlite_site: Site, synth_site: GeneratedSite, tmp_path: Path, name: str
) -> None:
    site = weakened(sqlite_site, name)
    folder = batch(synth_site, FileKind.SR, 0, tmp_path / "sr")
    batch(synth_site, FileKind.CT, 0, folder / "ct")
    import_paths(site, [folder])
    objects = rows(site)
    assert objects and {o.status for o in objects} == {"quarantined"}
    assert all(o.reason.startswith("scan failed: ") for o in objects), objects[0].reason
    expected = "leak at" if name == "accession-kept" else "identifying-attribute at Institution"
    assert all(expected in o.reason for o in objects)
    assert not list((site.root / "store").rglob("*.dcm"))
    assert consistent(site)


def test_the_shipped_profile_passes_the_same_objects(
    sqlite_site: Site, synth_site: GeneratedSite, tmp_path: Path
) -> None:
    folder = batch(synth_site, FileKind.SR, 0, tmp_path / "sr")
    batch(synth_site, FileKind.CT, 0, folder / "ct")
    import_paths(sqlite_site, [folder])
    assert {o.status for o in rows(sqlite_site)} == {"released"}
    with make_sessionmaker(make_engine(sqlite_site.database_url))() as session:
        findings = list(session.scalars(select(ScanFinding)))
    reported = [(f.rule, f.tag_path) for f in findings if f.action != "ignore"]
    assert reported == []  # not even a report
    assert {f.rule for f in findings} <= {"dummy-values", "vocabulary"}  # suppressed, by rule


def test_a_new_device_is_held_until_trusted_and_a_failed_scan_revokes_its_trust(
    sqlite_site: Site,
    synth_site: GeneratedSite,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DICOMHAVEN_DEVICE_GATE", "true")
    site = open_site(sqlite_site.root)
    token = manager(site, capsys)
    root = str(site.root)

    # 1. A new CT scanner: its clean copies are held, nothing is in the store.
    import_paths(site, [batch(synth_site, FileKind.CT, 0, tmp_path / "b1")])
    first = rows(site)
    [device] = DeviceRegistry(make_engine(site.database_url)).all()
    assert device.state is DeviceState.UNTRUSTED and device.modality == "CT"
    assert {(o.status, o.reason) for o in first} == {
        ("quarantined", f"device {device.id} is untrusted: held until a data manager trusts it")
    }
    assert not list((site.root / "store").rglob("*.dcm"))
    assert main(["devices", "list", "--site", root, "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert (listed["id"], listed["held"]) == (device.id, len(first))

    # 2. A data manager reviews and trusts it; release moves the held copies to the store.
    renders = tmp_path / "renders"
    show = ["devices", "show", device.id, "--site", root, "--token", token, "--json"]
    assert main([*show, "--renders", str(renders)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["attributes"]["serial"] and shown["attributes"]["station"]  # from the vault
    assert shown["renders"] and all(Path(p).is_file() for p in shown["renders"])
    assert {p.parent for p in map(Path, shown["renders"])} == {renders}
    args = ["devices", "trust", device.id, "--reason", "5 copies reviewed", "--site", root]
    assert main([*args, "--token", token]) == 0
    capsys.readouterr()
    assert main(["release", "--site", root, "--token", token, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["outcomes"] == {"released": len(first)}
    assert {o.status for o in rows(site)} == {"released"}
    assert len(list((site.root / "store").rglob("*.dcm"))) == len(first)
    assert not list((site.root / "quarantine").rglob("*.dcm"))
    assert consistent(site)

    # 3. The profile is weakened; the next copy of the trusted device fails its scan: held,
    #    and the trust of the device's objects of that kind is revoked at once (audited once).
    site = weakened(site, "institution-kept")
    import_paths(site, [batch(synth_site, FileKind.CT, 1, tmp_path / "b2")])
    second = [o for o in rows(site) if o.id > first[-1].id]
    assert {o.status for o in second} == {"quarantined"}
    assert all(o.reason.startswith("scan failed: ") for o in second)
    registry = DeviceRegistry(make_engine(site.database_url))
    assert registry.get(device.id).state is DeviceState.TRUSTED  # its other kinds
    kinds = {r.kind for r in registry.revocations(device.id)}
    assert kinds == {  # the batch's original and derived slices: each kind revoked once
        "CT:CTImageStorage:ORIGINAL/PRIMARY/AXIAL", "CT:CTImageStorage:DERIVED/SECONDARY/AXIAL"
    }  # fmt: skip
    with make_sessionmaker(make_engine(site.database_url))() as session:
        actions = [e.action for e in session.scalars(select(AuditEntry))]
    assert actions.count("revoke-device-kind") == len(kinds)

    # 4. Profile mended: the device's next copies of that kind are clean but held.
    site = reconfigure(site, device_gate="true")
    import_paths(site, [batch(synth_site, FileKind.CT, 2, tmp_path / "b3")])
    third = [o for o in rows(site) if o.id > second[-1].id]
    assert {o.reason for o in third} == {
        f"device {device.id} kind {kind} is revoked: held until a data manager trusts it"
        for kind in kinds
    }
    assert consistent(site)


def test_a_review_decision_becomes_a_rule_and_release_applies_it(
    sqlite_site: Site,
    synth_site: GeneratedSite,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    site = weakened(sqlite_site, "institution-kept")
    token = manager(site, capsys)
    root = str(site.root)
    import_paths(site, [batch(synth_site, FileKind.CT, 0, tmp_path / "ct")])
    held = rows(site)
    assert {o.status for o in held} == {"quarantined"}

    assert main(["review", "--site", root, "--json"]) == 0
    groups = json.loads(capsys.readouterr().out)
    [group] = [g for g in groups if g["keyword"] == "InstitutionName"]
    assert (group["action"], group["rule"], group["objects"]) == (
        "fail", "identifying-attribute", len(held)
    )  # fmt: skip
    assert group["findings"] == len(held)  # one group, one decision, for every object
    assert groups[0]["risk"] >= groups[-1]["risk"]

    args = ["review", "decide", group["id"], "--allow", "--site", root, "--token", token]
    assert main([*args, "--reason", "a research hospital's name is public here"]) == 0
    capsys.readouterr()
    rules = (site.root / "rules" / "review.yaml").read_text()
    assert f"group {group['id']}" in rules and "action: ignore" in rules

    assert main(["release", "--site", root, "--token", token]) == 0
    assert {o.status for o in rows(site)} == {"released"}
    assert consistent(site)
    capsys.readouterr()

    # The rule can be traced to what it hid: the same group, now suppressed by it.
    assert main(["review", "--site", root, "--suppressed", "--json"]) == 0
    hidden = {g["rule"]: g for g in json.loads(capsys.readouterr().out)}
    decided = hidden[f"review-{group['id'][2:]}"]
    assert (decided["keyword"], decided["objects"]) == ("InstitutionName", len(held))
    with make_sessionmaker(make_engine(site.database_url))() as session:
        audited = [(e.action, e.target) for e in session.scalars(select(AuditEntry))]
    assert ("review-outputs", group["id"]) in audited


def test_findings_keep_no_value_from_the_files(
    sqlite_site: Site, synth_site: GeneratedSite, tmp_path: Path
) -> None:
    site = weakened(sqlite_site, "accession-kept")
    import_paths(site, [batch(synth_site, FileKind.SR, 0, tmp_path / "sr")])
    with make_sessionmaker(make_engine(site.database_url))() as session:
        findings = list(session.scalars(select(ScanFinding)))
    assert findings
    stored = "\n".join(f"{f.tag_path} {f.keyword} {f.shape} {f.rule}" for f in findings)
    planted = {p.value for p in synth_site.key.plants if p.patient == 0 and len(p.value) >= 4}
    assert [v for v in planted if v in stored] == []
