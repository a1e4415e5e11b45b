"""A series of DICOM slices, or one multi-frame image, as a volume in patient space.

The volume keeps the frames in their stored order (frame ``k`` of the array is the ``k``-th
slice after sorting along the slice normal) and an affine that maps a voxel index
``(k, row, column)`` to millimetres in the patient coordinate system (LPS: +x to the
patient's left, +y posterior, +z head). Values are physical: Hounsfield units for CT
(Rescale Slope and Intercept applied), the rescaled stored values for MR.

Writing back (:func:`write_volume`) touches only the voxels it is told to change: every
other stored value stays bit-identical, the data set keeps its dtype and Bits Stored, and
compressed pixel data are decoded once and stored uncompressed (Explicit VR Little Endian).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRBigEndian

from dicomhaven.errors import UnsafeContent
from dicomhaven.pixels._codec import RedactionError, check_declared_size

__all__ = ["DefacingError", "FrameSource", "Volume", "read_volume", "write_volume"]

#: Slices whose normals differ by more than this (cosine) are not one volume.
_PARALLEL = 0.999


class DefacingError(UnsafeContent):
    """A head volume could not be read or defaced safely: it must be held, not released.

    The message says what was expected and what was found; it never quotes a header value
    that could identify the patient.
    """


@dataclass(frozen=True)
class FrameSource:
    """Where frame ``k`` of a volume lives: which data set, and which frame inside it."""

    dataset: int
    frame: int  # 0 for a single-frame data set


@dataclass(frozen=True)
class Volume:
    """Physical values on a grid, and where each voxel lies in the patient."""

    values: npt.NDArray[np.float32]  # (frames, rows, columns)
    affine: npt.NDArray[np.float64]  # 4 x 4: (k, row, column, 1) -> (x, y, z, 1) in mm
    modality: str
    orientation_known: bool  # False when Image Orientation/Position (Patient) were missing
    sources: tuple[FrameSource, ...]
    slopes: tuple[float, ...]  # per frame
    intercepts: tuple[float, ...]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along (frames, rows, columns)."""
        lengths = np.linalg.norm(self.affine[:3, :3], axis=0)
        return (float(lengths[0]), float(lengths[1]), float(lengths[2]))

    def frame_coordinates(self, k: int) -> npt.NDArray[np.float64]:
        """(3, rows, columns): the LPS position in mm of every voxel of frame ``k``."""
        rows, cols = np.indices(self.values.shape[1:], dtype=np.float64)
        index = np.stack([np.full_like(rows, float(k)), rows, cols])
        moved: npt.NDArray[np.float64] = np.einsum("ij,j...->i...", self.affine[:3, :3], index)
        return moved + self.affine[:3, 3].reshape(3, 1, 1)


def _floats(value: object, count: int, what: str) -> list[float]:
    try:
        numbers = [float(v) for v in value]  # type: ignore[attr-defined]
    except (TypeError, ValueError) as error:
        raise DefacingError(f"{what} must hold {count} numbers; fix the header") from error
    if len(numbers) != count:
        raise DefacingError(f"{what} must hold {count} numbers, found {len(numbers)}")
    return numbers


@dataclass(frozen=True)
class _Plane:
    source: FrameSource
    pixels: npt.NDArray[np.float32]
    position: npt.NDArray[np.float64] | None
    orientation: npt.NDArray[np.float64] | None  # (row direction, column direction)
    spacing: tuple[float, float]  # (between rows, between columns)
    thickness: float | None
    order: float  # instance number, for sorting when positions are missing
    slope: float
    intercept: float


def _sequence_item(group: Dataset | None, keyword: str) -> Dataset | None:
    if group is None or keyword not in group or not group[keyword].value:
        return None
    item: Dataset = group[keyword].value[0]
    return item


def _functional(shared: Dataset | None, per_frame: Dataset | None, keyword: str) -> Dataset | None:
    return _sequence_item(per_frame, keyword) or _sequence_item(shared, keyword)


def _planes_of(index: int, ds: Dataset) -> list[_Plane]:
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        raise DefacingError(
            "a head volume must be greyscale (Samples per Pixel 1); colour images are "
            "rendered pictures and need review instead"
        )
    if "PixelData" not in ds:
        raise DefacingError("a slice of the series has no Pixel Data")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    try:
        check_declared_size(ds)  # before pydicom's decoder allocates what the header claims
    except RedactionError as exc:
        raise DefacingError(str(exc)) from exc
    pixels = np.asarray(ds.pixel_array, dtype=np.float32)
    if frames == 1:
        pixels = pixels[np.newaxis]
    shared = _sequence_item(ds, "SharedFunctionalGroupsSequence")
    per_frame_groups = ds.get("PerFrameFunctionalGroupsSequence")
    planes: list[_Plane] = []
    for f in range(frames):
        per_frame = per_frame_groups[f] if per_frame_groups is not None else None
        position_item = _functional(shared, per_frame, "PlanePositionSequence") or ds
        orientation_item = _functional(shared, per_frame, "PlaneOrientationSequence") or ds
        measures = _functional(shared, per_frame, "PixelMeasuresSequence") or ds
        transform = _functional(shared, per_frame, "PixelValueTransformationSequence") or ds
        if "PixelSpacing" not in measures:
            raise DefacingError(
                "Pixel Spacing is missing: a volume cannot be placed in the patient without it"
            )
        spacing = _floats(measures.PixelSpacing, 2, "Pixel Spacing")
        position = orientation = None
        if "ImagePositionPatient" in position_item:
            position = np.array(
                _floats(position_item.ImagePositionPatient, 3, "Image Position (Patient)")
            )
        if "ImageOrientationPatient" in orientation_item:
            orientation = np.array(
                _floats(orientation_item.ImageOrientationPatient, 6, "Image Orientation (Patient)")
            ).reshape(2, 3)
        thickness = measures.get("SliceThickness")
        if thickness is None:
            thickness = ds.get("SpacingBetweenSlices") or ds.get("SliceThickness")
        planes.append(
            _Plane(
                source=FrameSource(index, f),
                pixels=pixels[f],
                position=position,
                orientation=orientation,
                spacing=(spacing[0], spacing[1]),
                thickness=float(thickness) if thickness else None,
                order=float(ds.get("InstanceNumber", 0) or 0) * 100000 + f,
                slope=float(transform.get("RescaleSlope", 1) or 1),
                intercept=float(transform.get("RescaleIntercept", 0) or 0),
            )
        )
    return planes


def _geometry(
    planes: Sequence[_Plane],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None:
    """Positions (n, 3) and orientations (n, 2, 3) of all planes, or None if any lacks one."""
    positions = [p.position for p in planes if p.position is not None]
    orientations = [p.orientation for p in planes if p.orientation is not None]
    if len(positions) != len(planes) or len(orientations) != len(planes):
        return None
    return np.array(positions, dtype=np.float64), np.array(orientations, dtype=np.float64)


def read_volume(datasets: Sequence[Dataset]) -> Volume:
    """The volume of one series: a list of single-frame slices, or one multi-frame image.

    Slices are sorted along their normal when Image Position/Orientation (Patient) are given;
    without them, by Instance Number, with standard axial orientation assumed and
    ``orientation_known`` False (the defacer then decides the face direction from the data).
    """
    if not datasets:
        raise DefacingError("no slices given: expected the data sets of one series")
    planes = [p for i, ds in enumerate(datasets) for p in _planes_of(i, ds)]
    if len(planes) < 3:
        raise DefacingError(f"a volume needs at least 3 slices, found {len(planes)}")
    shapes = {p.pixels.shape for p in planes}
    if len(shapes) != 1:
        raise DefacingError("the slices differ in Rows/Columns: expected one series")
    modality = str(datasets[0].get("Modality", "")).upper()
    geometry = _geometry(planes)
    if geometry is not None:
        positions, orientations = geometry
        row_dir, col_dir = orientations[0]
        normal = np.cross(row_dir, col_dir)
        if np.any(np.cross(orientations[:, 0], orientations[:, 1]) @ normal < _PARALLEL):
            raise DefacingError("the slices are not parallel: expected one 3-D series")
        order = np.argsort(positions @ normal, kind="stable")
        planes = [planes[i] for i in order]
        positions = positions[order]
        steps = np.diff(positions @ normal)
        if np.any(steps <= 1e-3):
            raise DefacingError("two slices share a position: expected one 3-D series")
        step = float(np.median(steps))
        if np.max(np.abs(steps - step)) > 0.1 * step:
            raise DefacingError("the slices are not evenly spaced: expected one 3-D series")
        first = positions[0]
        # The actual step between slices: with a gantry tilt it is not along the normal.
        slice_vector = (positions[-1] - first) / (len(planes) - 1)
    else:
        planes.sort(key=lambda p: p.order)
        row_dir, col_dir = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
        first = np.zeros(3)
        thickness = planes[0].thickness or planes[0].spacing[0]
        slice_vector = np.array([0.0, 0.0, thickness])
    row_spacing, col_spacing = planes[0].spacing
    affine = np.eye(4)
    # Image Orientation's first vector runs along a row (the column index grows along it).
    affine[:3, 0] = slice_vector
    affine[:3, 1] = col_dir * row_spacing
    affine[:3, 2] = row_dir * col_spacing
    affine[:3, 3] = first
    values = np.stack([p.pixels * p.slope + p.intercept for p in planes]).astype(np.float32)
    return Volume(
        values=values,
        affine=affine,
        modality=modality,
        orientation_known=geometry is not None,
        sources=tuple(p.source for p in planes),
        slopes=tuple(p.slope for p in planes),
        intercepts=tuple(p.intercept for p in planes),
    )


def _stored_range(ds: Dataset) -> tuple[int, int]:
    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 16)))
    if int(ds.get("PixelRepresentation", 0)) == 1:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def _native_frames(ds: Dataset) -> tuple[bytearray, npt.NDArray[np.integer]]:
    """The Pixel Data bytes and a writable (frames, rows, columns) view onto them."""
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax is not None and syntax.is_compressed:
        ds.decompress()
    allocated = int(ds.BitsAllocated)
    if allocated not in (8, 16, 32):
        raise DefacingError(
            f"Bits Allocated must be 8, 16 or 32 to write a volume, found {allocated}"
        )
    order = ">" if syntax == ExplicitVRBigEndian else "<"
    kind = "i" if int(ds.get("PixelRepresentation", 0)) == 1 else "u"
    dtype = np.dtype(f"{order}{kind}{allocated // 8}")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    count = frames * int(ds.Rows) * int(ds.Columns)
    buffer = bytearray(ds.PixelData)
    view = np.frombuffer(buffer, dtype=dtype, count=count).reshape(
        frames, int(ds.Rows), int(ds.Columns)
    )
    return buffer, view


def write_volume(
    datasets: Sequence[Dataset], volume: Volume, changed: npt.NDArray[np.bool_]
) -> None:
    """Store the values of ``volume`` at its ``changed`` voxels back into ``datasets``.

    The rescale is inverted per frame and the result clipped to what Bits Stored can hold;
    every byte outside ``changed`` stays as it was. Compressed data sets are decompressed
    first, so the written Pixel Data are native (uncompressed, Explicit VR Little Endian).
    """
    by_dataset: dict[int, list[int]] = {}
    for k, source in enumerate(volume.sources):
        if changed[k].any():
            by_dataset.setdefault(source.dataset, []).append(k)
    for index, frames in sorted(by_dataset.items()):
        ds = datasets[index]
        buffer, stored = _native_frames(ds)
        low, high = _stored_range(ds)
        for k in frames:
            mask = changed[k]
            raw = np.rint((volume.values[k][mask] - volume.intercepts[k]) / volume.slopes[k])
            stored[volume.sources[k].frame][mask] = np.clip(raw, low, high)
        ds.PixelData = bytes(buffer)
