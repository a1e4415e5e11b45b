"""The pixel layouts of the real test files made by others, one representative file each.

A layout is what decides how Pixel Data is decoded, shown and written back: the transfer
syntax (and with it the byte order and the encapsulation), Samples per Pixel, Photometric
Interpretation, Planar Configuration, Bits Allocated / Stored / High Bit, Pixel
Representation, one frame or several, and overlay bits kept inside the pixel words. The
files are pydicom's own (subfolders too), pydicom-data's, deid-data's and, when
``../shared/data`` is present, OpenREM's and Presidio's; deliberately broken ones are kept,
since they must be held with a reason too.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

from tests.corpora import PYDICOM_FILES, deid_data_folder, pydicom_data_folder
from tests.peers import SHARED

__all__ = ["Layout", "layout_of", "representatives", "survey"]

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


@dataclass(frozen=True)
class Layout:
    """One pixel layout; None where the header does not say (or says nonsense)."""

    syntax: str  # the transfer syntax's name ("no transfer syntax" for a file without one)
    pixel_keyword: str
    samples: int | None
    photometric: str | None
    planar: int | None  # only for more than one sample
    bits_allocated: int | None
    bits_stored: int | None
    high_bit: int | None
    signed: bool | None
    multi_frame: bool | None  # None: Number of Frames does not parse
    overlay_in_pixels: bool

    @property
    def id(self) -> str:
        """A short name for test ids."""
        bits = f"{self.bits_allocated}-{self.bits_stored}-{self.high_bit}"
        sign = {True: "s", False: "u", None: "?"}[self.signed]
        frames = {True: "multi", False: "1", None: "?"}[self.multi_frame]
        planar = f"-pc{self.planar}" if self.planar is not None else ""
        overlay = "-ovl" if self.overlay_in_pixels else ""
        photometric = (self.photometric or "none").replace(" ", "_")
        syntax = self.syntax.replace(" ", "")
        return f"{syntax}-{photometric}{planar}-{bits}{sign}-{frames}{overlay}"

    @property
    def big_endian(self) -> bool:
        return self.syntax == "Explicit VR Big Endian"

    @property
    def encapsulated(self) -> bool:
        return UID(_SYNTAX_UIDS.get(self.syntax, "1.2.840.10008.1.2.1")).is_encapsulated

    @property
    def odd_depth(self) -> bool:
        """Bits Stored short of Bits Allocated, or not a whole number of bytes (1-bit, 12)."""
        if self.bits_stored is None or self.bits_allocated is None:
            return False
        return self.bits_stored < self.bits_allocated or self.bits_allocated % 8 != 0


_SYNTAX_UIDS = {UID(uid).name: uid for uid in pydicom.uid.AllTransferSyntaxes}


def _int(dataset: Dataset, keyword: str) -> int | None:
    try:
        return int(dataset.get(keyword))
    except Exception:  # absent, empty or not a number ("1A")
        return None


def _overlay_in_pixels(dataset: Dataset) -> bool:
    """Whether an overlay lives in the pixel words' unused bits (Overlay Bits Allocated
    above 1, or no Overlay Data of its own): the retired form PS3.3 C.9.2.1.1 describes."""
    for group in range(0x6000, 0x6020, 2):
        if (group, 0x0100) not in dataset:
            continue
        try:
            bits = int(dataset[group, 0x0100].value)
        except Exception:
            continue
        if bits > 1 or (group, 0x3000) not in dataset:
            return True
    return False


def layout_of(dataset: Dataset) -> Layout:
    """The layout of a data set read with its pixels (``force=True`` is fine)."""
    meta = getattr(dataset, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    syntax = UID(str(uid)).name if uid else "no transfer syntax"
    samples = _int(dataset, "SamplesPerPixel")
    representation = _int(dataset, "PixelRepresentation")
    frames_value = dataset.get("NumberOfFrames") if "NumberOfFrames" in dataset else 1
    try:
        multi: bool | None = int(frames_value or 1) > 1
    except Exception:
        multi = None
    overlay = _overlay_in_pixels(dataset)
    photometric = dataset.get("PhotometricInterpretation")
    return Layout(
        syntax=syntax,
        pixel_keyword=next(k for k in _PIXEL_KEYWORDS if k in dataset),
        samples=samples,
        photometric=str(photometric) if photometric is not None else None,
        planar=_int(dataset, "PlanarConfiguration") if (samples or 1) > 1 else None,
        bits_allocated=_int(dataset, "BitsAllocated"),
        bits_stored=_int(dataset, "BitsStored"),
        high_bit=_int(dataset, "HighBit"),
        signed=None if representation is None else representation == 1,
        multi_frame=multi,
        overlay_in_pixels=overlay,
    )


def _roots() -> list[Path]:
    roots = [PYDICOM_FILES, PYDICOM_FILES.parent / "charset_files"]
    roots += [pydicom_data_folder(), deid_data_folder()]
    roots += [SHARED / "data" / "openrem", SHARED / "data" / "presidio"]
    return [root for root in roots if root.is_dir()]


# (7FE0,0008..0010) in either byte order: a file without these bytes has no pixel data.
_PIXEL_TAG_BYTES = tuple(
    tag for element in (0x08, 0x09, 0x10) for tag in (b"\xe0\x7f" + bytes([element, 0]),
                                                     b"\x7f\xe0\x00" + bytes([element]))
)  # fmt: skip


def _may_hold_pixels(path: Path) -> bool:
    """A cheap look before parsing: dose reports of 160,000 elements hold no pixels. A
    deflated data set hides its tags, so it is parsed."""
    data = path.read_bytes()
    deflated = str(DeflatedExplicitVRLittleEndian).encode() in data[:4096]
    return deflated or any(tag in data for tag in _PIXEL_TAG_BYTES)


@functools.cache
def survey() -> dict[Layout, tuple[Path, ...]]:
    """Every file with pixel data under the corpora, by layout, in a stable order."""
    found: dict[Layout, list[Path]] = {}
    seen: set[Path] = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the broken files warn as they are read
        for root in _roots():
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                if path in seen:
                    continue
                seen.add(path)
                if not _may_hold_pixels(path):
                    continue
                try:
                    dataset = pydicom.dcmread(path, force=True, defer_size=4096)
                    if not any(k in dataset for k in _PIXEL_KEYWORDS):
                        continue
                    layout = layout_of(dataset)
                except Exception:  # not DICOM, or not readable as far as its pixels
                    continue
                found.setdefault(layout, []).append(path)
    ordered = sorted(found.items(), key=lambda item: repr(item[0]))
    return {layout: tuple(paths) for layout, paths in ordered}


def representatives() -> list[tuple[Layout, Path]]:
    """One file per layout: the smallest, so that every layout is tried at little cost."""
    return [(layout, min(paths, key=lambda p: (p.stat().st_size, p.name)))
            for layout, paths in survey().items()]  # fmt: skip


#: The corpora's deliberately broken files with pixel data (pydicom's test_files README):
#: short pixel data, a JPEG with a misplaced marker, a codestream whose SIZ is garbage, a
#: Number of Frames of "1A", and files with Pixel Data but no Image Pixel module.
BROKEN = (
    "MR_truncated.dcm",
    "JPEG-lossy.dcm",
    "JPEG2000-embedded-sequence-delimiter.dcm",
    "badVR.dcm",
    "meta_missing_tsyntax.dcm",
    "nested_priv_SQ.dcm",
)


def cases() -> list[tuple[Layout, Path]]:
    """Every layout's representative, and every deliberately broken file as well."""
    chosen = representatives()
    names = {path.name for _, path in chosen}
    for layout, paths in survey().items():
        chosen += [(layout, p) for p in paths if p.name in BROKEN and p.name not in names]
    return chosen


def case_id(case: tuple[Layout, Path]) -> str:
    layout, path = case
    return f"{path.stem}:{layout.id}"
