"""Pictures of a head's surface, for a reviewer to see that a face is gone.

The surface is the first voxel above the air/tissue threshold met along each ray of a
parallel projection (a depth map), shaded by Lambert's law from the depth gradient with a
light above and to the left of the viewer, and darkened with depth. Two views: from the
front (the patient's left on the right, as when facing them) and from the patient's left
(face to the left). Pixels are square millimetres, whatever the voxel size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from dicomhaven.pixels._head import (
    background_value,
    canonical_grid,
    otsu_threshold,
    tissue_threshold,
)
from dicomhaven.pixels._volume import Volume

__all__ = ["render_face", "write_face_review"]

_LIGHT = np.array([-0.4, 0.5, 1.0]) / np.linalg.norm([-0.4, 0.5, 1.0])
_MIN_HEIGHT = 256  # px: small volumes are enlarged to at least this
_LABEL = 18  # px of caption above each column


def _smooth(depth: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """A 5-tap binomial blur in both directions: hides the voxel steps, keeps the shape."""
    kernel = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
    for axis in (0, 1):
        padded = np.pad(depth, [(2, 2) if a == axis else (0, 0) for a in (0, 1)], mode="edge")
        n = depth.shape[axis]
        depth = sum(
            w * np.take(padded, np.arange(i, i + n), axis=axis) for i, w in enumerate(kernel)
        )
    return depth


def _shade(
    surface: npt.NDArray[np.bool_], step: float, across: float, down: float
) -> npt.NDArray[np.uint8]:
    """Shade ``surface[v, w, u]`` seen along +w (v: rows, growing upwards; u: columns)."""
    hit = surface.any(axis=1)
    depth = np.argmax(surface, axis=1).astype(np.float64) * step
    if not hit.any():
        return np.zeros(hit.shape, dtype=np.uint8)
    far = float(depth[hit].max())
    depth = _smooth(np.where(hit, depth, far))
    dv, du = np.gradient(depth, down, across)
    normal = np.stack([-du, -dv, np.ones_like(depth)])  # (right, up, towards the viewer)
    normal /= np.linalg.norm(normal, axis=0)
    lambert = np.clip(np.einsum("i...,i->...", normal, _LIGHT), 0.0, 1.0)
    near = float(depth[hit].min())
    cue = 1.0 - 0.45 * (depth - near) / max(far - near, 1e-6)
    grey = np.where(hit, (0.12 + 0.88 * lambert) * cue, 0.0)
    return np.flipud(np.rint(grey * 255).astype(np.uint8))


def _to_mm(grey: npt.NDArray[np.uint8], row_mm: float, col_mm: float, scale: float) -> Image.Image:
    rows, cols = grey.shape
    size = (max(1, round(cols * col_mm * scale)), max(1, round(rows * row_mm * scale)))
    return Image.fromarray(grey, mode="L").resize(size, Image.Resampling.BILINEAR)


def render_face(
    volume: npt.NDArray[np.floating] | npt.NDArray[np.bool_],
    spacing: tuple[float, float, float],
    *,
    threshold: float | None = None,
) -> Image.Image:
    """The head's surface seen from the front (top) and from the patient's left (bottom).

    ``volume`` is indexed ``[z, y, x]`` on patient-aligned LPS axes (index growing towards
    the head, the back and the left), with voxel size ``spacing`` in mm in that order. A
    boolean array is the tissue mask itself; otherwise voxels above ``threshold`` (Otsu's,
    if not given) are tissue.
    """
    if volume.ndim != 3:
        raise ValueError(f"render_face needs a 3-D array indexed [z, y, x], got {volume.ndim}-D")
    if volume.dtype == np.bool_:
        tissue = np.asarray(volume, dtype=np.bool_)
    else:
        values = np.asarray(volume, dtype=np.float64)
        cut = otsu_threshold(values) if threshold is None else threshold
        tissue = values > cut
    sz, sy, sx = spacing
    scale = max(1.0, _MIN_HEIGHT / (tissue.shape[0] * sz))
    # Front: rays along +y from the face; columns are +x (the patient's left on the right).
    front = _shade(tissue, sy, sx, sz)
    # Side, from the patient's left: rays along -x; columns are +y (face on the left).
    side = _shade(np.flip(tissue, axis=2).transpose(0, 2, 1), sx, sy, sz)
    front_image = _to_mm(front, sz, sx, scale)
    side_image = _to_mm(side, sz, sy, scale)
    width = max(front_image.width, side_image.width)
    out = Image.new("L", (width, front_image.height + side_image.height + 4), 0)
    out.paste(front_image, ((width - front_image.width) // 2, 0))
    out.paste(side_image, ((width - side_image.width) // 2, front_image.height + 4))
    return out


def write_face_review(before: Volume, after: Volume, path: Path) -> Path:
    """Write a PNG: the head before defacing (left) and after (right), front and side.

    The left half shows the face: the picture is as identifying as the images it came from
    and belongs with them (the review area), never with released data.
    """
    air = background_value(before)
    grid_before = canonical_grid(before, air)
    grid_after = canonical_grid(after, air)
    threshold = tissue_threshold(grid_before.values[grid_before.inside], before.modality)
    left = render_face(grid_before.values, grid_before.spacing, threshold=threshold)
    right = render_face(grid_after.values, grid_after.spacing, threshold=threshold)
    gap = 8
    sheet = Image.new(
        "L", (left.width + right.width + gap, max(left.height, right.height) + _LABEL), 40
    )
    sheet.paste(left, (0, _LABEL))
    sheet.paste(right, (left.width + gap, _LABEL))
    draw = ImageDraw.Draw(sheet)
    draw.text((4, 3), "before", fill=255)
    draw.text((left.width + gap + 4, 3), "after", fill=255)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, format="PNG")
    return path
