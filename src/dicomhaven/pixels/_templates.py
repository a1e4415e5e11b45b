"""Device templates: where a device burns text into its images, learned once, reviewed, reused.

A device (Manufacturer, Model, Software Versions, and the image size, since one device lays
out small and large frames differently) draws its text in the same places on every image.
Once identifying text has been found on enough of its images, the union of those places
(padded) becomes a *proposed* template. A data manager reviews it and *approves* it; from
then on the device's images are redacted in those regions on every frame without OCR, and
one image in ``sample_every`` is still read in full, so a template that stops covering the
text (a software update that moves it) is caught and *revoked*, and the device's images
go back to being read.

Templates are YAML files in the site's ``templates/`` folder, one per device, named by a
hash of the device key (device names are free text). They are configuration: validated
when read, with errors naming the file and line.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydicom.dataset import Dataset

from dicomhaven._yaml import read_yaml
from dicomhaven.errors import ConfigError

__all__ = [
    "Box",
    "DeviceKey",
    "Template",
    "TemplateStatus",
    "TemplateStore",
    "learn_regions",
]

#: A rectangle in pixel coordinates, half-open: (x0, y0, x1, y1).
Box = tuple[int, int, int, int]
PADDING = 4  # pixels added around every learned box: OCR boxes hug the glyphs
_KEYS = {
    "device", "status", "regions", "learned_from", "sample_every", "approved_by",
    "approved_at", "revoked_reason",
}  # fmt: skip


class TemplateStatus(StrEnum):
    PROPOSED = "proposed"  # learned, waiting for a data manager's review
    APPROVED = "approved"  # used: regions redacted without OCR, sampled OCR check
    REVOKED = "revoked"  # a check found text outside it: the device's images are read again


@dataclass(frozen=True)
class DeviceKey:
    """What identifies a device's layout of burned-in text."""

    manufacturer: str
    model: str
    software: str
    rows: int
    columns: int

    @classmethod
    def of(cls, header: Dataset) -> DeviceKey:
        software = header.get("SoftwareVersions", "")
        if not isinstance(software, str):
            software = "\\".join(str(v) for v in software)
        return cls(
            manufacturer=str(header.get("Manufacturer", "")).strip(),
            model=str(header.get("ManufacturerModelName", "")).strip(),
            software=str(software).strip(),
            rows=int(header.get("Rows", 0) or 0),
            columns=int(header.get("Columns", 0) or 0),
        )

    @property
    def id(self) -> str:
        """A file-name-safe id: a hash, since device names are free text."""
        text = "\x1f".join(
            (self.manufacturer, self.model, self.software, str(self.rows), str(self.columns))
        )
        return "device-" + hashlib.sha256(text.encode()).hexdigest()[:16]

    def as_dict(self) -> dict[str, Any]:
        return {
            "manufacturer": self.manufacturer,
            "model": self.model,
            "software": self.software,
            "rows": self.rows,
            "columns": self.columns,
        }


@dataclass(frozen=True)
class Template:
    device: DeviceKey
    regions: tuple[Box, ...]
    status: TemplateStatus = TemplateStatus.PROPOSED
    learned_from: int = 0  # images whose detections made the regions
    sample_every: int = 10  # read one image in this many in full, to keep verifying
    approved_by: str | None = None
    approved_at: str | None = None
    revoked_reason: str | None = None

    @property
    def in_use(self) -> bool:
        return self.status is TemplateStatus.APPROVED

    def covers(self, box: Box) -> bool:
        """Whether ``box`` lies inside one of the template's regions."""
        x0, y0, x1, y1 = box
        return any(
            rx0 <= x0 and ry0 <= y0 and x1 <= rx1 and y1 <= ry1
            for rx0, ry0, rx1, ry1 in self.regions
        )

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "device": self.device.as_dict(),
            "status": self.status.value,
            "regions": [list(r) for r in self.regions],
            "learned_from": self.learned_from,
            "sample_every": self.sample_every,
        }
        for key in ("approved_by", "approved_at", "revoked_reason"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return data


def learn_regions(
    detections: Iterable[Sequence[Box]], *, width: int, height: int
) -> tuple[Box, ...]:
    """The regions that cover every box found on a device's images: each padded, clipped to
    the image, and overlapping ones merged into their bounding rectangle."""
    boxes = [
        (
            max(0, x0 - PADDING),
            max(0, y0 - PADDING),
            min(width, x1 + PADDING),
            min(height, y1 + PADDING),
        )
        for found in detections
        for x0, y0, x1, y1 in found
    ]
    regions = boxes
    changed = True
    while changed:  # merging two boxes can make the result overlap a third
        changed = False
        merged: list[Box] = []
        for box in regions:
            for i, other in enumerate(merged):
                if _overlap(box, other):
                    merged[i] = (
                        min(box[0], other[0]), min(box[1], other[1]),
                        max(box[2], other[2]), max(box[3], other[3]),
                    )  # fmt: skip
                    changed = True
                    break
            else:
                merged.append(box)
        regions = merged
    return tuple(sorted(set(regions)))


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@dataclass
class TemplateStore:
    """The site's device templates, one YAML file each in ``root``."""

    root: Path
    _cache: dict[str, Template | None] = field(default_factory=dict, repr=False)

    def path(self, device: DeviceKey) -> Path:
        return self.root / f"{device.id}.yaml"

    def get(self, device: DeviceKey) -> Template | None:
        if device.id not in self._cache:
            path = self.path(device)
            self._cache[device.id] = _read(path) if path.exists() else None
        return self._cache[device.id]

    def all(self) -> list[Template]:
        return [_read(p) for p in sorted(self.root.glob("device-*.yaml"))]

    def propose(self, device: DeviceKey, detections: Sequence[Sequence[Box]]) -> Template:
        """A proposed template from the identifying text found on ``detections``' images
        (merged with an existing proposal's). An approved template is not touched."""
        current = self.get(device)
        if current is not None and current.in_use:
            return current
        earlier: list[Sequence[Box]] = [current.regions] if current is not None else []
        regions = learn_regions([*earlier, *detections], width=device.columns, height=device.rows)
        learned = (current.learned_from if current is not None else 0) + len(detections)
        return self._save(Template(device, regions, TemplateStatus.PROPOSED, learned))

    def approve(self, device: DeviceKey, user: str) -> Template:
        current = self.get(device)
        if current is None:
            raise ConfigError(f"no template for {device.id}: nothing to approve")
        if not current.regions:
            raise ConfigError(f"template {device.id} has no regions: nothing to approve")
        now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        return self._save(
            replace(
                current,
                status=TemplateStatus.APPROVED,
                approved_by=user,
                approved_at=now,
                revoked_reason=None,
            )
        )

    def revoke(self, device: DeviceKey, reason: str) -> Template | None:
        current = self.get(device)
        if current is None or current.status is TemplateStatus.REVOKED:
            return current
        return self._save(replace(current, status=TemplateStatus.REVOKED, revoked_reason=reason))

    def _save(self, template: Template) -> Template:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.path(template.device)
        partial = path.with_name(f".{path.name}.part")
        partial.write_text(yaml.safe_dump(template.as_dict(), sort_keys=False), encoding="utf-8")
        partial.replace(path)
        self._cache[template.device.id] = template
        return template


def _read(path: Path) -> Template:
    data, lines = read_yaml(path, "template")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a template is a mapping of {', '.join(sorted(_KEYS))}")
    for key in data:
        if key not in _KEYS:
            raise ConfigError(f"{path}:{lines.get(key, 1)}: unknown key '{key}'")
    try:
        device = DeviceKey(**data["device"])
        status = TemplateStatus(data.get("status", "proposed"))
        regions = tuple(_box(r) for r in data.get("regions", []))
        return Template(
            device=device,
            regions=regions,
            status=status,
            learned_from=int(data.get("learned_from", 0)),
            sample_every=max(1, int(data.get("sample_every", 10))),
            approved_by=data.get("approved_by"),
            approved_at=data.get("approved_at"),
            revoked_reason=data.get("revoked_reason"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        key = (
            "regions"
            if "box" in str(exc)
            else "status"
            if "TemplateStatus" in str(exc)
            else "device"
        )
        raise ConfigError(f"{path}:{lines.get(key, 1)}: invalid '{key}' ({exc})") from None


def _box(value: object) -> Box:
    if not isinstance(value, list | tuple) or len(value) != 4:
        raise ValueError(f"a box is [x0, y0, x1, y1], not {value!r}")
    x0, y0, x1, y1 = (int(v) for v in value)
    if not (0 <= x0 < x1 and 0 <= y0 < y1):
        raise ValueError(f"a box needs 0 <= x0 < x1 and 0 <= y0 < y1, not {value!r}")
    return (x0, y0, x1, y1)
