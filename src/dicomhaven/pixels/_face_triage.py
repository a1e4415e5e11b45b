"""Which series show a face: decided from the headers, before any pixel is read.

A series needs defacing when it is a CT or MR volume of the head (Body Part Examined, or
head words in the study or series description or the protocol) with enough slices over a
long enough stretch and a wide enough field of view to hold a face. Pictures already
rendered from a head volume (volume renderings, shaded surfaces, colour 3-D captures)
cannot be defaced by cutting a volume, and a neck volume may show the chin and lips with
no brain in view to place the cut by: both go to review. Everything else is not defaced,
and the decision lists the reasons that made it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from pydicom.dataset import Dataset

from dicomhaven.pixels._triage import values_of

__all__ = ["FaceDecision", "FaceTriage", "face_triage"]

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


class FaceDecision(StrEnum):
    DEFACE = "deface"  # a head volume that can show a face: deface it
    REVIEW = "review"  # a rendered picture of a head, or a neck volume: a person must look
    NOT_NEEDED = "not needed"  # not a head, or not a volume that can show a face


@dataclass(frozen=True)
class FaceTriage:
    decision: FaceDecision
    reasons: tuple[str, ...]

    @property
    def needs_defacing(self) -> bool:
        return self.decision is FaceDecision.DEFACE


def head_reasons(header: Dataset) -> list[str]:
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


def _planes(datasets: Sequence[Dataset]) -> list[_Plane]:
    """Every frame's geometry, from the top level or the functional groups (header only)."""
    planes: list[_Plane] = []
    for ds in datasets:
        shared = _item(ds, keyword="SharedFunctionalGroupsSequence")
        per_frame = ds.get("PerFrameFunctionalGroupsSequence")
        for f in range(int(ds.get("NumberOfFrames", 1) or 1)):
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
    head = head_reasons(header)
    if not head:
        part = str(header.get("BodyPartExamined", "")).strip().upper()
        if part in NECK_PARTS and int(header.get("SamplesPerPixel", 1)) == 1:
            return FaceTriage(
                FaceDecision.REVIEW,
                (f"Body Part Examined is {part}", "a neck volume may show the lower face"),
            )
        return FaceTriage(FaceDecision.NOT_NEEDED, ("nothing in the header says head",))
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
        (*head, f"{modality} volume of {frames} slices over {extent:.0f} mm"),
    )
