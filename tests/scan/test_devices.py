"""The device registry: one record per device, identifying attributes sealed in the vault."""

from __future__ import annotations

from pydicom.dataset import Dataset

from dicomhaven.catalogue import DeviceState, make_engine
from dicomhaven.scan import DeviceIdentity, DeviceRegistry
from dicomhaven.site import Site, open_site, rotate_vault_key

SERIAL = "SN-77123-QX"
STATION = "RADIOLOGY-CTW"


def header(serial: str = SERIAL) -> Dataset:
    ds = Dataset()
    ds.Manufacturer = "Northwind"
    ds.ManufacturerModelName = "Aurora 64"
    ds.DeviceSerialNumber = serial
    ds.StationName = STATION
    ds.SoftwareVersions = ["VX12", "2.1"]
    ds.Modality = "CT"
    return ds


def test_a_device_is_registered_once_untrusted_with_its_serial_sealed(sqlite_site: Site) -> None:
    registry = DeviceRegistry(make_engine(sqlite_site.database_url), sqlite_site.open_vault())
    key = sqlite_site.site_key()
    first = registry.register(DeviceIdentity.of(header()), key)
    again = registry.register(DeviceIdentity.of(header()), key)
    other = registry.register(DeviceIdentity.of(header(serial="SN-2")), key)
    assert first == again and first.id != other.id
    assert first.state is DeviceState.UNTRUSTED
    assert (first.manufacturer, first.model, first.software) == (
        "Northwind",
        "Aurora 64",
        "VX12\\2.1",
    )
    assert registry.attributes(first.id)["serial"] == SERIAL
    for database in (sqlite_site.root / "catalogue", sqlite_site.root / "vault"):
        for path in database.glob("*.db"):
            assert (
                SERIAL.encode() not in path.read_bytes()
                and STATION.encode() not in path.read_bytes()
            )


def test_sealed_attributes_survive_a_vault_key_rotation(sqlite_site: Site) -> None:
    registry = DeviceRegistry(make_engine(sqlite_site.database_url), sqlite_site.open_vault())
    device = registry.register(DeviceIdentity.of(header()), sqlite_site.site_key())
    assert rotate_vault_key(sqlite_site) >= 1
    site = open_site(sqlite_site.root)
    again = DeviceRegistry(make_engine(site.database_url), site.open_vault())
    assert again.attributes(device.id)["station"] == STATION


def test_state_changes_say_whether_anything_changed(sqlite_site: Site) -> None:
    registry = DeviceRegistry(make_engine(sqlite_site.database_url))
    device = registry.register(DeviceIdentity.of(header()), sqlite_site.site_key())
    assert registry.set_state(device.id, DeviceState.TRUSTED, by="dana", reason="reviewed")
    assert not registry.set_state(device.id, DeviceState.TRUSTED, by="dana", reason="again")
    record = registry.get(device.id)
    assert (record.state, record.changed_by, record.reason) == (
        DeviceState.TRUSTED,
        "dana",
        "reviewed",
    )
