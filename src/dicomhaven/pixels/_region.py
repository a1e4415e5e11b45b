"""A rectangle of pixels to overwrite, in the image's own pixel coordinates."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Region"]


@dataclass(frozen=True)
class Region:
    """Columns ``x0 <= x < x1`` and rows ``y0 <= y < y1`` (half-open, 0-based), on frame
    ``frame`` (0-based) or, when ``frame`` is None, on every frame.

    Half-open bounds let regions tile without overlap and make ``x1 - x0`` the width.
    """

    x0: int
    y0: int
    x1: int
    y1: int
    frame: int | None = None

    def __post_init__(self) -> None:
        if min(self.x0, self.y0) < 0 or self.x1 <= self.x0 or self.y1 <= self.y0:
            raise ValueError(
                f"a Region needs 0 <= x0 < x1 and 0 <= y0 < y1; got x0={self.x0}, "
                f"y0={self.y0}, x1={self.x1}, y1={self.y1}"
            )
        if self.frame is not None and self.frame < 0:
            raise ValueError(f"a Region's frame is a 0-based index or None; got {self.frame}")

    @property
    def area(self) -> int:
        """Pixels covered on one frame."""
        return (self.x1 - self.x0) * (self.y1 - self.y0)
