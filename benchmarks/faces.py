"""Faces on surface renders: how often a face detector finds the face of a head before
defacing, how often it still "finds" one after, and how long a series takes.

    .venv/bin/python benchmarks/faces.py [--detectors hog,cnn,haar] [--json]

Every volume is rendered from the five views of ``FACE_VIEWS`` (front, turned 30 degrees
either way, from 25 degrees below and above) as the defacer renders it (the head mask on
the patient-aligned grid), and each detector looks at every view. A volume counts as a
face found when any view has one.

Volumes, faced and defaced:

- the synthetic head (``tests/pixels/head_phantom.py``), CT and MR, nodding -20 to +20
  degrees (5 pitches), defaced by dicomhaven, and partly defaced (only the face below the
  nose removed: a cut that left the eyes; the detector should still find a face there);
- PyDeface's mean head (``pydeface/data/mean_reg2mean.nii.gz`` in the ``pydeface`` wheel,
  MIT licence: the mean of T1-weighted heads registered to one another, 176 x 256 x 256 at
  1 mm), defaced with the face mask shipped beside it (``facemask.nii.gz``): dicomhaven's
  brain estimate finds no isolated brain in a blurred mean, so its own cut is not made;
- negatives: nilearn's MNI ICBM152 2009a T1 template (``nilearn/datasets/data``, BSD: a
  skull-stripped brain, no face) and the head-sized trunk phantoms (200 mm field of view).

The public volumes need ``pip install --no-deps pydeface==2.1.0 nilearn==0.14.1
nibabel==5.4.2`` (only their data files are read; none of their code runs but nibabel's
reader); without them those rows are skipped with a note.

Detectors: ``hog`` is dicomhaven's (dlib's HOG frontal-face detector, model compiled into
``dlib-bin``); ``cnn`` is dlib's MMOD CNN with ``mmod_human_face_detector.dat`` from
``pip install --no-deps face-recognition-models==0.3.0``; ``haar`` is OpenCV's
``haarcascade_frontalface_default.xml``, which needs OpenCV 4 (``cv2.CascadeClassifier``;
OpenCV 5, which the OCR engine installs, has none).

Times: the face check of one series (render five views and detect; the median over the
volumes), and for the phantoms the whole ``deface_series`` (read, check, cut, check again,
write, read back).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.pixels.head_phantom import head_phantom, slices, trunk_slices

from dicomhaven.pixels import DefacingError, Volume, read_volume
from dicomhaven.pixels._deface import (
    _defaced_surface,
    deface_series,
    deface_volume,
)
from dicomhaven.pixels._face_detect import (
    DlibHogDetector,
    FaceBox,
    FaceDetector,
    check_surface,
)
from dicomhaven.pixels._head import (
    background_value,
    canonical_grid,
    head_mask,
    tissue_threshold,
)
from dicomhaven.pixels._volume import FrameSource


@dataclass(frozen=True)
class Case:
    name: str
    state: str  # faced, defaced, partly defaced, no face
    volume: Volume
    reference: Volume  # the faced volume: its threshold and head mask


class DlibCnn:
    name = "dlib MMOD CNN (face-recognition-models)"

    def __init__(self, model: Path) -> None:
        import dlib  # type: ignore[import-untyped]

        self._net = dlib.cnn_face_detection_model_v1(str(model))

    def detect(self, image: Image.Image) -> list[FaceBox]:
        found = self._net(np.asarray(image.convert("L")), 1)
        return [
            FaceBox(d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom(), d.confidence)
            for d in found
        ]


class OpenCvHaar:
    name = "OpenCV Haar cascade (frontalface_default)"

    def __init__(self) -> None:
        import cv2

        self._cascade = cv2.CascadeClassifier(
            str(Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml")
        )

    def detect(self, image: Image.Image) -> list[FaceBox]:
        found = self._cascade.detectMultiScale(np.asarray(image.convert("L")), 1.1, 5)
        return [FaceBox(int(x), int(y), int(x + w), int(y + h), 1.0) for x, y, w, h in found]


def _package_file(package: str, relative: str) -> Path | None:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    return path if path.is_file() else None


def _detectors(names: list[str]) -> dict[str, FaceDetector]:
    out: dict[str, FaceDetector] = {}
    for name in names:
        if name == "hog":
            out[name] = DlibHogDetector()
        elif name == "cnn":
            model = _package_file("face_recognition_models", "models/mmod_human_face_detector.dat")
            if model is None:
                print("cnn: skipped (pip install --no-deps face-recognition-models==0.3.0)")
                continue
            out[name] = DlibCnn(model)
        elif name == "haar":
            try:
                out[name] = OpenCvHaar()
            except AttributeError:
                print("haar: skipped (OpenCV has no CascadeClassifier: it needs OpenCV 4)")
        else:
            raise SystemExit(f"unknown detector {name!r}: expected hog, cnn or haar")
    return out


def _phantom_volume(values: npt.NDArray[np.float32], modality: str) -> Volume:
    return read_volume(slices(values, modality))


def _nifti(path: Path) -> Volume:
    import nibabel  # type: ignore[import-not-found]

    image = nibabel.load(path)
    values = np.asarray(image.get_fdata(), dtype=np.float32)
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ image.affine  # RAS to LPS
    n = values.shape[0]
    return Volume(
        values=values,
        affine=affine,
        modality="MR",
        orientation_known=True,
        sources=tuple(FrameSource(0, k) for k in range(n)),
        slopes=(1.0,) * n,
        intercepts=(0.0,) * n,
    )


def _cases() -> Iterator[Case]:
    for modality in ("CT", "MR"):
        for pitch in (-20.0, -10.0, 0.0, 10.0, 20.0):
            phantom = head_phantom(modality, pitch=pitch)
            faced = _phantom_volume(phantom.values, modality)
            name = f"phantom {modality} pitch {pitch:+.0f}"
            yield Case(name, "faced", faced, faced)
            yield Case(name, "defaced", deface_volume(faced).after, faced)
            partly = phantom.values.copy()
            air = -1000.0 if modality == "CT" else 0.0
            partly[phantom.lips | phantom.chin | phantom.nose] = air
            yield Case(name, "partly defaced", _phantom_volume(partly, modality), faced)
    mean = _package_file("pydeface", "data/mean_reg2mean.nii.gz")
    mask = _package_file("pydeface", "data/facemask.nii.gz")
    if mean is None or mask is None or importlib.util.find_spec("nibabel") is None:
        print("pydeface mean head: skipped (pip install --no-deps pydeface==2.1.0 nibabel)")
    else:
        head = _nifti(mean)
        yield Case("pydeface mean head", "faced", head, head)
        try:
            deface_volume(head)
        except DefacingError as exc:
            print(f"pydeface mean head: dicomhaven's own cut not made: {exc}")
        keep = _nifti(mask).values > 0.5
        defaced = replace(head, values=np.where(keep, head.values, 0.0).astype(np.float32))
        yield Case("pydeface mean head", "defaced", defaced, head)
    brain = _package_file(
        "nilearn", "datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
    )
    if brain is None or importlib.util.find_spec("nibabel") is None:
        print("nilearn MNI152 brain: skipped (pip install --no-deps nilearn==0.14.1 nibabel)")
    else:
        volume = _nifti(brain)
        yield Case("nilearn MNI152 brain", "no face", volume, volume)
    for kind in ("thorax", "abdomen", "pelvis"):
        volume = read_volume(trunk_slices(kind, field_mm=200.0))
        yield Case(f"trunk {kind} 200 mm", "no face", volume, volume)


def _surface(case: Case) -> tuple[npt.NDArray[np.bool_], tuple[float, float, float]]:
    """What the defacer looks at: the head mask of a faced volume; for a defaced one, the
    defaced surface its check after the cut renders (the head as it was, less the voxels
    set to air), the threshold taken from the faced volume."""
    air = background_value(case.reference)
    reference = canonical_grid(case.reference, air)
    threshold = tissue_threshold(reference.values[reference.inside], case.reference.modality)
    head = head_mask(reference, threshold)
    if case.volume is case.reference:
        return head, reference.spacing
    grid = canonical_grid(case.volume, air)
    return _defaced_surface(reference, grid, head, threshold), grid.spacing


def _time(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--detectors", default="hog", help="comma-separated: hog, cnn, haar")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args()
    detectors = _detectors(args.detectors.split(","))
    DlibHogDetector().detect(Image.new("L", (64, 64)))  # the model loads once, not timed
    rows: list[dict[str, object]] = []
    for case in _cases():
        surface, spacing = _surface(case)
        for key, detector in detectors.items():
            start = time.perf_counter()
            check = check_surface(surface, spacing, detector)
            seconds = time.perf_counter() - start
            rows.append(
                {
                    "volume": case.name,
                    "state": case.state,
                    "detector": key,
                    "views_with_face": len({v for v, _ in check.found}),
                    "views": len(check.views),
                    "best": None if check.best is None else round(check.best, 2),
                    "seconds": round(seconds, 3),
                }
            )
            r = rows[-1]
            print(
                f"{case.name:24s} {case.state:15s} {key:5s} face on {r['views_with_face']}/"
                f"{r['views']} views, best {r['best']}, {seconds:.2f} s",
                flush=True,
            )
    summary: dict[str, object] = {}
    for key in detectors:
        mine = [r for r in rows if r["detector"] == key]

        def rate(state: str, rows_: list[dict[str, object]] = mine) -> str:
            chosen = [r for r in rows_ if r["state"] == state]
            hits = sum(1 for r in chosen if r["views_with_face"])
            return f"{hits}/{len(chosen)}"

        summary[key] = {
            "faced heads with a face found": rate("faced"),
            "partly defaced heads with a face found": rate("partly defaced"),
            "defaced heads with a face found (false)": rate("defaced"),
            "volumes with no face with a face found (false)": rate("no face"),
            "median seconds per series (5 views)": round(
                statistics.median(float(str(r["seconds"])) for r in mine), 2
            ),
        }
    whole = [
        _time(lambda m=m: deface_series(slices(head_phantom(m).values, m))) for m in ("CT", "MR")
    ]
    summary["deface_series seconds (phantom CT, MR: 90 slices)"] = [round(t, 2) for t in whole]
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for key, value in summary.items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
