"""Defacing the head series the pixel stage held (``dicomhaven deface``).

Defacing needs a whole volume, and the pipeline sees one slice at a time: the pixel stage
holds each slice of a head CT or MR volume (:data:`AWAITS_DEFACING`). This step gathers the
held slices by series, decides per series (:func:`face_triage`), and:

- defaces a head volume and saves the before/after review render beside the held copies
  (it shows the face, so it stays in the quarantine zone);
- leaves a series that shows no face (too few slices, too small a field of view) as it is;
- leaves held, with a new reason, a series that needs a person's review or that could not
  be defaced safely.

Then every slice of a defaced or faceless series has its text checked as the pixel stage
checks any image (:func:`~dicomhaven.pixels.clean_pixels`), on the slice as it will be
written: defacing changed its bytes, and a head slice is never read by the pixel stage.
A slice that is safe is written, its verdict (text and face) recorded on the bytes written,
and offered to the release gate (scan, device trust, verdict), which moves it to the store;
one whose text cannot be made safe stays held with the reason. Nothing is written until
the whole series has been decided, so a run that fails leaves the held copies as they were.

Every slice's ledger entry moves in one transaction per series, with its reason.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from sqlalchemy import select

from dicomhaven.catalogue import (
    DeviceState,
    FaceVerdict,
    LedgerObject,
    ObjectStatus,
    TextVerdict,
    make_engine,
    make_sessionmaker,
)
from dicomhaven.deid._engine import write_dataset
from dicomhaven.identity import SITE_PROJECT
from dicomhaven.identity._stage import project_keys
from dicomhaven.ledger import Ledger
from dicomhaven.pipeline import Outcome
from dicomhaven.pixels._clean import PixelOutcome, clean_pixels
from dicomhaven.pixels._deface import deface_series
from dicomhaven.pixels._face_triage import FaceDecision, face_triage
from dicomhaven.pixels._sampling import stage_sampling
from dicomhaven.pixels._stage import _templates, patient_known_values
from dicomhaven.pixels._verdict import (
    AWAITS_DEFACING,
    FACE_NOT_CHECKED,
    describe,
    record_verdict,
)
from dicomhaven.pixels._volume import DefacingError
from dicomhaven.scan._devices import DeviceIdentity
from dicomhaven.scan._stage import GateServices, gate_services
from dicomhaven.site import Site

__all__ = ["CLEAN_VISUAL_FEATURES", "DefaceSummary", "deface_held", "mark_defaced"]

STAGE = "deface"
#: PS3.16 CID 7050: the Clean Recognizable Visual Features Option of PS3.15 Annex E.
CLEAN_VISUAL_FEATURES = ("113102", "DCM", "Clean Recognizable Visual Features Option")


def mark_defaced(dataset: Dataset) -> None:
    """Record, as PS3.15 asks, that the face was removed: Recognizable Visual Features NO
    and the option's code in De-identification Method Code Sequence (once)."""
    dataset.RecognizableVisualFeatures = "NO"
    value, scheme, meaning = CLEAN_VISUAL_FEATURES
    codes = dataset.get("DeidentificationMethodCodeSequence") or Sequence()
    if not any(
        c.get("CodeValue") == value and c.get("CodingSchemeDesignator") == scheme for c in codes
    ):
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
        codes.append(item)
    dataset.DeidentificationMethodCodeSequence = codes


@dataclass
class DefaceSummary:
    series: int = 0
    defaced: int = 0  # series
    released_without: int = 0  # series that show no face
    held: list[str] = field(default_factory=list)  # a reason per series left held
    objects_released: int = 0
    #: Per series, in order: whether it was treated as a head and why (words and geometry,
    #: never a value from the headers), so a data manager can see each decision.
    decisions: list[dict[str, object]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "series": self.series,
            "defaced": self.defaced,
            "released_without_defacing": self.released_without,
            "held": self.held,
            "objects_released": self.objects_released,
            "decisions": self.decisions,
        }


@dataclass
class _Slice:
    object_id: int
    copy: Path  # the header-de-identified copy in quarantine
    dataset: Dataset
    original: Dataset  # the original header, for the release gate (device, leak check)
    pseudonym: str


def _held_slices(site: Site) -> dict[tuple[str, str], list[_Slice]]:
    """The slices held for defacing, by (pseudonym, original series UID)."""
    keys = project_keys(site.root, SITE_PROJECT)
    with make_sessionmaker(make_engine(site.database_url))() as session:
        held = list(
            session.scalars(
                select(LedgerObject).where(
                    LedgerObject.status == ObjectStatus.QUARANTINED,
                    # and a slice the gate sent back, its face not checked on its bytes
                    LedgerObject.reason.in_((AWAITS_DEFACING, FACE_NOT_CHECKED)),
                )
            )
        )
    series: dict[tuple[str, str], list[_Slice]] = defaultdict(list)
    for obj in held:
        original = pydicom.dcmread(
            site.intake / obj.intake_path, stop_before_pixels=True, force=True
        )
        copy = (
            site.zone("quarantine") / str(obj.pseudonym)
            / keys.uid(str(original.StudyInstanceUID))
            / f"{keys.uid(str(original.SOPInstanceUID))}.dcm"
        )  # fmt: skip
        if not copy.is_file():
            continue  # purged (consent withdrawn) or not written: nothing to deface
        key = (str(obj.pseudonym), str(original.SeriesInstanceUID))
        series[key].append(
            _Slice(obj.id, copy, pydicom.dcmread(copy, force=True), original, str(obj.pseudonym))
        )
    return series


def deface_held(site: Site) -> DefaceSummary:
    """Deface every complete head series the pixel stage held, and release its slices."""
    summary = DefaceSummary()
    ledger = Ledger(make_engine(site.database_url))
    job = ledger.start_job("deface")
    try:
        for slices in _held_slices(site).values():
            summary.series += 1
            _one_series(site, ledger, job, slices, summary)
    finally:
        ledger.finish_job(job, summary.as_dict())
    return summary


def _one_series(
    site: Site, ledger: Ledger, job: int, slices: list[_Slice], summary: DefaceSummary
) -> None:
    datasets = [s.dataset for s in slices]
    # Decided on the headers as received: de-identification removes the descriptions and
    # the body part that say a series is a head.
    decision = face_triage([s.original for s in slices])
    summary.decisions.append(
        {
            "slices": len(slices),
            "decision": decision.decision.value,
            "evidence": decision.evidence.value,
            "reasons": list(decision.reasons),
        }
    )
    if decision.decision is FaceDecision.REVIEW:
        why = "; ".join(decision.reasons)
        summary.held.append(f"needs review: {why}")
        ledger.hold(job, [s.object_id for s in slices], f"held for review: {why}", STAGE)
        return
    if decision.decision is FaceDecision.DEFACE:
        review = slices[0].copy.parent / f"face-review-{slices[0].copy.stem}.png"
        try:
            defaced = deface_series(datasets, review=review, evidence=decision.evidence)
        except DefacingError as exc:  # says what failed, never a value
            summary.held.append(f"could not be defaced: {exc}")
            ledger.hold(job, [s.object_id for s in slices], f"held: not defaced: {exc}", STAGE)
            return
        summary.defaced += 1
        face, face_why = (
            FaceVerdict.DEFACED,
            (
                "; ".join((*decision.reasons, defaced.face_before, defaced.face_after))
                + f"; review render {review.name} kept in quarantine"
            ),
        )
    else:
        summary.released_without += 1
        face, face_why = FaceVerdict.NO_FACE, "; ".join(decision.reasons)
    gate = gate_services(site.root)
    # Every slice's text first, in memory, on the slice as it will be written.
    checked = [_check_text(site, gate, item, face, face_why) for item in slices]
    outcomes: list[tuple[int, Outcome]] = []
    for item, (device, text, reason) in zip(slices, checked, strict=True):
        write_dataset(item.dataset, item.copy)
        if text is None:
            outcomes.append((item.object_id, Outcome(ObjectStatus.QUARANTINED, reason, STAGE)))
            continue
        record_verdict(gate.sessions, item.object_id, item.copy.read_bytes(), text, face, reason)
        # The release gate decides, as for every other copy: scan, device trust, verdict.
        result = gate.scanner.scan_file(
            item.copy, gate.known(item.pseudonym, item.original), pseudonym=item.pseudonym,
            device=device,
        )  # fmt: skip
        relpath = str(item.copy.relative_to(site.zone("quarantine")))
        outcome = gate.decide(
            item.object_id, device, relpath, reason, result, original=_header(item.original)
        )
        outcomes.append((item.object_id, outcome))
    held = [reason for _, (_, text, reason) in zip(slices, checked, strict=True) if text is None]
    if held:
        summary.held.append(f"{len(held)} of {len(slices)} slices held: {held[0]}")
    ledger.settle(job, outcomes)
    summary.objects_released += sum(o.status is ObjectStatus.RELEASED for _, o in outcomes)


def _check_text(
    site: Site, gate: GateServices, item: _Slice, face: FaceVerdict, face_why: str
) -> tuple[str, TextVerdict | None, str]:
    """Mark a defaced slice and make its text safe in place: (its device, the text verdict
    or None when it stays held, the reason)."""
    if face is FaceVerdict.DEFACED:
        mark_defaced(item.dataset)
    device = gate.registry.register(DeviceIdentity.of(item.original), gate.site_key).id
    trusted = gate.registry.state(device) is DeviceState.TRUSTED
    result = clean_pixels(
        item.dataset,
        patient_known_values(site.root, item.pseudonym),
        original=item.original,
        templates=_templates(site.root),
        trusted_device=trusted,
        # plain slices are sampled here as in the pixel stage: a head slice is one too
        sampling=stage_sampling(
            site.root, device, item.original, item.object_id, device_trusted=trusted
        ),
    )
    if result.outcome is PixelOutcome.HELD:
        return device, None, f"held: {result.reason}"
    text = TextVerdict(result.outcome.value)
    return device, text, describe(text, result.reason, face, face_why)


def _header(original: Dataset) -> Callable[[], Dataset]:
    return lambda: original
