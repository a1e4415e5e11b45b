"""The header stage of the pipeline: the site's limited-access copy of each object.

After the identity stage has found the master pseudonym, the object's headers are
de-identified with the site's profile (``deid_profile``), keyed by the site's own secret,
and the copy is written to ``quarantine/<pseudonym>/<study UID>/<instance UID>.dcm``. It
stays there, and the object stays quarantined, until the pixel stage and the residual-PII
scan exist to release it: pixel data may carry burned-in identifiers, so nothing is
released on its headers alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from dicomhaven.catalogue import ObjectStatus
from dicomhaven.deid._engine import DeidContext, deidentify, write_dataset
from dicomhaven.deid._profile import Profile
from dicomhaven.identity import SITE_PROJECT
from dicomhaven.identity._stage import known_values, project_keys
from dicomhaven.pipeline import Outcome, PipelineObject, StageContext

__all__ = ["HELD_REASON", "HeaderStage"]

HELD_REASON = (
    "headers de-identified; held until the pixel stage and the residual-PII scan can release it"
)


@dataclass(frozen=True)
class HeaderStage:
    """De-identify headers into the quarantine zone; record the profile's hash."""

    profile: Profile
    name: str = "deid-headers"

    def __call__(self, obj: PipelineObject, ctx: StageContext) -> Outcome | None:
        if obj.pseudonym is None:
            raise RuntimeError("the header stage runs after the identity stage")
        dataset = obj.dataset()
        keys = project_keys(ctx.site_root, SITE_PROJECT)
        context = DeidContext(
            keys=keys,
            master_pseudonym=obj.pseudonym,
            pseudonym=obj.pseudonym,
            known_values=known_values(ctx.site_root, obj.pseudonym),
        )
        deidentify(dataset, self.profile, context)
        target = (
            ctx.site_root / "quarantine" / obj.pseudonym / str(dataset.StudyInstanceUID)
            / f"{dataset.SOPInstanceUID}.dcm"
        )  # fmt: skip
        write_dataset(dataset, target)
        obj.profile_sha256 = self.profile.sha256
        return Outcome(ObjectStatus.QUARANTINED, HELD_REASON, self.name)
