"""Every pixel layout in the real test files decodes or is held with a reason (issue 18,
item 4): big-endian, palette colour (segmented and 16-bit too), planar configuration 1,
signed, 1-bit, 12-bit in 16 and other odd depths, YBR native and compressed, one frame or
many, and the deliberately broken files.

Three checks, from the parts to the whole:

- the survey of :mod:`tests.pixels.layouts` finds the spread it must (else the rest proves
  little);
- each layout's representative is decoded, shown to the OCR engines, blanked and written
  back by the pixel modules: the written file's header describes its pixels truthfully
  (pydicom, reading it by that header, gets exactly the blanked pixels), only the region
  changed, and what the engines are shown matches what a viewer shows; or the file is held
  with a reason naming its layout, and only when pydicom cannot read it either;
- every layout goes through the pipeline's own pixel stage on the header-de-identified copy
  (``dicomhaven import``) and ends released or held with a reason, never failed; and a
  synthetic name drawn into a sample of layouts is found and blanked.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels.utils import pixel_array
from pydicom.uid import UID, ExplicitVRLittleEndian, SecondaryCaptureImageStorage
from sqlalchemy import select

from dicomhaven.catalogue import LedgerObject, PixelVerdict, make_engine, make_sessionmaker
from dicomhaven.deid._engine import write_dataset
from dicomhaven.ingest import import_paths
from dicomhaven.pixels._clean import PixelOutcome, _images, clean_pixels
from dicomhaven.pixels._codec import (
    DECLARED_SIZE_CHECK,
    RedactionError,
    WriteBack,
    decode,
    describe_layout,
)
from dicomhaven.pixels._redact import black_value, redact
from dicomhaven.pixels._region import Region
from dicomhaven.site import init_site
from tests.peers import require_tool
from tests.pixels.layout_site import PlantedName, patient_of, plant_name, prepare
from tests.pixels.layouts import Layout, case_id, cases, layout_of, survey

CASES = cases()


def pydicom_decodes(path: Path) -> bool:
    """Whether pydicom itself reads the file's pixels (the reference for "readable")."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            pixel_array(pydicom.dcmread(path, force=True), raw=True)
        except Exception:
            return False
    return True


def readable(path: Path) -> bool:
    """Whether pydicom, or the pixel modules, read the file's pixels (a file without File
    Meta is read in the encoding it was read with, which pydicom's decoders do not do)."""
    if pydicom_decodes(path):
        return True
    try:
        decode(pydicom.dcmread(path, force=True))
    except RedactionError:
        return False
    return True


def test_the_survey_finds_the_spread_of_layouts_the_issue_names() -> None:
    layouts = list(survey())
    assert len(layouts) >= 85, len(layouts)  # 96 with ../shared/data, 90 without
    kinds = {
        "big endian": [x for x in layouts if x.big_endian],
        "palette": [x for x in layouts if x.photometric == "PALETTE COLOR"],
        "big-endian palette": [x for x in layouts if x.big_endian and x.photometric == "PALETTE COLOR"],
        "16-bit palette": [x for x in layouts if x.photometric == "PALETTE COLOR" and x.bits_allocated == 16],
        "planar configuration 1": [x for x in layouts if x.planar == 1],
        "signed": [x for x in layouts if x.signed],
        "1-bit": [x for x in layouts if x.bits_allocated == 1],
        "odd bit depth": [x for x in layouts if x.odd_depth and x.bits_allocated != 1],
        "YBR": [x for x in layouts if (x.photometric or "").startswith("YBR")],
        "encapsulated": [x for x in layouts if x.encapsulated],
        "multi-frame": [x for x in layouts if x.multi_frame],
        "no transfer syntax": [x for x in layouts if x.syntax == "no transfer syntax"],
        "no Image Pixel module": [x for x in layouts if x.photometric is None],
    }  # fmt: skip
    assert [kind for kind, found in kinds.items() if not found] == []


def _box(rows: int, columns: int) -> Region:
    """The middle of the image, at least one pixel."""
    x0, y0 = columns // 4, rows // 4
    return Region(x0, y0, max(x0 + 1, 3 * columns // 4), max(y0 + 1, 3 * rows // 4))


def _held_reason_names_the_layout(reason: str, layout: Layout) -> None:
    if reason.startswith(DECLARED_SIZE_CHECK):
        return  # nothing decodable is declared: the check says which attribute
    assert reason.startswith("pixels not decodable ("), reason
    if layout.photometric:
        assert layout.photometric in reason, reason
    assert f"{layout.bits_allocated} bits allocated" in reason, reason


@pytest.mark.integration  # about 20 s for all of them, a J2K re-encoding of 3.6 Mpixels among
@pytest.mark.parametrize(("layout", "path"), CASES, ids=[case_id(c) for c in CASES])
def test_each_layout_is_blanked_and_written_back_truthfully_or_held_naming_it(
    layout: Layout, path: Path, tmp_path: Path
) -> None:
    dataset = pydicom.dcmread(path, force=True)
    try:
        decoded = decode(dataset)
    except RedactionError as exc:
        _held_reason_names_the_layout(str(exc), layout)
        assert not pydicom_decodes(path), "held, though pydicom reads its pixels"
        return
    count, rows, columns, samples = decoded.frames.shape
    # What the OCR engines read: 8 bits, one image per frame, the frame's own size.
    for image in _images(dataset, range(count)):
        assert image.dtype == np.uint8
        assert image.shape[:2] == (rows, columns) and image.ndim in (2, 3)
    before = decoded.frames.copy()
    report = redact(dataset, [_box(rows, columns)])
    written = tmp_path / "out.dcm"
    write_dataset(dataset, written)
    again = pydicom.dcmread(written)
    after = decode(again)
    # The header tells the truth: pydicom, by the written header alone, gets these pixels.
    by_header = pixel_array(again, raw=True)
    assert by_header.size == after.frames.size
    assert np.array_equal(by_header.reshape(after.frames.shape), after.frames)
    syntax = again.file_meta.TransferSyntaxUID
    assert again["PixelData"].is_undefined_length == syntax.is_encapsulated
    if report.write_back is WriteBack.DECOMPRESSED:
        assert not syntax.is_compressed
        if decoded.source_lossy:
            assert again.LossyImageCompression == "01"
    # Blanked on every frame, and nothing else changed.
    (region,) = report.regions_by_frame[0]
    fill = np.array(black_value(again, after.photometric), dtype=after.frames.dtype)
    assert after.frames.shape == before.shape and after.photometric == decoded.photometric
    inside = np.zeros((rows, columns), dtype=bool)
    inside[region.y0 : region.y1, region.x0 : region.x1] = True
    assert (after.frames[:, inside] == fill).all()
    assert np.array_equal(after.frames[:, ~inside], before[:, ~inside])
    # And the blanked region shows as one flat colour to the engines.
    for image in _images(again, range(count)):
        shown = image[region.y0 : region.y1, region.x0 : region.x1]
        assert int(np.ptp(shown)) == 0
    # How the pixels are shown is as it was: showing them to the engines changed nothing.
    source = pydicom.dcmread(path, force=True)
    for keyword in _DISPLAY_ATTRIBUTES:
        if keyword in source:
            assert again[keyword].value == source[keyword].value, keyword
    assert samples == len(fill)


#: Attributes that say how stored values are shown, which redaction never changes.
_DISPLAY_ATTRIBUTES = (
    *(f"{c}PaletteColorLookupTable{p}" for c in ("Red", "Green", "Blue")
      for p in ("Descriptor", "Data")),
    *(f"Segmented{c}PaletteColorLookupTableData" for c in ("Red", "Green", "Blue")),
    "RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth", "PixelRepresentation",
    "BitsStored", "HighBit",
)  # fmt: skip


def _named(name: str) -> Path:
    found = [p for paths in survey().values() for p in paths if p.name == name]
    if not found:
        pytest.skip(f"{name} is not installed")
    return found[0]


#: Files the corpora hold twice, in two layouts of one image: big and little endian, YCbCr
#: and RGB. Each pair must be shown to the OCR engines alike (within the rounding of a
#: colour conversion): a signed or big-endian image shown as noise, a palette looked up in
#: the wrong byte order, or YCbCr shown as if it were RGB, fails here.
TWINS = [
    ("MR_small.dcm", "MR_small_bigendian.dcm", 0),
    ("emri_small.dcm", "emri_small_big_endian.dcm", 0),
    ("liver.dcm", "liver_expb.dcm", 0),
    ("rtdose.dcm", "rtdose_expb.dcm", 0),
    ("OBXXXX1A.dcm", "OBXXXX1A_expb.dcm", 0),
    ("OBXXXX1A_2frame.dcm", "OBXXXX1A_expb_2frame.dcm", 0),
    ("gdcm-US-ALOKA-16.dcm", "gdcm-US-ALOKA-16_big.dcm", 0),
    ("SC_rgb.dcm", "SC_rgb_expb.dcm", 0),
    ("SC_rgb_16bit.dcm", "SC_rgb_expb_16bit.dcm", 0),
    ("color-px.dcm", "color-pl.dcm", 0),
    ("SC_rgb.dcm", "SC_ybr_full_uncompressed.dcm", 8),
    ("SC_rgb.dcm", "SC_ybr_full_422_uncompressed.dcm", 8),
    ("US1_UNCR.dcm", "US1_J2KR.dcm", 0),
]


@pytest.mark.parametrize(("first", "second", "tolerance"), TWINS, ids=[t[1] for t in TWINS])
def test_one_image_in_two_layouts_is_shown_to_the_engines_alike(
    first: str, second: str, tolerance: int
) -> None:
    a, b = pydicom.dcmread(_named(first)), pydicom.dcmread(_named(second))
    count = int(a.get("NumberOfFrames", 1) or 1)
    for shown_a, shown_b in zip(_images(a, range(count)), _images(b, range(count)), strict=True):
        assert shown_a.shape == shown_b.shape
        assert int(np.abs(shown_a.astype(int) - shown_b.astype(int)).max()) <= tolerance
    # Twice in a row: showing an image leaves the data set as it was.
    again = _images(b, range(count))
    assert all(np.array_equal(x, y) for x, y in zip(again, _images(b, range(count)), strict=True))


def test_showing_an_image_to_the_engines_changes_nothing_in_it() -> None:
    """Regression: the header given to the display shared its elements with the data set,
    so a JPEG's Photometric Interpretation became RGB (its YCbCr then decoded as RGB into
    the copy) and a big-endian palette's tables were byte-swapped in the copy."""
    for name in ("SC_rgb_jpeg_lossy_gdcm.dcm", "OBXXXX1A_expb.dcm", "gdcm-US-ALOKA-16_big.dcm"):
        dataset = pydicom.dcmread(_named(name))
        header = [(e.tag, e.value) for e in dataset.group_dataset(0x0028)]
        pixels = decode(dataset).frames
        _images(dataset, [0])
        assert [(e.tag, e.value) for e in dataset.group_dataset(0x0028)] == header, name
        assert np.array_equal(decode(dataset).frames, pixels), name


# -- what a held image's reason says ----------------------------------------------------------


def _synthetic(photometric: str = "MONOCHROME2") -> Dataset:
    """A 64 x 64 8-bit "OT" image of synthetic patient ZZTEST^REASON: read in full by triage."""
    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.SOPClassUID = SecondaryCaptureImageStorage
    dataset.SOPInstanceUID = "1.2.826.0.1.3680043.9.9999.18.900.1"
    dataset.PatientName, dataset.PatientID, dataset.Modality = "ZZTEST^REASON", "ZZR0001", "OT"
    dataset.Rows = dataset.Columns = 64
    dataset.SamplesPerPixel, dataset.PhotometricInterpretation = 1, photometric
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 8, 8, 7
    dataset.PixelRepresentation = 0
    dataset.PixelData = bytes(64 * 64)
    return dataset


def test_an_unforeseen_failure_is_held_naming_the_stage_the_tag_and_the_layout() -> None:
    """Regression: an exception a library raised while the pixels were shown (here pydicom
    on a Modality LUT whose data do not fit its descriptor) left the pixel stage, and the
    object ended failed as "an internal error"."""
    dataset = _synthetic()
    item = Dataset()
    item.LUTDescriptor, item.LUTData, item.ModalityLUTType = [256, 0, 16], b"ZZTEST", "US"
    dataset.ModalityLUTSequence = [item]
    result = clean_pixels(dataset, None, original=dataset)
    assert result.outcome is PixelOutcome.HELD
    assert (
        "the pixel stage failed on (7FE0,0010) Pixel Data (Explicit VR Little Endian, "
        "MONOCHROME2, 8 bits allocated (8 stored, high bit 7), unsigned, 1 frame) with "
        "ValueError in pixels/processing.py" in result.reason
    )
    assert "ZZTEST" not in result.reason and "internal error" not in result.reason


def test_a_palette_whose_tables_do_not_fit_their_descriptor_is_held_naming_it() -> None:
    dataset = _synthetic("PALETTE COLOR")
    for colour in ("Red", "Green", "Blue"):
        setattr(dataset, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 16])
        setattr(dataset, f"{colour}PaletteColorLookupTableData", b"\0" * 6)  # 3 of 256
    result = clean_pixels(dataset, None, original=dataset)
    assert result.outcome is PixelOutcome.HELD
    assert result.reason.startswith(
        "pixels cannot be made safe: pixels not decodable (Explicit VR Little Endian, "
        "PALETTE COLOR, 8 bits allocated"
    )
    assert "Red Palette Color Lookup Table is missing, or its data" in result.reason


def test_a_layout_is_named_in_the_standard_s_words_never_in_the_file_s() -> None:
    """A reason is written to the ledger and the logs: a value the file holds where a term
    belongs (a name as Photometric Interpretation, a number as transfer syntax) is not
    repeated."""
    dataset = _synthetic("ZZTEST CANARY")
    dataset.file_meta.TransferSyntaxUID = UID("1.2.826.0.1.3680043.9.9999.18.4242")
    with pytest.raises(RedactionError) as raised:
        decode(dataset)
    assert str(raised.value).startswith("pixels not decodable (an unknown transfer syntax, ")
    assert describe_layout(dataset).startswith("an unknown transfer syntax, an unknown colour")
    for value in ("ZZTEST", "CANARY", "4242"):
        assert value not in str(raised.value)
    floating = _synthetic()
    del floating.PixelData
    floating.FloatPixelData = bytes(4 * 64 * 64)
    with pytest.raises(
        RedactionError, match=r"\(7FE0,0008\) Float Pixel Data \(FloatPixelData\) is not read"
    ):
        decode(floating)


# -- through the pipeline ---------------------------------------------------------------------

#: Layouts a name is drawn into: greyscale signed (14 bits in 16, and big endian), palette
#: (16-bit, segmented, big endian), RGB planar configuration 1, RGB big endian, YCbCr
#: (4:2:2 uncompressed, and reversible-colour JPEG 2000), 1-bit big endian.
PLANTED = (
    "693_UNCI.dcm",
    "MR_small_bigendian.dcm",
    "gdcm-US-ALOKA-16_big.dcm",
    "color-pl.dcm",
    "SC_rgb_expb.dcm",
    "SC_ybr_full_422_uncompressed.dcm",
    "US1_J2KR.dcm",
    "liver_expb_1frame.dcm",
)


@dataclass(frozen=True)
class Ended:
    """How one imported copy ended: its ledger status and reason, and the pixel stage's
    verdict with the copy it was recorded on (None when the stage held it)."""

    status: str
    reason: str
    verdict: str | None
    copy: Path | None


@dataclass(frozen=True)
class Imported:
    layouts: dict[str, Ended]  # by case id
    planted: dict[str, tuple[Ended, PlantedName, Path]]  # by file name: with the input


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Imported:
    """Every layout's copy and the planted copies, imported into one site (one worker)."""
    require_tool("tesseract")
    base = tmp_path_factory.mktemp("every-layout")
    export = base / "export"
    inputs: dict[str, Path] = {}
    for index, case in enumerate(CASES):
        inputs[case_id(case)] = export / f"layout-{index:03d}.dcm"
        prepare(case[1], inputs[case_id(case)], index)
    plants: dict[str, tuple[PlantedName, Path]] = {}
    for number, name in enumerate(PLANTED):
        index = 500 + number
        target = export / f"planted-{number}.dcm"
        prepare(_named(name), target, index)
        before = layout_of(pydicom.dcmread(target, force=True))
        plants[name] = (plant_name(target, patient_of(index)[0]), target)
        drawn = pydicom.dcmread(target, force=True)
        assert layout_of(drawn) == before, name  # drawn in the layout it had
        x0, y0, x1, y1 = plants[name][0].box
        assert np.ptp(pixel_array(drawn, raw=True)[y0:y1, x0:x1].astype(np.int64)) > 0, name
    site = init_site(base / "site")
    import_paths(site, [export], workers=1)
    copies = {_sha256(p): p for zone in ("store", "quarantine") for p in site.zone(zone).rglob("*.dcm")}  # fmt: skip
    with make_sessionmaker(make_engine(site.database_url))() as session:
        verdicts = {v.object_id: v for v in session.scalars(select(PixelVerdict))}
        by_sha = {o.sha256: o for o in session.scalars(select(LedgerObject))}

    def ended(path: Path) -> Ended:
        obj = by_sha[_sha256(path)]
        verdict = verdicts.get(obj.id)
        copy = copies.get(verdict.sha256) if verdict is not None else None
        return Ended(obj.status, obj.reason, verdict.text if verdict else None, copy)

    return Imported(
        {key: ended(path) for key, path in inputs.items()},
        {name: (ended(target), plant, target) for name, (plant, target) in plants.items()},
    )


@pytest.mark.integration
@pytest.mark.parametrize(("layout", "path"), CASES, ids=[case_id(c) for c in CASES])
def test_each_layout_ends_released_or_held_with_a_reason_by_the_pixel_stage(
    imported: Imported, layout: Layout, path: Path
) -> None:
    ended = imported.layouts[case_id((layout, path))]
    assert ended.status != "failed", ended.reason
    assert ended.reason and "internal error" not in ended.reason
    if not readable(path):
        assert ended.status == "quarantined", ended.reason
        assert ended.reason.startswith("held: pixels cannot be made safe: "), ended.reason
        return
    # A layout it can read: read, and the copy's verdict recorded on the bytes written.
    assert ended.verdict in ("clean", "redacted"), ended.reason
    assert ended.copy is not None
    copy = pydicom.dcmread(ended.copy)
    by_header = pixel_array(copy, raw=True)  # the copy's header still describes its pixels
    assert by_header.size == decode(copy).frames.size


@pytest.mark.integration
@pytest.mark.parametrize("name", PLANTED)
def test_a_name_drawn_into_the_pixels_is_found_and_blanked(imported: Imported, name: str) -> None:
    ended, plant, drawn = imported.planted[name]
    assert ended.verdict == "redacted", ended.reason
    assert ended.copy is not None
    copy = pydicom.dcmread(ended.copy)
    assert layout_of(copy) == layout_of(pydicom.dcmread(drawn, force=True))  # as it came
    frames = decode(copy).frames
    x0, y0, x1, y1 = plant.box
    panel = frames[:, y0:y1, x0:x1].reshape(-1, frames.shape[-1])
    assert (panel == panel[0]).all(), "ink of the drawn name is left in its panel"
