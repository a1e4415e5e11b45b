"""Pictures of a head's surface: for a reviewer to see that a face is gone, and for the face
detector to look for one.

The surface is the first voxel above the air/tissue threshold met along each ray of a
parallel projection (a depth map), shaded by Lambert's law from the depth gradient with a
light above and to the left of the viewer, and darkened with depth. The review sheet has
two views: from the front (the patient's left on the right, as when facing them) and from
the patient's left (face to the left). The detector gets :data:`FACE_VIEWS`: the front and
the head turned and tilted as far as a frontal-face detector still finds a face, since a
head in a scanner is seldom square to the axes. Pixels are square millimetres, whatever
the voxel size.
"""

from __future__ import annotations

from dataclasses import dataclass
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

__all__ = ["FACE_VIEWS", "View", "render_face", "render_view", "write_face_review"]

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


@dataclass(frozen=True)
class View:
    """A direction to see the face from: the viewer moved ``yaw`` degrees round the head
    towards the patient's left, then ``pitch`` degrees below the face (negative: above)."""

    name: str
    yaw: float = 0.0
    pitch: float = 0.0


#: The views the face detector looks at. A frontal-face detector finds faces turned up to
#: about 30 degrees; heads lie turned and nodding by 15-20 degrees in the scanner.
FACE_VIEWS = (
    View("front"),
    View("from the left", yaw=30.0),
    View("from the right", yaw=-30.0),
    View("from below", pitch=25.0),
    View("from above", pitch=-25.0),
)


def _view_axes(view: View) -> npt.NDArray[np.float64]:
    """(3, 3): the image's right, depth (along the rays) and up, as LPS unit vectors."""
    yaw, pitch = np.radians(view.yaw), np.radians(view.pitch)
    right = np.array([np.cos(yaw), np.sin(yaw), 0.0])
    level = np.array([-np.sin(yaw), np.cos(yaw), 0.0])  # rays from a viewer at the face
    up = np.array([0.0, 0.0, 1.0])
    depth = level * np.cos(pitch) + up * np.sin(pitch)
    return np.stack([right, depth, up * np.cos(pitch) - level * np.sin(pitch)])


def _turned(
    tissue: npt.NDArray[np.bool_], spacing: tuple[float, float, float], view: View, pixel: float
) -> npt.NDArray[np.bool_]:
    """``tissue`` resampled (nearest neighbour) as ``[up, depth, right]`` of ``view``, with
    ``pixel`` mm voxels, about the centre of the tissue's bounding box."""
    cells = np.argwhere(tissue)
    scale = np.array(spacing[::-1])  # x, y, z mm per index
    low, high = cells.min(axis=0)[::-1] * scale, cells.max(axis=0)[::-1] * scale
    centre = (low + high) / 2
    n = int(np.ceil(float(np.linalg.norm(high - low)) / pixel)) + 2
    axes = _view_axes(view)
    steps = (np.arange(n) - n / 2) * pixel
    out = np.zeros((n, n, n), dtype=np.bool_)
    shape = np.array(tissue.shape)
    for start in range(0, n, 16):  # a slab of rows at a time: bounded memory
        v = steps[start : start + 16]
        position = (
            centre[:, None, None, None]
            + axes[0][:, None, None, None] * steps[None, None, :]
            + axes[1][:, None, None, None] * steps[None, :, None]
            + axes[2][:, None, None, None] * v[:, None, None]
        )  # (3: x, y, z; up, depth, right)
        index = np.rint(position[::-1] / scale[::-1, None, None, None]).astype(np.int64)
        inside = np.all((index >= 0) & (index < shape[:, None, None, None]), axis=0)
        clipped = [np.clip(index[a], 0, shape[a] - 1) for a in range(3)]
        out[start : start + 16] = tissue[clipped[0], clipped[1], clipped[2]] & inside
    return out


def render_view(
    tissue: npt.NDArray[np.bool_],
    spacing: tuple[float, float, float],
    view: View,
    *,
    pixel_mm: float = 2.0,
) -> Image.Image:
    """The surface of ``tissue[z, y, x]`` (canonical LPS grid, voxel size ``spacing``) seen
    from ``view``, one pixel a millimetre; sampled every ``pixel_mm``."""
    if not tissue.any():
        return Image.new("L", (_MIN_HEIGHT, _MIN_HEIGHT), 0)
    turned = _turned(tissue, spacing, view, pixel_mm)
    return _to_mm(_shade(turned, pixel_mm, pixel_mm, pixel_mm), pixel_mm, pixel_mm, 1.0)


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
