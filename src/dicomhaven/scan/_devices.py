"""The device registry: which imaging devices are trusted to have their outputs released.

A device is what made an image: Manufacturer, Model, Device Serial Number, Station Name and
Software Versions. Data from a new device is not understood yet (where does it hide names?
what does its private block hold?), so a new device starts **untrusted** and its outputs
are held until a data manager has looked at a sample (scan report and pixel renders) and
trusted it.

Trust is revoked **by kind** of object (:func:`object_kind`: modality, SOP Class, Image
Type): a scan that fails on a trusted device's output revokes the trust of that device's
outputs of that kind at once, so its next outputs of the kind are held too, while its other
kinds stay trusted and keep being released. A data manager trusts a kind again, or the
whole device (every kind), and can trust or revoke many devices in one decision
(``dicomhaven.services.devices``: by manufacturer, model and software).

The catalogue keeps the device's id (a keyed hash of the five attributes), its
manufacturer, model and software (shown in reviews), and its state; the serial number and
station name are sealed in the vault.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydicom.dataset import Dataset
from pydicom.uid import UID
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from dicomhaven.catalogue import make_sessionmaker
from dicomhaven.catalogue._scan_models import Device, DeviceState, GateHold, KindRevocation
from dicomhaven.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

    from dicomhaven.identity import Vault

__all__ = [
    "SYSTEM_ACTOR",
    "DeviceIdentity",
    "DeviceRecord",
    "DeviceRegistry",
    "DeviceSelection",
    "RevokedKind",
    "TrustAction",
    "TrustChange",
    "describe_objects",
    "object_kind",
    "released_since",
]

SYSTEM_ACTOR = "dicomhaven"  # who changes a state when no person did (a failed scan)


#: Image Type's third value, kept in a kind when it is one of these terms (the standard's
#: defined terms and common vendor ones); any other value becomes ``OTHER``, so a kind is
#: made of vocabulary only and never holds free text from a file.
_IMAGE_FLAVOURS = frozenset({
    "AXIAL", "LOCALIZER", "SCREEN SAVE", "DOSE INFO", "DOSE REPORT", "OTHER", "MPR", "MIP",
    "PROJECTION IMAGE", "REFORMATTED", "VOLUME", "SINGLE PLANE", "BIPLANE A", "BIPLANE B",
    "ANGIO", "CARDIAC", "DYNAMIC", "PERFUSION", "DIFFUSION", "STATIC", "WHOLE BODY",
    "FLUOROSCOPY", "ABDOMINAL", "BREAST", "VASCULAR", "OBSTETRICAL", "GYNECOLOGICAL",
    "PELVIC", "SMALL PARTS", "M", "P", "ND", "NORM", "T1 MAP", "T2 MAP", "DERIVED",
    "SUBTRACTION", "RECON", "SCOUT", "TOMO", "COMBO", "SECONDARY", "PRIMARY",
})  # fmt: skip
_MODALITY = re.compile(r"[A-Z0-9_ ]{1,16}")


def _values(header: Dataset, keyword: str) -> list[str]:
    value = header.get(keyword)
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip().upper() for v in value.split("\\")]
    return [str(v).strip().upper() for v in value]


def object_kind(header: Dataset) -> str:
    """An object's kind, as the release gate decides trust on it: its Modality, its SOP
    Class (by the standard's keyword) and Image Type's first three values, for example
    ``CT:CTImageStorage:ORIGINAL/PRIMARY/AXIAL`` or
    ``CT:SecondaryCaptureImageStorage:DERIVED/SECONDARY/SCREEN_SAVE``.

    Cheap (three attributes of the leading header) and free of identifiers: every part is
    vocabulary (a Modality in the CS character set, a registered SOP Class's keyword or
    ``private``, Image Type's enumerated values 1 and 2 and a known term for value 3; any
    other value is ``OTHER``), never a UID or free text from the file."""
    modality = _text(header, "Modality").upper()
    if not modality:
        modality = "-"
    elif not _MODALITY.fullmatch(modality):
        modality = "OTHER"
    uid = str(header.get("SOPClassUID", "") or "").strip()
    sop = "-"
    if uid:
        sop = UID(uid).keyword if UID(uid).type == "SOP Class" else ""
        sop = sop or "private"
    allowed = ({"ORIGINAL", "DERIVED"}, {"PRIMARY", "SECONDARY"}, _IMAGE_FLAVOURS)
    image_type = [
        (value if value in terms else "OTHER").replace(" ", "_")
        for value, terms in zip(_values(header, "ImageType"), allowed, strict=False)
    ]
    return f"{modality}:{sop}:{'/'.join(image_type) or '-'}"


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


@dataclass(frozen=True)
class RevokedKind:
    """A kind of a device's objects whose trust was revoked, and why."""

    device_id: str
    kind: str
    group_id: str  # the review group whose failure revoked it ("" when a person did)
    cause: str
    at: datetime
    by: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "group": self.group_id, "cause": self.cause,
            "at": self.at.isoformat(), "by": self.by,
        }  # fmt: skip


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

    def matching(
        self, manufacturer: str | None, model: str | None, software: str | None
    ) -> list[DeviceRecord]:
        """The devices whose manufacturer, model and software are those given (each compared
        exactly, as ``dicomhaven devices list`` shows them; one not given matches any)."""
        query = select(Device).order_by(Device.first_seen, Device.id)
        for column, value in (
            (Device.manufacturer, manufacturer), (Device.model, model),
            (Device.software, software),
        ):  # fmt: skip
            if value is not None:
                query = query.where(column == _clip(value))
        with self._sessions() as session:
            return [_record(r) for r in session.scalars(query)]

    def kind_revoked(self, device_id: str, kind: str) -> bool:
        with self._sessions() as session:
            return session.get(KindRevocation, (device_id, kind)) is not None

    def revoke_kind(self, device_id: str, kind: str, *, group_id: str, cause: str, by: str) -> bool:
        """Revoke the trust of one kind of a device's objects; False when it already was
        (by this worker or another one: the row's key decides who did it, once)."""
        if self.kind_revoked(device_id, kind):
            return False
        try:
            with self._sessions.begin() as session:
                session.add(
                    KindRevocation(
                        device_id=device_id, kind=kind[:128], group_id=group_id[:16],
                        cause=cause, at=datetime.now(UTC), by=by[:64],
                    )
                )  # fmt: skip
        except IntegrityError:
            return False  # another worker revoked it first
        return True

    def trust_kinds(self, device_id: str, kind: str | None = None) -> int:
        """Lift the revocation of one kind (or of every kind) of a device; how many."""
        query = delete(KindRevocation).where(KindRevocation.device_id == device_id)
        if kind is not None:
            query = query.where(KindRevocation.kind == kind)
        with self._sessions.begin() as session:
            return int(session.execute(query).rowcount or 0)  # type: ignore[attr-defined]

    def revocations(self, device_id: str | None = None) -> list[RevokedKind]:
        query = select(KindRevocation).order_by(KindRevocation.device_id, KindRevocation.at)
        if device_id is not None:
            query = query.where(KindRevocation.device_id == device_id)
        with self._sessions() as session:
            return [
                RevokedKind(r.device_id, r.kind, r.group_id, r.cause, r.at, r.by)
                for r in session.scalars(query)
            ]

    def held_by_kind(self, device_id: str | None = None) -> dict[tuple[str, str], int]:
        """How many copies the gate holds, by device and kind."""
        query = select(GateHold.device_id, GateHold.kind, func.count()).group_by(
            GateHold.device_id, GateHold.kind
        )
        if device_id is not None:
            query = query.where(GateHold.device_id == device_id)
        with self._sessions() as session:
            return {(d, k): int(n) for d, k, n in session.execute(query)}

    def attributes(self, device_id: str) -> dict[str, str]:
        """The sealed attributes (serial number, station): for data managers only."""
        if self._vault is None:
            return {}
        return self._vault.device_attributes(device_id)


def released_since(
    sessions: sessionmaker[Session],
    intake: Path,
    site_key: bytes,
    device_id: str,
    kind: str,
    since: datetime,
) -> list[int]:
    """The ledger ids of the objects of ``device_id`` and ``kind`` released at or after
    ``since`` and still released: what a data manager re-reads when burned-in text is found
    on a sampled slice of that device and kind (its trust is revoked then).

    The ledger keeps neither the device nor the kind, so each candidate (released since
    then, of the kind's modality) is told by its header as received, in ``intake``: a cost
    paid once per revocation, never per object."""
    import warnings

    import pydicom

    from dicomhaven.catalogue import LedgerEvent, LedgerObject, ObjectStatus

    released = ObjectStatus.RELEASED.value
    query = (
        select(LedgerObject.id, LedgerObject.intake_path)
        .join(LedgerEvent, LedgerEvent.object_id == LedgerObject.id)
        .where(LedgerEvent.to_status == released, LedgerEvent.at >= since)
        .where(LedgerObject.status == released)
        .distinct()
        .order_by(LedgerObject.id)
    )
    modality = kind.split(":", 1)[0]
    if modality not in ("-", "OTHER"):
        query = query.where((LedgerObject.modality == modality) | LedgerObject.modality.is_(None))
    with sessions() as session:
        candidates = list(session.execute(query))
    ids: list[int] = []
    for object_id, intake_path in candidates:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                header = pydicom.dcmread(intake / intake_path, stop_before_pixels=True, force=True)
        except Exception:  # unreadable now: listed, so that a person looks at it
            ids.append(int(object_id))
            continue
        if (
            object_kind(header) == kind
            and DeviceIdentity.of(header).device_id(site_key) == device_id
        ):
            ids.append(int(object_id))
    return ids


def describe_objects(ids: list[int], limit: int = 100) -> str:
    """Ledger ids as short ranges ("objects 12-30, 33"), the first ``limit`` ranges."""
    ranges: list[tuple[int, int]] = []
    for i in sorted(set(ids)):
        if ranges and i == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], i)
        else:
            ranges.append((i, i))
    shown = [f"{a}-{b}" if b > a else f"{a}" for a, b in ranges[:limit]]
    more = f" and {len(ranges) - limit} more ranges" if len(ranges) > limit else ""
    return f"object{'s' if len(ids) > 1 else ''} {', '.join(shown)}{more}"


class TrustAction(StrEnum):
    TRUST = "trust"
    REVOKE = "revoke"


@dataclass(frozen=True)
class DeviceSelection:
    """Which devices one trust decision is about: one device by its id, or every device
    whose manufacturer (model, software) match, or explicitly every device. Never all of
    them by accident: an empty selection is refused."""

    device: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    software: str | None = None
    every: bool = False

    def __post_init__(self) -> None:
        selectors = (self.manufacturer, self.model, self.software)
        bulk = any(v is not None for v in selectors)
        if sum((self.device is not None, bulk, self.every)) != 1:
            raise ConfigError(
                "name one device (DEVICE), or select devices with --manufacturer, --model "
                "and --software, or pass --all; got "
                + ("none of them" if not (self.device or bulk or self.every) else "several")
            )
        if any(v is not None and not v.strip() for v in selectors):
            raise ConfigError("--manufacturer, --model and --software need a value")

    @property
    def bulk(self) -> bool:
        return self.device is None

    def describe(self) -> str:
        if self.device is not None:
            return self.device
        if self.every:
            return "all devices"
        named = (
            ("manufacturer", self.manufacturer), ("model", self.model),
            ("software", self.software),
        )  # fmt: skip
        return ", ".join(f"{k}={v}" for k, v in named if v is not None)


@dataclass(frozen=True)
class TrustChange:
    """What one trust decision did: the devices it matched, and those it changed."""

    action: TrustAction
    kind: str | None
    devices: tuple[str, ...]
    changed: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action.value, "kind": self.kind, "devices": list(self.devices),
            "count": len(self.devices), "changed": list(self.changed),
        }  # fmt: skip
