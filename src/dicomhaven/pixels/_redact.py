"""Redaction that cannot be undone: overwrite the stored pixels inside regions.

The pixels are decoded, every region is filled on every frame it names with the value that
displays as black for the image's Photometric Interpretation, and the result is written
back into Pixel Data itself (never an overlay, a shutter or a presentation state, which a
viewer may ignore). How it is written back, and why that keeps the file truthful, is in
``dicomhaven.pixels._codec``.

Overlays, curves and the Icon Image Sequence hold pixels too and are handled here. Burned
In Annotation is left alone: only a stage that has verified the result may call
``mark_burned_in_annotation_removed``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_color_lut
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRBigEndian

from dicomhaven.pixels._codec import (
    Decoded,
    RedactionError,
    WriteBack,
    decode,
    lut_header,
    write_back,
)
from dicomhaven.pixels._graphics import (
    OverlayAction,
    process_overlays,
    remove_curves,
    remove_icon_images,
)
from dicomhaven.pixels._region import Region

__all__ = [
    "RedactionReport",
    "black_value",
    "mark_burned_in_annotation_removed",
    "redact",
]

logger = logging.getLogger(__name__)

# PS3.16 CID 7050 De-identification Method: PS3.15 E.3.1.
CLEAN_PIXEL_DATA = ("113101", "DCM", "Clean Pixel Data Option")


@dataclass(frozen=True)
class RedactionReport:
    """What ``redact`` did; counts and syntaxes only, never a pixel value.

    ``regions_by_frame`` holds the regions as applied: clipped to the image, widened to
    whole pixel pairs for subsampled YBR_FULL_422, with ``frame`` set.
    """

    regions_by_frame: Mapping[int, tuple[Region, ...]]
    number_of_frames: int
    transfer_syntax_before: str
    transfer_syntax_after: str
    photometric_before: str
    photometric_after: str
    write_back: WriteBack
    source_lossy: bool
    overlays_removed: int
    overlays_redacted: int
    curves_removed: int
    icon_images_removed: int

    @property
    def frames_touched(self) -> tuple[int, ...]:
        """Frames with at least one region, in order."""
        return tuple(sorted(f for f, regions in self.regions_by_frame.items() if regions))

    @property
    def reencoded_losslessly(self) -> bool:
        """True when the pixels were compressed again, losslessly, in the input syntax."""
        return self.write_back is WriteBack.REENCODED

    @property
    def pixels_redacted(self) -> int:
        """Pixels overwritten, over all frames (regions on one frame may overlap)."""
        return sum(r.area for regions in self.regions_by_frame.values() for r in regions)


def _stored_range(dataset: Dataset) -> tuple[int, int]:
    bits = int(dataset.BitsStored)
    if int(dataset.get("PixelRepresentation", 0)) == 1:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def _darkest_palette_index(dataset: Dataset) -> int:
    """The stored value whose palette entry is darkest (Rec. 601 luma); the lowest on a tie."""
    low, high = _stored_range(dataset)
    descriptor = dataset.RedPaletteColorLookupTableDescriptor
    entries = int(descriptor[0]) or 65536
    first = int(descriptor[1])
    candidates = np.arange(max(low, first), min(high, first + entries - 1) + 1)
    if candidates.size == 0:  # every stored value maps to the first or last entry
        candidates = np.array([low, high])
    dtype = np.uint8 if int(dataset.BitsAllocated) <= 8 else np.uint16
    rgb = apply_color_lut(candidates.astype(dtype), lut_header(dataset)).astype(np.float64)
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    return int(candidates[int(np.argmin(luma))])


def black_value(dataset: Dataset, photometric: str) -> tuple[int, ...]:
    """The stored value, one per sample, that displays as black for ``photometric``.

    The value only decides how the redaction looks: any constant destroys what was there.
    """
    low, high = _stored_range(dataset)
    if photometric == "MONOCHROME1":
        return (high,)
    if photometric == "MONOCHROME2":
        return (low,)
    if photometric == "PALETTE COLOR":
        return (_darkest_palette_index(dataset),)
    if photometric == "RGB":
        return (0, 0, 0)
    if photometric in ("YBR_FULL", "YBR_FULL_422"):
        return (0, (high + 1) // 2, (high + 1) // 2)  # Y = 0 with neutral chroma
    raise RedactionError(f"no black value defined for Photometric Interpretation {photometric}")


def _applied(region: Region, frame: int, decoded: Decoded) -> Region:
    _, rows, columns, _ = decoded.frames.shape
    x0, x1 = region.x0, min(region.x1, columns)
    y0, y1 = region.y0, min(region.y1, rows)
    if decoded.x_align == 2:  # whole Y Y Cb Cr pairs
        x0, x1 = x0 - x0 % 2, min(x1 + x1 % 2, columns)
    if x0 >= x1 or y0 >= y1:
        raise RedactionError(
            f"region x={region.x0}..{region.x1}, y={region.y0}..{region.y1} lies outside the "
            f"{columns}x{rows} image: check that the template or detection matches this image"
        )
    return Region(x0, y0, x1, y1, frame)


def _per_frame(regions: Iterable[Region], decoded: Decoded) -> dict[int, tuple[Region, ...]]:
    count = decoded.frames.shape[0]
    by_frame: dict[int, list[Region]] = {f: [] for f in range(count)}
    for region in regions:
        if region.frame is not None and region.frame >= count:
            raise RedactionError(
                f"region names frame {region.frame} but the image has {count} frame(s) "
                "(frames are 0-based)"
            )
        for f in range(count) if region.frame is None else (region.frame,):
            by_frame[f].append(_applied(region, f, decoded))
    return {f: tuple(applied) for f, applied in by_frame.items()}


def _widen_value_range(dataset: Dataset, fill: tuple[int, ...]) -> None:
    """Keep Smallest/Largest (Image) Pixel Value true when the fill lies outside them."""
    if len(fill) != 1:
        return
    for keyword, pick in (
        ("SmallestImagePixelValue", min),
        ("SmallestPixelValueInSeries", min),
        ("LargestImagePixelValue", max),
        ("LargestPixelValueInSeries", max),
    ):
        if keyword in dataset and isinstance(dataset[keyword].value, int):
            setattr(dataset, keyword, pick(dataset[keyword].value, fill[0]))


def redact(
    dataset: Dataset,
    regions: Iterable[Region],
    *,
    overlays: OverlayAction = OverlayAction.REMOVE,
) -> RedactionReport:
    """Overwrite the pixels inside ``regions`` in ``dataset``'s stored Pixel Data, in place.

    Every frame a region names (every frame for ``frame=None``) is filled with the black
    value; pixels outside the regions decode exactly as before. Overlays are removed (or
    redacted in the same regions with ``OverlayAction.REDACT``), curves and icon images
    are removed. Raises ``RedactionError`` when the pixels cannot be made safe: the object
    must then be held, and the data set, possibly half changed, discarded. Burned In
    Annotation is not changed.
    """
    photometric_before = str(dataset.get("PhotometricInterpretation", ""))
    decoded = decode(dataset)
    by_frame = _per_frame(regions, decoded)
    fill = black_value(dataset, decoded.photometric)
    frames = decoded.frames
    value = np.array(fill, dtype=frames.dtype)
    for f, applied in by_frame.items():
        for r in applied:
            frames[f, r.y0 : r.y1, r.x0 : r.x1, :] = value
    how = write_back(dataset, decoded, frames)
    if any(by_frame.values()):
        _widen_value_range(dataset, fill)
    little = decoded.syntax != ExplicitVRBigEndian
    removed, redacted = process_overlays(dataset, overlays, by_frame, frames.shape[0], little)
    curves, icons = remove_curves(dataset), remove_icon_images(dataset)
    report = RedactionReport(
        regions_by_frame=by_frame,
        number_of_frames=frames.shape[0],
        transfer_syntax_before=str(decoded.syntax),
        transfer_syntax_after=str(dataset.file_meta.TransferSyntaxUID),
        photometric_before=photometric_before,
        photometric_after=str(dataset.PhotometricInterpretation),
        write_back=how,
        source_lossy=decoded.source_lossy,
        overlays_removed=removed,
        overlays_redacted=redacted,
        curves_removed=curves,
        icon_images_removed=icons,
    )
    logger.debug(
        "pixels redacted",
        extra={
            "frames": report.number_of_frames,
            "frames_touched": len(report.frames_touched),
            "write_back": how.value,
            "transfer_syntax_before": report.transfer_syntax_before,
            "transfer_syntax_after": report.transfer_syntax_after,
        },
    )
    return report


def mark_burned_in_annotation_removed(dataset: Dataset) -> None:
    """Record that burned-in identifying text was removed, as PS3.15 E.3.1 (Clean Pixel
    Data Option) asks: Burned In Annotation "NO", and the option's code 113101 in the
    De-identification Method Code Sequence (and its meaning appended to De-identification
    Method when that text is present). Call it only after the redaction was verified."""
    dataset.BurnedInAnnotation = "NO"
    value, scheme, meaning = CLEAN_PIXEL_DATA
    codes = dataset.get("DeidentificationMethodCodeSequence") or Sequence()
    if not any(
        item.get("CodeValue") == value and item.get("CodingSchemeDesignator") == scheme
        for item in codes
    ):
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = scheme
        item.CodeMeaning = meaning
        codes.append(item)
    dataset.DeidentificationMethodCodeSequence = codes
    if "DeidentificationMethod" in dataset:
        element = dataset["DeidentificationMethod"]
        current: list[Any] = list(element.value) if element.VM > 1 else [element.value]
        if meaning not in current:
            dataset.DeidentificationMethod = [v for v in current if v] + [meaning]
