"""Defacing head CT and MR volumes: the face is cut off along a plane that spares the brain.

Method: Quickshear (Schimke and Hale, "Quickshear defacing for neuroimages", USENIX
HealthSec 2011), with the brain estimate made here rather than by a skull stripper and the
shear direction taken from a chord of the brain's hull rather than from its first edge:

1. The volume is put on patient-aligned axes (:mod:`._head`); the face is at -y in LPS.
   With Image Orientation (Patient) that is read from the header and checked against the
   data; without it, the data decide (the nose is the one narrow protrusion of a head, the
   vertex the small end of the stack).
2. The head is the tissue above the air threshold (-500 HU for CT, Otsu's threshold for
   MR); the brain estimate is the isolated intracranial region (:func:`._head.brain_mask`).
3. The brain is projected onto the mid-sagittal plane and its convex hull taken. The chord
   from the frontal pole to the point of the hull's lower side a third of the brain's
   length behind it gives the slope of the anterior skull base; the line with that slope
   (its normal kept between 20 and 70 degrees below the horizontal) that touches the hull,
   moved ``buffer_mm`` further out, is the shear plane. The face region is what lies beyond
   it, in front of a coronal plane through the chord's back end (plus ``buffer_mm``) and
   below the frontal pole's height, across the whole width of the volume: a wedge holding
   the skin, eyes, nose, lips and chin, and the bone under them unless
   :attr:`FaceTissue.SOFT_TISSUE` keeps CT bone. All of it is set to air, including the
   air in front of the face (on MR it may hold ghosts of the face).

   Why Quickshear: it needs no template or trained model (nothing to download, nothing to
   register) and it cannot cut into the brain estimate (the plane lies outside its convex
   hull by construction; the two limits only make the region smaller). The paper's
   first-edge rule degenerates on a smooth brain estimate to the vertical tangent at the
   frontal pole (which would leave the chin and cut the forehead), hence the chord; the
   paper's half-space would also take the back of the neck, hence the coronal limit.
4. The result is checked: no brain voxel may lie in the removed region, the defaced
   head may not keep a nose-like protrusion, and a face detector (:mod:`._face_detect`)
   must find no face on any view of the defaced surface; otherwise :class:`DefacingError`
   (hold it). The written pixels are read back: the face region must be air in them too.

Before any cut, the same detector looks at the head's surface. When only the volume's
geometry said "head" (:attr:`HeadEvidence.GEOMETRY`: nothing in the header did), a face
found or a nose standing out is what makes it a head to deface; with neither,
:class:`NoFaceFound` is raised and nothing is cut (the caller holds the series, or releases
it as showing no face). When the header says head, the volume is defaced whatever the
detector says: a detector can miss a face, a header naming the head is not a guess.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from itertools import pairwise
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset

from dicomhaven.pixels._face_detect import FaceCheck, FaceDetector, check_surface
from dicomhaven.pixels._face_render import write_face_review
from dicomhaven.pixels._face_triage import HeadEvidence
from dicomhaven.pixels._head import (
    BONE_HU,
    Grid,
    background_value,
    brain_mask,
    canonical_grid,
    head_mask,
    protrusion,
    tissue_threshold,
)
from dicomhaven.pixels._volume import DefacingError, Volume, read_volume, write_volume

__all__ = [
    "DefaceResult",
    "Defaced",
    "DirectionSource",
    "FaceTissue",
    "NoFaceFound",
    "deface_series",
    "deface_volume",
]

#: A nose stands out this far (mm) beyond the face 25 mm to either side; a defaced head not.
NOSE_MM = 8.0
#: The shear plane's slope below the horizontal is kept within these angles (degrees).
SLOPE_RANGE = (20.0, 70.0)
#: The chord that sets the slope spans this fraction of the brain's anterior-posterior length.
CHORD_FRACTION = 1.0 / 3.0


class FaceTissue(StrEnum):
    """What is removed on the face side of the plane."""

    ALL = "all"  # soft tissue and bone: the face cannot be rebuilt from the skull
    # CT only: bone (above 250 HU) is kept, so the skull's face stays; the check for a
    # remaining nose is not made (the nasal bones stand out by themselves).
    SOFT_TISSUE = "soft tissue"


class NoFaceFound(DefacingError):
    """A volume that only its geometry called a head shows no face: no face on its render,
    no nose in its shape. Nothing was cut; ``check`` is what the detector saw."""

    def __init__(self, message: str, check: FaceCheck) -> None:
        super().__init__(message)
        self.check = check


class DirectionSource(StrEnum):
    ORIENTATION = "image orientation"  # Image Orientation (Patient), confirmed by the data
    DATA = "data"  # no orientation in the header: the nose and the vertex decided


@dataclass(frozen=True)
class DefaceResult:
    """What the defacer did, for the stage's record (no identifiers, no pixels)."""

    plane_normal: tuple[float, float, float]  # unit vector in LPS pointing into the face
    plane_offset: float  # mm: removed where normal . position > offset ...
    posterior_limit: float  # ... and y < posterior_limit (mm): the neck behind stays ...
    superior_limit: float  # ... and z < superior_limit (mm): the frontal pole's height
    direction_source: DirectionSource
    removed_voxels: int
    brain_voxels: int  # of the brain estimate, on the patient-aligned grid
    nose_before_mm: float
    nose_after_mm: float
    evidence: HeadEvidence = HeadEvidence.HEADER  # what made the series a head to deface
    face_before: str = ""  # what the face detector found on the surface before defacing
    face_after: str = ""  # ... and after: always "no face found ..." in a result


@dataclass(frozen=True)
class Defaced:
    before: Volume
    after: Volume  # same grid and frames, face set to the background value
    removed: npt.NDArray[np.bool_]  # voxels of the volume set to the background value
    result: DefaceResult


def _patient_frame(volume: Volume, grid: Grid, head: npt.NDArray[np.bool_]) -> Volume:
    """``volume`` with an affine whose axes are the patient's, when the header lacked them."""
    scores = {
        (axis, sign): protrusion(head, grid.spacing, axis, sign)
        for axis in (1, 2)
        for sign in (-1, 1)
    }
    best = max(scores, key=lambda k: scores[k])
    if volume.orientation_known:
        face = scores[(1, -1)]
        if face < NOSE_MM and scores[best] > face + 10.0:
            raise DefacingError(
                "Image Orientation (Patient) puts the face at -y, but the data show a face "
                "on another side: the header may be wrong; hold the series for review"
            )
        return volume
    if scores[best] < NOSE_MM:
        raise DefacingError(
            "the series has no Image Orientation (Patient) and no side of the head shows a "
            "nose: the face direction cannot be decided; hold the series for review"
        )
    # Superior: the vertex end of a head stack is the small one.
    areas = head.sum(axis=(1, 2))
    superior = np.array([0.0, 0.0, 1.0 if areas[-1] <= areas[0] else -1.0])
    axis, sign = best
    forward = np.zeros(3)
    forward[2 - axis] = float(sign)  # grid axis 1 is y, axis 2 is x (index 1 and 0 of xyz)
    posterior = -forward
    left = np.cross(posterior, superior)
    rotation = np.eye(4)
    rotation[:3, :3] = np.stack([left, posterior, superior])
    return replace(volume, affine=rotation @ volume.affine, orientation_known=False)


def _hull(points: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Lower convex hull (monotone chain) of 2-D points, left to right."""
    ordered = sorted({(float(a), float(b)) for a, b in points})
    lower: list[tuple[float, float]] = []
    for p in ordered:
        while len(lower) >= 2:
            (ax, ay), (bx, by) = lower[-2], lower[-1]
            if (bx - ax) * (p[1] - ay) - (by - ay) * (p[0] - ax) <= 0:
                lower.pop()
            else:
                break
        lower.append(p)
    return np.array(lower)


@dataclass(frozen=True)
class _Cut:
    normal: npt.NDArray[np.float64]  # LPS unit vector into the face
    offset: float
    posterior_limit: float  # y (mm): only what lies in front of this coronal plane goes
    superior_limit: float  # z (mm): and below this axial plane (the frontal pole's height)

    def face_side(self, positions: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        """Which of ``positions`` (3, ...) in LPS mm lie in the face region."""
        beyond: npt.NDArray[np.bool_] = (
            np.einsum("i...,i->...", positions, self.normal) > self.offset
        )
        below: npt.NDArray[np.bool_] = (positions[1] < self.posterior_limit) & (
            positions[2] < self.superior_limit
        )
        return beyond & below


def _along(chain: npt.NDArray[np.float64], a: float) -> npt.NDArray[np.float64]:
    """The point of a hull chain (ordered by decreasing ``a``) at anterior coordinate ``a``."""
    for p, q in pairwise(chain):
        if q[0] <= a <= p[0]:
            t = (p[0] - a) / (p[0] - q[0]) if p[0] != q[0] else 0.0
            return np.asarray(p + t * (q - p), dtype=np.float64)
    return np.asarray(chain[-1], dtype=np.float64)


def _shear_plane(grid: Grid, brain: npt.NDArray[np.bool_], buffer_mm: float) -> _Cut:
    """The shear plane, and the coronal plane behind which nothing is removed."""
    sz, sy, _ = grid.spacing
    cells = np.argwhere(brain.any(axis=2))  # (z index, y index)
    z = grid.origin[2] + cells[:, 0] * sz
    y = grid.origin[1] + cells[:, 1] * sy
    # Sagittal coordinates: a grows anteriorly (-y), s superiorly (+z); pixel corners.
    corners = np.concatenate(
        [
            np.stack([-(y + dy), z + dz], axis=1)
            for dy in (-sy / 2, sy / 2)
            for dz in (-sz / 2, sz / 2)
        ]
    )
    chain = _hull(corners)[::-1]  # lower hull, from the frontal pole backwards
    while len(chain) > 1 and chain[1][0] == chain[0][0]:
        chain = chain[1:]
    front = chain[0]
    length = float(corners[:, 0].max() - corners[:, 0].min())
    back = _along(chain, front[0] - CHORD_FRACTION * length)
    chord = back - front
    # The normal's angle below the anterior horizontal: 0 for a vertical chord, 90 for a level one.
    angle = math.degrees(math.atan2(-chord[0], -chord[1]))
    angle = min(max(angle, SLOPE_RANGE[0]), SLOPE_RANGE[1])
    normal_as = np.array([math.cos(math.radians(angle)), -math.sin(math.radians(angle))])
    offset = float((corners @ normal_as).max()) + buffer_mm
    normal = np.array([0.0, -normal_as[0], normal_as[1]])  # (a, s) -> LPS
    return _Cut(
        normal=normal,
        offset=offset,
        posterior_limit=float(-back[0]) + buffer_mm,
        superior_limit=float(front[1]),
    )


def _grid_positions(grid: Grid) -> npt.NDArray[np.float64]:
    z, y, x = np.indices(grid.values.shape, dtype=np.float64)
    sz, sy, sx = grid.spacing
    return np.stack([grid.origin[0] + x * sx, grid.origin[1] + y * sy, grid.origin[2] + z * sz])


def _defaced_surface(
    before: Grid, after: Grid, head: npt.NDArray[np.bool_], threshold: float
) -> npt.NDArray[np.bool_]:
    """The outer surface of the defaced head, for the detector: the head as it was, less
    what was set to air, plus any tissue the defaced volume holds.

    The head mask fills the dark voxels inside the head (bone and sinuses on MR), so the
    cut shows as a closed surface rather than as rings and holes, which a detector can take
    for eyes and a mouth. Voxels changed to air come off; a voxel that still holds tissue,
    changed or not, stays in the picture.
    """
    cleared = (after.values != before.values) & (after.values <= threshold)
    tissue: npt.NDArray[np.bool_] = ((after.values > threshold) & after.inside) | (head & ~cleared)
    return tissue


def deface_volume(
    volume: Volume,
    *,
    tissue: FaceTissue = FaceTissue.ALL,
    buffer_mm: float = 10.0,
    evidence: HeadEvidence = HeadEvidence.HEADER,
    detector: FaceDetector | None = None,
) -> Defaced:
    """Remove the face of a head volume; the brain estimate is never touched.

    ``evidence`` says why the volume is taken for a head: with
    :attr:`HeadEvidence.GEOMETRY`, a volume with no face on its render and no nose in its
    shape raises :class:`NoFaceFound` before anything is cut. ``detector`` is the face
    detector for the checks before and after (dlib's HOG detector if not given).
    """
    if volume.modality not in ("CT", "MR"):
        raise DefacingError(f"defacing needs a CT or MR volume, got modality {volume.modality!r}")
    if tissue is FaceTissue.SOFT_TISSUE and volume.modality != "CT":
        raise DefacingError(
            "keeping bone needs CT: on MR bone cannot be told from air; use FaceTissue.ALL"
        )
    if buffer_mm < 0:
        raise DefacingError(f"buffer_mm must be zero or more, got {buffer_mm}")
    air = background_value(volume)
    grid = canonical_grid(volume, air)
    threshold = tissue_threshold(grid.values[grid.inside], volume.modality)
    head = head_mask(grid, threshold)
    volume = _patient_frame(volume, grid, head)
    if not volume.orientation_known:
        grid = canonical_grid(volume, air)
        head = head_mask(grid, threshold)
    nose_before = protrusion(head, grid.spacing, 1, -1)
    face_before = check_surface(head, grid.spacing, detector)
    if evidence is HeadEvidence.GEOMETRY and not face_before.face_found and nose_before < NOSE_MM:
        raise NoFaceFound(
            f"only the geometry of the volume fits a head, and it shows no face: "
            f"{face_before.describe()}; the shape's midline stands out {nose_before:.0f} mm, "
            f"less than a nose ({NOSE_MM:.0f} mm); nothing was cut",
            face_before,
        )
    brain = brain_mask(grid, head, volume.modality, threshold)
    cut = _shear_plane(grid, brain, buffer_mm)
    if np.any(cut.face_side(_grid_positions(grid))[brain]):
        raise DefacingError("the shear plane cuts the brain estimate; hold the series for review")
    removed = np.stack(
        [cut.face_side(volume.frame_coordinates(k)) for k in range(volume.values.shape[0])]
    )
    if tissue is FaceTissue.SOFT_TISSUE:
        removed &= volume.values < BONE_HU
    values = volume.values.copy()
    values[removed] = air
    after = replace(volume, values=values)
    after_grid = canonical_grid(after, air)
    nose_after = protrusion(head_mask(after_grid, threshold), after_grid.spacing, 1, -1)
    if tissue is FaceTissue.ALL and nose_after >= NOSE_MM:
        raise DefacingError(
            f"a nose-like protrusion of {nose_after:.0f} mm remains after defacing: the face "
            "was not removed; hold the series for review"
        )
    face_after = check_surface(
        _defaced_surface(grid, after_grid, head, threshold), after_grid.spacing, detector
    )
    if face_after.face_found:
        raise DefacingError(
            f"after defacing, {face_after.describe()}: the face was not removed; hold the "
            "series for review"
        )
    result = DefaceResult(
        plane_normal=(float(cut.normal[0]), float(cut.normal[1]), float(cut.normal[2])),
        plane_offset=cut.offset,
        posterior_limit=cut.posterior_limit,
        superior_limit=cut.superior_limit,
        direction_source=(
            DirectionSource.ORIENTATION if volume.orientation_known else DirectionSource.DATA
        ),
        removed_voxels=int(removed.sum()),
        brain_voxels=int(brain.sum()),
        nose_before_mm=nose_before,
        nose_after_mm=nose_after,
        evidence=evidence,
        face_before=face_before.describe(),
        face_after=face_after.describe(),
    )
    return Defaced(before=volume, after=after, removed=removed, result=result)


def _check_written(datasets: Sequence[Dataset], defaced: Defaced) -> None:
    """Read the written pixels back: every removed voxel must hold the background value."""
    written = read_volume(datasets).values[defaced.removed]
    air = background_value(defaced.before)
    # The stored value nearest to air, turned back into physical units, may differ by a
    # rescale step; anything a tissue threshold could take for skin is far above that.
    step = max(abs(s) for s in defaced.before.slopes)
    if written.size and float(np.abs(written - air).max()) > step:
        raise DefacingError(
            "the written pixels of the face region are not air: the defaced values were "
            "not stored; hold the series for review"
        )


def deface_series(
    datasets: Sequence[Dataset],
    *,
    tissue: FaceTissue = FaceTissue.ALL,
    buffer_mm: float = 10.0,
    review: Path | None = None,
    evidence: HeadEvidence = HeadEvidence.HEADER,
    detector: FaceDetector | None = None,
) -> DefaceResult:
    """Deface one head series in place: the removed voxels are written into the data sets'
    Pixel Data (uncompressed; every other stored value unchanged), then read back. With
    ``review``, a PNG of the head's surface before and after is written there for a
    reviewer. ``evidence`` and ``detector`` are as for :func:`deface_volume`.
    """
    defaced = deface_volume(
        read_volume(datasets),
        tissue=tissue,
        buffer_mm=buffer_mm,
        evidence=evidence,
        detector=detector,
    )
    if review is not None:
        write_face_review(defaced.before, defaced.after, review)
    write_volume(datasets, defaced.after, defaced.removed)
    _check_written(datasets, defaced)
    return defaced.result
