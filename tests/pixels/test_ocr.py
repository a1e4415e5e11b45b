"""Reading burned-in text: both real engines read text drawn into synthetic images (dark on
light, light on dark, small, vertical) and put its boxes where it was drawn; on Presidio's
real TCIA images every box of its answer key is covered by what each engine reads; and
``display_image`` gives what a viewer shows.

The synthetic images are drawn here with Pillow and the DejaVu fonts (Debian
``fonts-dejavu-core``), from fake identifiers; the answer key is Presidio's
``ground_truth.json`` in the shared data folder, whose boxes are on images padded by 25
pixels (see ``benchmarks/ocr_recall.py``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom
import pytest
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset

from dicomhaven.pixels import (
    Box,
    FrameValues,
    KnownValues,
    OcrEngine,
    OcrError,
    RapidOcrEngine,
    Rule,
    TesseractEngine,
    Windowing,
    Word,
    display_image,
    find_identifiers,
)
from dicomhaven.pixels._ocr import _line_words, _unrotate, merge_words
from tests.peers import missing_peer, require_tool, shared_data

FONTS = Path("/usr/share/fonts/truetype/dejavu")
PAD = 3  # pixels the redaction stage adds around every box
PRESIDIO_PADDING = 25


def font(size: int, *, mono: bool = False) -> ImageFont.FreeTypeFont:
    path = FONTS / ("DejaVuSansMono.ttf" if mono else "DejaVuSans.ttf")
    if not path.exists():
        missing_peer(f"{path} not found (apt-get install fonts-dejavu-core)")
    return ImageFont.truetype(str(path), size)


@dataclass(frozen=True)
class Drawn:
    """A synthetic image, the box of each piece of text drawn on it and its ink."""

    image: npt.NDArray[np.uint8]
    texts: dict[str, Box]
    ink: dict[str, npt.NDArray[np.bool_]]


def draw(
    size: tuple[int, int],
    texts: Sequence[tuple[str, tuple[int, int], int]],
    *,
    light_on_dark: bool = False,
    seed: int = 5,
) -> Drawn:
    """Text on a noisy ground: dark on light (a sheet) or light on dark (ultrasound)."""
    rng = np.random.default_rng(seed)
    ground = 20 if light_on_dark else 235
    noise = rng.normal(0, 6, size=(size[1], size[0]))
    base = np.clip(ground + noise, 0, 255).astype(np.uint8)
    picture = Image.fromarray(base)
    pen = ImageDraw.Draw(picture)
    boxes, ink = {}, {}
    for text, (x, y), points in texts:
        f = font(points, mono=True)
        pen.text((x, y), text, font=f, fill=230 if light_on_dark else 25)
        boxes[text] = Box(*(int(v) for v in pen.textbbox((x, y), text, font=f)))
        alone = Image.new("L", size, 0)
        ImageDraw.Draw(alone).text((x, y), text, font=f, fill=255)
        ink[text] = np.asarray(alone) > 64
    return Drawn(np.asarray(picture, dtype=np.uint8), boxes, ink)


def vertical(size: tuple[int, int], text: str, at: tuple[int, int], points: int) -> Drawn:
    """Light text on a dark ground, reading bottom to top (as on many side labels)."""
    f = font(points)
    strip = Image.new("L", (size[1], size[0]), 15)  # drawn on the image turned sideways
    alone = Image.new("L", strip.size, 0)
    ImageDraw.Draw(strip).text(at, text, font=f, fill=235)
    ImageDraw.Draw(alone).text(at, text, font=f, fill=255)
    x0, y0, x1, y1 = (int(v) for v in ImageDraw.Draw(strip).textbbox(at, text, font=f))
    turned = np.ascontiguousarray(np.rot90(np.asarray(strip, dtype=np.uint8), 1))
    ink = np.ascontiguousarray(np.rot90(np.asarray(alone) > 64, 1))
    # turning counter-clockwise takes (row r, column c) to (row W - 1 - c, column r)
    width = strip.size[0]
    return Drawn(turned, {text: Box(y0, width - x1, y1, width - x0)}, {text: ink})


SHEET = draw(
    (640, 480),
    [
        ("SMITH^JOHN", (20, 20), 18),
        ("01/02/1960", (20, 50), 18),
        ("NHS 943 476 5919", (20, 80), 18),
        ("LIVER TRANSVERSE", (300, 400), 16),
    ],
)
ULTRASOUND = draw(
    (640, 480),
    [("JONES^MARY", (30, 15), 16), ("ID: 44CG43", (420, 15), 16), ("12.5 cm/s", (30, 440), 14)],
    light_on_dark=True,
)
SMALL = draw((220, 120), [("DOE^JANE", (6, 6), 10), ("03/04/1971", (6, 22), 10)], seed=9)
VERTICAL = vertical((480, 360), "ST MARY HOSP", (60, 20), 20)

ENGINES: dict[str, Callable[[], OcrEngine]] = {
    "tesseract": TesseractEngine,
    "rapidocr": RapidOcrEngine,
}


@cache
def engine(name: str) -> OcrEngine:
    if name == "tesseract":
        require_tool("tesseract")
    return ENGINES[name]()


_reads: dict[tuple[str, str], list[Word]] = {}


def read(name: str, which: str, image: npt.NDArray[np.uint8]) -> list[Word]:
    """Each engine reads each image once per session (OCR is the slow part)."""
    key = (name, which)
    if key not in _reads:
        _reads[key] = engine(name).read(image)
    return _reads[key]


def blanked(words: Sequence[Word], shape: tuple[int, ...]) -> npt.NDArray[np.bool_]:
    """What the redaction stage would blank: every word's box padded by PAD."""
    mask = np.zeros(shape[:2], dtype=bool)
    for w in words:
        b = w.box.padded(PAD, shape)
        mask[b.y0 : b.y1, b.x0 : b.x1] = True
    return mask


def coverage(words: Sequence[Word], box: Box, shape: tuple[int, ...]) -> float:
    """Fraction of ``box`` under the union of the words' boxes, each padded by PAD."""
    b = box.clipped(shape)
    return float(blanked(words, shape)[b.y0 : b.y1, b.x0 : b.x1].mean())


def tokens(words: Sequence[Word]) -> set[str]:
    return {t for w in words for t in re.findall(r"[A-Z0-9]+", w.text.upper())}


IMAGES = {"sheet": SHEET, "ultrasound": ULTRASOUND, "small": SMALL, "vertical": VERTICAL}


@pytest.mark.parametrize("which", sorted(IMAGES))
@pytest.mark.parametrize("name", sorted(ENGINES))
def test_engines_box_the_text_where_it_was_drawn(name: str, which: str) -> None:
    drawn = IMAGES[which]
    words = read(name, which, drawn.image)
    assert all(isinstance(w, Word) and w.box.area > 0 for w in words)
    mask = blanked(words, drawn.image.shape)
    for text, ink in drawn.ink.items():
        assert mask[ink].all(), (name, which, text, float(mask[ink].mean()))
    # the boxes stay on the text: nothing is read far from what was drawn
    allowed = np.zeros(drawn.image.shape[:2], dtype=bool)
    for box in drawn.texts.values():
        b = box.padded(12, drawn.image.shape)
        allowed[b.y0 : b.y1, b.x0 : b.x1] = True
    for w in words:
        b = w.box
        assert allowed[b.y0 : b.y1, b.x0 : b.x1].mean() > 0.5, (name, which, w.box)


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_engines_read_the_identifiers_they_box(name: str) -> None:
    """What is read is good enough to match: fake name, date of birth and NHS number."""
    known = KnownValues(
        names=("SMITH^JOHN", "JONES^MARY", "DOE^JANE"),
        identifiers=("9434765919", "44CG43"),
        dates=(),
    )
    for which in ("sheet", "ultrasound", "small"):
        drawn = IMAGES[which]
        findings = find_identifiers(read(name, which, drawn.image), known)
        rules = {f.rule for f in findings}
        assert Rule.KNOWN_NAME in rules, (name, which)
    sheet = {f.rule for f in find_identifiers(read(name, "sheet", SHEET.image), known)}
    assert {Rule.KNOWN_IDENTIFIER, Rule.DATE} <= sheet
    read_vertical = tokens(read(name, "vertical", VERTICAL.image))
    assert all(any(part in t for t in read_vertical) for part in ("ST", "MARY", "HOSP"))


def test_both_engines_fit_the_seam() -> None:
    for make in ENGINES.values():
        made = make()
        assert isinstance(made, OcrEngine) and made.name in ENGINES


def test_small_frames_are_upscaled_and_boxes_mapped_back() -> None:
    engine = TesseractEngine()
    assert engine.scale_for((120, 220)) == 3
    assert engine.scale_for((552, 394)) == 3
    assert engine.scale_for((480, 640)) == 2
    assert engine.scale_for((768, 1024)) == 2
    assert engine.scale_for((1760, 2140)) == 1
    assert TesseractEngine(upscale=2).scale_for((120, 220)) == 2


def test_tesseract_refuses_what_it_cannot_do() -> None:
    with pytest.raises(OcrError, match="rotations"):
        TesseractEngine(rotations=(45,))
    with pytest.raises(OcrError, match="upscale"):
        TesseractEngine(upscale=8)
    with pytest.raises(OcrError, match="not on PATH"):
        TesseractEngine(executable="no-such-tesseract").read(SMALL.image)
    with pytest.raises(OcrError, match="8-bit"):
        TesseractEngine().read(SMALL.image.astype(np.uint16))


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_boxes_found_on_a_turned_image_map_back(rotation: int) -> None:
    image = np.zeros((40, 70), dtype=np.uint8)
    box = Box(10, 5, 30, 12)
    image[box.y0 : box.y1, box.x0 : box.x1] = 1
    turned = np.rot90(image, rotation // 90)
    rows, cols = np.nonzero(turned)
    found = Box(int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1)
    assert _unrotate(found, rotation, image.shape) == box


def test_words_of_several_passes_are_merged_without_duplicates() -> None:
    first = [Word("KAUPMAN", Box(0, 0, 70, 11), 0.6), Word("SCOTT", Box(80, 0, 130, 11), 0.9)]
    second = [Word("KAUFMAN", Box(1, 0, 73, 12), 0.95), Word("EXTRA", Box(0, 40, 50, 50), 0.8)]
    merged = merge_words([first, second])
    assert [w.text for w in merged] == ["KAUFMAN", "SCOTT", "EXTRA"]
    assert merged[0].box == Box(0, 0, 73, 12)  # grown, never shrunk


def test_a_rapidocr_line_is_cut_into_words_that_cover_it() -> None:
    quad = [[10, 5], [110, 5], [110, 25], [10, 25]]
    chars = list("AB CD")
    quads = [[[x, 5], [x + 8, 5], [x + 8, 25], [x, 25]] for x in (12, 22, 40, 60, 70)]
    words = _line_words([quad, "AB CD", 0.9, quads, chars, [0.9] * 5])
    assert [w.text for w in words] == ["AB", "CD"]
    assert words[0].box.x0 == 10 and words[1].box.x1 == 110
    assert words[0].box.x1 >= words[1].box.x0 - 1  # the cut is between them, no gap
    # inconsistent character data: the whole line is one word
    assert [w.text for w in _line_words([quad, "AB CD", 0.9, quads[:2], chars[:2], []])] == [
        "AB CD"
    ]


def test_word_repr_never_shows_the_text() -> None:
    assert "SMITH" not in repr(Word("SMITH", Box(0, 0, 1, 1), 1.0))


# --------------------------------------------------------------------------- display image


def mono(photometric: str, pixels: npt.NDArray[np.int16], **extra: object) -> Dataset:
    ds = Dataset()
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1
    ds.SamplesPerPixel = 1
    for k, v in extra.items():
        setattr(ds, k, v)
    return ds


def test_display_image_windows_and_inverts_monochrome() -> None:
    pixels = np.array([[-1000, 0], [40, 3000]], dtype=np.int16)
    windowed = display_image(mono("MONOCHROME2", pixels, WindowCenter=40, WindowWidth=400), pixels)
    assert windowed.dtype == np.uint8
    assert windowed[0, 0] == 0 and windowed[1, 1] == 255  # clipped by the window
    assert 0 < windowed[0, 1] < windowed[1, 0] < 255
    full = display_image(
        mono("MONOCHROME2", pixels, WindowCenter=40, WindowWidth=400),
        pixels,
        windowing=Windowing.FULL_RANGE,
    )
    assert full[0, 0] == 0 and full[1, 1] == 255
    assert full[1, 0] == round((40 + 1000) / 4000 * 255)  # not clipped by the window
    inverted = display_image(mono("MONOCHROME1", pixels), pixels)
    assert inverted[0, 0] == 255 and inverted[1, 1] == 0
    with pytest.raises(OcrError, match="one frame"):
        display_image(mono("MONOCHROME2", pixels), np.stack([pixels, pixels]))


def test_display_image_converts_colour() -> None:
    ds = Dataset()
    ds.PhotometricInterpretation = "YBR_FULL"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.SamplesPerPixel = 8, 8, 7, 3
    ybr_white = np.full((2, 2, 3), (255, 128, 128), dtype=np.uint8)
    shown = display_image(ds, ybr_white, values=FrameValues.STORED)
    assert (shown >= 253).all()
    assert (display_image(ds, ybr_white) == ybr_white).all()  # already RGB: kept


def test_display_image_applies_the_palette() -> None:
    ds = Dataset()
    ds.PhotometricInterpretation = "PALETTE COLOR"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.SamplesPerPixel = 8, 8, 7, 1
    ds.PixelRepresentation = 0
    lut = np.arange(256, dtype=np.uint16)
    for colour, data in (("Red", lut * 257), ("Green", lut * 0), ("Blue", (255 - lut) * 257)):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 16])
        setattr(ds, f"{colour}PaletteColorLookupTableData", data.astype("<u2").tobytes())
    index = np.array([[0, 255]], dtype=np.uint8)
    rgb = display_image(ds, index)
    assert rgb.shape == (1, 2, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 0]) == (0, 0, 255) and tuple(rgb[0, 1]) == (255, 0, 0)


# --------------------------------------------------------------------------- Presidio key


def presidio() -> tuple[Path, dict[str, list[dict[str, int]]]]:
    folder = shared_data("presidio")
    return folder, json.loads((folder / "ground_truth.json").read_text())


PRESIDIO_IMAGES = {
    "0_ORIGINAL_compressed.dcm": "sample_data/0_ORIGINAL.dcm",
    "2_ORIGINAL.dcm": "sample_data/2_ORIGINAL.dcm",
}


@pytest.mark.integration
@pytest.mark.parametrize("filename", sorted(PRESIDIO_IMAGES))
@pytest.mark.parametrize("name", sorted(ENGINES))
def test_every_presidio_identifier_box_is_covered(name: str, filename: str) -> None:
    """Recall 100% with each engine alone, blanking all text read (the policy for risky
    images whose patient is unknown) and blanking only the phrases the matcher flags."""
    folder, key = presidio()
    ds = pydicom.dcmread(folder / filename)
    image = display_image(ds, ds.pixel_array)
    words = read(name, filename, image)
    truths = [
        Box(b["left"], b["top"], b["left"] + b["width"], b["top"] + b["height"])
        for b in key[PRESIDIO_IMAGES[filename]]
    ]
    truths = [Box(*(v - PRESIDIO_PADDING for v in t)) for t in truths]
    flagged = [Word("", f.box, 1.0) for f in find_identifiers(words, KnownValues.from_header(ds))]
    generic = [Word("", f.box, 1.0) for f in find_identifiers(words)]
    for truth in truths:
        assert coverage(words, truth, image.shape) >= 0.95, (name, filename, truth)
        assert coverage(flagged, truth, image.shape) >= 0.95, (name, filename, truth)
        assert coverage(generic, truth, image.shape) >= 0.95, (name, filename, truth)


@pytest.mark.integration
def test_presidio_image_without_text_gives_no_findings() -> None:
    folder, _ = presidio()
    ds = pydicom.dcmread(folder / "RGB_ORIGINAL.dcm")
    image = display_image(ds, ds.pixel_array)
    for name in sorted(ENGINES):
        assert find_identifiers(read(name, "RGB_ORIGINAL.dcm", image)) == [], name
