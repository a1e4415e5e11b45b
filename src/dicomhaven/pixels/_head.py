"""The head in a volume: the patient-aligned grid, the head and brain masks, the nose.

Everything here works on a *canonical* grid: the volume resampled (nearest neighbour, so
values are never invented) onto axes aligned with the patient, indexed ``[z, y, x]`` in LPS
order with every index growing towards the patient's head, back and left. For the usual
axial, coronal and sagittal series the resampling is an exact permutation of voxels.

Numpy only: the morphology (6-connected dilation and erosion, geodesic reconstruction for
connected parts) is written out with array shifts rather than taken from scipy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from dicomhaven.pixels._volume import DefacingError, Volume

__all__ = [
    "AIR_HU",
    "BONE_HU",
    "Grid",
    "background_value",
    "brain_mask",
    "canonical_grid",
    "head_mask",
    "otsu_threshold",
    "protrusion",
    "tissue_threshold",
]

#: Air in Hounsfield units, and the air/tissue threshold for CT (halfway to water).
AIR_HU = -1000.0
SKIN_HU = -500.0
#: Cortical and trabecular bone are above this.
BONE_HU = 250.0
#: Brain parenchyma and cerebrospinal fluid on CT (noise allowed for).
BRAIN_HU = (-15.0, 100.0)
#: Voxel size (mm) at which the head is analysed and rendered, at the finest.
ANALYSIS_MM = 2.0
#: A plausible intracranial volume, in millilitres, for the brain estimate.
BRAIN_ML = (300.0, 2500.0)
Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Grid:
    """Values on the canonical grid: ``values[z, y, x]``, voxel size ``spacing`` (mm)."""

    values: npt.NDArray[np.float32]
    spacing: tuple[float, float, float]  # (z, y, x)
    origin: npt.NDArray[np.float64]  # LPS position of voxel [0, 0, 0]
    inside: Mask  # False where the grid lies outside the acquired volume


def canonical_grid(volume: Volume, fill: float, coarsest: float = ANALYSIS_MM) -> Grid:
    """Resample ``volume`` onto patient-aligned axes; voxels outside it get ``fill``.

    Voxels finer than ``coarsest`` mm are sampled at that size: the head's shape needs no
    more, and a 0.5 mm CT would otherwise need gigabytes.
    """
    directions = volume.affine[:3, :3]
    lengths = np.linalg.norm(directions, axis=0)
    # The spacing along each patient axis is that of the voxel axis most aligned with it.
    spacing = [0.0, 0.0, 0.0]
    for patient_axis in range(3):
        voxel_axis = int(np.argmax(np.abs(directions[patient_axis]) / lengths))
        spacing[patient_axis] = max(float(lengths[voxel_axis]), coarsest)
    shape = np.array(volume.values.shape)
    corners = np.array(
        [
            [i, j, k]
            for i in (0, shape[0] - 1)
            for j in (0, shape[1] - 1)
            for k in (0, shape[2] - 1)
        ],
        dtype=np.float64,
    )
    positions = corners @ directions.T + volume.affine[:3, 3]
    low, high = positions.min(axis=0), positions.max(axis=0)
    counts = [round((high[a] - low[a]) / spacing[a]) + 1 for a in range(3)]  # x, y, z
    axes = [low[a] + spacing[a] * np.arange(counts[a]) for a in range(3)]
    inverse = np.linalg.inv(volume.affine)
    x, y, z = axes[0][None, None, :], axes[1][None, :, None], axes[2][:, None, None]
    nearest = [
        np.rint(inverse[a, 0] * x + inverse[a, 1] * y + inverse[a, 2] * z + inverse[a, 3]).astype(
            np.int64
        )
        for a in range(3)
    ]
    inside = np.all([(nearest[a] >= 0) & (nearest[a] < shape[a]) for a in range(3)], axis=0)
    clipped = [np.clip(nearest[a], 0, shape[a] - 1) for a in range(3)]
    values = volume.values[clipped[0], clipped[1], clipped[2]]
    values = np.where(inside, values, np.float32(fill)).astype(np.float32)
    return Grid(
        values=values,
        spacing=(spacing[2], spacing[1], spacing[0]),
        origin=low.astype(np.float64),
        inside=inside,
    )


def background_value(volume: Volume) -> float:
    """Air: -1000 HU for CT, the darkest value in the volume for MR."""
    if volume.modality == "CT":
        return AIR_HU
    return float(volume.values.min())


def otsu_threshold(values: npt.NDArray[np.floating], bins: int = 256) -> float:
    """Otsu's threshold: the cut that maximises the between-class variance."""
    finite = values[np.isfinite(values)]
    if finite.size == 0 or float(finite.min()) == float(finite.max()):
        raise DefacingError("the volume is blank: there is no head to find")
    counts, edges = np.histogram(finite, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(counts).astype(np.float64)
    total = weight[-1]
    mean = np.cumsum(counts * centres)
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mean[-1] * weight / total - mean) ** 2 / (weight * (total - weight))
    between = np.nan_to_num(between[:-1])
    return float(edges[int(np.argmax(between)) + 1])


def tissue_threshold(values: npt.NDArray[np.floating], modality: str) -> float:
    """The air/tissue threshold: fixed in Hounsfield units for CT, Otsu's for MR."""
    if modality == "CT":
        return SKIN_HU
    return otsu_threshold(values)


def _shift_or(mask: Mask) -> Mask:
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    out[:, :, 1:] |= mask[:, :, :-1]
    out[:, :, :-1] |= mask[:, :, 1:]
    return out


def dilate(mask: Mask, steps: int = 1) -> Mask:
    for _ in range(steps):
        mask = _shift_or(mask)
    return mask


def erode(mask: Mask, steps: int = 1) -> Mask:
    for _ in range(steps):
        mask = ~_shift_or(~mask)
    return mask


def reconstruct(seed: Mask, within: Mask) -> Mask:
    """The parts of ``within`` 6-connected to ``seed`` (geodesic reconstruction)."""
    current = seed & within
    count = int(current.sum())
    while True:
        current = _shift_or(current) & within
        new = int(current.sum())
        if new == count:
            return current
        count = new


def _seed_near(mask: Mask, point: npt.NDArray[np.float64], radius: float) -> Mask:
    z, y, x = np.ogrid[: mask.shape[0], : mask.shape[1], : mask.shape[2]]
    near: Mask = (z - point[0]) ** 2 + (y - point[1]) ** 2 + (x - point[2]) ** 2 <= radius**2
    return mask & near


def head_mask(grid: Grid, threshold: float) -> Mask:
    """The head: everything inside the outer skin surface, apart from other objects.

    Tissue is what lies above ``threshold``; a voxel with tissue on both sides along x and
    along y of its axial plane is inside too (so dark skull, fluid and sinuses on MR belong
    to the head, while the air in front of the eyes does not). Of that, the part connected
    to the centre is kept: noise specks, the CT table and other objects are dropped.
    """
    tissue = (grid.values > threshold) & grid.inside
    if not tissue.any():
        raise DefacingError("no tissue above the air threshold: expected a head in the volume")
    filled = tissue | (_between(tissue, 1) & _between(tissue, 2))
    core = erode(filled, 3)
    if not core.any():
        core = filled
    cells = np.argwhere(core)
    centre = cells.mean(axis=0)
    nearest = cells[int(np.argmin(((cells - centre) ** 2).sum(axis=1)))]
    seed = np.zeros_like(filled)
    seed[tuple(nearest)] = True
    return reconstruct(seed, filled)


def _between(mask: Mask, axis: int) -> Mask:
    """Voxels with ``mask`` somewhere on both sides of them along ``axis``."""
    before = np.maximum.accumulate(mask, axis=axis)
    after = np.flip(np.maximum.accumulate(np.flip(mask, axis=axis), axis=axis), axis=axis)
    return before & after


def _enclosed(bone: Mask) -> Mask:
    """Voxels with bone on both sides along x and y and above: inside the skull."""
    enclosed = _between(bone, 1) & _between(bone, 2)
    above = np.flip(np.maximum.accumulate(np.flip(bone, axis=0), axis=0), axis=0)
    return enclosed & above


def brain_mask(grid: Grid, head: Mask, modality: str, threshold: float) -> Mask:
    """An estimate of the intracranial contents: the brain and the fluid around it.

    CT: brain- and fluid-density voxels enclosed by bone (or by the edge of the field of
    view, where it cuts the head). MR: tissue brighter than the
    air/tissue threshold. Either way the brain is the part connected to the centre of the
    upper head once thin bridges (through foramina, partial volume) are cut by an erosion;
    the smallest erosion that yields a plausible, isolated brain is used.
    """
    if modality == "CT":
        bone = grid.values > BONE_HU
        # Where the field of view cuts the head, its edge closes the skull.
        bone[-1] |= head[-1]
        bone[:, [0, -1]] |= head[:, [0, -1]]
        bone[:, :, [0, -1]] |= head[:, :, [0, -1]]
        candidates = (
            (grid.values >= BRAIN_HU[0]) & (grid.values <= BRAIN_HU[1]) & _enclosed(bone) & head
        )
    else:
        candidates = (grid.values > threshold) & head
    rows = np.nonzero(head.any(axis=(1, 2)))[0]
    bottom, top = int(rows[0]), int(rows[-1])
    upper = head.copy()
    upper[: top - int(0.4 * (top - bottom))] = False
    centre = np.argwhere(upper).mean(axis=0)
    shell = head & ~erode(head, 2)
    voxel_ml = float(np.prod(grid.spacing)) / 1000.0
    radius = 15.0 / min(grid.spacing)
    for steps in range(1, 5):
        core = erode(candidates, steps)
        seed = _seed_near(core, centre, radius)
        if not seed.any():
            continue
        brain = dilate(reconstruct(seed, core), steps) & candidates
        volume_ml = float(brain.sum()) * voxel_ml
        if BRAIN_ML[0] <= volume_ml <= BRAIN_ML[1] and (brain & shell).sum() <= 0.01 * brain.sum():
            return brain
    raise DefacingError(
        "no plausible brain was found in the upper head (expected an isolated region of "
        f"{BRAIN_ML[0]:.0f}-{BRAIN_ML[1]:.0f} ml): the volume may not be a head, or may be cut "
        "too tightly to deface safely; hold it for review"
    )


def protrusion(mask: Mask, spacing: tuple[float, float, float], axis: int, sign: int) -> float:
    """How far (mm) the head's midline sticks out beyond its sides towards ``sign * axis``.

    ``axis`` is 1 (y) or 2 (x) of the canonical grid. For each axial level, the outermost
    extent along the direction in a narrow band about the head's midline is compared with
    the extent 25 mm to either side; a nose stands out by 15 mm or more, the back of a head
    or a flat cut by a few millimetres. The score is the largest value held over three
    consecutive levels, so that one noisy slice cannot make or hide a nose.
    """
    other = 3 - axis
    step, across = spacing[axis], spacing[other]
    if not mask.any():
        return 0.0
    moved = mask if sign > 0 else np.flip(mask, axis=axis)
    n = moved.shape[axis]
    # extent[z, t]: index of the outermost voxel along the direction, -1 where none.
    reached = np.where(
        moved.any(axis=axis), n - 1 - np.argmax(np.flip(moved, axis=axis), axis=axis), -1
    )
    extent = reached.astype(np.float64) * step
    centre = float(np.argwhere(mask).mean(axis=0)[other])
    band = max(1, round(6.0 / across))
    side = round(25.0 / across)
    c = round(centre)
    width = extent.shape[1]
    if c - side - band < 0 or c + side + band >= width:
        return 0.0
    middle = extent[:, c - band : c + band + 1].max(axis=1)
    left = extent[:, c - side - band : c - side + band + 1].max(axis=1)
    right = extent[:, c + side - band : c + side + band + 1].max(axis=1)
    valid = (reached[:, c - band : c + band + 1].max(axis=1) >= 0) & (
        np.minimum(
            reached[:, c - side - band : c - side + band + 1].max(axis=1),
            reached[:, c + side - band : c + side + band + 1].max(axis=1),
        )
        >= 0
    )
    score = np.where(valid, middle - np.maximum(left, right), 0.0)
    if score.size < 3:
        return float(score.max(initial=0.0))
    held = np.minimum(np.minimum(score[:-2], score[1:-1]), score[2:])
    return float(max(held.max(), 0.0))
