"""Reading burned-in text: the ``OcrEngine`` seam, its two real engines, and the display
image they read.

An engine takes an 8-bit image (``H x W`` grey or ``H x W x 3`` RGB) and returns the
``Word`` s it recognised, each with its box in that image's pixel coordinates and a
confidence between 0 and 1. Two engines are real:

* ``TesseractEngine`` runs the Debian ``tesseract`` command (TSV output, one OpenMP thread).
  Small frames are upscaled, the image is padded (text touching the border is otherwise
  lost), and it is read several times: as given, inverted (light text on a dark ground, as
  on ultrasound), and turned by 90 and 270 degrees (vertical text). Words found by several
  passes are merged into one.
* ``RapidOcrEngine`` runs ``rapidocr_onnxruntime`` (PP-OCR detection and recognition models
  shipped inside the wheel: nothing is downloaded), initialised once per process with
  single-threaded ONNX Runtime sessions. It finds more of the small, low-contrast text of
  real ultrasound screens, and reads vertical text on its own, but is slower.

``display_image`` turns a decoded DICOM frame into what a viewer would show, which is what
the engines read.

Recognised text is patient data: nothing here logs it, and ``Word`` leaves it out of its
``repr``.

Errors::

    DicomHavenError
    └── OcrError           an engine could not run (missing program or package, failure)
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels.processing import (
    apply_color_lut,
    apply_modality_lut,
    apply_voi_lut,
    convert_color_space,
)

from dicomhaven.errors import DicomHavenError

__all__ = [
    "Box",
    "FrameValues",
    "OcrEngine",
    "OcrError",
    "RapidOcrEngine",
    "TesseractEngine",
    "Windowing",
    "Word",
    "display_image",
    "merge_words",
]

Image8 = npt.NDArray[np.uint8]


class OcrError(DicomHavenError):
    """An OCR engine could not run: its program or package is missing, or it failed."""


class Box(NamedTuple):
    """A rectangle of pixels, half-open: columns ``x0 <= x < x1``, rows ``y0 <= y < y1``."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return max(0, self.x1 - self.x0)

    @property
    def height(self) -> int:
        return max(0, self.y1 - self.y0)

    @property
    def area(self) -> int:
        return self.width * self.height

    def union(self, other: Box) -> Box:
        return Box(
            min(self.x0, other.x0),
            min(self.y0, other.y0),
            max(self.x1, other.x1),
            max(self.y1, other.y1),
        )

    def intersection(self, other: Box) -> Box:
        x0, y0 = max(self.x0, other.x0), max(self.y0, other.y0)
        return Box(x0, y0, max(x0, min(self.x1, other.x1)), max(y0, min(self.y1, other.y1)))

    def padded(self, pixels: int, shape: tuple[int, ...] | None = None) -> Box:
        """Grown by ``pixels`` on every side, clipped to an image of ``shape`` if given."""
        box = Box(self.x0 - pixels, self.y0 - pixels, self.x1 + pixels, self.y1 + pixels)
        return box.clipped(shape) if shape is not None else box

    def clipped(self, shape: tuple[int, ...]) -> Box:
        rows, cols = shape[0], shape[1]
        x0, y0 = min(max(self.x0, 0), cols), min(max(self.y0, 0), rows)
        return Box(x0, y0, max(x0, min(self.x1, cols)), max(y0, min(self.y1, rows)))


@dataclass(frozen=True)
class Word:
    """A piece of recognised text. ``text`` is patient data and stays out of ``repr``."""

    text: str = field(repr=False)
    box: Box
    confidence: float


@runtime_checkable
class OcrEngine(Protocol):
    """Reads the text of an 8-bit image (``H x W`` grey or ``H x W x 3`` RGB)."""

    @property
    def name(self) -> str: ...

    def read(self, image: npt.NDArray[Any]) -> list[Word]: ...


# --------------------------------------------------------------------------- display image


class FrameValues(StrEnum):
    """What the values of a colour frame given to ``display_image`` are."""

    #: As pydicom decodes by default: YCbCr already converted to RGB.
    DECODED = "decoded"
    #: As stored (pydicom with ``raw=True``): YCbCr still YCbCr.
    STORED = "stored"


class Windowing(StrEnum):
    """How a greyscale frame is mapped to 8 bits."""

    #: The header's first Window Center / Width or VOI LUT; min to max without one.
    HEADER = "header"
    #: Always min to max: nothing is clipped, so text drawn outside the window still shows.
    FULL_RANGE = "full-range"


def display_image(
    header: Dataset,
    frame: npt.NDArray[Any],
    *,
    values: FrameValues = FrameValues.DECODED,
    windowing: Windowing = Windowing.HEADER,
) -> Image8:
    """One frame as a viewer shows it, in 8 bits: what an OCR engine should read.

    ``frame`` is one frame of ``header`` 's pixel data (``H x W`` or ``H x W x 3``).
    MONOCHROME1 and MONOCHROME2 go through the Modality LUT and the VOI window (or min to
    max), MONOCHROME1 then inverted; YCbCr is converted to RGB; PALETTE COLOR is looked up.
    """
    photometric = str(header.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric.startswith("MONOCHROME"):
        if frame.ndim != 2:
            raise OcrError(
                f"a {photometric} frame must be 2-D (rows x columns), got shape {frame.shape};"
                " pass one frame at a time"
            )
        values_f = apply_modality_lut(frame, header).astype(np.float64)
        if windowing is Windowing.HEADER and _has_voi(header):
            values_f = apply_voi_lut(values_f, header, index=0).astype(np.float64)
        image = _stretch(values_f)
        return 255 - image if photometric == "MONOCHROME1" else image
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(frame, header)
        if rgb.dtype != np.uint8:
            rgb = (rgb.astype(np.uint32) >> 8).astype(np.uint8)
        return np.ascontiguousarray(rgb)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise OcrError(
            f"a {photometric} frame must be rows x columns x 3, got shape {frame.shape};"
            " pass one frame at a time, decoded with samples last"
        )
    if values is FrameValues.STORED and photometric.startswith("YBR"):
        frame = convert_color_space(frame, photometric, "RGB")
    if frame.dtype == np.uint8:
        return np.ascontiguousarray(frame)
    return _stretch(frame.astype(np.float64))


def _has_voi(header: Dataset) -> bool:
    return "VOILUTSequence" in header or (
        "WindowCenter" in header and "WindowWidth" in header and header.WindowWidth
    )


def _stretch(values: npt.NDArray[np.float64]) -> Image8:
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (values - low) * (255.0 / (high - low))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _grey(image: npt.NDArray[Any]) -> Image8:
    if image.dtype != np.uint8:
        raise OcrError(
            f"OCR reads 8-bit images, got {image.dtype}; convert the frame with display_image()"
        )
    if image.ndim == 2:
        return np.asarray(image, dtype=np.uint8)
    if image.ndim == 3 and image.shape[2] == 3:
        weights = np.array([0.299, 0.587, 0.114])
        luma: npt.NDArray[np.float64] = np.asarray(image, dtype=np.float64) @ weights
        return np.clip(np.rint(luma), 0, 255).astype(np.uint8)
    raise OcrError(f"OCR reads H x W or H x W x 3 images, got shape {image.shape}")


def _rgb(image: npt.NDArray[Any]) -> Image8:
    if image.dtype != np.uint8:
        raise OcrError(
            f"OCR reads 8-bit images, got {image.dtype}; convert the frame with display_image()"
        )
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise OcrError(f"OCR reads H x W or H x W x 3 images, got shape {image.shape}")


# --------------------------------------------------------------------------- merging


def _overlap(a: Box, b: Box) -> float:
    """Intersection over the smaller box's area."""
    smaller = min(a.area, b.area)
    return a.intersection(b).area / smaller if smaller else 0.0


def merge_words(passes: Iterable[Iterable[Word]], *, overlap: float = 0.5) -> list[Word]:
    """Words of several readings of one image, each piece of text once.

    Earlier passes are preferred: a word that covers at least ``overlap`` of another (of the
    smaller of the two) is the same word; the more confident reading keeps its text and the
    box grows to hold both, so no pixel any pass saw as text is lost.
    """
    kept: list[Word] = []
    for words in passes:
        for word in words:
            for i, other in enumerate(kept):
                if _overlap(word.box, other.box) >= overlap:
                    best = word if word.confidence > other.confidence else other
                    kept[i] = Word(
                        best.text, other.box.union(word.box), max(word.confidence, other.confidence)
                    )
                    break
            else:
                kept.append(word)
    return kept


def _has_alnum(text: str) -> bool:
    return any(c.isalnum() for c in text)


# --------------------------------------------------------------------------- Tesseract


class TesseractEngine:
    """The Debian ``tesseract`` program (5.x), run once per pass with one OpenMP thread.

    ``upscale`` None picks 3x for frames up to 400 pixels on their short side, 2x up to
    800, 1x above (tesseract reads best with letters 20 to 30 pixels high). ``psm`` 11
    (sparse text) suits annotations scattered over an image. Words of rotated passes need
    ``rotated_min_confidence`` and two letters or digits, and give way to a more confident
    upright reading of the same place: reading text sideways yields short junk.

    Each pass is one run of the program (0.2 to 1 s); the default six passes (upright and
    turned by 90 and 270 degrees, each as given and inverted) cost about four times the
    upright ones alone, ``rotations=(0,)``.
    """

    name = "tesseract"

    def __init__(
        self,
        *,
        executable: str = "tesseract",
        language: str = "eng",
        psm: int = 11,
        upscale: int | None = None,
        invert: bool = True,
        rotations: Sequence[int] = (0, 90, 270),
        border: int = 16,
        rotated_min_confidence: float = 0.5,
        timeout: float = 60.0,
    ) -> None:
        bad = [r for r in rotations if r not in (0, 90, 180, 270)]
        if bad or not rotations:
            raise OcrError(f"rotations must be among 0, 90, 180, 270 degrees, got {rotations}")
        if upscale is not None and not 1 <= upscale <= 4:
            raise OcrError(f"upscale must be 1 to 4 (or None for automatic), got {upscale}")
        self.executable = executable
        self.language = language
        self.psm = psm
        self.upscale = upscale
        self.invert = invert
        self.rotations = tuple(rotations)
        self.border = border
        self.rotated_min_confidence = rotated_min_confidence
        self.timeout = timeout

    def scale_for(self, shape: tuple[int, ...]) -> int:
        if self.upscale is not None:
            return self.upscale
        shortest = min(shape[0], shape[1])
        return 3 if shortest <= 400 else 2 if shortest <= 800 else 1

    def read(self, image: npt.NDArray[Any]) -> list[Word]:
        grey = _grey(image)
        scale = self.scale_for(grey.shape)
        prepared = _pad(_resize(grey, scale), self.border)
        upright: list[list[Word]] = []
        turned_passes: list[list[Word]] = []
        for rotation in self.rotations:
            turned = np.ascontiguousarray(np.rot90(prepared, rotation // 90))
            variants = [turned, 255 - turned] if self.invert else [turned]
            for variant in variants:
                words = []
                for word in self._run(variant):
                    if not _has_alnum(word.text):
                        continue
                    if rotation and (
                        word.confidence < self.rotated_min_confidence
                        or sum(c.isalnum() for c in word.text) < 2
                    ):
                        continue
                    box = _unrotate(word.box, rotation, prepared.shape)
                    box = _unscale(box, scale, self.border).clipped(grey.shape)
                    if box.area:
                        words.append(Word(word.text, box, word.confidence))
                (turned_passes if rotation else upright).append(words)
        # Text read sideways gives junk of low confidence, in either direction: a word of a
        # turned pass is kept unless an upright word over it was read with more confidence.
        seen = [w for words in upright for w in words]
        turned_passes = [
            [
                w
                for w in words
                if not any(
                    u.confidence >= w.confidence and w.box.intersection(u.box).area for u in seen
                )
            ]
            for words in turned_passes
        ]
        return merge_words([*upright, *turned_passes])

    def _run(self, image: Image8) -> list[Word]:
        program = shutil.which(self.executable)
        if program is None:
            raise OcrError(
                f"the {self.executable!r} program is not on PATH; install it with"
                " 'apt-get install tesseract-ocr tesseract-ocr-eng'"
            )
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        env = dict(os.environ, OMP_THREAD_LIMIT="1")
        command = [program, "stdin", "stdout", "-l", self.language, "--psm", str(self.psm), "tsv"]
        try:
            done = subprocess.run(
                command,
                input=buffer.getvalue(),
                capture_output=True,
                env=env,
                timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise OcrError(
                f"tesseract took longer than {self.timeout:g} s on a {image.shape[1]}x"
                f"{image.shape[0]} image; raise the engine's timeout or lower its upscale"
            ) from exc
        if done.returncode != 0:
            # tesseract's stderr names files and options, never the text it read
            detail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
            raise OcrError(
                f"tesseract exited with status {done.returncode} ({' '.join(detail)});"
                f" check that the '{self.language}' language data is installed"
            )
        return list(_parse_tsv(done.stdout.decode("utf-8", "replace")))


def _parse_tsv(tsv: str) -> Iterable[Word]:
    for row in csv.DictReader(io.StringIO(tsv), delimiter="\t", quoting=csv.QUOTE_NONE):
        text = (row.get("text") or "").strip()
        if row.get("level") != "5" or not text:
            continue
        left, top = int(row["left"]), int(row["top"])
        box = Box(left, top, left + int(row["width"]), top + int(row["height"]))
        confidence = min(max(float(row["conf"]) / 100.0, 0.0), 1.0)
        yield Word(text, box, confidence)


def _resize(image: Image8, scale: int) -> Image8:
    if scale == 1:
        return image
    rows, cols = image.shape
    resized = Image.fromarray(image).resize((cols * scale, rows * scale), Image.Resampling.LANCZOS)
    return np.asarray(resized, dtype=np.uint8)


def _pad(image: Image8, border: int) -> Image8:
    """A frame around the image in the colour of each side's own edge (its median), so that
    text touching the edge keeps its contrast: without it tesseract drops such text."""
    if border <= 0:
        return image

    def side(pixels: Image8) -> int:
        return int(np.median(pixels))

    values = ((side(image[0]), side(image[-1])), (side(image[:, 0]), side(image[:, -1])))
    return np.pad(image, border, mode="constant", constant_values=values)


def _unrotate(box: Box, rotation: int, shape: tuple[int, ...]) -> Box:
    """A box found in the image turned counter-clockwise by ``rotation`` degrees
    (``np.rot90``), mapped back to the unturned image of ``shape``."""
    rows, cols = shape[0], shape[1]
    if rotation == 90:
        return Box(cols - box.y1, box.x0, cols - box.y0, box.x1)
    if rotation == 180:
        return Box(cols - box.x1, rows - box.y1, cols - box.x0, rows - box.y0)
    if rotation == 270:
        return Box(box.y0, rows - box.x1, box.y1, rows - box.x0)
    return box


def _unscale(box: Box, scale: int, border: int) -> Box:
    """From the padded, upscaled image back to the original: floor the start, ceil the end."""
    x0, y0 = box.x0 - border, box.y0 - border
    x1, y1 = box.x1 - border, box.y1 - border
    return Box(x0 // scale, y0 // scale, -(-x1 // scale), -(-y1 // scale))


# --------------------------------------------------------------------------- RapidOCR

_rapid_lock = threading.Lock()
_rapid_instance: Any = None


def _rapid() -> Any:
    """The process's one RapidOCR, created on first use (loading its models takes ~0.2 s)."""
    global _rapid_instance
    with _rapid_lock:
        if _rapid_instance is None:
            try:
                from rapidocr_onnxruntime import RapidOCR  # type: ignore[import-untyped]
            except ImportError as exc:  # pragma: no cover - a declared dependency
                raise OcrError(
                    "rapidocr_onnxruntime is not installed; run 'pip install"
                    " rapidocr-onnxruntime' (its models ship inside the wheel)"
                ) from exc
            _rapid_instance = RapidOCR(
                intra_op_num_threads=1, inter_op_num_threads=1, print_verbose=False
            )
        return _rapid_instance


class RapidOcrEngine:
    """RapidOCR (PP-OCRv4 on ONNX Runtime), its models inside the wheel, one thread.

    It returns lines; each line is cut into words at its spaces, the cuts made halfway
    between words so that the words together cover the whole line. Images longer than
    ``max_side`` are shrunk for detection (RapidOCR's own limit is 2000).
    """

    name = "rapidocr"

    def __init__(self, *, max_side: int = 2000, min_score: float = 0.5) -> None:
        if max_side < 32:
            raise OcrError(f"max_side must be at least 32 pixels, got {max_side}")
        self.max_side = max_side
        self.min_score = min_score

    def read(self, image: npt.NDArray[Any]) -> list[Word]:
        rgb = _rgb(image)
        rows, cols = rgb.shape[:2]
        factor = min(1.0, self.max_side / max(rows, cols))
        if factor < 1.0:
            size = (max(1, round(cols * factor)), max(1, round(rows * factor)))
            rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        result, _ = _rapid()(bgr, return_word_box=True, text_score=self.min_score)
        words: list[Word] = []
        for line in result or []:
            for word in _line_words(line):
                box = Box(
                    int(np.floor(word.box.x0 / factor)),
                    int(np.floor(word.box.y0 / factor)),
                    int(np.ceil(word.box.x1 / factor)),
                    int(np.ceil(word.box.y1 / factor)),
                ).clipped((rows, cols))
                if box.area and _has_alnum(word.text):
                    words.append(Word(word.text, box, word.confidence))
        return words


def _quad_box(points: Sequence[Sequence[float]]) -> Box:
    xs = [float(p[0]) for p in points]
    ys = [float(p[1]) for p in points]
    return Box(
        int(np.floor(min(xs))), int(np.floor(min(ys))), int(np.ceil(max(xs))), int(np.ceil(max(ys)))
    )


def _line_words(line: Sequence[Any]) -> list[Word]:
    """Words of one RapidOCR line ``[quad, text, score, char quads, chars, char scores]``."""
    line_box = _quad_box(line[0])
    text, score = str(line[1]), float(line[2])
    chars: list[str] = list(line[4]) if len(line) > 4 else []
    quads: list[Any] = list(line[3]) if len(line) > 3 else []
    if not chars or len(chars) != len(quads) or "".join(chars).strip() != text.strip():
        return [Word(text.strip(), line_box, score)]
    groups: list[tuple[str, Box]] = []
    current, box = "", None
    for char, quad in zip(chars, quads, strict=True):
        if char.isspace():
            if current and box is not None:
                groups.append((current, box))
            current, box = "", None
            continue
        char_box = _quad_box(quad)
        current += char
        box = char_box if box is None else box.union(char_box)
    if current and box is not None:
        groups.append((current, box))
    if len(groups) <= 1:
        return [Word(text.strip(), line_box, score)]
    horizontal = line_box.width >= line_box.height
    order = sorted(
        range(len(groups)), key=lambda i: groups[i][1].x0 if horizontal else groups[i][1].y0
    )
    words: list[Word] = [Word("", line_box, score)] * len(groups)
    for rank, i in enumerate(order):
        word_text, word_box = groups[i]
        if horizontal:
            start = line_box.x0 if rank == 0 else (groups[order[rank - 1]][1].x1 + word_box.x0) // 2
            end = (
                line_box.x1
                if rank == len(order) - 1
                else (word_box.x1 + groups[order[rank + 1]][1].x0 + 1) // 2
            )
            cut = Box(start, line_box.y0, max(start + 1, end), line_box.y1)
        else:
            start = line_box.y0 if rank == 0 else (groups[order[rank - 1]][1].y1 + word_box.y0) // 2
            end = (
                line_box.y1
                if rank == len(order) - 1
                else (word_box.y1 + groups[order[rank + 1]][1].y0 + 1) // 2
            )
            cut = Box(line_box.x0, start, line_box.x1, max(start + 1, end))
        words[i] = Word(word_text, cut, score)
    return words
