"""The device registry: which imaging devices are trusted to have their outputs released.

A device is what made an image: Manufacturer, Model, Device Serial Number, Station Name and
Software Versions. Data from a new device is not understood yet (where does it hide names?
what does its private block hold?), so a new device starts **untrusted** and its outputs
are held until a data manager has looked at a sample (scan report and pixel renders) and
trusted it. A scan that fails on a trusted device's output **revokes** the trust at once,
so the next outputs are held too.

The catalogue keeps the device's id (a keyed hash of the five attributes), its
manufacturer, model and software (shown in reviews), and its state; the serial number and
station name are sealed in the vault.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydicom.dataset import Dataset
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from dicomhaven.catalogue import make_sessionmaker
from dicomhaven.catalogue._scan_models import Device, DeviceState
from dicomhaven.errors import ConfigError

if TYPE_CHECKING:
    from dicomhaven.identity import Vault

__all__ = ["SYSTEM_ACTOR", "DeviceIdentity", "DeviceRecord", "DeviceRegistry"]

SYSTEM_ACTOR = "dicomhaven"  # who changes a state when no person did (a failed scan)


def _text(header: Dataset, keyword: str) -> str:
    value = header.get(keyword, "")
    if value is None:
        return ""
    if not isinstance(value, str) and hasattr(value, "__iter__"):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


@dataclass(frozen=True)
class DeviceIdentity:
    manufacturer: str
    model: str
    serial: str
    station: str
    software: str
    modality: str = ""

    @classmethod
    def of(cls, header: Dataset) -> DeviceIdentity:
        """The device that made an object, from its original header."""
        return cls(
            manufacturer=_text(header, "Manufacturer"),
            model=_text(header, "ManufacturerModelName"),
            serial=_text(header, "DeviceSerialNumber"),
            station=_text(header, "StationName"),
            software=_text(header, "SoftwareVersions"),
            modality=_text(header, "Modality"),
        )

    def device_id(self, site_key: bytes) -> str:
        message = "\x1f".join(
            ("device", self.manufacturer, self.model, self.serial, self.station, self.software)
        )
        return "dev-" + hmac.new(site_key, message.encode(), hashlib.sha256).hexdigest()[:16]

    def sealed_attributes(self) -> dict[str, str]:
        return {
            "manufacturer": self.manufacturer,
            "model": self.model,
            "serial": self.serial,
            "station": self.station,
            "software": self.software,
        }


@dataclass(frozen=True)
class DeviceRecord:
    id: str
    manufacturer: str
    model: str
    software: str
    modality: str
    state: DeviceState
    first_seen: datetime
    changed_at: datetime
    changed_by: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "manufacturer": self.manufacturer,
            "model": self.model,
            "software": self.software,
            "modality": self.modality,
            "state": self.state.value,
            "first_seen": self.first_seen.isoformat(),
            "changed_at": self.changed_at.isoformat(),
            "changed_by": self.changed_by,
            "reason": self.reason,
        }


def _record(row: Device) -> DeviceRecord:
    return DeviceRecord(
        row.id, row.manufacturer, row.model, row.software, row.modality,
        DeviceState(row.state), row.first_seen, row.changed_at, row.changed_by, row.reason,
    )  # fmt: skip


def _clip(text: str) -> str:
    return text[:64]


class DeviceRegistry:
    def __init__(self, engine: Engine, vault: Vault | None = None) -> None:
        self._sessions: sessionmaker[Session] = make_sessionmaker(engine)
        self._vault = vault

    def register(self, identity: DeviceIdentity, site_key: bytes) -> DeviceRecord:
        """The device's record, entered as untrusted the first time it is seen."""
        device_id = identity.device_id(site_key)
        with self._sessions() as session:
            row = session.get(Device, device_id)
            if row is not None:
                return _record(row)
        if self._vault is not None:
            self._vault.remember_device(device_id, identity.sealed_attributes())
        now = datetime.now(UTC)
        try:
            with self._sessions.begin() as session:
                session.add(
                    Device(
                        id=device_id, manufacturer=_clip(identity.manufacturer),
                        model=_clip(identity.model), software=_clip(identity.software),
                        modality=identity.modality[:16], state=DeviceState.UNTRUSTED.value,
                        first_seen=now, changed_at=now, changed_by=SYSTEM_ACTOR,
                        reason="new device: its outputs are held until it is trusted",
                    )
                )  # fmt: skip
        except IntegrityError:
            pass  # another worker registered it first
        return self.get(device_id)

    def get(self, device_id: str) -> DeviceRecord:
        with self._sessions() as session:
            row = session.get(Device, device_id)
            if row is None:
                raise ConfigError(f"no device {device_id}; see 'dicomhaven devices list'")
            return _record(row)

    def state(self, device_id: str) -> DeviceState:
        return self.get(device_id).state

    def all(self) -> list[DeviceRecord]:
        with self._sessions() as session:
            rows = session.scalars(select(Device).order_by(Device.first_seen, Device.id))
            return [_record(r) for r in rows]

    def count(self) -> int:
        with self._sessions() as session:
            return int(session.scalar(select(func.count()).select_from(Device)) or 0)

    def set_state(self, device_id: str, state: DeviceState, *, by: str, reason: str) -> bool:
        """Change a device's state; False when it already was in that state."""
        with self._sessions.begin() as session:
            row = session.get(Device, device_id)
            if row is None:
                raise ConfigError(f"no device {device_id}; see 'dicomhaven devices list'")
            if row.state == state.value:
                return False
            row.state = state.value
            row.changed_at = datetime.now(UTC)
            row.changed_by = by[:64]
            row.reason = reason
            return True

    def attributes(self, device_id: str) -> dict[str, str]:
        """The sealed attributes (serial number, station): for data managers only."""
        if self._vault is None:
            return {}
        return self._vault.device_attributes(device_id)
