"""Redaction that cannot be undone: the stored pixels inside every region are overwritten on
every frame, everything outside decodes exactly as before, and the file stays truthful
about its transfer syntax and lossy compression.

Real files: every image pydicom ships and every image of pydicom-data. Synthetic files
(seeded, built here) fill the gaps: each photometric interpretation, bit depth, signedness,
planar configuration and compressed syntax pydicom can encode.
"""

from __future__ import annotations

import io
import logging
import re
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.processing import apply_color_lut
from pydicom.sequence import Sequence
from pydicom.uid import (
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from dicomhaven.pixels import (
    CLEAN_PIXEL_DATA,
    OverlayAction,
    RedactionError,
    Region,
    WriteBack,
    mark_burned_in_annotation_removed,
    redact,
)
from tests.corpora import PYDICOM_FILES, pydicom_data_folder
from tests.peers import require_tool

Array = np.ndarray[Any, np.dtype[Any]]

CANARY_NAME = "CANARY^PLANTED^NAME"
CANARY_ID = "CANARY-ID-4711"
REENCODABLE = {RLELossless, JPEGLSLossless, JPEG2000Lossless}
LOSSY_SYNTAXES = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"}
MAYBE_LOSSY = {JPEGLSNearLossless, JPEG2000, "1.2.840.10008.1.2.4.203"}

# Files pydicom 3.0.2 cannot decode here, and why: redaction must refuse them (hold the object).
UNDECODABLE = {
    "JPEG-lossy.dcm": "libjpeg: misplaced marker segment (a deliberately broken 12-bit JPEG)",
    "JPEG2000-embedded-sequence-delimiter.dcm": "openjpeg: failed to read the J2K header",
    "MR_truncated.dcm": "less pixel data than Rows x Columns needs",
    "badVR.dcm": "Number of Frames '1A' is not an integer",
    "meta_missing_tsyntax.dcm": "no Image Pixel attributes",
    "nested_priv_SQ.dcm": "no Bits Allocated",
}


def _silently(function: Any, *args: Any, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # test files with deliberately odd values
        return function(*args, **kwargs)


def read(source: Path | bytes) -> Dataset:
    data = source if isinstance(source, bytes) else source.read_bytes()
    dataset: Dataset = _silently(pydicom.dcmread, io.BytesIO(data), force=True)
    return dataset


def saved(dataset: Dataset) -> bytes:
    buffer = io.BytesIO()
    _silently(dataset.save_as, buffer)
    return buffer.getvalue()


def syntax_of(dataset: Dataset) -> UID:
    value = dataset.file_meta.get("TransferSyntaxUID") if "file_meta" in dir(dataset) else None
    if value:
        return UID(str(value))
    implicit, little = dataset.original_encoding
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little else ExplicitVRBigEndian


def decoded(dataset: Dataset, *, as_rgb: bool) -> Array:
    """Every frame as (frames, rows, columns, samples), straight from pydicom."""
    array, meta = _silently(get_decoder(syntax_of(dataset)).as_array, dataset, as_rgb=as_rgb)
    shape = (
        int(meta["number_of_frames"]),
        int(meta["rows"]),
        int(meta["columns"]),
        int(meta["samples_per_pixel"]),
    )
    result: Array = np.asarray(array, dtype=array.dtype.newbyteorder("=")).reshape(shape)
    return result


def is_lossy(dataset: Dataset) -> bool:
    syntax = syntax_of(dataset)
    declared = str(dataset.get("LossyImageCompression", ""))
    if syntax in LOSSY_SYNTAXES or declared == "01":
        return True
    return syntax in MAYBE_LOSSY and declared != "00"


def stored_range(dataset: Dataset) -> tuple[int, int]:
    bits = int(dataset.BitsStored)
    if int(dataset.get("PixelRepresentation", 0)):
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def expected_black(header: Dataset, photometric: str) -> Array | None:
    """The value that displays as black, from the standard's definitions (None: palette,
    checked through its lookup table instead)."""
    low, high = stored_range(header)
    values = {
        "MONOCHROME1": [high],
        "MONOCHROME2": [low],
        "RGB": [0, 0, 0],
        "YBR_RCT": [0, 0, 0],  # decoded as RGB
        "YBR_FULL": [0, (high + 1) // 2, (high + 1) // 2],
        "YBR_FULL_422": [0, (high + 1) // 2, (high + 1) // 2],
    }
    return None if photometric == "PALETTE COLOR" else np.array(values[photometric])


def assert_palette_black(header: Dataset, value: int) -> None:
    low, high = stored_range(header)
    dtype = np.uint8 if int(header.BitsAllocated) == 8 else np.uint16
    rgb = apply_color_lut(np.arange(low, high + 1).astype(dtype), header).astype(float)
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    assert luma[value - low] == luma.min()


def check_redacted(out: Array, reference: Array, regions: list[Region], header: Dataset) -> None:
    """Inside every region: the black value on every frame it names. Everywhere else:
    identical to the reference."""
    assert out.shape == reference.shape
    expected = reference.copy()
    black = expected_black(header, str(header.PhotometricInterpretation))
    if black is None:  # palette: whichever index it is, it must be the darkest entry
        r = regions[0]
        black = out[r.frame or 0, r.y0, r.x0]
        assert_palette_black(header, int(black[0]))
    for r in regions:
        for f in range(out.shape[0]) if r.frame is None else [r.frame]:
            expected[f, r.y0 : r.y1, r.x0 : r.x1] = black
    assert np.array_equal(out, expected)


def region_set(frames: int, rows: int, columns: int) -> list[Region]:
    """One region on every frame and one on the last frame only; x bounds even, so the
    pair-widening of subsampled YBR_FULL_422 does not change them."""
    x0 = (columns // 4) & ~1
    x1 = max((columns // 2) & ~1, x0 + 2)
    y0 = rows // 4
    return [Region(x0, y0, x1, max(rows // 2, y0 + 1)), Region(0, 0, 2, 1, frame=frames - 1)]


# -- every real file --------------------------------------------------------------------


def real_images() -> list[Path]:
    paths = sorted(PYDICOM_FILES.glob("*.dcm")) + sorted(pydicom_data_folder().glob("*.dcm"))
    found = []
    for path in paths:
        try:
            dataset = _silently(pydicom.dcmread, path, force=True, stop_before_pixels=False)
        except Exception:
            continue
        if "PixelData" in dataset:
            found.append(path)
    return found


REAL_IMAGES = real_images()


def writable(path: Path) -> bool:
    """Whether pydicom itself can write the file back unchanged."""
    try:
        saved(read(path))
    except Exception:
        return False
    return True


def expected_syntax(source: Dataset) -> UID:
    syntax = syntax_of(source)
    if not syntax.is_compressed:
        return syntax
    # pydicom's encoders follow PS3.5 Table 8.2.2-1: RLE Lossless for Bits Allocated 8 and
    # 16 only, so 32-bit RLE is written uncompressed.
    rle_32 = syntax == RLELossless and int(source.BitsAllocated) > 16
    if syntax in REENCODABLE and not is_lossy(source) and not rle_32:
        return syntax
    return ExplicitVRLittleEndian


def test_the_corpus_covers_every_syntax_pydicom_can_decode() -> None:
    syntaxes = {syntax_of(read(p)) for p in REAL_IMAGES if p.name not in UNDECODABLE}
    assert len(REAL_IMAGES) >= 120
    assert {
        ImplicitVRLittleEndian,
        ExplicitVRLittleEndian,
        ExplicitVRBigEndian,
        DeflatedExplicitVRLittleEndian,
        RLELossless,
        JPEGLSLossless,
        JPEGLSNearLossless,
        JPEG2000Lossless,
        JPEG2000,
        UID("1.2.840.10008.1.2.4.50"),
        UID("1.2.840.10008.1.2.4.51"),
        UID("1.2.840.10008.1.2.4.70"),
    } <= syntaxes


@pytest.mark.parametrize("path", REAL_IMAGES, ids=[p.name for p in REAL_IMAGES])
def test_real_file_round_trip(path: Path) -> None:
    """decode -> redact -> encode -> decode gives the expected pixels."""
    source = read(path)
    if path.name in UNDECODABLE:
        with pytest.raises(RedactionError):
            _silently(redact, source, [Region(0, 0, 1, 1)])
        return
    lossy = is_lossy(source)
    reference = decoded(source, as_rgb=lossy and syntax_of(source).is_compressed)
    frames, rows, columns, _ = reference.shape
    regions = region_set(frames, rows, columns)
    dataset = read(path)
    report = _silently(redact, dataset, regions)

    # SC_rgb_jpeg.dcm declares explicit VR but is implicit: pydicom cannot write it at all.
    out = read(saved(dataset)) if writable(path) else dataset
    check_redacted(decoded(out, as_rgb=False), reference, regions, out)
    assert report.number_of_frames == frames
    assert report.frames_touched == tuple(range(frames))
    assert report.regions_by_frame[frames - 1][-1] == Region(0, 0, 2, 1, frames - 1)
    assert report.transfer_syntax_before == syntax_of(source)
    assert syntax_of(out) == report.transfer_syntax_after == expected_syntax(source)
    assert report.source_lossy is lossy
    if report.write_back is WriteBack.REENCODED:
        assert syntax_of(out) == syntax_of(source) and not lossy
    if not syntax_of(out).is_compressed:
        assert not out["PixelData"].is_undefined_length
        assert "ExtendedOffsetTable" not in out
    if lossy:
        assert out.LossyImageCompression == "01"
        for keyword in ("LossyImageCompressionRatio", "LossyImageCompressionMethod"):
            if keyword in source:
                assert out[keyword].value == source[keyword].value
    else:
        assert out.get("LossyImageCompression") == source.get("LossyImageCompression")
    if lossy and syntax_of(source).is_compressed and source.SamplesPerPixel == 3:
        assert out.PhotometricInterpretation == "RGB"
    assert out.get("BurnedInAnnotation") == source.get("BurnedInAnnotation")
    assert not any(0x6000 <= t.group <= 0x601E or 0x5000 <= t.group <= 0x501E for t in out.keys())  # noqa: SIM118
    assert "IconImageSequence" not in out


# -- synthetic images for every photometric interpretation and depth --------------------


@dataclass(frozen=True)
class Case:
    photometric: str
    bits: int = 8
    stored: int | None = None
    signed: bool = False
    frames: int = 1
    planar: int = 0
    syntax: str = ExplicitVRLittleEndian
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def id(self) -> str:
        sign = "s" if self.signed else "u"
        name = UID(self.syntax).keyword or self.syntax
        return (
            f"{self.photometric.replace(' ', '_')}-{self.bits}{sign}{self.stored or self.bits}"
            f"-f{self.frames}-pc{self.planar}-{name}"
        )


# JPEG 2000 needs 32 pixels a side: pydicom asks openjpeg for 6 resolution levels.
ROWS, COLUMNS = 36, 40


def palette(dataset: Dataset, bits: int) -> None:
    """A palette whose darkest entry is not index 0: the redaction must look it up."""
    entries = 256 if bits == 8 else 4096
    ramp = np.linspace(65535, 0, entries).astype("<u2")
    ramp[entries // 3] = 0  # the darkest (black) entry
    ramp[-1] = 9000
    green = ramp.copy()
    green[-1] = 100  # the last index is dark, but not black
    for colour, data in (("Red", ramp), ("Green", green), ("Blue", ramp)):
        setattr(dataset, f"{colour}PaletteColorLookupTableDescriptor", [entries, 0, 16])
        setattr(dataset, f"{colour}PaletteColorLookupTableData", data.tobytes())


def synthetic(case: Case, seed: int = 7) -> tuple[Dataset, Array]:
    """A data set and the pixels it holds, (frames, rows, columns, samples)."""
    rng = np.random.default_rng(seed)
    rows, columns = ROWS, COLUMNS
    samples = 3 if case.photometric in ("RGB", "YBR_FULL", "YBR_FULL_422") else 1
    stored = case.stored or case.bits
    low, high = (-(2 ** (stored - 1)), 2 ** (stored - 1) - 1) if case.signed else (0, 2**stored - 1)
    if case.photometric == "PALETTE COLOR":
        high = 255 if case.bits == 8 else 4095
    shape = (case.frames, rows, columns, samples)
    pixels = rng.integers(low, high + 1, size=shape, dtype=np.int64)
    if case.photometric == "YBR_FULL_422":
        pixels[:, :, 1::2, 1:] = pixels[:, :, 0::2, 1:]  # each pair shares its chroma

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.7")
    ds.file_meta.MediaStorageSOPInstanceUID = UID("1.2.826.0.1.3680043.8.498.1.1")
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.PatientName = CANARY_NAME
    ds.PatientID = CANARY_ID
    ds.BurnedInAnnotation = "YES"
    ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, columns, samples
    ds.PhotometricInterpretation = case.photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = case.bits, stored, stored - 1
    ds.PixelRepresentation = int(case.signed)
    if samples == 3:
        ds.PlanarConfiguration = case.planar
    if case.frames > 1:
        ds.NumberOfFrames = case.frames
    if case.photometric == "PALETTE COLOR":
        palette(ds, case.bits)

    big = case.syntax == ExplicitVRBigEndian
    if case.bits == 1:
        data = np.packbits(pixels.ravel().astype(np.uint8), bitorder="little").tobytes()
    else:
        layout = pixels
        if case.photometric == "YBR_FULL_422":
            layout = np.stack(
                [
                    pixels[:, :, 0::2, 0],
                    pixels[:, :, 1::2, 0],
                    pixels[:, :, 0::2, 1],
                    pixels[:, :, 0::2, 2],
                ],
                axis=-1,
            )
        elif case.planar:
            layout = pixels.transpose(0, 3, 1, 2)
        kind = "i" if case.signed else "u"
        dtype = f"{'>' if big else '<'}{kind}{case.bits // 8}"
        data = np.ascontiguousarray(layout).astype(dtype).tobytes()
    ds.PixelData = data + b"\x00" * (len(data) % 2)
    ds["PixelData"].VR = "OB" if case.bits <= 8 and not big else "OW"
    if big and case.bits == 8:  # 8-bit OW in big endian: bytes swapped in 16-bit words
        ds.PixelData = np.frombuffer(ds.PixelData, dtype="<u2").byteswap().tobytes()

    if UID(case.syntax).is_compressed:
        options = dict(case.options)
        _silently(ds.compress, case.syntax, generate_instance_uid=False, **options)
        if options.get("use_mct"):
            ds.PhotometricInterpretation = (
                "YBR_RCT" if case.syntax == JPEG2000Lossless else "YBR_ICT"
            )
    else:
        ds.file_meta.TransferSyntaxUID = UID(case.syntax)
    return read(saved(ds)), pixels


NATIVE_CASES = [
    Case("MONOCHROME2"),
    Case("MONOCHROME2", 8, signed=True, frames=2),
    Case("MONOCHROME2", 16, 12, frames=3, syntax=ImplicitVRLittleEndian),
    Case("MONOCHROME2", 16, 12, signed=True, frames=2),
    Case("MONOCHROME2", 16, 16, signed=True),
    Case("MONOCHROME2", 16, 16, syntax=ExplicitVRBigEndian, frames=2),
    Case("MONOCHROME2", 8, syntax=DeflatedExplicitVRLittleEndian),
    Case("MONOCHROME2", 1, frames=3),
    Case("MONOCHROME1", 1),
    Case("MONOCHROME1"),
    Case("MONOCHROME1", 16, 12, frames=2),
    Case("MONOCHROME1", 16, 10, signed=True),
    Case("RGB", frames=2),
    Case("RGB", planar=1, frames=2),
    Case("RGB", 16, planar=1),
    Case("RGB", 8, syntax=ExplicitVRBigEndian, planar=1),
    Case("YBR_FULL"),
    Case("YBR_FULL", planar=1, frames=2),
    Case("YBR_FULL_422", frames=2),
    Case("PALETTE COLOR", frames=2),
    Case("PALETTE COLOR", 16, 12),
]
LOSSLESS_CASES = [
    Case("MONOCHROME2", 16, 16, signed=True, frames=3, syntax=RLELossless),
    Case("MONOCHROME1", 16, 12, syntax=RLELossless),
    Case("RGB", frames=2, syntax=RLELossless),
    Case("YBR_FULL", syntax=RLELossless),
    Case("PALETTE COLOR", frames=2, syntax=RLELossless),
    Case("MONOCHROME2", 16, 12, frames=2, syntax=JPEGLSLossless),
    Case("MONOCHROME2", 16, 12, signed=True, syntax=JPEGLSLossless),
    Case("RGB", syntax=JPEGLSLossless),
    Case("MONOCHROME2", 16, 16, signed=True, frames=2, syntax=JPEG2000Lossless),
    Case("MONOCHROME1", 16, 12, syntax=JPEG2000Lossless),
    Case("RGB", syntax=JPEG2000Lossless),
    Case("RGB", syntax=JPEG2000Lossless, options=(("use_mct", True),)),
    Case("YBR_FULL", syntax=JPEG2000Lossless),
]
LOSSY_CASES = [
    Case("MONOCHROME2", 8, frames=2, syntax=JPEGLSNearLossless, options=(("jls_error", 3),)),
    Case("RGB", syntax=JPEGLSNearLossless, options=(("jls_error", 2),)),
    Case("MONOCHROME2", 16, 12, syntax=JPEG2000, options=(("j2k_cr", [20]),)),
    Case("RGB", frames=2, syntax=JPEG2000, options=(("j2k_cr", [15]), ("use_mct", True))),
]


@pytest.mark.parametrize("case", NATIVE_CASES + LOSSLESS_CASES, ids=lambda c: c.id)
def test_synthetic_lossless_round_trip(case: Case) -> None:
    dataset, pixels = synthetic(case)
    # Regions at odd x too: subsampled YBR_FULL_422 widens them to whole pixel pairs.
    regions = [Region(3, 2, 11, 9), Region(25, 30, 50, 50, frame=case.frames - 1)]
    report = redact(dataset, regions)
    out = read(saved(dataset))

    applied = [r for f in report.regions_by_frame.values() for r in f]
    if case.photometric == "YBR_FULL_422":
        assert Region(2, 2, 12, 9, 0) in applied
    else:
        assert Region(3, 2, 11, 9, 0) in applied
    last = Region(25 - (case.photometric == "YBR_FULL_422"), 30, COLUMNS, ROWS, case.frames - 1)
    assert last in applied
    check_redacted(decoded(out, as_rgb=False), pixels, applied, out)
    assert report.source_lossy is False
    expected = {RLELossless, JPEGLSLossless, JPEG2000Lossless}
    if case.syntax in expected:
        assert report.write_back is WriteBack.REENCODED and report.reencoded_losslessly
    else:
        assert report.write_back is WriteBack.NATIVE
    assert syntax_of(out) == case.syntax
    assert out.PhotometricInterpretation == dataset.PhotometricInterpretation
    if case.options:
        assert out.PhotometricInterpretation == "YBR_RCT"
    assert out.get("PlanarConfiguration") == (case.planar if pixels.shape[3] == 3 else None)
    assert out.BurnedInAnnotation == "YES"  # only the stage, after verification, says NO


@pytest.mark.parametrize("case", LOSSY_CASES, ids=lambda c: c.id)
def test_synthetic_lossy_input_is_written_uncompressed_and_stays_marked_lossy(case: Case) -> None:
    dataset, _ = synthetic(case)
    reference = decoded(dataset, as_rgb=True)
    report = redact(dataset, [Region(0, 0, 5, 5)])
    out = read(saved(dataset))
    assert report.write_back is WriteBack.DECOMPRESSED and report.source_lossy
    assert syntax_of(out) == ExplicitVRLittleEndian
    assert out.LossyImageCompression == "01"
    method = "ISO_14495_1" if case.syntax == JPEGLSNearLossless else "ISO_15444_1"
    assert out.LossyImageCompressionMethod == method
    assert float(out.LossyImageCompressionRatio) > 1
    assert out.PhotometricInterpretation in ("MONOCHROME2", "RGB")
    check_redacted(decoded(out, as_rgb=False), reference, [Region(0, 0, 5, 5)], out)


def test_near_lossless_jpeg_ls_with_near_0_is_lossless() -> None:
    """JPEG-LS Near-Lossless with NEAR = 0 is lossless: nothing may claim a loss."""
    case = Case("MONOCHROME2", 16, 12, syntax=JPEGLSNearLossless, options=(("jls_error", 0),))
    dataset, pixels = synthetic(case)
    report = redact(dataset, [Region(0, 0, 5, 5)])
    out = read(saved(dataset))
    assert not report.source_lossy and report.write_back is WriteBack.DECOMPRESSED
    assert "LossyImageCompression" not in out
    check_redacted(decoded(out, as_rgb=False), pixels, [Region(0, 0, 5, 5)], out)


def test_lossy_history_of_an_uncompressed_file_is_kept() -> None:
    source = read(pydicom_data_folder() / "US1_UNCI.dcm")
    dataset = read(pydicom_data_folder() / "US1_UNCI.dcm")
    redact(dataset, [Region(0, 0, 64, 32)])
    for keyword in (
        "LossyImageCompression",
        "LossyImageCompressionRatio",
        "LossyImageCompressionMethod",
    ):
        assert dataset.get(keyword) == source.get(keyword)


def test_unused_high_bits_are_cleared() -> None:
    """Bits above Bits Stored are not part of the value but can hold a retired embedded
    overlay: the rewrite drops them, and the values read the same."""
    dataset, pixels = synthetic(Case("MONOCHROME2", 16, 12, frames=2))
    raw = np.frombuffer(dataset.PixelData, dtype="<u2") | 0xF000
    dataset.PixelData = raw.tobytes()
    redact(dataset, [Region(0, 0, 1, 1)])
    written = np.frombuffer(dataset.PixelData, dtype="<u2")
    assert int(written.max()) < 4096
    assert np.array_equal(written.reshape(pixels.shape)[:, 1:], pixels[:, 1:])


def test_a_failed_reencoding_falls_back_to_uncompressed(monkeypatch: pytest.MonkeyPatch) -> None:
    dataset, pixels = synthetic(Case("MONOCHROME2", 16, 12, syntax=RLELossless))

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("encoder unavailable")

    monkeypatch.setattr(Dataset, "compress", refuse)
    report = redact(dataset, [Region(0, 0, 4, 4)])
    assert report.write_back is WriteBack.DECOMPRESSED and not report.reencoded_losslessly
    out = read(saved(dataset))
    assert syntax_of(out) == ExplicitVRLittleEndian
    check_redacted(decoded(out, as_rgb=False), pixels, [Region(0, 0, 4, 4)], out)


def test_value_range_attributes_stay_true() -> None:
    dataset, _ = synthetic(Case("MONOCHROME2", 16, 12, signed=True))
    dataset.SmallestImagePixelValue = -100
    dataset.LargestImagePixelValue = 100
    redact(dataset, [Region(0, 0, 4, 4)])
    assert dataset.SmallestImagePixelValue == -2048 and dataset.LargestImagePixelValue == 100


# -- overlays, curves, icons -------------------------------------------------------------


def add_overlay(dataset: Dataset, group: int, bits: Array, origin: tuple[int, int]) -> None:
    """Overlay planes (frames, rows, columns) of 0/1 at a 1-based (row, column) origin."""
    frames, rows, columns = bits.shape
    dataset.add_new((group, 0x0010), "US", rows)
    dataset.add_new((group, 0x0011), "US", columns)
    dataset.add_new((group, 0x0040), "CS", "G")
    dataset.add_new((group, 0x0050), "SS", list(origin))
    dataset.add_new((group, 0x0100), "US", 1)
    dataset.add_new((group, 0x0102), "US", 0)
    if frames > 1:
        dataset.add_new((group, 0x0015), "IS", frames)
        dataset.add_new((group, 0x0051), "US", 1)
    packed = np.packbits(bits.ravel().astype(np.uint8), bitorder="little").tobytes()
    dataset.add_new((group, 0x3000), "OW", packed + b"\x00" * (len(packed) % 2))


def overlay_bits(dataset: Dataset, group: int, shape: tuple[int, int, int]) -> Array:
    data = np.frombuffer(dataset[(group, 0x3000)].value, dtype=np.uint8)
    size = shape[0] * shape[1] * shape[2]
    return np.unpackbits(data, bitorder="little")[:size].reshape(shape)


def test_overlays_curves_and_icons_are_removed() -> None:
    dataset, _ = synthetic(Case("MONOCHROME2", frames=2))
    add_overlay(dataset, 0x6000, np.ones((1, ROWS, COLUMNS)), (1, 1))
    dataset.add_new(0x60020010, "US", ROWS)  # an overlay kept in unused bits: no Overlay Data
    dataset.add_new(0x50000005, "US", 2)
    dataset.add_new(0x50003000, "OW", b"\x01\x02")
    icon = Dataset()
    icon.Rows = 1
    dataset.IconImageSequence = Sequence([icon])
    nested = Dataset()
    nested.IconImageSequence = Sequence([Dataset()])
    dataset.ReferencedImageSequence = Sequence([nested])

    report = redact(dataset, [Region(0, 0, 2, 2)])
    assert (report.overlays_removed, report.overlays_redacted) == (2, 0)
    assert report.curves_removed == 1 and report.icon_images_removed == 2
    out = read(saved(dataset))
    assert not [t for t in out.keys() if t.group in (0x5000, 0x6000, 0x6002)]  # noqa: SIM118
    assert "IconImageSequence" not in out
    assert "IconImageSequence" not in out.ReferencedImageSequence[0]


def test_kept_overlays_are_redacted_in_the_same_regions() -> None:
    dataset, _ = synthetic(Case("MONOCHROME2", frames=2))
    single = np.ones((1, 10, 10), dtype=np.uint8)
    add_overlay(dataset, 0x6000, single, (5, 5))  # covers image rows/columns 4..13
    multi = np.ones((2, ROWS, COLUMNS), dtype=np.uint8)
    add_overlay(dataset, 0x6002, multi, (1, 1))
    dataset.add_new(0x60040010, "US", ROWS)  # no Overlay Data: cannot be kept

    regions = [Region(0, 0, 6, 6), Region(20, 20, 22, 22, frame=1)]
    report = redact(dataset, regions, overlays=OverlayAction.REDACT)
    assert (report.overlays_removed, report.overlays_redacted) == (1, 2)
    out = read(saved(dataset))
    assert not [t for t in out.keys() if t.group == 0x6004]  # noqa: SIM118

    # A one-plane overlay shows on every frame: it loses the union of the frames' regions.
    expected_single = single.copy()
    expected_single[0, 0:2, 0:2] = 0  # image rows/columns 4..5
    assert np.array_equal(overlay_bits(out, 0x6000, (1, 10, 10)), expected_single)
    expected_multi = multi.copy()
    expected_multi[:, 0:6, 0:6] = 0
    expected_multi[1, 20:22, 20:22] = 0
    assert np.array_equal(overlay_bits(out, 0x6002, (2, ROWS, COLUMNS)), expected_multi)


# -- refusals and the header record ------------------------------------------------------


def test_regions_are_validated() -> None:
    with pytest.raises(ValueError, match="x0 < x1"):
        Region(5, 0, 5, 3)
    with pytest.raises(ValueError, match="0-based"):
        Region(0, 0, 1, 1, frame=-1)
    dataset, _ = synthetic(Case("MONOCHROME2", frames=2))
    with pytest.raises(RedactionError, match="outside"):
        redact(dataset, [Region(COLUMNS, 0, COLUMNS + 9, 5)])
    with pytest.raises(RedactionError, match="frame 2"):
        redact(dataset, [Region(0, 0, 5, 5, frame=2)])


def test_unsupported_pixel_data_is_refused() -> None:
    dataset, _ = synthetic(Case("MONOCHROME2"))
    del dataset.PixelData
    dataset.FloatPixelData = np.zeros(ROWS * COLUMNS, dtype="<f4").tobytes()
    with pytest.raises(RedactionError, match="FloatPixelData"):
        redact(dataset, [Region(0, 0, 1, 1)])


def test_no_identifier_or_pixel_value_reaches_logs_or_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    dataset, pixels = synthetic(Case("MONOCHROME2", 16, 16))
    report = redact(dataset, [Region(0, 0, 4, 4)])
    messages = [caplog.text, repr(report)]
    try:
        redact(dataset, [Region(0, 0, 4, 4, frame=9)])
    except RedactionError as exc:
        messages.append(str(exc))
    text = "\n".join(messages)
    assert CANARY_NAME not in text and CANARY_ID not in text
    distinctive = {str(v) for v in np.unique(pixels) if v > 9999}
    assert not distinctive & set(re.findall(r"\d+", text))


def test_mark_burned_in_annotation_removed() -> None:
    dataset, _ = synthetic(Case("MONOCHROME2"))
    dataset.PatientIdentityRemoved = "YES"
    dataset.DeidentificationMethod = "dicomhaven profile publication"
    mark_burned_in_annotation_removed(dataset)
    mark_burned_in_annotation_removed(dataset)  # twice: recorded once
    assert dataset.BurnedInAnnotation == "NO"
    codes = [
        (i.CodeValue, i.CodingSchemeDesignator) for i in dataset.DeidentificationMethodCodeSequence
    ]
    assert codes == [CLEAN_PIXEL_DATA[:2]]
    assert list(dataset.DeidentificationMethod) == [
        "dicomhaven profile publication",
        "Clean Pixel Data Option",
    ]
    out = read(saved(dataset))
    assert out.DeidentificationMethodCodeSequence[0].CodeMeaning == "Clean Pixel Data Option"


# -- dciodvfy: no new errors --------------------------------------------------------------

DCIODVFY_SAMPLE = [
    "CT_small.dcm",  # native, signed
    "MR_small_bigendian.dcm",  # Explicit VR Big Endian kept
    "image_dfl.dcm",  # deflated kept
    "US1_J2KR.dcm",  # JPEG 2000 Lossless (YBR_RCT) re-encoded
    "US1_J2KI.dcm",  # JPEG 2000 lossy -> Explicit VR Little Endian, RGB
    "MR2_J2KR.dcm",
    "RG3_J2KR.dcm",  # MONOCHROME1
    "OBXXXX1A_rle_2frame.dcm",  # RLE palette, multi-frame
    "OBXXXX1A_expb.dcm",  # big endian palette
    "emri_small_jpeg_ls_lossless.dcm",  # JPEG-LS Lossless re-encoded
    "JPEG-LL.dcm",  # JPEG Lossless -> Explicit VR Little Endian
    "examples_ybr_color.dcm",  # JPEG baseline YBR_FULL_422 cine -> RGB
    "MR-SIEMENS-DICOM-WithOverlays.dcm",  # overlay removed
    "SC_rgb_rle_32bit.dcm",  # RLE 32-bit -> Explicit VR Little Endian
    "SC_ybr_full_422_uncompressed.dcm",  # subsampled YBR kept
    "liver.dcm",  # 1-bit
    "color-pl.dcm",  # planar configuration 1
    "JPEGLSNearLossless_16.dcm",  # JPEG-LS lossy -> Lossy Image Compression added
]


def dciodvfy_errors(path: Path) -> set[str]:
    proc = subprocess.run(
        [require_tool("dciodvfy"), "-new", str(path)], capture_output=True, encoding="latin-1"
    )
    return {
        re.sub(r"\[\d+\]", "[n]", re.sub(r"=\s*<[^>]*>", "=<>", line))
        for line in (proc.stdout + proc.stderr).splitlines()
        if line.startswith("Error")
    }


@pytest.mark.integration
def test_dciodvfy_finds_no_new_error(tmp_path: Path) -> None:
    """Compared with the original and with the same file written by plain pydicom."""
    files = {p.name: p for p in REAL_IMAGES}
    new_errors = {}
    for name in DCIODVFY_SAMPLE:
        plain, out = tmp_path / f"plain-{name}", tmp_path / name
        plain.write_bytes(saved(read(files[name])))
        dataset = read(files[name])
        redact(dataset, [Region(0, 0, 8, 8)])
        out.write_bytes(saved(dataset))
        added = dciodvfy_errors(out) - dciodvfy_errors(files[name]) - dciodvfy_errors(plain)
        if added:
            new_errors[name] = sorted(added)
    assert new_errors == {}
