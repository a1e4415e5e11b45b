"""A head is found from its image, not from words: geometry makes a candidate, a face on the
surface render (or a nose in the shape) makes it a head to deface, and after defacing the
same detector finds no face.

Volumes are the synthetic phantoms of :mod:`tests.pixels.head_phantom` (a head with a face,
trunks of two sizes); nothing here comes from a patient. The detector is the real one
(dlib's HOG detector) except where a test says it replaces it to reach one branch.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image
from pydicom.dataset import Dataset

from dicomhaven.pixels import DefacingError, FaceDecision, face_triage, read_volume
from dicomhaven.pixels._deface import NoFaceFound, deface_series, deface_volume
from dicomhaven.pixels._face_detect import DlibHogDetector, FaceBox, check_surface
from dicomhaven.pixels._face_render import FACE_VIEWS, View, render_view
from dicomhaven.pixels._face_triage import HeadEvidence, head_reasons
from dicomhaven.pixels._head import background_value, canonical_grid, head_mask, tissue_threshold
from tests.pixels.head_phantom import (
    head_phantom,
    sagittal_slices,
    slices,
    trunk_slices,
)


def _stored(datasets: Sequence[Dataset]) -> npt.NDArray[np.int64]:
    return np.stack([ds.pixel_array for ds in datasets]).astype(np.int64)


def _no_head_words(datasets: list[Dataset]) -> list[Dataset]:
    for ds in datasets:
        for keyword in ("BodyPartExamined", "StudyDescription", "SeriesDescription"):
            if keyword in ds:
                del ds[keyword]
    return datasets


def _surface(datasets: Sequence[Dataset]) -> tuple[npt.NDArray[np.bool_], tuple[float, ...]]:
    volume = read_volume(datasets)
    grid = canonical_grid(volume, background_value(volume))
    return head_mask(grid, tissue_threshold(grid.values[grid.inside], volume.modality)), (
        grid.spacing
    )


@pytest.mark.parametrize("modality", ["CT", "MR"])
def test_a_head_with_no_head_words_is_found_defaced_and_verified(modality: str) -> None:
    """The defect: a head volume whose header names no body part and no description was
    released at once ("nothing in the header says head")."""
    phantom = head_phantom(modality)
    datasets = slices(phantom.values, modality, body_part="", description="")
    assert not any("BodyPartExamined" in ds or "SeriesDescription" in ds for ds in datasets)

    decided = face_triage(datasets)

    assert decided.decision is FaceDecision.DEFACE
    assert decided.evidence is HeadEvidence.GEOMETRY
    assert any(r.startswith("geometry fits a head") for r in decided.reasons)

    before = _stored(datasets)
    result = deface_series(datasets, evidence=decided.evidence)

    assert result.evidence is HeadEvidence.GEOMETRY
    assert result.face_before.startswith("a face found")
    assert result.face_after.startswith("no face found")
    after = _stored(datasets)
    order = np.argsort([float(ds.ImagePositionPatient[2]) for ds in datasets])
    nose, lips = (part[np.argsort(order)] for part in (phantom.nose, phantom.lips))
    air = 24 if modality == "CT" else before.min()  # stored: -1000 HU, the darkest MR value
    for part in (nose, lips):
        assert np.all(after[part] == air) and np.all(before[part] > air + 100)
    np.testing.assert_array_equal(
        after[phantom.brain[np.argsort(order)]], before[phantom.brain[np.argsort(order)]]
    )
    surface, spacing = _surface(datasets)
    assert not check_surface(surface, spacing).face_found


def test_a_sagittal_head_series_like_the_reported_one_is_a_candidate() -> None:
    """196 sagittal slices of 256 x 256 at 1.05 mm, 1.2 mm apart, no words: the geometry of
    the reported "Accelerated SAG IR-SPGR" series (headers only, no pixels needed)."""
    datasets = []
    for i in range(196):
        ds = Dataset()
        ds.Modality, ds.SamplesPerPixel = "MR", 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
        ds.SeriesDescription = "Accelerated SAG IR-SPGR"
        ds.Rows = ds.Columns = 256
        ds.PixelSpacing = [1.0547, 1.0547]
        ds.SliceThickness = 1.2
        ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
        ds.ImagePositionPatient = [-117.0 + 1.2 * i, -135.0, 135.0]
        datasets.append(ds)

    decided = face_triage(datasets)

    assert decided.needs_defacing and decided.evidence is HeadEvidence.GEOMETRY
    assert "196 sagittal slices spanning 235 x 270 x 270 mm" in " ".join(decided.reasons)
    assert any(
        r.startswith("in-plane field of view fits a head") for r in head_reasons(datasets[0])
    )


def test_a_sagittal_head_with_no_words_is_defaced() -> None:
    datasets = _no_head_words(sagittal_slices(head_phantom("MR").values, "MR"))
    decided = face_triage(datasets)
    assert decided.evidence is HeadEvidence.GEOMETRY and "sagittal" in decided.reasons[1]

    result = deface_series(datasets, evidence=decided.evidence)

    assert result.removed_voxels > 10_000 and result.face_after.startswith("no face found")


@pytest.mark.parametrize("kind", ["thorax", "abdomen", "pelvis"])
@pytest.mark.parametrize("modality", ["CT", "MR"])
def test_a_trunk_is_not_sent_to_defacing(kind: str, modality: str) -> None:
    """40 slices, no words, a 400 mm field of view: the geometry does not fit a head."""
    decided = face_triage(trunk_slices(kind, modality=modality))

    assert decided.decision is FaceDecision.NOT_NEEDED
    assert "geometry does not fit a head" in decided.reasons[-1]
    assert "left-right 400 mm, outside 120-320" in decided.reasons[-1]


@pytest.mark.parametrize("kind", ["thorax", "pelvis"])
def test_a_head_sized_trunk_shows_no_face_and_is_not_cut(kind: str) -> None:
    """A 200 mm field of view (a child's trunk, a heart): a candidate by its geometry, but no
    face on its render and no nose in its shape, so nothing is cut."""
    datasets = trunk_slices(kind, field_mm=200.0)
    decided = face_triage(datasets)
    assert decided.needs_defacing and decided.evidence is HeadEvidence.GEOMETRY
    before = _stored(datasets)

    with pytest.raises(NoFaceFound, match="shows no face") as raised:
        deface_series(datasets, evidence=decided.evidence)

    assert not raised.value.check.face_found
    assert len(raised.value.check.views) == len(FACE_VIEWS)
    np.testing.assert_array_equal(_stored(datasets), before)


def test_a_volume_that_records_its_own_defacing_is_checked_not_trusted() -> None:
    """Recognizable Visual Features NO and DCM 113102, yet the face is there: it is defaced.
    A volume really defaced and saying so is checked too: no face, nothing cut."""
    phantom = head_phantom("CT")
    claims = _no_head_words(slices(phantom.values, "CT"))
    for ds in claims:
        ds.RecognizableVisualFeatures = "NO"
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator = "113102", "DCM"
        code.CodeMeaning = "Clean Recognizable Visual Features Option"
        ds.DeidentificationMethodCodeSequence = [code]
    defaced = copy.deepcopy(claims)

    decided = face_triage(claims)
    assert decided.needs_defacing
    assert any("records its own defacing" in r for r in decided.reasons)
    result = deface_series(claims, evidence=decided.evidence)
    assert result.face_before.startswith("a face found") and result.removed_voxels > 10_000

    deface_series(defaced)  # now it is true: defaced once, here
    again = _stored(defaced)
    with pytest.raises(NoFaceFound):
        deface_series(defaced, evidence=face_triage(defaced).evidence)
    np.testing.assert_array_equal(_stored(defaced), again)


def test_the_detector_finds_the_phantom_face_and_none_on_the_back_of_the_head() -> None:
    surface, spacing = _surface(slices(head_phantom("MR").values, "MR"))
    detector = DlibHogDetector()

    front = detector.detect(render_view(surface, spacing, View("front")))
    back = detector.detect(render_view(surface, spacing, View("back", yaw=180.0)))

    assert len(front) == 1 and front[0].score > 0.2
    box = front[0]
    assert 80 < box.right - box.left < 200  # a face's width in mm, on a 1 mm render
    assert back == []


def test_views_are_one_millimetre_pixels_and_turn_the_head() -> None:
    surface, spacing = _surface(slices(head_phantom("CT").values, "CT"))
    front = np.asarray(render_view(surface, spacing, View("front")))
    side = np.asarray(render_view(surface, spacing, View("left side", yaw=90.0)))
    # The phantom's head is 134 mm wide (skull and scalp) and about 190 mm from the tip of
    # the nose to the back: as many pixels, whatever its 2 mm voxels.
    assert 130 <= (front > 0).sum(axis=1).max() <= 142
    assert 175 <= (side > 0).sum(axis=1).max() <= 200


class _FindsEverywhere:
    """A detector that sees a face on every picture: only to reach the verification branch
    (the real detector finds none on a well defaced head, so it cannot fail it)."""

    name = "a detector that sees a face everywhere"

    def detect(self, image: Image.Image) -> list[FaceBox]:
        return [FaceBox(0, 0, image.width, image.height, 1.0)]


class _FindsNothing:
    name = "a detector that finds nothing"

    def detect(self, image: Image.Image) -> list[FaceBox]:
        return []


def test_a_face_found_after_defacing_holds_the_series() -> None:
    volume = read_volume(slices(head_phantom("CT").values, "CT"))
    with pytest.raises(DefacingError, match="after defacing, a face found on 5 of 5 views"):
        deface_volume(volume, detector=_FindsEverywhere())


def test_a_candidate_with_a_nose_is_defaced_when_the_detector_misses_the_face() -> None:
    """Geometry only, and the detector finds nothing: the nose standing out still makes it a
    head, and it is defaced (the safe side of a detector's miss)."""
    volume = read_volume(_no_head_words(slices(head_phantom("MR").values, "MR")))
    defaced = deface_volume(volume, evidence=HeadEvidence.GEOMETRY, detector=_FindsNothing())
    assert defaced.result.nose_before_mm >= 15 and defaced.result.removed_voxels > 10_000


def test_a_slice_whose_field_of_view_fits_a_head_waits_for_its_series() -> None:
    head_slice = slices(head_phantom("CT").values[:1], "CT", body_part="", description="")[0]
    head_slice.Rows = head_slice.Columns = 512
    head_slice.PixelSpacing = [0.45, 0.45]
    assert head_reasons(head_slice) == ["in-plane field of view fits a head (230 x 230 mm)"]

    chest = trunk_slices("thorax", count=1)[0]
    assert head_reasons(chest) == []  # 400 mm: a trunk
    knee = copy.deepcopy(head_slice)
    knee.PixelSpacing = [0.2, 0.2]  # 102 mm
    assert head_reasons(knee) == []
    localizer = copy.deepcopy(head_slice)
    localizer.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    assert head_reasons(localizer) == []
    unplaced = copy.deepcopy(head_slice)
    del unplaced.ImagePositionPatient
    assert head_reasons(unplaced) == []  # not placed in the patient: not part of a volume
    ultrasound = copy.deepcopy(head_slice)
    ultrasound.Modality = "US"
    assert head_reasons(ultrasound) == []


def test_a_small_field_series_like_a_knee_is_not_a_candidate() -> None:
    """Sagittal MR, 30 slices 3.5 mm apart over 105 mm, a 160 mm field of view."""
    knee = sagittal_slices(head_phantom("MR").values[:, :, :30], "MR")
    for i, ds in enumerate(_no_head_words(knee)):
        ds.ImagePositionPatient = [-50.0 + 3.5 * i, -80.0, 80.0]
        ds.SliceThickness = 3.5
        ds.PixelSpacing = [160 / ds.Rows, 160 / ds.Columns]

    decided = face_triage(knee)

    assert decided.decision is FaceDecision.NOT_NEEDED
    assert "left-right 105 mm, outside 120-320" in decided.reasons[-1]
