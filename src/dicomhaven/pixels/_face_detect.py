"""Looking for a face on renders of a head's surface, before defacing and after it.

A series is a head because its pixels show a face, not because its header says so: the
head's surface is rendered from the front and from turned and tilted views
(:data:`~._face_render.FACE_VIEWS`) and a face detector looks at every view. Before
defacing, a face found is the evidence that a volume the header does not call a head is
one; after defacing, the same detector with the same settings must find no face on any
view of the defaced surface (as OCR reads a frame again after blanking).

The default detector is dlib's frontal-face detector (HOG features, a linear SVM over an
image pyramid; five filters for front, turned and tilted faces), whose model is compiled
into the ``dlib-bin`` wheel: nothing is downloaded at run time. It was chosen over the other
detectors that ship their model in a package, on the renders of ``benchmarks/faces.py``:

- dlib's CNN (MMOD) detector, with the model from ``face-recognition-models``: found the
  phantom faces too, but took 4-14 s a view on this machine's two shared cores (the HOG
  detector about 0.05 s), and its package is a 100 MB download for a 0.7 MB model;
- OpenCV 4's Haar cascade (``haarcascade_frontalface_default.xml``) found every face and
  also "found" one on 10 of 11 defaced heads; OpenCV 5, which the OCR engine brings, has no
  cascade classifier, and its YuNet detector needs a model file downloaded separately.

On those renders the HOG detector found a face on 11 of 11 faced heads and 10 of 10 partly
defaced ones, and none on 11 defaced heads and 4 volumes without a face.

The detector is a seam (:class:`FaceDetector`): another one can be passed where a site has
it, and tests use the real default.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
from PIL import Image

from dicomhaven.pixels._face_render import FACE_VIEWS, View, render_view

__all__ = ["DlibHogDetector", "FaceBox", "FaceCheck", "FaceDetector", "check_surface"]

#: dlib's own default decision threshold: a window scoring above it is a face.
HOG_THRESHOLD = 0.0


@dataclass(frozen=True)
class FaceBox:
    """A face found on a view: its box in the render's pixels (1 mm each) and its score."""

    left: int
    top: int
    right: int
    bottom: int
    score: float


class FaceDetector(Protocol):
    """Finds faces on a greyscale picture; ``name`` says which detector, for the record."""

    @property
    def name(self) -> str: ...

    def detect(self, image: Image.Image) -> list[FaceBox]: ...


@functools.cache
def _frontal_face_detector() -> object:
    """dlib's detector, built once per process: reading its compiled model takes seconds."""
    import dlib  # type: ignore[import-untyped]  # the dlib-bin wheel ships no type hints

    return dlib.get_frontal_face_detector()


@dataclass(frozen=True)
class DlibHogDetector:
    """dlib's HOG frontal-face detector; ``upsample`` doubles the picture that many times
    (once: faces down to 40 mm across are found on the 1 mm renders)."""

    upsample: int = 1
    threshold: float = HOG_THRESHOLD

    @property
    def name(self) -> str:
        return f"dlib HOG frontal face (upsample {self.upsample}, threshold {self.threshold})"

    def detect(self, image: Image.Image) -> list[FaceBox]:
        pixels = np.ascontiguousarray(np.asarray(image.convert("L"), dtype=np.uint8))
        detector = _frontal_face_detector()
        boxes, scores, _ = detector.run(pixels, self.upsample, self.threshold)  # type: ignore[attr-defined]
        return [
            FaceBox(int(b.left()), int(b.top()), int(b.right()), int(b.bottom()), float(s))
            for b, s in zip(boxes, scores, strict=True)
        ]


@dataclass(frozen=True)
class FaceCheck:
    """What a detector found on each view of one surface."""

    detector: str
    views: tuple[str, ...]  # every view looked at
    found: tuple[tuple[str, FaceBox], ...]  # (view, box) for every face found

    @property
    def face_found(self) -> bool:
        return bool(self.found)

    @property
    def best(self) -> float | None:
        """The highest score of a face found, or None."""
        return max((box.score for _, box in self.found), default=None)

    def describe(self) -> str:
        """One line for a reason: where faces were found, or on how many views none was."""
        if not self.found:
            return f"no face found on {len(self.views)} views ({self.detector})"
        where = sorted({view for view, _ in self.found}, key=self.views.index)
        return (
            f"a face found on {len(where)} of {len(self.views)} views ({', '.join(where)}; "
            f"best score {self.best:.2f}; {self.detector})"
        )


def check_surface(
    surface: npt.NDArray[np.bool_],
    spacing: tuple[float, float, float],
    detector: FaceDetector | None = None,
    views: Sequence[View] = FACE_VIEWS,
) -> FaceCheck:
    """Render ``surface[z, y, x]`` (a tissue mask on the canonical grid, voxel size
    ``spacing`` mm) from each of ``views`` and look for a face on each."""
    detector = detector or DlibHogDetector()
    found: list[tuple[str, FaceBox]] = []
    for view in views:
        found.extend(
            (view.name, box) for box in detector.detect(render_view(surface, spacing, view))
        )
    return FaceCheck(detector.name, tuple(v.name for v in views), tuple(found))
