"""Synthetic pixel data: breasts, CT phantoms, ultrasound speckle, screens and text.

The images only need to look plausible to a person and to a pixel-redaction stage: dark
background, tissue-like texture, text in the places devices put it. Text uses the font
bundled inside Pillow (``ImageFont.load_default(size=...)``), so it renders the same on
every machine with the same Pillow wheel. Each drawn line's box is measured from the pixels
actually set, not estimated from the font metrics.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "HEADER_ROWS",
    "TextLayer",
    "TextLine",
    "blank",
    "breast",
    "ct_slice",
    "render_mask",
    "text_bitmap",
    "text_width",
    "ultrasound_frame",
]

U8 = npt.NDArray[np.uint8]
U16 = npt.NDArray[np.uint16]
F32 = npt.NDArray[np.float32]
Box = tuple[int, int, int, int]
TextLine = tuple[int, int, str]

#: Ultrasound frames keep this many top rows black for the device's header text.
HEADER_ROWS = 80


@functools.cache
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def render_mask(shape: tuple[int, int], x: int, y: int, text: str, size: int) -> tuple[U8, Box]:
    """Anti-aliased coverage (0-255) of one line of text, and its box (x, y, w, h)."""
    rows, cols = shape
    mask = Image.new("L", (cols, rows), 0)
    ImageDraw.Draw(mask).text((x, y), text, font=_font(size), fill=255)
    bbox = mask.getbbox()
    if bbox is None:
        raise ValueError("text was drawn outside the image")
    left, top, right, bottom = bbox
    return np.asarray(mask, dtype=np.uint8), (left, top, right - left, bottom - top)


def text_width(text: str, size: int) -> int:
    """Advance width of ``text`` in pixels, for right-aligning a line."""
    return math.ceil(_font(size).getlength(text))


@dataclass(frozen=True, slots=True)
class TextLayer:
    """Lines of text rendered once, to blend into any number of frames at the same place."""

    alpha: npt.NDArray[np.float32]
    boxes: tuple[Box, ...]

    @classmethod
    def render(cls, shape: tuple[int, int], lines: list[TextLine], size: int) -> TextLayer:
        alpha = np.zeros(shape, dtype=np.float32)
        boxes = []
        for x, y, text in lines:
            mask, box = render_mask(shape, x, y, text, size)
            np.maximum(alpha, mask.astype(np.float32) / 255.0, out=alpha)
            boxes.append(box)
        return cls(alpha, tuple(boxes))

    def blend(self, image: U8, colour: tuple[int, ...]) -> U8:
        """``image`` (H×W or H×W×3, 8-bit) with the text drawn over it in ``colour``."""
        alpha = self.alpha[..., None] if image.ndim == 3 else self.alpha
        ink = np.asarray(colour if image.ndim == 3 else colour[:1], dtype=np.float32)
        out = image.astype(np.float32) * (1.0 - alpha) + ink * alpha
        blended: U8 = np.rint(out).astype(np.uint8)
        return blended


def text_bitmap(shape: tuple[int, int], x: int, y: int, text: str, size: int) -> tuple[U8, Box]:
    """A 0/1 bitmap spelling ``text`` (for an overlay plane) and the box of its set bits."""
    mask, _ = render_mask(shape, x, y, text, size)
    bits = (mask >= 128).astype(np.uint8)
    ys, xs = np.nonzero(bits)
    box = (int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1))
    return bits, box


def _smooth_noise(rng: np.random.Generator, rows: int, cols: int, cell: int) -> F32:
    """Blobby texture: coarse Gaussian noise resized smoothly to the full matrix."""
    coarse = rng.standard_normal((rows // cell + 2, cols // cell + 2)).astype(np.float32)
    smooth = Image.fromarray(coarse, mode="F").resize((cols, rows), Image.Resampling.BICUBIC)
    return np.asarray(smooth, dtype=np.float32)


def breast(rng: np.random.Generator, rows: int, cols: int, laterality: str, view: str) -> U16:
    """A 12-bit MONOCHROME2 mammogram: breast against black, chest wall at the image edge.

    Right breasts face left (chest wall on the right), left breasts face right, as mammograms
    are hung back to back. MLO views show a pectoral muscle triangle at the top.
    """
    y = np.arange(rows, dtype=np.float32)[:, None]
    x = np.arange(cols, dtype=np.float32)[None, :]
    depth = x / cols if laterality == "L" else (cols - 1 - x) / cols  # 0 at the chest wall
    centre = 0.5 if view == "CC" else 0.58
    height = (y / rows - centre) / (0.36 if view == "CC" else 0.42)
    reach = np.float32(0.68 + 0.04 * rng.standard_normal())
    r = np.sqrt((depth / reach) ** 2 + height**2)  # 0 at the nipple line's root, 1 at the skin
    texture = _smooth_noise(rng, rows, cols, max(4, rows // 32))
    tissue = 1700 + 500 * (1 - r) + 260 * texture
    tissue += 30 * rng.standard_normal((rows, cols), dtype=np.float32)
    skin = np.clip((1 - r) * 25, 0, 1)
    image = tissue * skin + 300 * (1 - skin)
    if view == "MLO":
        image += np.where(depth < 0.35 * (1 - y / (0.55 * rows)), np.float32(600), np.float32(0))
    image[r >= 1] = 0
    stored: U16 = np.clip(image, 0, 4095).astype(np.uint16)
    return stored


def ct_slice(rng: np.random.Generator, rows: int, cols: int, z: float) -> U16:
    """An axial chest slice in stored values (HU + 1024): air, body, lungs, spine, aorta."""
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    u, v = (x - cols / 2) / (cols / 2), (y - rows / 2) / (rows / 2)
    hu = np.full((rows, cols), -1000.0, dtype=np.float32)

    def ellipse(cx: float, cy: float, ax: float, ay: float) -> npt.NDArray[np.bool_]:
        inside: npt.NDArray[np.bool_] = ((u - cx) / ax) ** 2 + ((v - cy) / ay) ** 2 < 1.0
        return inside

    swell = 1.0 + 0.03 * np.sin(z / 20.0)
    hu[ellipse(0, 0.05, 0.85 * swell, 0.62 * swell)] = 40.0
    lung = 0.28 + 0.02 * np.cos(z / 15.0)
    hu[ellipse(-0.4, 0.0, lung, 0.42)] = -820.0
    hu[ellipse(0.4, 0.0, lung, 0.42)] = -830.0
    hu[ellipse(0, 0.45, 0.12, 0.12)] = 700.0
    hu[ellipse(0, 0.45, 0.06, 0.06)] = 250.0
    hu[ellipse(0.05, 0.15, 0.07, 0.07)] = 45.0
    hu += 12.0 * rng.standard_normal((rows, cols)).astype(np.float32)
    stored: U16 = np.clip(hu + 1024.0, 0, 4095).astype(np.uint16)
    return stored


@functools.cache
def _sector(rows: int, cols: int) -> tuple[npt.NDArray[np.intp], F32, F32, F32]:
    """Flat indexes of the fan-shaped field of view and each one's x, y and depth."""
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    apex_y, apex_x = float(HEADER_ROWS), cols / 2
    radius = np.hypot(x - apex_x, y - apex_y)
    angle = np.arctan2(x - apex_x, y - apex_y)
    inside = (np.abs(angle) < 0.62) & (radius > 12) & (radius < rows - apex_y - 40) & (y > apex_y)
    index = np.flatnonzero(inside)
    return index, x.ravel()[index], y.ravel()[index], radius.ravel()[index]


def ultrasound_frame(rng: np.random.Generator, rows: int, cols: int, phase: float) -> U8:
    """An 8-bit sector scan with speckle; the header rows and the bottom stay black for text."""
    index, x, y, radius = _sector(rows, cols)
    speckle = rng.rayleigh(1.0, index.size).astype(np.float32)
    organ = np.hypot((x - cols / 2 - 40 * np.sin(phase)) / 120, (y - 260) / 80) < 1.0
    gain = 70 - 0.08 * radius - np.where(organ, np.float32(35), np.float32(0))
    image = np.zeros(rows * cols, dtype=np.uint8)
    image[index] = np.clip(speckle * gain, 0, 255).astype(np.uint8)
    return image.reshape(rows, cols)


def blank(rows: int, cols: int, level: int = 0) -> U8:
    """A flat 8-bit canvas, e.g. a screen capture's background."""
    return np.full((rows, cols), level, dtype=np.uint8)
