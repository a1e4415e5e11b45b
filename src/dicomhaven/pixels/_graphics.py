"""Pixels stored outside Pixel Data: overlays (60xx), curves (50xx) and icon images.

PS3.15 Table E.1-1 removes Overlay Data, Curve Data and the Icon Image Sequence; the Clean
Graphics Option may keep overlays once what identifies is removed from them. An overlay is
redacted by clearing its bits inside the same regions as the image.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence

import numpy as np
from pydicom.datadict import dictionary_has_tag, dictionary_VR
from pydicom.dataset import Dataset
from pydicom.pixels.utils import pack_bits

from dicomhaven.pixels._region import Region

__all__ = ["OverlayAction", "process_overlays", "remove_curves", "remove_icon_images"]


class OverlayAction(enum.Enum):
    """What ``redact`` does with overlay planes (60xx groups)."""

    REMOVE = "remove"
    """Remove every overlay group (PS3.15 Table E.1-1 without the Clean Graphics Option)."""
    REDACT = "redact"
    """Keep overlays that carry Overlay Data, with their bits cleared in the redacted
    regions. Overlays that cannot be redacted (no Overlay Data, so stored in the unused
    bits of Pixel Data that the rewrite clears; or Overlay Bits Allocated other than 1) are
    removed and counted as removed."""


def _groups(dataset: Dataset, first: int) -> list[int]:
    tags = dataset.keys()  # iterating a Dataset itself would convert every element
    return sorted({t.group for t in tags if first <= t.group <= first + 0x1E and t.group % 2 == 0})


def _remove_group(dataset: Dataset, group: int) -> None:
    for tag in [t for t in dataset.keys() if t.group == group]:  # noqa: SIM118
        del dataset[tag]


def remove_curves(dataset: Dataset) -> int:
    """Remove every curve group (50xx, retired); return how many there were."""
    groups = _groups(dataset, 0x5000)
    for group in groups:
        _remove_group(dataset, group)
    return len(groups)


def remove_icon_images(dataset: Dataset) -> int:
    """Remove the Icon Image Sequence at every depth: a thumbnail of the unredacted image."""
    removed = 0
    if "IconImageSequence" in dataset:
        del dataset.IconImageSequence
        removed += 1
    for tag in list(dataset.keys()):
        # Only sequences are converted: converting every element would parse (and warn
        # about) values this function has no business reading.
        vr = dataset.get_item(tag).VR or (dictionary_VR(tag) if dictionary_has_tag(tag) else "")
        if vr == "SQ":
            for item in dataset[tag].value:
                removed += remove_icon_images(item)
    return removed


def _value(dataset: Dataset, group: int, element: int, default: list[int]) -> list[int]:
    item = dataset.get((group, element))
    if item is None or item.value in (None, ""):
        return default
    value = item.value
    return [int(v) for v in value] if isinstance(value, Sequence) else [int(value)]


def _redact_overlay(
    dataset: Dataset,
    group: int,
    regions: Mapping[int, Sequence[Region]],
    number_of_frames: int,
    little_endian: bool,
) -> bool:
    """Clear the overlay's bits inside the regions; False when it cannot be redacted."""
    data = dataset.get((group, 0x3000))
    if data is None or _value(dataset, group, 0x0100, [1]) != [1]:
        return False
    rows = _value(dataset, group, 0x0010, [0])[0]
    columns = _value(dataset, group, 0x0011, [0])[0]
    origin_row, origin_column = [*_value(dataset, group, 0x0050, [1, 1]), 1][:2]
    multi = (group, 0x0015) in dataset
    count = _value(dataset, group, 0x0015, [1])[0] if multi else 1
    first = _value(dataset, group, 0x0051, [1])[0] - 1
    raw: bytes = data.value
    swap = not little_endian and data.VR == "OW"
    buffer = np.frombuffer(raw, dtype="<u2").byteswap().tobytes() if swap else raw
    pixels = rows * columns * count
    bits = np.unpackbits(np.frombuffer(buffer, dtype=np.uint8), bitorder="little")
    if rows <= 0 or columns <= 0 or bits.size < pixels:
        return False
    planes = bits[:pixels].reshape(count, rows, columns).copy()
    for k in range(count):
        if multi:
            applied: Sequence[Region] = regions.get(first + k, ())
        else:  # one plane over every frame: the union of every frame's regions
            applied = [r for f in range(number_of_frames) for r in regions.get(f, ())]
        for r in applied:
            y0, y1 = max(r.y0 - origin_row + 1, 0), max(r.y1 - origin_row + 1, 0)
            x0, x1 = max(r.x0 - origin_column + 1, 0), max(r.x1 - origin_column + 1, 0)
            planes[k, y0:y1, x0:x1] = 0
    packed = pack_bits(planes.ravel())
    if swap:
        packed = np.frombuffer(packed, dtype="<u2").byteswap().tobytes()
    data.value = packed
    return True


def process_overlays(
    dataset: Dataset,
    action: OverlayAction,
    regions: Mapping[int, Sequence[Region]],
    number_of_frames: int,
    little_endian: bool,
) -> tuple[int, int]:
    """Remove or redact every overlay group; return (removed, redacted) counts."""
    removed = redacted = 0
    for group in _groups(dataset, 0x6000):
        if action is OverlayAction.REDACT and _redact_overlay(
            dataset, group, regions, number_of_frames, little_endian
        ):
            redacted += 1
        else:
            _remove_group(dataset, group)
            removed += 1
    return removed, redacted
