"""Defacing the head series the pixel stage held: by the pipeline itself, once a series is
complete, and by ``dicomhaven deface`` at once.

Defacing needs a whole volume, and the pipeline sees one slice at a time: the pixel stage
holds each slice of a head CT or MR volume (:data:`AWAITS_DEFACING`). This step gathers the
held slices by series, takes those that are complete (:mod:`._series_complete`: every
instance its source announced has arrived, or none for the quiet period; all of them with
:attr:`DefaceWhen.NOW`), claims each one's slices so that no other run decides it at the
same time, decides per series (:func:`face_triage`), and:

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

Every slice's ledger entry moves in one transaction per series, with its reason. A slice
that arrives after its series was decided is held for review: it cannot join a released
volume unchecked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from sqlalchemy.orm import Session, sessionmaker

from dicomhaven.catalogue import (
    DeviceState,
    FaceVerdict,
    ObjectStatus,
    TextVerdict,
    make_engine,
    make_sessionmaker,
)
from dicomhaven.deid._engine import write_dataset
from dicomhaven.identity import SITE_PROJECT, ProjectKeys
from dicomhaven.identity._stage import project_keys
from dicomhaven.ledger import Ledger
from dicomhaven.pipeline import Outcome
from dicomhaven.pixels._clean import PixelOutcome, clean_pixels
from dicomhaven.pixels._deface import deface_series
from dicomhaven.pixels._face_triage import FaceDecision, face_triage
from dicomhaven.pixels._sampling import stage_sampling
from dicomhaven.pixels._series_complete import (
    DefaceWhen,
    HeldSeries,
    HeldSlice,
    claim,
    complete_because,
    held_series,
    live_jobs,
    prior_decision,
    reasons_of,
    record_decision,
)
from dicomhaven.pixels._stage import _templates, patient_known_values
from dicomhaven.pixels._verdict import describe, record_verdict
from dicomhaven.pixels._volume import DefacingError
from dicomhaven.scan._devices import DeviceIdentity
from dicomhaven.scan._stage import GateServices, gate_services
from dicomhaven.site import Site

__all__ = [
    "CLEAN_VISUAL_FEATURES",
    "DefaceSummary",
    "DefaceWhen",
    "deface_complete",
    "deface_held",
    "mark_defaced",
]

log = logging.getLogger(__name__)

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
    series: int = 0  # series decided by this run
    defaced: int = 0  # series
    released_without: int = 0  # series that show no face
    held: list[str] = field(default_factory=list)  # a reason per series left held
    objects_released: int = 0
    #: Per series, in order: whether it was treated as a head and why (words and geometry,
    #: never a value from the headers), and why it was complete, so a data manager can see
    #: each decision.
    decisions: list[dict[str, object]] = field(default_factory=list)
    waiting: int = 0  # held series not complete yet: left held as they were
    taken: int = 0  # complete series another run claimed first
    #: Why a run at the end of another command failed (its series stay held), or None.
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "series": self.series,
            "defaced": self.defaced,
            "released_without_defacing": self.released_without,
            "held": self.held,
            "objects_released": self.objects_released,
            "decisions": self.decisions,
            "waiting": self.waiting,
            "taken_by_another_run": self.taken,
            "error": self.error,
        }


@dataclass
class _Slice:
    object_id: int
    copy: Path  # the header-de-identified copy in quarantine
    dataset: Dataset
    original: Dataset  # the original header, for the release gate (device, leak check)
    pseudonym: str


def _copy_of(site: Site, keys: ProjectKeys, original: Dataset, pseudonym: str) -> Path:
    """Where the pixel stage wrote the slice's header-de-identified copy."""
    return (
        site.zone("quarantine") / pseudonym / keys.uid(str(original.StudyInstanceUID))
        / f"{keys.uid(str(original.SOPInstanceUID))}.dcm"
    )  # fmt: skip


def _present(
    site: Site, keys: ProjectKeys, series: HeldSeries
) -> list[tuple[HeldSlice, Dataset, Path]]:
    """The held slices whose copies are there, with their headers as received (a copy is
    missing when consent was withdrawn and the patient purged: nothing to deface; an
    original that cannot be read stays held as it is)."""
    found: list[tuple[HeldSlice, Dataset, Path]] = []
    for item in series.slices:
        try:
            original = pydicom.dcmread(
                site.intake / item.intake_path, stop_before_pixels=True, force=True
            )
            copy = _copy_of(site, keys, original, item.pseudonym)
        except Exception as exc:  # tolerant when reading; its reason says it waits
            log.warning(
                "a held slice's original cannot be read", extra={"error": type(exc).__name__}
            )
            continue
        if copy.is_file():
            found.append((item, original, copy))
    return found


def deface_held(
    site: Site,
    *,
    when: DefaceWhen = DefaceWhen.COMPLETE,
    now: datetime | None = None,
    ended_jobs: frozenset[int] = frozenset(),
) -> DefaceSummary:
    """Deface the held head series that are complete (every held series with
    :attr:`DefaceWhen.NOW`), and release their slices; the others stay held as they are.

    ``now`` is the time the quiet period is measured to; ``ended_jobs`` are ledger jobs to
    take as ended although they still run (a receiver's own, as it stops). No ledger job
    is started unless a series is decided.
    """
    summary = DefaceSummary()
    engine = make_engine(site.database_url)
    sessions = make_sessionmaker(engine)
    series = held_series(site, sessions)
    if not series:
        return summary
    moment = now or datetime.now(UTC)
    running = live_jobs(sessions) - ended_jobs
    keys = project_keys(site.root, SITE_PROJECT)
    ledger = Ledger(engine)
    job: int | None = None
    try:
        for group in series:
            record = prior_decision(sessions, group.key)
            complete = (
                "decided now, as asked ('dicomhaven deface')"
                if when is DefaceWhen.NOW
                else complete_because(
                    sessions, group, quiet_seconds=site.settings.head_series_quiet_seconds,
                    now=moment, running=running, expected=record.expected if record else None,
                    import_quiet_seconds=site.settings.import_series_quiet_seconds,
                )
            )  # fmt: skip
            if complete is None:
                summary.waiting += 1
                continue
            present = _present(site, keys, group)
            if not present:
                continue
            if job is None:
                job = ledger.start_job("deface")
            if not claim(engine, job, [item for item, _, _ in present]):
                summary.taken += 1
                continue
            summary.series += 1
            _claimed(site, ledger, sessions, job, group.key, present, summary, complete)
    finally:
        if job is not None:
            ledger.finish_job(job, summary.as_dict())
    return summary


def deface_complete(
    site: Site, *, now: datetime | None = None, ended_jobs: frozenset[int] = frozenset()
) -> DefaceSummary:
    """The pipeline's own defacing at the end of a command (import, process, release, pull,
    a receiver's stop). The command's own work is done by then, so a failure here does not
    undo it: the series stay held as they were, and the summary says why (the error's type,
    never its text) and what to run."""
    try:
        return deface_held(site, now=now, ended_jobs=ended_jobs)
    except Exception as exc:
        log.error("defacing complete head series failed", extra={"error": type(exc).__name__})
        return DefaceSummary(
            error=f"defacing failed ({type(exc).__name__}); its series stay held: run "
            "'dicomhaven deface' to see why"
        )


def _claimed(
    site: Site,
    ledger: Ledger,
    sessions: sessionmaker[Session],
    job: int,
    key: str,
    present: list[tuple[HeldSlice, Dataset, Path]],
    summary: DefaceSummary,
    complete: str,
) -> None:
    """Decide a claimed series; a run that fails holds its slices again as they were."""
    try:
        record = prior_decision(sessions, key)
        if record is not None and record.decision is not None:
            why = (
                f"{len(present)} slices arrived after their series was decided "
                f"({record.decision}); a person must look before they join it"
            )
            summary.held.append(f"needs review: {why}")
            summary.decisions.append({"slices": len(present), "decision": "review",
                                      "reasons": [why], "complete": complete})  # fmt: skip
            ledger.hold(job, [item.object_id for item, _, _ in present],
                        f"held for review: {why}", STAGE)  # fmt: skip
            return
        slices = [
            _Slice(item.object_id, copy, pydicom.dcmread(copy, force=True), original,
                   item.pseudonym)
            for item, original, copy in present
        ]  # fmt: skip
        decision, reason, render = _one_series(site, ledger, job, slices, summary)
        summary.decisions[-1]["complete"] = complete
    except BaseException:
        try:
            for reason, ids in reasons_of(item for item, _, _ in present).items():
                ledger.hold(job, ids, reason, STAGE)
        except Exception as exc:  # the next 'dicomhaven process' runs them again
            log.error("could not hold a series' slices again", extra={"error": type(exc).__name__})
        raise
    relative = str(render.relative_to(site.root)) if render is not None else None
    record_decision(sessions, key, decision=decision, reason=reason, slices=len(slices),
                    render=relative)  # fmt: skip


def _one_series(
    site: Site, ledger: Ledger, job: int, slices: list[_Slice], summary: DefaceSummary
) -> tuple[str, str, Path | None]:
    """Decide one series; (the decision, its reason, the review render if one was kept)."""
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
        return FaceDecision.REVIEW.value, why, None
    if decision.decision is FaceDecision.DEFACE:
        review = slices[0].copy.parent / f"face-review-{slices[0].copy.stem}.png"
        try:
            defaced = deface_series(datasets, review=review, evidence=decision.evidence)
        except DefacingError as exc:  # says what failed, never a value
            summary.held.append(f"could not be defaced: {exc}")
            ledger.hold(job, [s.object_id for s in slices], f"held: not defaced: {exc}", STAGE)
            return "not-defaced", str(exc), None
        summary.defaced += 1
        face, face_why = (
            FaceVerdict.DEFACED,
            (
                "; ".join((*decision.reasons, defaced.face_before, defaced.face_after))
                + f"; review render {review.name} kept in quarantine"
            ),
        )
    else:
        review = None
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
    return decision.decision.value, face_why, review


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
