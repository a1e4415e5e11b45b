"""Real test files made ready for a site's import, their pixel layout untouched, and a
synthetic name drawn into a copy's pixels in the values its own layout stores.

The corpora's files share UIDs (one image in several encodings) and many have no patient:
each copy is given its own synthetic patient and UIDs. A clip longer than two frames is cut
to two (still a clip, in the same layout), so that every layout can be imported at little
cost. Names and numbers here are synthetic; nothing from the files is printed.
"""

from __future__ import annotations

import dataclasses
import warnings
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels.processing import apply_color_lut
from pydicom.uid import JPEG2000, UID, SecondaryCaptureImageStorage

from dicomhaven.pixels._codec import RedactionError, decode, lut_header, write_back
from tests.pixels.layouts import layout_of

__all__ = ["PlantedName", "patient_of", "plant_name", "prepare"]

ROOT = "1.2.826.0.1.3680043.9.9999.18."
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
#: Descriptions that may call an image a head (held for defacing, not read): a layout test
#: is about the pixels, so the copy is a plain "OT" image with none of them.
_HEAD_WORDS = ("StudyDescription", "SeriesDescription", "ProtocolName", "BodyPartExamined")


def patient_of(index: int) -> tuple[str, str]:
    """The synthetic patient of copy ``index``: (Patient's Name, Patient ID)."""
    letters = "".join(chr(ord("A") + int(d)) for d in f"{index:03d}")
    return f"ZZLAYOUT^{letters}", f"ZZL{index:06d}"


def _cut_frames(dataset: Dataset, keep: int) -> None:
    """Keep the first ``keep`` frames of a longer clip, in its own encoding."""
    try:
        count = int(dataset.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        return  # a Number of Frames that does not parse stays as it is
    if count <= keep or "PixelData" not in dataset:
        return
    syntax = UID(str(dataset.file_meta.TransferSyntaxUID))
    if syntax.is_encapsulated:
        frames = list(generate_frames(dataset.PixelData, number_of_frames=count))[:keep]
        dataset.PixelData = encapsulate(frames)
        for keyword in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
            if keyword in dataset:
                del dataset[keyword]
    else:
        bits = dataset.Rows * dataset.Columns * dataset.SamplesPerPixel * dataset.BitsAllocated
        if bits % 8:
            return  # 1-bit frames that do not end on a byte: not cut
        data = dataset.PixelData[: keep * bits // 8]
        dataset.PixelData = data + b"\0" * (len(data) % 2)
    dataset.NumberOfFrames = keep


def _shrink(dataset: Dataset, size: int) -> None:
    """Cut an image larger than ``size`` on a side to its top left ``size`` x ``size``, in
    its own layout: uncompressed data rewritten as it was laid out, compressed data
    re-encoded in its own transfer syntax (lossy JPEG 2000 lossy again). Left as it is
    when the layout would change (no encoder for its syntax)."""
    try:
        rows, columns = int(dataset.Rows), int(dataset.Columns)
    except (AttributeError, TypeError, ValueError):
        return  # no Image Pixel module: a broken file is imported as it is
    if rows <= size and columns <= size:
        return
    before = layout_of(dataset)
    copy = deepcopy(dataset)
    try:
        decoded = decode(copy)
    except RedactionError:
        return  # not decodable: a broken file is imported as it is
    frames = np.ascontiguousarray(decoded.frames[:, :size, :size])
    copy.Rows, copy.Columns = frames.shape[1], frames.shape[2]
    syntax = UID(str(dataset.file_meta.TransferSyntaxUID))
    try:
        if syntax.is_compressed and decoded.source_lossy:
            if syntax != JPEG2000:
                return
            copy.PhotometricInterpretation = decoded.photometric
            pixels = frames if frames.shape[3] > 1 else frames[..., 0]
            copy.compress(syntax, pixels[0] if frames.shape[0] == 1 else pixels,
                          j2k_cr=[8], generate_instance_uid=False)  # fmt: skip
        else:
            write_back(copy, dataclasses.replace(decoded, frames=frames), frames)
    except Exception:  # an encoder that refuses it: the image stays whole
        return
    if layout_of(copy) == before:
        dataset.clear()
        dataset.update(copy)
        dataset.file_meta = copy.file_meta


def prepare(source: Path, target: Path, index: int, *, frames: int = 2, size: int = 256) -> None:
    """Write a copy of ``source`` as synthetic patient ``index``'s image: fresh UIDs, a fake
    name and ID, Modality OT without the descriptions that could mark a head, at most
    ``frames`` frames of at most ``size`` pixels a side; its pixel layout as it was."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = pydicom.dcmread(source, force=True)
    name, patient_id = patient_of(index)
    dataset.PatientName, dataset.PatientID = name, patient_id
    dataset.PatientBirthDate, dataset.PatientSex = "19500102", "O"
    uid = f"{ROOT}{index}."
    dataset.StudyInstanceUID, dataset.SeriesInstanceUID = uid + "1", uid + "2"
    dataset.SOPInstanceUID = uid + "3"
    if "SOPClassUID" not in dataset:
        dataset.SOPClassUID = SecondaryCaptureImageStorage
    dataset.Modality = "OT"
    for keyword in _HEAD_WORDS:
        if keyword in dataset:
            del dataset[keyword]
    meta = getattr(dataset, "file_meta", None)
    if meta is not None and "MediaStorageSOPInstanceUID" in meta:
        meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    if meta is not None and "TransferSyntaxUID" in meta:
        _cut_frames(dataset, frames)
        _shrink(dataset, size)
    target.parent.mkdir(parents=True, exist_ok=True)
    dataset.save_as(target)


@dataclass(frozen=True)
class PlantedName:
    """A name drawn into every frame: light text on a dark panel ``box`` (x0, y0, x1, y1)."""

    name: str
    box: tuple[int, int, int, int]


def _stored_range(dataset: Dataset) -> tuple[int, int]:
    bits = int(dataset.BitsStored)
    if int(dataset.get("PixelRepresentation", 0)) == 1:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def _dark_and_light(dataset: Dataset, photometric: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The stored values that show darkest and lightest in this layout."""
    low, high = _stored_range(dataset)
    if photometric == "MONOCHROME1":
        return (high,), (low,)
    if photometric == "MONOCHROME2":
        return (low,), (high,)
    if photometric == "PALETTE COLOR":
        descriptor = dataset.RedPaletteColorLookupTableDescriptor
        first, entries = int(descriptor[1]), int(descriptor[0]) or 65536
        values = np.arange(max(low, first), min(high, first + entries - 1) + 1)
        dtype = np.uint8 if int(dataset.BitsAllocated) <= 8 else np.uint16
        rgb = apply_color_lut(values.astype(dtype), lut_header(dataset)).astype(float)
        luma = rgb @ np.array([0.299, 0.587, 0.114])
        return (int(values[luma.argmin()]),), (int(values[luma.argmax()]),)
    if photometric.startswith("YBR"):
        middle = (high + 1) // 2
        return (0, middle, middle), (high, middle, middle)
    return (0, 0, 0), (high, high, high)


def _ink(
    text: str, rows: int, columns: int
) -> tuple[npt.NDArray[np.bool_], tuple[int, int, int, int]]:
    """Where ``text`` is drawn (as large as fits, up to 24 pixels high) and its panel."""
    for size in range(24, 7, -1):
        font = ImageFont.truetype(FONT, size)
        x0, y0, x1, y1 = (int(v) for v in font.getbbox(text))
        if x1 - x0 + 8 <= columns and y1 - y0 + 8 <= rows // 2:
            break
    canvas = Image.new("1", (columns, rows), 0)
    ImageDraw.Draw(canvas).text((4 - x0, 4 - y0), text, fill=1, font=font)
    ink: npt.NDArray[np.bool_] = np.asarray(canvas, dtype=bool)
    return ink, (0, 0, min(columns, x1 - x0 + 8), min(rows, y1 - y0 + 8))


def plant_name(path: Path, name: str) -> PlantedName:
    """Draw ``name`` (Patient's Name, ``^`` as a space) at the top left of every frame of
    the file at ``path``, rewriting it in its own layout (transfer syntax, colour model,
    planar configuration, bits); a name too wide for the image is cut to its family name."""
    dataset = pydicom.dcmread(path, force=True)
    decoded = decode(dataset)
    _, rows, columns, _ = decoded.frames.shape
    text = name.replace("^", " ")
    ink, box = _ink(text, rows, columns)
    if box[2] - box[0] >= columns:
        text = name.split("^")[0]
        ink, box = _ink(text, rows, columns)
    if decoded.x_align == 2:  # subsampled YCbCr: the panel covers whole pixel pairs
        box = (box[0], box[1], min(columns, box[2] + box[2] % 2), box[3])
    dark, light = _dark_and_light(dataset, decoded.photometric)
    frames: npt.NDArray[Any] = decoded.frames
    frames[:, box[1] : box[3], box[0] : box[2]] = np.array(dark, dtype=frames.dtype)
    frames[:, ink] = np.array(light, dtype=frames.dtype)
    write_back(dataset, decoded, frames)
    dataset.save_as(path)
    return PlantedName(text, box)
