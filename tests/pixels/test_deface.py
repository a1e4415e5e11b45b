"""Defacing head volumes: the face goes, the brain and everything away from the face stay.

All volumes are the synthetic head of :mod:`tests.pixels.head_phantom` (2 mm voxels,
90 x 104 x 80), as CT or MR, axial, sagittal or one Enhanced CT; nothing here comes from a
patient.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

from dicomhaven.pixels import (
    DefaceResult,
    DefacingError,
    DirectionSource,
    FaceDecision,
    FaceTissue,
    deface_series,
    face_triage,
    render_face,
)
from tests.pixels.head_phantom import (
    ORIGIN,
    SPACING,
    Phantom,
    chest_slices,
    enhanced_ct,
    head_phantom,
    sagittal_slices,
    slices,
)

AIR = {"CT": -1000.0, "MR": 0.0}


@pytest.fixture(scope="module", params=["CT", "MR"])
def phantom(request: pytest.FixtureRequest) -> Phantom:
    return head_phantom(request.param)


def _axial(datasets: Sequence[Dataset]) -> npt.NDArray[np.int64]:
    """Stored values of axial slices as ``[z, y, x]`` (sorted by position, not by list order)."""
    ordered = sorted(datasets, key=lambda ds: float(ds.ImagePositionPatient[2]))
    return np.stack([ds.pixel_array for ds in ordered]).astype(np.int64)


def _physical(stored: npt.NDArray[np.int64], modality: str) -> npt.NDArray[np.int64]:
    return stored - 1024 if modality == "CT" else stored


def _positions() -> npt.NDArray[np.float64]:
    """LPS position (mm) of every voxel of the phantom grid, as (3, z, y, x)."""
    z, y, x = np.indices((90, 104, 80), dtype=np.float64) * SPACING
    return np.stack([x + ORIGIN[0], y + ORIGIN[1], z + ORIGIN[2]])


def _face_side(result: DefaceResult) -> npt.NDArray[np.bool_]:
    positions = _positions()
    beyond = np.einsum("i...,i->...", positions, np.array(result.plane_normal))
    side: npt.NDArray[np.bool_] = (
        (beyond > result.plane_offset)
        & (positions[1] < result.posterior_limit)
        & (positions[2] < result.superior_limit)
    )
    return side


def _assert_defaced(
    phantom: Phantom, before: npt.NDArray[np.int64], after: npt.NDArray[np.int64]
) -> None:
    air = AIR[phantom.modality]
    physical = _physical(after, phantom.modality)
    # The nose below the top of its bridge, the lips and the chin.
    assert np.all(physical[phantom.nose] == air)
    assert np.all(physical[phantom.lips] == air)
    assert np.all(physical[phantom.chin] == air)
    # The eyes are cut across, their fronts gone; their upper backs lie within the buffer
    # around the anterior cranial fossa and stay (as with Quickshear).
    assert np.all(physical[phantom.eye_fronts] == air)
    assert (physical[phantom.eyes] == air).mean() > 0.15
    # Brain voxels, and the top and back of the head, bit for bit as they were.
    np.testing.assert_array_equal(after[phantom.brain], before[phantom.brain])
    np.testing.assert_array_equal(after[phantom.far], before[phantom.far])


def test_the_face_of_a_head_is_removed_and_the_brain_kept(phantom: Phantom, tmp_path: Path) -> None:
    datasets = slices(phantom.values, phantom.modality)
    before = _axial(datasets)
    untouched = [copy.deepcopy(ds) for ds in datasets]
    review = tmp_path / "face.png"

    result = deface_series(datasets, review=review)

    after = _axial(datasets)
    _assert_defaced(phantom, before, after)
    assert result.direction_source is DirectionSource.ORIENTATION
    assert result.plane_normal[1] < 0 and result.plane_normal[2] < 0  # anterior-inferior
    assert result.nose_before_mm >= 15 and result.nose_after_mm < 8
    # The face detector saw the face before, and sees none on the defaced surface.
    assert result.face_before.startswith("a face found on")
    assert result.face_after.startswith("no face found on 5 views")
    # Only voxels on the face side of the plane changed; the rest of every slice's bytes,
    # the dtype, Bits Stored and the transfer syntax are as they were.
    changed = after != before
    assert changed.sum() > 10_000
    assert not np.any(changed & ~_face_side(result))
    assert not np.any(changed[_positions()[1] >= 30])  # the back of the neck stays too
    for ds, original in zip(datasets, untouched, strict=True):
        assert ds.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
        assert (ds.BitsStored, ds.PixelRepresentation) == (
            original.BitsStored,
            original.PixelRepresentation,
        )
        assert len(ds.PixelData) == len(original.PixelData)
        assert ds.pixel_array.max() < 1 << ds.BitsStored
        if float(ds.ImagePositionPatient[2]) >= 40:
            assert ds.PixelData == original.PixelData
    # The review picture: before on the left, after on the right, and they differ in the face.
    with Image.open(review) as picture:
        sheet = np.asarray(picture.convert("L"), dtype=np.float64)
    half = sheet.shape[1] // 2
    left, right = sheet[:, : half - 4], sheet[:, half + 4 : 2 * half]
    assert left.std() > 20 and right.std() > 20
    rows = left.shape[0]
    lower_face = slice(int(rows * 0.2), int(rows * 0.5))
    assert np.abs(left[lower_face] - right[lower_face]).mean() > 15
    top = slice(18, int(rows * 0.12))
    assert np.abs(left[top] - right[top]).mean() < 5


@pytest.mark.parametrize("pitch", [-20.0, 20.0])
def test_a_nodding_head_is_defaced(pitch: float) -> None:
    phantom = head_phantom("CT", pitch=pitch)
    datasets = slices(phantom.values, "CT")
    before = _axial(datasets)

    deface_series(datasets)

    _assert_defaced(phantom, before, _axial(datasets))


def test_keeping_bone_on_ct_removes_only_soft_tissue() -> None:
    phantom = head_phantom("CT")
    datasets = slices(phantom.values, "CT")
    before = _axial(datasets)

    result = deface_series(datasets, tissue=FaceTissue.SOFT_TISSUE)

    after = _axial(datasets)
    bone = _physical(before, "CT") > 250
    face_side = _face_side(result)
    np.testing.assert_array_equal(after[bone], before[bone])
    assert np.all(_physical(after, "CT")[face_side & ~bone] == -1000)
    assert np.all(_physical(after, "CT")[phantom.nose] == -1000)


def test_keeping_bone_is_refused_on_mr() -> None:
    datasets = slices(head_phantom("MR").values, "MR")
    with pytest.raises(DefacingError, match="keeping bone needs CT"):
        deface_series(datasets, tissue=FaceTissue.SOFT_TISSUE)


def test_without_orientation_the_data_find_the_face() -> None:
    """No Image Orientation/Position (Patient), and the rows stored front to back reversed:
    the nose says where the face is."""
    phantom = head_phantom("CT")
    flipped = np.ascontiguousarray(phantom.values[:, ::-1, :])
    datasets = slices(flipped, "CT")
    before = _axial(datasets)[:, ::-1, :]
    for ds in datasets:
        del ds.ImageOrientationPatient, ds.ImagePositionPatient

    result = deface_series(datasets)

    assert result.direction_source is DirectionSource.DATA
    by_instance = sorted(datasets, key=lambda ds: int(ds.InstanceNumber))
    after = np.stack([ds.pixel_array for ds in by_instance]).astype(np.int64)[:, ::-1, :]
    _assert_defaced(phantom, before, after)


def test_an_orientation_the_data_contradict_is_held() -> None:
    """Rows stored front to back reversed while the header still says standard axial."""
    flipped = np.ascontiguousarray(head_phantom("CT").values[:, ::-1, :])
    with pytest.raises(DefacingError, match="header may be wrong"):
        deface_series(slices(flipped, "CT"))


def test_compressed_slices_are_defaced_and_written_uncompressed() -> None:
    phantom = head_phantom("CT")
    plain = slices(phantom.values, "CT")
    packed = slices(phantom.values, "CT")
    for ds in packed:
        ds.compress(RLELossless)

    deface_series(plain)
    deface_series(packed)

    np.testing.assert_array_equal(_axial(packed), _axial(plain))
    syntaxes = {ds.file_meta.TransferSyntaxUID for ds in packed}
    assert syntaxes == {ExplicitVRLittleEndian, RLELossless}  # untouched slices stay as sent
    for ds in packed:
        if ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian:
            assert len(ds.PixelData) == ds.Rows * ds.Columns * 2


def test_sagittal_slices_are_defaced_in_patient_space() -> None:
    phantom = head_phantom("MR")
    datasets = sagittal_slices(phantom.values, "MR")
    before = np.stack([ds.pixel_array for ds in datasets]).astype(np.int64)

    deface_series(datasets)

    after = np.stack([ds.pixel_array for ds in datasets]).astype(np.int64)

    def to_axial(frames: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        return frames.transpose(1, 2, 0)[::-1]  # [x, -z, y] -> [z, y, x]

    _assert_defaced(phantom, to_axial(before), to_axial(after))


def test_an_enhanced_multiframe_image_is_defaced_frame_by_frame() -> None:
    phantom = head_phantom("CT")
    ds = enhanced_ct(phantom.values)
    before = ds.pixel_array.astype(np.int64)

    deface_series([ds])

    _assert_defaced(phantom, before, ds.pixel_array.astype(np.int64))


def test_a_chest_is_not_a_head() -> None:
    chest = chest_slices()
    assert face_triage(chest).decision is FaceDecision.NOT_NEEDED
    with pytest.raises(DefacingError):
        deface_series(chest)


def test_triage_selects_head_volumes_and_sends_renderings_to_review() -> None:
    head = slices(head_phantom("CT").values, "CT")
    decided = face_triage(head)
    assert decided.needs_defacing
    assert "Body Part Examined is HEAD" in decided.reasons

    described = [copy.deepcopy(ds) for ds in head]
    for ds in described:
        ds.BodyPartExamined = ""
        ds.SeriesDescription = ds.StudyDescription = "MR Brain w/o contrast"
    assert face_triage(described).needs_defacing

    assert face_triage(head[:10]).decision is FaceDecision.NOT_NEEDED  # too few slices
    assert face_triage([enhanced_ct(head_phantom("CT").values)]).needs_defacing

    neck = [copy.deepcopy(ds) for ds in head]
    for ds in neck:
        ds.BodyPartExamined, ds.SeriesDescription, ds.StudyDescription = "NECK", "", ""
    assert face_triage(neck).decision is FaceDecision.REVIEW

    rendering = copy.deepcopy(head[0])
    rendering.ImageType = ["DERIVED", "SECONDARY", "VOLUME_RENDERING"]
    rendering.SamplesPerPixel = 3
    assert face_triage([rendering]).decision is FaceDecision.REVIEW


def test_render_face_draws_a_front_and_a_side_view() -> None:
    phantom = head_phantom("CT")
    picture = render_face(phantom.values, (SPACING, SPACING, SPACING), threshold=-500)
    pixels = np.asarray(picture)
    assert picture.mode == "L"
    assert pixels.shape[0] > pixels.shape[1]  # front above side
    assert (pixels > 0).mean() > 0.3
