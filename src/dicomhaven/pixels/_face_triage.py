"""Which series may show a face: decided from the headers, before any pixel is read.

A series goes to defacing when it is a CT or MR volume of the head with enough slices over
a long enough stretch and a wide enough field of view to hold a face. It is a head when
the header says so (Body Part Examined, or head words in the study or series description
or the protocol: :attr:`HeadEvidence.HEADER`) or, whatever the header says, when the
volume's extent in all three patient directions fits a head
(:attr:`HeadEvidence.GEOMETRY`): a head series may come with no description at all. For
those, the pixels decide: the defacer defaces them only when a face detector finds a face
on the head's surface render, or the shape shows a nose (:mod:`._deface`).

Pictures already rendered from a head volume (volume renderings, shaded surfaces, colour
3-D captures) cannot be defaced by cutting a volume, and a neck volume may show the chin
and lips with no brain in view to place the cut by: both go to review. A volume that
records its own defacing (Recognizable Visual Features NO, or DCM 113102 in its
De-identification Method Code Sequence) is triaged like any other: its render is checked,
its word is not taken. Everything else is not defaced, and the decision lists the reasons
that made it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from pydicom.dataset import Dataset

from dicomhaven.pixels._triage import values_of

__all__ = ["FaceDecision", "FaceTriage", "HeadEvidence", "face_triage", "head_reasons"]

#: Body Part Examined values (PS3.16 Annex L code meanings as sent by devices) of a head.
HEAD_PARTS = frozenset(
    {
        "HEAD",
        "BRAIN",
        "SKULL",
        "FACE",
        "HEADNECK",
        "HEAD NECK",
        "HEAD_NECK",
        "ORBIT",
        "SINUS",
        "JAW",
        "TMJ",
        "IAC",
        "MAXILLA",
        "MANDIBLE",
    }
)
#: Whole words in a description or protocol that mean the head is in the volume.
HEAD_WORDS = re.compile(
    r"\b(head|brain|skull|crani\w*|neuro|face|facial|orbits?|sinus(es)?|"
    r"maxillo\w*|mandibles?|dental|cerebr\w*|stroke|pituitary|iacs?|tmj|willis)\b",
    re.IGNORECASE,
)
#: A neck volume may hold the chin and the lips without the brain that the defacer needs to
#: place its cut: a person looks at it.
NECK_PARTS = frozenset({"NECK", "CSPINE"})
#: Image Type values and description words of pictures rendered from a volume.
RENDERED_TYPES = frozenset(
    {"VOLUME_RENDERING", "VOLUME RENDERING", "VR", "VRT", "SSD", "SURFACE", "3D"}
)
RENDERED_WORDS = re.compile(r"\b(3d|vrt?|volume render\w*|surface render\w*|ssd)\b", re.IGNORECASE)
#: A volume that can show a face: this many slices, over this many mm, this wide.
MIN_SLICES = 20
MIN_EXTENT_MM = 60.0
MIN_FIELD_MM = 120.0
#: What a volume must span (mm) along the patient's left-right, front-back and up-down axes
#: to be taken for a head by its geometry alone. The lower limits are a small child's face
#: (a knee or shoulder MR, 80-120 mm across its slices, falls short of the first); the upper
#: ones keep out chest, abdomen and pelvis (350-500 mm fields of view) but not a head and
#: neck. A false candidate costs a render and a detector run, a missed head a face.
HEAD_SPAN_MM = {
    "left-right": (120.0, 320.0),
    "front-back": (150.0, 320.0),
    "up-down": (60.0, 500.0),
}
#: A slice's field of view (mm, both in-plane directions) that fits a head.
HEAD_FIELD_MM = (120.0, 320.0)
#: PS3.16 CID 7050 code of the Clean Recognizable Visual Features Option.
CLEAN_VISUAL_FEATURES_CODE = ("113102", "DCM")


class FaceDecision(StrEnum):
    DEFACE = "deface"  # a head volume that can show a face: deface it
    REVIEW = "review"  # a rendered picture of a head, or a neck volume: a person must look
    NOT_NEEDED = "not needed"  # not a head, or not a volume that can show a face


class HeadEvidence(StrEnum):
    """What made a series a head to deface."""

    HEADER = "header"  # Body Part Examined or a description names the head
    GEOMETRY = "geometry"  # only the volume's extent fits a head: its render must show a face


@dataclass(frozen=True)
class FaceTriage:
    decision: FaceDecision
    reasons: tuple[str, ...]
    evidence: HeadEvidence = HeadEvidence.HEADER

    @property
    def needs_defacing(self) -> bool:
        return self.decision is FaceDecision.DEFACE


def _header_words(header: Dataset) -> list[str]:
    """What the header itself says about the head: Body Part Examined and descriptions."""
    reasons: list[str] = []
    part = str(header.get("BodyPartExamined", "")).strip().upper()
    if part in HEAD_PARTS:
        reasons.append(f"Body Part Examined is {part}")
    described = " ".join(
        str(header.get(k, "")) for k in ("StudyDescription", "SeriesDescription", "ProtocolName")
    )
    words = sorted({m.group(0).lower() for m in HEAD_WORDS.finditer(described)})
    reasons.extend(f"description mentions '{w}'" for w in words)
    return reasons


def _slice_field(header: Dataset) -> tuple[float, float] | None:
    """The in-plane field of view (mm) of a CT or MR slice placed in the patient, or None
    for anything else (no geometry, a localizer, colour, another modality)."""
    if str(header.get("Modality", "")).upper() not in ("CT", "MR"):
        return None
    if int(header.get("SamplesPerPixel", 1) or 1) != 1:
        return None
    if "LOCALIZER" in {str(v).upper() for v in values_of(header.get("ImageType"))}:
        return None
    plane = _planes([header], frames=1)[0]  # the first frame: never one per declared frame
    placed = plane.position is not None and plane.orientation is not None
    if not placed or plane.spacing is None or len(plane.spacing) != 2:
        return None
    rows, cols = int(header.get("Rows", 0) or 0), int(header.get("Columns", 0) or 0)
    return rows * plane.spacing[0], cols * plane.spacing[1]


def head_reasons(header: Dataset) -> list[str]:
    """Why one image may be part of a head volume: what the header says, or a CT or MR
    slice whose field of view fits a head (it then waits for its series, which is decided
    on its extent in three directions by :func:`face_triage`)."""
    reasons = _header_words(header)
    field = _slice_field(header)
    if field is not None and all(HEAD_FIELD_MM[0] <= f <= HEAD_FIELD_MM[1] for f in field):
        reasons.append(f"in-plane field of view fits a head ({field[0]:.0f} x {field[1]:.0f} mm)")
    return reasons


def _records_defacing(header: Dataset) -> bool:
    if str(header.get("RecognizableVisualFeatures", "")).strip().upper() == "NO":
        return True
    codes = header.get("DeidentificationMethodCodeSequence") or []
    return any(
        (str(c.get("CodeValue", "")), str(c.get("CodingSchemeDesignator", "")))
        == CLEAN_VISUAL_FEATURES_CODE
        for c in codes
    )


@dataclass(frozen=True)
class _Plane:
    position: list[float] | None
    orientation: list[float] | None
    spacing: list[float] | None
    thickness: float


def _item(*groups: Dataset | None, keyword: str) -> Dataset | None:
    for group in groups:
        if group is not None and group.get(keyword):
            item: Dataset = group[keyword].value[0]
            return item
    return None


def _numbers(value: object) -> list[float] | None:
    try:
        return [float(v) for v in value]  # type: ignore[attr-defined]
    except (TypeError, ValueError):  # absent or malformed: tolerant when reading
        return None


def _frame_count(ds: Dataset) -> int:
    """Number of Frames, or 1 when it is not a number (``1A``): tolerant when reading; the
    pixel stage's declared size check refuses such an object before any decoder runs."""
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def _planes(datasets: Sequence[Dataset], frames: int | None = None) -> list[_Plane]:
    """Every frame's geometry (or the first ``frames`` of each data set's), from the top
    level or the functional groups (header only). Number of Frames is the sender's word: a
    header claiming two billion frames made one plane each (minutes, gigabytes) when one
    slice's field of view was asked for."""
    planes: list[_Plane] = []
    for ds in datasets:
        shared = _item(ds, keyword="SharedFunctionalGroupsSequence")
        per_frame = ds.get("PerFrameFunctionalGroupsSequence")
        declared = _frame_count(ds)
        for f in range(declared if frames is None else min(frames, declared)):
            own = per_frame[f] if per_frame is not None and f < len(per_frame) else None
            position = _item(own, shared, keyword="PlanePositionSequence") or ds
            orientation = _item(own, shared, keyword="PlaneOrientationSequence") or ds
            measures = _item(own, shared, keyword="PixelMeasuresSequence") or ds
            thickness = (
                measures.get("SliceThickness")
                or ds.get("SpacingBetweenSlices")
                or ds.get("SliceThickness")
            )
            planes.append(
                _Plane(
                    position=_numbers(position.get("ImagePositionPatient")),
                    orientation=_numbers(orientation.get("ImageOrientationPatient")),
                    spacing=_numbers(measures.get("PixelSpacing")),
                    thickness=float(thickness or 0),
                )
            )
    return planes


def _extent_mm(planes: Sequence[_Plane]) -> float:
    """How far the frames reach along their normal (or their count times their thickness)."""
    first = planes[0]
    if len(planes) > 1 and first.orientation is not None and all(p.position for p in planes):
        normal = np.cross(first.orientation[:3], first.orientation[3:])
        along = [float(np.dot(p.position, normal)) for p in planes if p.position is not None]
        return max(along) - min(along) + first.thickness
    return len(planes) * first.thickness


_AXES = ("left-right", "front-back", "up-down")
_ORIENTATIONS = ("sagittal", "coronal", "axial")  # by the patient axis of the slice normal


def _spans(header: Dataset, planes: Sequence[_Plane]) -> tuple[dict[str, float], str]:
    """How far the volume reaches (mm) along each patient axis, and how its slices lie.

    Without Image Position/Orientation (Patient) the slices are taken for axial ones, their
    count times their thickness for the up-down extent.
    """
    rows, cols = int(header.get("Rows", 0) or 0), int(header.get("Columns", 0) or 0)
    first = planes[0]
    spacing = first.spacing if first.spacing is not None and len(first.spacing) == 2 else [0, 0]
    positions = [p.position for p in planes if p.position is not None and len(p.position) == 3]
    orientation = np.array(first.orientation or [], dtype=np.float64)
    if len(positions) != len(planes) or orientation.shape != (6,):
        across = (cols * spacing[1], rows * spacing[0], _extent_mm(planes))
        return dict(zip(_AXES, across, strict=True)), "axial (orientation not given)"
    row, col = orientation[:3], orientation[3:]
    # The four corners of every slice (the slices of one series are parallel).
    offsets = np.array(
        [col * i * spacing[0] + row * j * spacing[1] for i in (0, rows) for j in (0, cols)]
    )
    points = (np.array(positions, dtype=np.float64)[:, None, :] + offsets[None]).reshape(-1, 3)
    normal = np.abs(np.cross(row, col))
    span = points.max(axis=0) - points.min(axis=0) + normal * first.thickness
    lying = _ORIENTATIONS[int(np.argmax(normal))] if normal.max() > 0.8 else "oblique"
    return dict(zip(_AXES, (float(v) for v in span), strict=True)), lying


def _by_geometry(datasets: Sequence[Dataset], extra: Sequence[str]) -> FaceTriage:
    """A series whose header does not say head: a head candidate if its extent fits one."""
    header = datasets[0]
    reasons = ["nothing in the header says head"]
    modality = str(header.get("Modality", "")).upper()
    image_type = {str(v).upper() for v in values_of(header.get("ImageType"))}
    if modality not in ("CT", "MR"):
        return FaceTriage(
            FaceDecision.NOT_NEEDED, (*reasons, f"modality {modality or 'not given'}")
        )
    if int(header.get("SamplesPerPixel", 1) or 1) != 1 or image_type & RENDERED_TYPES:
        return FaceTriage(FaceDecision.NOT_NEEDED, (*reasons, "not a greyscale volume"))
    if "LOCALIZER" in image_type:
        return FaceTriage(FaceDecision.NOT_NEEDED, (*reasons, "image type LOCALIZER"))
    planes = _planes(datasets)
    if len(planes) < MIN_SLICES:
        return FaceTriage(
            FaceDecision.NOT_NEEDED, (*reasons, f"{len(planes)} slices, fewer than {MIN_SLICES}")
        )
    spans, lying = _spans(header, planes)
    described = (
        f"{modality} volume of {len(planes)} {lying} slices spanning "
        + " x ".join(f"{spans[a]:.0f}" for a in _AXES)
        + " mm (" + " x ".join(_AXES) + ")"
    )  # fmt: skip
    misfit = [
        f"{axis} {spans[axis]:.0f} mm, outside {low:.0f}-{high:.0f}"
        for axis, (low, high) in HEAD_SPAN_MM.items()
        if not low <= spans[axis] <= high
    ]
    if misfit:
        return FaceTriage(
            FaceDecision.NOT_NEEDED,
            (*reasons, f"geometry does not fit a head: {described}: {'; '.join(misfit)}"),
        )
    return FaceTriage(
        FaceDecision.DEFACE,
        (
            *reasons,
            f"geometry fits a head: {described}",
            *extra,
            "defaced only if its surface render shows a face or its shape a nose",
        ),
        HeadEvidence.GEOMETRY,
    )


def _field_mm(header: Dataset, plane: _Plane) -> float:
    if plane.spacing is None or len(plane.spacing) != 2:
        return 0.0
    rows, cols = int(header.get("Rows", 0)), int(header.get("Columns", 0))
    return min(rows * plane.spacing[0], cols * plane.spacing[1])


def face_triage(datasets: Sequence[Dataset]) -> FaceTriage:
    """Decide from the headers of one series whether it shows a face that must be removed."""
    if not datasets:
        return FaceTriage(FaceDecision.NOT_NEEDED, ("no images",))
    header = datasets[0]
    head = _header_words(header)
    extra = (
        ["records its own defacing: checked on its render, its word not taken"]
        if _records_defacing(header)
        else []
    )
    if not head:
        part = str(header.get("BodyPartExamined", "")).strip().upper()
        if part in NECK_PARTS and int(header.get("SamplesPerPixel", 1)) == 1:
            return FaceTriage(
                FaceDecision.REVIEW,
                (f"Body Part Examined is {part}", "a neck volume may show the lower face"),
            )
        return _by_geometry(datasets, extra)
    image_type = {str(v).upper() for v in values_of(header.get("ImageType"))}
    rendered = sorted(image_type & RENDERED_TYPES)
    described = " ".join(str(header.get(k, "")) for k in ("SeriesDescription", "ProtocolName"))
    reasons = [
        *head,
        *(f"image type {t}" for t in rendered),
        *(
            f"description mentions '{m.group(0).lower()}'"
            for m in RENDERED_WORDS.finditer(described)
        ),
    ]
    if int(header.get("SamplesPerPixel", 1)) != 1:
        reasons.append("colour pixels")
    if len(reasons) > len(head):
        return FaceTriage(FaceDecision.REVIEW, (*reasons, "a picture rendered from a head"))
    modality = str(header.get("Modality", "")).upper()
    if modality not in ("CT", "MR"):
        return FaceTriage(FaceDecision.NOT_NEEDED, (*head, f"modality {modality or 'not given'}"))
    if "LOCALIZER" in image_type:
        return FaceTriage(FaceDecision.NOT_NEEDED, (*head, "image type LOCALIZER"))
    planes = _planes(datasets)
    frames = len(planes)
    if frames < MIN_SLICES:
        return FaceTriage(
            FaceDecision.NOT_NEEDED, (*head, f"{frames} slices, fewer than {MIN_SLICES}")
        )
    extent = _extent_mm(planes)
    if extent < MIN_EXTENT_MM:
        return FaceTriage(
            FaceDecision.NOT_NEEDED,
            (*head, f"slices span {extent:.0f} mm, less than {MIN_EXTENT_MM:.0f}"),
        )
    field = _field_mm(header, planes[0])
    if field < MIN_FIELD_MM:
        return FaceTriage(
            FaceDecision.NOT_NEEDED,
            (*head, f"field of view {field:.0f} mm, less than {MIN_FIELD_MM:.0f}"),
        )
    return FaceTriage(
        FaceDecision.DEFACE,
        (*head, f"{modality} volume of {frames} slices over {extent:.0f} mm", *extra),
    )
