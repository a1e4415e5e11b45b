"""Writing identifiers into a dataset and recording, in the same step, where they went.

Every identifier a builder writes goes through :class:`Planter`, so the answer key cannot
drift from the files. The category follows from the location alone:

- ``private-tag``: any step of the tag path is a private element (odd group);
- ``nested-sequence``: inside a sequence item, except Other Patient IDs Sequence, which is
  part of the Patient Module's own identification;
- ``free-text``: a top-level element whose prose contains the identifier;
- ``standard-attribute``: a top-level element (or Other Patient IDs item) holding it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydicom import config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag

from dicomhaven.synth._answer_key import Category, IdentifierKind, PixelRegion, Plant
from dicomhaven.synth._text import Text

__all__ = ["Planter", "tag_path"]

_OTHER_PATIENT_IDS = "(0010,1002)"


def tag_path(*steps: int | tuple[int, int]) -> str:
    """``(0040,0275)[0]/(0008,0050)`` from ``(0x00400275, 0), 0x00080050``."""
    out = []
    for step in steps:
        if isinstance(step, tuple):
            out.append(f"{_fmt(step[0])}[{step[1]}]")
        else:
            out.append(_fmt(step))
    return "/".join(out)


def _fmt(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _category(location: str, prose: bool) -> Category:
    groups = [int(step[1:5], 16) for step in location.split("/")]
    if any(group % 2 for group in groups):
        return Category.PRIVATE_TAG
    if "[" in location and not location.startswith(_OTHER_PATIENT_IDS):
        return Category.NESTED_SEQUENCE
    return Category.FREE_TEXT if prose else Category.STANDARD_ATTRIBUTE


class Planter:
    """Sets elements of one dataset (or sequence item) and records the identifiers in them."""

    def __init__(self, path: str, patient: int, dataset: Dataset, prefix: str = "") -> None:
        self.path = path
        self.patient = patient
        self.dataset = dataset
        self._prefix = prefix
        self._plants: list[Plant] = []

    @property
    def plants(self) -> list[Plant]:
        return self._plants

    def put(
        self,
        tag: int | str,
        vr: str,
        value: Any,
        identifiers: Iterable[tuple[IdentifierKind, str]] = (),
        *,
        prose: bool = False,
    ) -> None:
        """Set one element; each identifier must occur in ``value`` exactly as given."""
        btag: BaseTag = Tag(tag)
        # Strict when writing: a value too long for its VR is a generator bug, not a warning.
        self.dataset.add(DataElement(btag, vr, value, validation_mode=config.RAISE))
        location = self._prefix + _fmt(int(btag))
        haystack = value if isinstance(value, bytes) else str(value).encode("utf-8")
        for kind, text in identifiers:
            if text.encode("utf-8") not in haystack:
                raise ValueError(f"planted {kind} not found in {location}")
            self._plants.append(
                Plant(self.path, self.patient, _category(location, prose), kind, text, location)
            )

    def put_id(self, tag: int | str, vr: str, kind: IdentifierKind, value: str) -> None:
        """Set an element whose whole value is one identifier."""
        self.put(tag, vr, value, [(kind, value)])

    def put_text(self, tag: int | str, vr: str, text: Text) -> None:
        """Set a prose element with the identifiers composed into it."""
        self.put(tag, vr, text.value, text.identifiers, prose=True)

    def sequence(self, tag: int | str, count: int = 1) -> list[Planter]:
        """Add a sequence of ``count`` new items; returns a planter for each item."""
        btag = Tag(tag)
        items = [Dataset() for _ in range(count)]
        self.dataset.add_new(btag, "SQ", Sequence(items))
        planters = []
        for i, item in enumerate(items):
            child = Planter(self.path, self.patient, item, f"{self._prefix}{_fmt(int(btag))}[{i}]/")
            child._plants = self._plants
            planters.append(child)
        return planters

    def pixels(
        self, category: Category, kind: IdentifierKind, value: str, region: PixelRegion
    ) -> None:
        """Record text drawn into the pixels or an overlay."""
        if category not in {Category.BURNED_IN_PIXELS, Category.OVERLAY}:
            raise ValueError(f"pixel plants are burned-in or overlay, not {category}")
        self._plants.append(Plant(self.path, self.patient, category, kind, value, region))
