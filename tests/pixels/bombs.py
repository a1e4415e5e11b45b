"""Synthetic objects that declare more pixels than they hold, and large honest ones.

A decompression bomb: a JPEG 2000 Lossless file of under 1 KB whose SIZ marker and
Rows/Columns both claim 60000 x 60000 pixels at 16 bits (7.2 GB decoded). Built here, not
stored: a tiny real codestream made by pydicom's encoder (pylibjpeg-openjpeg), its SIZ
marker segment rewritten. Identifiers are synthetic and fixed; UIDs are seeded.
Used by tests/pixels/test_declared_size.py and benchmarks/bomb.py.
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import (
    EnhancedMRImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)

BOMB_SIDE = 60000
PATIENT_ID = "ZZ0000001"  # synthetic
PATIENT_NAME = "BOMB^SYNTHETIC"


def _image_header(rows: int, columns: int, seed: str) -> Dataset:
    """A Secondary Capture header with burned-in text declared (the pixel stage reads it)."""
    ds = Dataset()
    uid = generate_uid(entropy_srcs=["bombs", seed])
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, uid
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["bombs", seed, "study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["bombs", seed, "series"])
    ds.PatientID, ds.PatientName = PATIENT_ID, PATIENT_NAME
    ds.PatientBirthDate, ds.StudyDate = "19700101", "20240101"
    ds.Modality, ds.ConversionType = "OT", "WSD"
    ds.BurnedInAnnotation = "YES"
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    return ds


def _tiny_codestream(side: int = 64) -> bytearray:
    """A real JPEG 2000 Lossless codestream of a ``side`` x ``side`` black image."""
    ds = _image_header(side, side, "tiny")
    pixels = np.zeros((side, side), dtype=np.uint16)
    ds.PixelData = pixels.tobytes()
    ds.compress(JPEG2000Lossless, pixels, generate_instance_uid=False)
    return bytearray(next(generate_frames(ds.PixelData, number_of_frames=1)))


def jpeg2000_bomb(
    path: Path,
    *,
    rows: int = BOMB_SIDE,
    columns: int = BOMB_SIDE,
    siz: tuple[int, int] | None = None,
    seed: str = "bomb",
) -> Path:
    """Write a JPEG 2000 Lossless object declaring ``rows`` x ``columns`` (Rows/Columns)
    whose codestream's SIZ declares ``siz`` (height, width; default the same) and image and
    tile sizes, with the data of a 64 x 64 image. Returns ``path``."""
    height, width = siz if siz is not None else (rows, columns)
    stream = _tiny_codestream()
    start = stream.find(b"\xff\x4f\xff\x51")  # SOC, SIZ
    assert start == 0, "pydicom's encoder starts a codestream with SOC and SIZ"
    # Xsiz, Ysiz, XOsiz, YOsiz, XTsiz, YTsiz after SOC (2), SIZ (2), Lsiz (2), Rsiz (2).
    struct.pack_into(">6I", stream, 8, width, height, 0, 0, width, height)
    ds = _image_header(rows, columns, seed)
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = encapsulate([bytes(stream)])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def large_image(path: Path, megabytes: int, *, seed: str = "large") -> Path:
    """Write an honest uncompressed 16-bit multi-frame of about ``megabytes`` MB (1024 x
    1024 frames of seeded noise, so no layer can compress it away). Returns ``path``."""
    frames = max(1, megabytes * 1_000_000 // (1024 * 1024 * 2))
    ds = _image_header(1024, 1024, seed)
    # An Enhanced MR of a knee: low risk for the pixel stage, so a pipeline run is short.
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = EnhancedMRImageStorage
    ds.Modality, ds.BodyPartExamined, ds.ImageType = "MR", "KNEE", ["ORIGINAL", "PRIMARY"]
    del ds.ConversionType
    ds.BurnedInAnnotation = "NO"
    ds.NumberOfFrames = frames
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8]))
    pixels = rng.integers(0, 4096, size=(frames, 1024, 1024), dtype=np.uint16)
    ds.PixelData = pixels.tobytes()
    del pixels
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
