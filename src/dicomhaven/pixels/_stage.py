"""The pixel stage of the pipeline: an image's limited-access copy, made safe or held.

It runs after the header stage, on the de-identified data set the header stage leaves on
the object, for objects with pixel data. What to read is decided on the header as received
(``PipelineObject.original_header``): the header stage removes the descriptions that say
an image is a screen capture, a dose sheet or a head.

- a slice of a head CT or MR volume is held until its whole series is defaced (defacing
  needs the volume, not one slice; ``dicomhaven deface`` then reads its text, on the
  defaced bytes), and a picture rendered from a head is held for review;
- otherwise :func:`~dicomhaven.pixels.clean_pixels` triages, reads, blanks and verifies,
  looking for the patient's own values (from the vault) as well as generic patterns, and
  learning device templates in the site's ``templates/`` folder;
- a safe copy is written to ``quarantine/<pseudonym>/<study UID>/<instance UID>.dcm``, its
  pixel verdict recorded on the bytes written (:mod:`~dicomhaven.pixels._verdict`), and
  offered to the release gate, the only writer of ``store/``; an unsafe one stays in
  ``quarantine/`` with the reason.
"""

from __future__ import annotations

import datetime
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset
from sqlalchemy.orm import Session, sessionmaker

from dicomhaven.catalogue import FaceVerdict, ObjectStatus, TextVerdict
from dicomhaven.deid._engine import write_dataset
from dicomhaven.deid._stage import unchecked_content
from dicomhaven.identity._stage import known_identifiers, known_values
from dicomhaven.pipeline import Outcome, PipelineObject, StageContext
from dicomhaven.pixels._clean import PixelOutcome, PixelPolicy, clean_pixels
from dicomhaven.pixels._match import KnownValues
from dicomhaven.pixels._sampling import stage_sampling
from dicomhaven.pixels._templates import TemplateStore
from dicomhaven.pixels._verdict import (
    AWAITS_DEFACING,
    describe,
    head_volume_slice,
    record_verdict,
)

__all__ = ["AWAITS_DEFACING", "PixelStage", "head_volume_slice", "patient_known_values"]


def patient_known_values(site_root: Path, pseudonym: str) -> KnownValues:
    """The patient's own values, from the vault, for the pixels to be searched for."""
    names, dates, identifiers = [], [], list(known_identifiers(site_root, pseudonym))
    for value in known_values(site_root, pseudonym):
        if re.fullmatch(r"\d{8}", value):
            try:
                dates.append(datetime.date(int(value[:4]), int(value[4:6]), int(value[6:])))
            except ValueError:
                continue
        elif any(c.isalpha() for c in value):
            names.append(value)
        else:
            identifiers.append(value)
    return KnownValues(tuple(names), tuple(identifiers), tuple(dates))


@functools.lru_cache(maxsize=4)
def _templates(site_root: Path) -> TemplateStore:
    return TemplateStore(site_root / "templates")


def _sessions(site_root: Path) -> sessionmaker[Session]:
    """The catalogue's sessions, as the release gate holds them (opened once per worker)."""
    from dicomhaven.scan._stage import gate_services

    return gate_services(site_root).sessions


def _trusted(site_root: Path, device_id: str | None) -> bool:
    """Whether the registry trusts the device: only then is its Burned In Annotation "NO"
    believed by triage."""
    if device_id is None:
        return False
    from dicomhaven.catalogue import DeviceState
    from dicomhaven.scan._stage import gate_services

    return gate_services(site_root).registry.state(device_id) is DeviceState.TRUSTED


@dataclass(frozen=True)
class PixelStage:
    """Make each image's pixels safe and offer its copy to the release gate, with the
    verdict on the bytes written; or hold it."""

    policy: PixelPolicy = field(default_factory=PixelPolicy)
    name: str = "deid-pixels"

    def __call__(self, obj: PipelineObject, ctx: StageContext) -> Outcome | None:
        if obj.pseudonym is None or obj.profile_sha256 is None:
            raise RuntimeError("the pixel stage runs after the identity and header stages")
        if obj.candidate is not None:
            return None  # the header stage offered a copy with no pixels: nothing to do here
        dataset = obj.dataset()  # already de-identified by the header stage
        original = obj.original_header()  # as received: what triage decides on
        waits = head_volume_slice(original)
        if waits is None and unchecked_content(dataset) not in (None, "pixel data"):
            waits = f"{unchecked_content(dataset)} kept beside the pixels is not read yet"
        if waits is not None:
            self._write(ctx.site_root, obj.pseudonym, dataset)
            return Outcome(ObjectStatus.QUARANTINED, waits, self.name)
        trusted = _trusted(ctx.site_root, obj.device_id)
        result = clean_pixels(
            dataset,
            patient_known_values(ctx.site_root, obj.pseudonym),
            original=original,
            policy=self.policy,
            templates=_templates(ctx.site_root),
            trusted_device=trusted,
            sampling=stage_sampling(
                ctx.site_root, obj.device_id, original, obj.object_id, device_trusted=trusted
            ),
        )
        if result.outcome is PixelOutcome.HELD:
            self._write(ctx.site_root, obj.pseudonym, dataset)
            return Outcome(ObjectStatus.QUARANTINED, f"held: {result.reason}", self.name)
        text = TextVerdict(result.outcome.value)
        reason = describe(text, result.reason, FaceVerdict.NOT_HEAD, "")
        relpath = self._write(ctx.site_root, obj.pseudonym, dataset)
        copy = ctx.site_root / "quarantine" / relpath
        record_verdict(
            _sessions(ctx.site_root), obj.object_id, copy.read_bytes(), text,
            FaceVerdict.NOT_HEAD, reason,
        )  # fmt: skip
        obj.offer(relpath, reason)
        return None

    @staticmethod
    def _write(site_root: Path, pseudonym: str, dataset: Dataset) -> str:
        """Write the copy under ``quarantine/`` (the gate alone moves it on); its path
        relative to the zone."""
        relpath = f"{pseudonym}/{dataset.StudyInstanceUID}/{dataset.SOPInstanceUID}.dcm"
        write_dataset(dataset, site_root / "quarantine" / relpath)
        return relpath
