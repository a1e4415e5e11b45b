"""The header stage of the pipeline: the site's limited-access copy of each object.

After the identity stage has found the master pseudonym, the object's headers are
de-identified with the site's profile (``deid_profile``), keyed by the site's own secret.
Every copy is written to ``quarantine/<pseudonym>/<study UID>/<instance UID>.dcm``: the
release gate alone moves copies to ``store/``. An object with nothing but headers (a
structured report, say) is offered to the gate. An image goes on, its headers
de-identified, to the pixel stage when the pipeline has one. An object with pixel data and
no pixel stage, overlay data or an encapsulated document may carry burned-in identifiers
that no header rule can see, so it is held. An object whose required binary value hides an
identifier (:class:`~dicomhaven.errors.UnsafeContent`) is held with that reason and no copy.
"""

from __future__ import annotations

import io
from collections.abc import Collection
from dataclasses import dataclass

import pydicom
from pydicom.dataset import Dataset

from dicomhaven.catalogue import ObjectStatus
from dicomhaven.deid._engine import DeidContext, deidentify, write_dataset
from dicomhaven.deid._layers import ProfileLayers
from dicomhaven.deid._stream import Rewritten, rewrite_bytes, write_bytes
from dicomhaven.errors import UnsafeContent
from dicomhaven.identity import SITE_PROJECT
from dicomhaven.identity._stage import known_values, project_keys
from dicomhaven.pipeline import Outcome, PipelineObject, StageContext

__all__ = ["HELD_REASON", "RELEASED_REASON", "HeaderStage", "unchecked_content"]

HELD_REASON = (
    "headers de-identified; held until the pixel stage and the residual-PII scan can release it"
)
RELEASED_REASON = "headers de-identified; no pixel, overlay or document content to check"


def unchecked_content(dataset: Dataset | Collection[int]) -> str | None:
    """What in a de-identified object (a data set, or its top-level tags) no header rule can
    vouch for, or None."""
    tags = set(dataset.keys()) if isinstance(dataset, Dataset) else set(dataset)
    if tags & {0x7FE00010, 0x7FE00008, 0x7FE00009}:
        return "pixel data"
    if any((t >> 16) & 0xFF01 == 0x6000 and t & 0xFFFF == 0x3000 for t in tags):
        return "overlay data"
    if 0x00420011 in tags:
        return "an encapsulated document"
    return None


@dataclass(frozen=True)
class HeaderStage:
    """De-identify headers into quarantine, offering to the release gate a copy with nothing
    left to check; record the hash of the profile composed for the object."""

    profiles: ProfileLayers
    #: The pixel stage follows: an image is left to it, de-identified, instead of held.
    pixels_follow: bool = False
    name: str = "deid-headers"

    def __call__(self, obj: PipelineObject, ctx: StageContext) -> Outcome | None:
        if obj.pseudonym is None:
            raise RuntimeError("the header stage runs after the identity stage")
        keys = project_keys(ctx.site_root, SITE_PROJECT)
        context = DeidContext(
            keys=keys,
            master_pseudonym=obj.pseudonym,
            pseudonym=obj.pseudonym,
            known_values=known_values(ctx.site_root, obj.pseudonym),
        )
        profile = self.profiles.for_header(obj.leading_header())
        obj.profile_sha256 = profile.sha256
        # On the bytes first: kept elements are copied, not parsed and written again.
        rewritten = rewrite_bytes(obj.intake_file.read_bytes(), profile, context)
        if rewritten is not None and rewritten.study_instance_uid and rewritten.sop_instance_uid:
            return self._settle_bytes(obj, ctx, rewritten)
        dataset = obj.dataset()
        try:
            deidentify(dataset, profile, context)
        except UnsafeContent as exc:  # names the attribute, never the value
            return Outcome(ObjectStatus.QUARANTINED, f"held: {exc}", self.name)
        unchecked = unchecked_content(dataset)
        if unchecked == "pixel data" and self.pixels_follow:
            return None  # the same data set, now de-identified, goes on to the pixel stage
        held = unchecked is not None
        relpath = f"{obj.pseudonym}/{dataset.StudyInstanceUID}/{dataset.SOPInstanceUID}.dcm"
        write_dataset(dataset, ctx.site_root / "quarantine" / relpath)
        return self._decide(obj, held, relpath)

    def _decide(self, obj: PipelineObject, held: bool, relpath: str) -> Outcome | None:
        if held:
            return Outcome(ObjectStatus.QUARANTINED, HELD_REASON, self.name)
        obj.offer(relpath, RELEASED_REASON)
        return None

    def _settle_bytes(
        self, obj: PipelineObject, ctx: StageContext, rewritten: Rewritten
    ) -> Outcome | None:
        unchecked = unchecked_content(rewritten.top_level_tags)
        if unchecked == "pixel data" and self.pixels_follow:
            # The pixel stage works on a data set: the de-identified one, read from the bytes.
            obj.replace_dataset(pydicom.dcmread(io.BytesIO(rewritten.data), force=True))
            return None
        held = unchecked is not None
        relpath = f"{obj.pseudonym}/{rewritten.study_instance_uid}/{rewritten.sop_instance_uid}.dcm"
        write_bytes(rewritten.parts, ctx.site_root / "quarantine" / relpath)
        return self._decide(obj, held, relpath)
