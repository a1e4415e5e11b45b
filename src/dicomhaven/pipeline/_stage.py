"""What a pipeline stage is: a function of one object plus context that may decide its fate.

A stage returns ``None`` to pass the object on, or an :class:`Outcome` with a terminal
status and a reason. The same stages run inline, in a local process pool or (later) on a
Dask cluster, so everything a stage receives is picklable and it keeps no global state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Protocol, runtime_checkable

import pydicom
from pydicom.dataset import Dataset

from dicomhaven.catalogue import ObjectStatus

__all__ = ["Decision", "Outcome", "PipelineObject", "Stage", "StageContext"]


@dataclass(frozen=True)
class Outcome:
    """A stage's decision: where the object ends, why, and which stage said so."""

    status: ObjectStatus
    reason: str
    stage: str

    def __post_init__(self) -> None:
        if self.status is ObjectStatus.RECEIVED:
            raise ValueError("an Outcome must be terminal: received is not a decision")
        if not self.reason:
            raise ValueError("an Outcome needs a reason")


class Decision(NamedTuple):
    """What the pipeline decided about one object, and the pseudonym it found on the way."""

    object_id: int
    outcome: Outcome
    pseudonym: str | None = None
    profile_sha256: str | None = None


@dataclass(frozen=True)
class StageContext:
    """What every stage may read: the site's folders. Later issues add the vault and profiles."""

    site_root: Path

    @property
    def intake(self) -> Path:
        return self.site_root / "intake"


#: The last top-level tag :meth:`PipelineObject.leading_header` reads: the patient module
#: (group 0010) and the device attributes (Software Versions is (0018,1020)).
LEADING_TAGS_END = 0x0018FFFF


@dataclass
class PipelineObject:
    """One object travelling through the stages. Its data set is read from intake on demand,
    header only unless a stage asks for pixels, so cheap stages stay cheap."""

    object_id: int
    object_key: str
    intake_file: Path
    pseudonym: str | None = None  # the master pseudonym, once the identity stage found it
    profile_sha256: str | None = None  # the de-identification profile that made its copy
    device_id: str | None = None  # the device that made it, once the registry knows it
    #: A copy ready for release, under quarantine/ until the release gate has checked it:
    #: its path relative to the zone, and the reason it will be released with.
    candidate: str | None = None
    candidate_reason: str = ""
    _header: Dataset | None = field(default=None, repr=False)
    _full: Dataset | None = field(default=None, repr=False)
    _leading: Dataset | None = field(default=None, repr=False)
    _original: Dataset | None = field(default=None, repr=False)

    def header(self) -> Dataset:
        if self._full is not None:
            return self._full
        if self._header is None:
            # Read from the file, not its bytes: pydicom then stops reading at the pixels.
            self._header = pydicom.dcmread(self.intake_file, stop_before_pixels=True, force=True)
        return self._header

    def leading_header(self) -> Dataset:
        """The file meta and the top-level elements up to the device attributes (group
        0018): what the identity and header stages decide on (patient, modality, device),
        read without parsing the rest, so a large report is not read whole twice. The whole
        header when the file cannot be read that way."""
        if self._full is not None or self._header is not None:
            return self.header()
        if self._leading is None:
            from dicomhaven.deid._stream import leading_elements  # the byte path's reader

            self._leading = leading_elements(self.intake_file.read_bytes(), LEADING_TAGS_END)
        return self._leading if self._leading is not None else self.header()

    def original_leading_header(self) -> Dataset:
        """The leading elements as received, even after a stage replaced the data set (the
        release gate searches the copy for the original's own values)."""
        if self._leading is None:
            from dicomhaven.deid._stream import leading_elements

            self._leading = leading_elements(self.intake_file.read_bytes(), LEADING_TAGS_END)
        if self._leading is None:
            return pydicom.dcmread(self.intake_file, stop_before_pixels=True, force=True)
        return self._leading

    def original_header(self) -> Dataset:
        """The whole header as received (no pixels), read from intake even after a stage
        de-identified the data set in place or replaced it: the pixel stage triages on it,
        since de-identification removes the descriptions that say an image is a screen."""
        if self._original is None:
            self._original = pydicom.dcmread(self.intake_file, stop_before_pixels=True, force=True)
        return self._original

    def dataset(self) -> Dataset:
        if self._full is None:
            self._full = pydicom.dcmread(self.intake_file, force=True)
        return self._full

    def offer(self, relpath: str, reason: str) -> None:
        """A stage wrote a copy it would release (``quarantine/<relpath>``); the release
        gate decides."""
        self.candidate, self.candidate_reason = relpath, reason

    def replace_dataset(self, dataset: Dataset) -> None:
        """Hand the next stages a new data set (the de-identified one) in place of the file's."""
        self._full = dataset


@runtime_checkable
class Stage(Protocol):
    """A named step of the pipeline."""

    @property
    def name(self) -> str: ...

    def __call__(self, obj: PipelineObject, ctx: StageContext) -> Outcome | None: ...
