"""Trust by kind of object: a failure on one kind of a device's objects revokes that kind
only, and trust decisions about many devices at once (issue 18, items 2 and 5)."""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from sqlalchemy import select

from dicomhaven.access import AccessDenied
from dicomhaven.catalogue import (
    AuditEntry,
    DeviceState,
    LedgerObject,
    make_engine,
    make_sessionmaker,
)
from dicomhaven.cli import main
from dicomhaven.ingest import import_paths
from dicomhaven.ledger import Ledger
from dicomhaven.scan._devices import (
    DeviceIdentity,
    DeviceRegistry,
    DeviceSelection,
    object_kind,
)
from dicomhaven.scan._stage import gate_services, reset_gate_services
from dicomhaven.services import User, devices
from dicomhaven.site import Site, open_site
from dicomhaven.synth import FileKind
from tests.synth.generated import GeneratedSite

DOSE_KIND = "CT:SecondaryCaptureImageStorage:DERIVED/SECONDARY/SCREEN_SAVE"

#: A site rule that fails every dose screen capture (only they have a Conversion Type):
#: a stand-in for a de-identifier leak that repeats in every file of one kind.
DOSE_RULE = """\
rules:
  - id: dose-conversion
    detector: identifying-attribute
    keyword: [ConversionType]
    action: fail
    why: a stand-in leak in every dose screen capture
watch: [ConversionType]
"""


@pytest.fixture(autouse=True)
def _fresh_gate_services() -> Iterator[None]:
    reset_gate_services()
    yield
    reset_gate_services()


def _header(**values: object) -> Dataset:
    ds = Dataset()
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def test_a_kind_is_vocabulary_only() -> None:
    ct = _header(
        Modality="CT", SOPClassUID="1.2.840.10008.5.1.4.1.1.2",
        ImageType=["ORIGINAL", "PRIMARY", "AXIAL", "ZZTEST"],
    )  # fmt: skip
    assert object_kind(ct) == "CT:CTImageStorage:ORIGINAL/PRIMARY/AXIAL"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the values that are not CS
        odd = _header(
            Modality="ct", SOPClassUID="1.2.826.0.1.3680043.9.9999.1",
            ImageType=["ZZTEST^CANARY", "PRIMARY", "ZZCANARY"],
        )  # fmt: skip
    assert object_kind(odd) == "CT:private:OTHER/PRIMARY/OTHER"
    assert object_kind(Dataset()) == "-:-:-"


def rows(site: Site) -> list[LedgerObject]:
    with make_sessionmaker(make_engine(site.database_url))() as session:
        return list(session.scalars(select(LedgerObject).order_by(LedgerObject.id)))


def audit(site: Site) -> list[AuditEntry]:
    with make_sessionmaker(make_engine(site.database_url))() as session:
        return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def manager(site: Site, capsys: pytest.CaptureFixture[str], name: str = "dana") -> str:
    assert main(["users", "add", name, "--role", "data-manager", "--site", str(site.root)]) == 0
    return capsys.readouterr().out.strip().splitlines()[-1]


def researcher(site: Site, token: str, capsys: pytest.CaptureFixture[str]) -> str:
    args = ["users", "add", "rita", "--role", "researcher", "--site", str(site.root)]
    assert main([*args, "--token", token]) == 0
    return capsys.readouterr().out.strip().splitlines()[-1]


def _name(path: str) -> str:
    """A file's name with its series' (every series numbers its images from IM0001)."""
    return f"{Path(path).parent.name}-{Path(path).name}"


def ct_and_dose(synth: GeneratedSite, patient: int, folder: Path) -> tuple[int, int]:
    """One patient's CT slices and dose screen captures (header only: no pixels to read,
    so no OCR), copied to ``folder``; how many of each."""
    folder.mkdir(parents=True)
    slices = [r for r in synth.key.files_of_kind(FileKind.CT) if r.patient == patient]
    doses = [r for r in synth.key.files_of_kind(FileKind.DOSE_SCREEN) if r.patient == patient]
    for record in slices:
        shutil.copy(synth.root / record.path, folder / _name(record.path))
    for record in doses:
        dataset = pydicom.dcmread(synth.root / record.path)
        del dataset.PixelData
        dataset.save_as(folder / _name(record.path))
    assert slices and doses
    return len(slices), len(doses)


@pytest.mark.integration
def test_a_failure_on_one_kind_revokes_that_kind_only(
    sqlite_site: Site,
    synth_site: GeneratedSite,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DICOMHAVEN_DEVICE_GATE", "true")
    (sqlite_site.root / "dose-rule.yaml").write_text(DOSE_RULE)
    (sqlite_site.root / "dicomhaven.yaml").write_text('scan_rules: ["dose-rule.yaml"]\n')
    site = open_site(sqlite_site.root)
    root = str(site.root)
    token = manager(site, capsys)

    # The CT scanner (which also saves the dose screens) has been reviewed and is trusted.
    folder = tmp_path / "p0"
    slices, doses = ct_and_dose(synth_site, 0, folder)
    registry = DeviceRegistry(make_engine(site.database_url))
    one_slice = pydicom.dcmread(next(folder.glob("*.dcm")), stop_before_pixels=True)
    device = registry.register(DeviceIdentity.of(one_slice), site.site_key()).id
    trust = ["devices", "trust", device, "--reason", "sample reviewed", "--site", root]
    assert main([*trust, "--token", token]) == 0
    capsys.readouterr()

    # 1. Two patients' CT slices and dose screens: the dose screens fail their scan; only
    #    their kind is revoked (once, audited once), the slices are released.
    more_slices, more_doses = ct_and_dose(synth_site, 1, tmp_path / "p1")
    import_paths(site, [folder, tmp_path / "p1"])
    objects = rows(site)
    released = [o for o in objects if o.status == "released"]
    held = [o for o in objects if o.status == "quarantined"]
    assert len(released) == slices + more_slices
    assert len(held) == doses + more_doses
    assert all(o.reason == "scan failed: dose-conversion at ConversionType" for o in held)
    assert registry.get(device).state is DeviceState.TRUSTED  # the device, as a whole
    # (a caller that gives no kind, such as the held-head defacing, gets it from intake)
    assert {gate_services(site.root).kind_of(o.id) for o in held} == {DOSE_KIND}
    [revoked] = registry.revocations(device)
    assert revoked.kind == DOSE_KIND and "dose-conversion" in revoked.cause
    revocations = [e for e in audit(site) if e.action == "revoke-device-kind"]
    assert [(e.actor, e.target) for e in revocations] == [("dicomhaven", f"{device} {DOSE_KIND}")]

    # ... reported once: one review group for every held copy, the one the revocation names.
    assert main(["review", "--site", root, "--json"]) == 0
    [group] = [g for g in json.loads(capsys.readouterr().out) if g["action"] == "fail"]
    assert (group["rule"], group["objects"]) == ("dose-conversion", len(held))
    assert revoked.group_id == group["id"] and group["id"] in revoked.cause

    # 2. 'devices show' and 'devices list' name the revoked kind, its cause and count.
    show = ["devices", "show", device, "--site", root, "--token", token, "--json"]
    assert main(show) == 0
    [kind] = json.loads(capsys.readouterr().out)["revoked_kinds"]
    assert (kind["kind"], kind["group"], kind["held"]) == (DOSE_KIND, group["id"], len(held))
    assert "dose-conversion" in kind["cause"]
    assert main(["devices", "list", "--site", root, "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert listed["state"] == "trusted" and listed["revoked_kinds"] == [kind]
    assert main(["devices", "list", "--site", root]) == 0
    assert f"kind {DOSE_KIND} revoked: " in capsys.readouterr().out

    # 3. The next CT slices of the device are still released.
    before = len(objects)
    batch = tmp_path / "p2"
    batch.mkdir()
    for record in synth_site.key.files_of_kind(FileKind.CT):
        if record.patient == 2:
            shutil.copy(synth_site.root / record.path, batch / _name(record.path))
    import_paths(site, [batch])
    assert {o.status for o in rows(site)[before:]} == {"released"}

    # 4. The cause is fixed (a review decision); the kind stays held until it is trusted
    #    again, and then release lets it go.
    decide = ["review", "decide", group["id"], "--allow", "--site", root, "--token", token]
    assert main([*decide, "--reason", "the conversion type names no one"]) == 0
    assert main(["release", "--site", root, "--token", token]) == 0
    still = {o.reason for o in rows(site) if o.status == "quarantined"}
    assert still == {f"device {device} kind {DOSE_KIND} is revoked: held until a data manager "
                     "trusts it"}  # fmt: skip
    again = [*trust, "--kind", DOSE_KIND, "--token", token]
    assert main(again) == 0
    assert main(["release", "--site", root, "--token", token, "--json"]) == 0
    capsys.readouterr()
    assert {o.status for o in rows(site)} == {"released"}
    assert registry.revocations(device) == []
    assert Ledger(make_engine(site.database_url)).verify(site.intake).consistent


def _registered(site: Site) -> dict[str, str]:
    """Three Northwind scanners (two models) and one other device, entered untrusted."""
    registry = DeviceRegistry(make_engine(site.database_url))
    devices = {
        "nw-a": ("Northwind", "Aurora 64", "VX12"),
        "nw-b": ("Northwind", "Aurora 64", "VX13"),
        "nw-c": ("Northwind", "Borealis", "VX12"),
        "other": ("Sonaris", "Vista U7", "7.0.3"),
    }
    ids = {}
    for name, (manufacturer, model, software) in devices.items():
        identity = DeviceIdentity(manufacturer, model, f"SN-{name}", "ZZSTATION", software)
        ids[name] = registry.register(identity, site.site_key()).id
    return ids


def test_bulk_trust_by_manufacturer_is_one_audited_decision(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    token = manager(site, capsys)
    ids = _registered(site)
    northwind = sorted(ids[n] for n in ("nw-a", "nw-b", "nw-c"))
    before = len(audit(site))
    args = ["devices", "trust", "--manufacturer", "Northwind", "--reason", "fleet reviewed"]
    assert main([*args, "--site", str(site.root), "--token", token, "--json"]) == 0
    change = json.loads(capsys.readouterr().out)
    assert (sorted(change["devices"]), change["count"]) == (northwind, 3)
    registry = DeviceRegistry(make_engine(site.database_url))
    states = {d.id: d.state for d in registry.all()}
    assert {states[i] for i in northwind} == {DeviceState.TRUSTED}
    assert states[ids["other"]] is DeviceState.UNTRUSTED
    [entry] = audit(site)[before:]  # one decision, audited once
    assert (entry.actor, entry.outcome, entry.target) == (
        "dana", "allowed", "3 devices (manufacturer=Northwind)"
    )  # fmt: skip
    assert all(i in entry.reason for i in northwind) and "3 devices" in entry.reason
    assert ids["other"] not in entry.reason

    # Narrowed by model and software; and the same for revoke.
    revoke = ["devices", "revoke", "--manufacturer", "Northwind", "--model", "Aurora 64"]
    revoke += ["--software", "VX13", "--reason", "a leak seen", "--site", str(site.root)]
    assert main([*revoke, "--token", token, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["devices"] == [ids["nw-b"]]
    assert registry.get(ids["nw-b"]).state is DeviceState.REVOKED
    assert registry.get(ids["nw-a"]).state is DeviceState.TRUSTED


def test_a_bulk_call_that_matches_nothing_or_selects_nothing_is_refused(
    sqlite_site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    token = manager(sqlite_site, capsys)
    _registered(sqlite_site)
    base = ["devices", "trust", "--reason", "r", "--site", str(sqlite_site.root)]
    assert main([*base, "--manufacturer", "Nobody", "--token", token]) == 1
    assert "no device matches manufacturer=Nobody" in capsys.readouterr().err
    assert main([*base, "--token", token]) == 2  # no selector: never every device by accident
    assert "--all" in capsys.readouterr().err
    registry = DeviceRegistry(make_engine(sqlite_site.database_url))
    assert {d.state for d in registry.all()} == {DeviceState.UNTRUSTED}
    assert main([*base, "--all", "--token", token]) == 0  # explicitly
    assert {d.state for d in registry.all()} == {DeviceState.TRUSTED}


def test_a_researcher_may_not_trust_devices_in_bulk(
    sqlite_site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    token = researcher(sqlite_site, manager(sqlite_site, capsys), capsys)
    _registered(sqlite_site)
    args = ["devices", "trust", "--manufacturer", "Northwind", "--reason", "r"]
    assert main([*args, "--site", str(sqlite_site.root), "--token", token]) == 1
    assert "may not review-outputs" in capsys.readouterr().err
    engine = make_engine(sqlite_site.database_url)
    # Decided in the core, whatever the face: the service refuses the same way.
    with pytest.raises(AccessDenied):
        devices.trust(User(token), sqlite_site, DeviceSelection(manufacturer="Northwind"), "r")
    assert {d.state for d in DeviceRegistry(engine).all()} == {DeviceState.UNTRUSTED}
    refused = [e for e in audit(sqlite_site) if e.outcome == "refused"]
    assert len(refused) == 2 and {e.actor for e in refused} == {"rita"}


def test_trusting_a_device_trusts_every_kind_and_a_kind_needs_a_trusted_device(
    sqlite_site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    dana = User(manager(sqlite_site, capsys))
    ids = _registered(sqlite_site)
    engine = make_engine(sqlite_site.database_url)
    registry = DeviceRegistry(engine)
    device = ids["nw-a"]
    one = DeviceSelection(device=device)
    with pytest.raises(Exception, match="trust the device"):
        devices.trust(dana, sqlite_site, one, "r", kind=DOSE_KIND)
    devices.trust(dana, sqlite_site, one, "reviewed")
    for kind in (DOSE_KIND, "CT:CTImageStorage:ORIGINAL/PRIMARY/LOCALIZER"):
        devices.revoke(dana, sqlite_site, one, "a leak", kind=kind)
    assert len(registry.revocations(device)) == 2
    assert registry.get(device).state is DeviceState.TRUSTED
    change = devices.trust(dana, sqlite_site, one, "fixed", kind=DOSE_KIND)
    assert change.changed == (device,)
    assert [r.kind for r in registry.revocations(device)] == [
        "CT:CTImageStorage:ORIGINAL/PRIMARY/LOCALIZER"
    ]
    assert devices.trust(dana, sqlite_site, one, "all").changed == (device,)
    assert registry.revocations(device) == []
