"""The safe path over a folder (``dicomhaven deid IN... OUT`` and ``dicomhaven redact``).

Every file goes through the steps of :mod:`dicomhaven.deid._safe_path`: identity and
consent, headers (skipped by ``redact``), pixels (only marked as not checked with
``--headers-only``), head volumes defaced by series, and the independent scan of the
written copy. OUT receives only copies that passed every step:
``OUT/<pseudonym>/<study UID>/<SOP Instance UID>.dcm``, names made only of the pseudonym and
new UIDs. Everything else is

- *held*: its copy goes to ``OUT/held/`` (mode 0700, files 0600) with
  ``<name>.reason.json`` beside it (the step, the reason, the scan's findings as rule ids
  and value shapes, never values); or
- *skipped*: nothing is written (unreadable, no patient identifier, consent withdrawn,
  headers that cannot be de-identified), and the summary says why.

Copies are written into ``OUT/held/.pending/`` first and moved out only once the scanner
passed them, so a run that stops half way leaves nothing unscanned outside ``held/``.
"""

from __future__ import annotations

import io
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from dicomhaven.access import Action, Actor, NotAuthenticated, Users
from dicomhaven.catalogue import make_engine
from dicomhaven.collect import read_files
from dicomhaven.deid._engine import write_dataset
from dicomhaven.deid._safe_path import (
    Hold,
    Identity,
    PixelCheck,
    SafePath,
    Step,
    clean_image,
    deidentify_headers,
    head_slice,
    identify,
    keyed_name,
    mark_pixels_not_checked,
    scan_copy,
)
from dicomhaven.deid._stream import Rewritten, write_bytes
from dicomhaven.intake import ParsedObject, parse_object
from dicomhaven.site import Site

__all__ = ["HELD", "FolderSummary", "audit_export", "authorise_export", "run_folder"]

HELD = "held"
_PENDING = ".pending"


@dataclass
class FolderSummary:
    """What a folder run did, file by file, in words that hold no identifier."""

    mode: str = ""
    files: int = 0
    written: int = 0
    #: (input path, step, reason) for files of which nothing was written.
    skipped: list[tuple[str, str, str]] = field(default_factory=list)
    #: (input path, step, reason, held copy relative to OUT).
    held: list[tuple[str, str, str, str]] = field(default_factory=list)
    pixels_not_checked: int = 0  # written with --headers-only: pixels never read
    pixels: Counter[str] = field(default_factory=Counter)  # pixel outcome → written copies
    defaced_series: int = 0
    profiles: Counter[str] = field(default_factory=Counter)  # composed profile's sha256 → files
    #: One line per file: input path, "written", "held" or "skipped", and the output
    #: (relative to OUT) or the reason.
    results: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.skipped and not self.held

    def counts(self) -> str:
        """The run in numbers, for the audit log (no path, no identifier)."""
        return (
            f"{self.mode}: {self.files} files, {self.written} written, {len(self.held)} held, "
            f"{len(self.skipped)} skipped, {self.pixels_not_checked} pixels not checked, "
            f"{self.defaced_series} series defaced"
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "files": self.files,
            "written": self.written,
            "held": [
                {"path": p, "stage": s, "reason": r, "held_as": h} for p, s, r, h in self.held
            ],
            "skipped": [{"path": p, "stage": s, "reason": r} for p, s, r in self.skipped],
            "pixels_not_checked": self.pixels_not_checked,
            "pixels": dict(self.pixels),
            "defaced_series": self.defaced_series,
            "profiles": dict(self.profiles),
            "results": [
                {"path": p, "status": s, ("output" if s == "written" else "reason"): d}
                for p, s, d in self.results
            ],
        }


@dataclass
class _Object:
    """One file on its way: where it came from, its header as received, who it is."""

    path: Path
    original: Dataset  # the header as received, without pixel data
    identity: Identity
    profile_sha256: str | None = None


@dataclass
class _Run:
    safe: SafePath
    out: Path
    summary: FolderSummary
    #: Head CT and MR slices by (pseudonym, original Series Instance UID): their copies
    #: wait in pending/ until the whole series is decided.
    series: dict[tuple[str, str], list[tuple[_Object, Path]]] = field(
        default_factory=lambda: defaultdict(list)
    )

    @property
    def held_dir(self) -> Path:
        return self.out / HELD

    def _restricted(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        current = folder
        while current != self.out and self.held_dir in (current, *current.parents):
            current.chmod(0o700)
            current = current.parent
        return folder

    def pending(self, name: str) -> Path:
        return self._restricted(self.held_dir / _PENDING) / name

    # -- the file's end: skipped, held or written ------------------------------------------
    def skip(self, path: Path, step: Step, reason: str) -> None:
        self.summary.skipped.append((str(path), step.value, reason))
        self.summary.results.append((str(path), "skipped", reason))

    def hold(self, obj: _Object, copy: Path, relpath: str, hold: Hold) -> None:
        """Move ``copy`` to ``held/relpath`` with its reason file beside it."""
        target = self.held_dir / relpath
        self._restricted(target.parent)
        copy.replace(target)
        target.chmod(0o600)
        reason = target.with_name(f"{target.stem}.reason.json")
        reason.write_text(json.dumps(hold.as_dict(), indent=2, sort_keys=True) + "\n")
        reason.chmod(0o600)
        relative = str(target.relative_to(self.out))
        self.summary.held.append((str(obj.path), hold.step.value, hold.reason, relative))
        self.summary.results.append((str(obj.path), HELD, f"{hold.step.value}: {hold.reason}"))

    def finish(self, obj: _Object, copy: Path, names: tuple[str, str], outcome: str) -> None:
        """Scan the pending ``copy``; move it to OUT (``names[0]``) if clean, else hold it
        (as ``names[1]``)."""
        copy.chmod(0o600)
        _, failed = scan_copy(self.safe, copy, obj.original, obj.identity)
        if failed is not None:
            self.hold(obj, copy, names[1], failed)
            return
        target = self.out / names[0]
        target.parent.mkdir(parents=True, exist_ok=True)
        copy.replace(target)
        target.chmod(0o644)
        self.summary.written += 1
        self.summary.pixels[outcome] += 1
        if outcome == "not checked":
            self.summary.pixels_not_checked += 1
        if obj.profile_sha256 is not None:
            self.summary.profiles[obj.profile_sha256] += 1
        self.summary.results.append((str(obj.path), "written", names[0]))

    def names(self, obj: _Object, dataset: Dataset | Rewritten) -> tuple[str, str]:
        """Where the copy goes in OUT and in held/: the pseudonym and new UIDs; without the
        header step (``redact``), the input's own SOP Instance UID in OUT (the copy keeps
        its headers anyway) and a keyed hash of it in held/."""
        if isinstance(dataset, Rewritten):
            study, sop = str(dataset.study_instance_uid), str(dataset.sop_instance_uid)
        else:
            study, sop = str(dataset.StudyInstanceUID), str(dataset.SOPInstanceUID)
        if self.safe.profiles is not None:
            name = f"{obj.identity.pseudonym}/{study}/{sop}.dcm"
            return name, name
        keyed = keyed_name(self.safe.site_key, sop)
        return f"{sop}.dcm", f"{obj.identity.pseudonym}/{keyed}.dcm"

    # -- one file --------------------------------------------------------------------------
    def one(self, path: Path, data: bytes) -> None:
        parsed = parse_object(data)
        if not isinstance(parsed, ParsedObject):
            self.skip(path, Step.READ, parsed.reason)
            return
        try:
            original = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
        except Exception as exc:  # the text may quote a value
            self.skip(path, Step.READ, f"could not be read ({type(exc).__name__})")
            return
        identity = identify(self.safe, original)
        if isinstance(identity, Hold):
            self.skip(path, identity.step, identity.reason)
            return
        obj = _Object(path, original, identity)
        copy: Dataset | Rewritten
        if self.safe.profiles is not None:
            done = deidentify_headers(self.safe, data, original, identity)
            if isinstance(done, Hold):
                self.skip(path, done.step, done.reason)
                return
            copy, obj.profile_sha256 = done
        else:
            copy = pydicom.dcmread(io.BytesIO(data), force=True)
        names = self.names(obj, copy)
        pending = self.pending(keyed_name(self.safe.site_key, names[1]) + ".dcm")
        if isinstance(copy, Rewritten):  # nothing but headers: nothing more to check
            write_bytes(copy.parts, pending)
            self.finish(obj, pending, names, "no pixel data")
            return
        if self.safe.pixels is PixelCheck.HEADERS_ONLY:
            mark_pixels_not_checked(copy)
            write_dataset(copy, pending)
            self.finish(obj, pending, names, "not checked")
            return
        why = head_slice(original, copy)
        if why is not None:
            write_dataset(copy, pending)
            from dicomhaven.pixels._stage import AWAITS_DEFACING

            if why == AWAITS_DEFACING:
                key = (identity.pseudonym, str(original.get("SeriesInstanceUID", "")))
                self.series[key].append((obj, pending))
                return
            self.hold(obj, pending, names[1], Hold(Step.DEFACE, why))
            return
        self.pixels_then_finish(obj, copy, pending, names)

    def pixels_then_finish(
        self, obj: _Object, dataset: Dataset, pending: Path, names: tuple[str, str]
    ) -> None:
        result = clean_image(self.safe, dataset, obj.original, obj.identity)
        write_dataset(dataset, pending)
        if isinstance(result, Hold):
            self.hold(obj, pending, names[1], result)
            return
        self.finish(obj, pending, names, "no pixel data" if result is None else result.outcome)

    # -- head series -----------------------------------------------------------------------
    def head_series(self, slices: list[tuple[_Object, Path]]) -> None:
        """Decide a head series as a whole: deface it, pass it as it is (it shows no face),
        or hold every slice (review needed, defacing failed)."""
        from dicomhaven.pixels._deface import deface_series
        from dicomhaven.pixels._deface_held import mark_defaced
        from dicomhaven.pixels._face_triage import FaceDecision, face_triage
        from dicomhaven.pixels._volume import DefacingError

        decision = face_triage([obj.original for obj, _ in slices])
        datasets = [pydicom.dcmread(pending, force=True) for _, pending in slices]
        named = [self.names(obj, ds) for (obj, _), ds in zip(slices, datasets, strict=True)]
        hold: Hold | None = None
        if decision.decision is FaceDecision.REVIEW:
            hold = Hold(Step.DEFACE, "head series needs review: " + "; ".join(decision.reasons))
        elif decision.decision is FaceDecision.DEFACE:
            first = self.held_dir / named[0][1]
            review = self._restricted(first.parent) / f"face-review-{Path(named[0][1]).stem}.png"
            try:
                deface_series(datasets, review=review)
            except DefacingError as exc:  # says what failed, never a value
                hold = Hold(Step.DEFACE, f"head series could not be defaced: {exc}")
            else:
                if review.exists():
                    review.chmod(0o600)  # it shows the face: it stays in held/
                for ds in datasets:
                    mark_defaced(ds)
                self.summary.defaced_series += 1
        for (obj, pending), ds, names in zip(slices, datasets, named, strict=True):
            if hold is not None:
                self.hold(obj, pending, names[1], hold)
            else:
                self.pixels_then_finish(obj, ds, pending, names)

    def decide_series(self) -> None:
        for slices in self.series.values():
            self.head_series(slices)
        self.series.clear()

    def tidy(self) -> None:
        """Remove the pending folder, and held/ too when nothing was held."""
        pending = self.held_dir / _PENDING
        for folder in (pending, self.held_dir):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()


def run_folder(
    safe: SafePath,
    paths: Sequence[Path],
    out: Path,
    *,
    progress: Callable[[int], None] | None = None,
) -> FolderSummary:
    """Every file under ``paths`` through the safe path into ``out``."""
    mode = "redact" if safe.profiles is None else f"deid ({safe.pixels.value})"
    summary = FolderSummary(mode=mode)
    out.mkdir(parents=True, exist_ok=True)
    run = _Run(safe, out, summary)
    try:
        for path, data in read_files(paths, progress):
            summary.files += 1
            if isinstance(data, str):
                run.skip(path, Step.READ, data)
                continue
            run.one(path, data)
        run.decide_series()
    finally:
        run.tidy()
    return summary


def authorise_export(site: Site, token: str | None, target: str) -> Actor:
    """The user behind ``token``, if their role may export copies; every attempt is
    audited before anything is read, including one without a valid token."""
    users = Users(make_engine(site.database_url))
    try:
        actor = users.authenticate(token)
    except NotAuthenticated:
        users.audit.append(
            actor="(not authenticated)", role="", action=Action.EXPORT_COPIES.value,
            target=target, reason="", outcome="refused",
        )  # fmt: skip
        raise
    users.authorise(actor, Action.EXPORT_COPIES, target=target, reason="start")
    return actor


def audit_export(site: Site, actor: Actor, target: str, summary: FolderSummary) -> None:
    """One audit entry for the finished run, with its counts (never a path or a value)."""
    Users(make_engine(site.database_url)).audit.append(
        actor=actor.name, role=actor.role.value, action=Action.EXPORT_COPIES.value,
        target=target, reason=summary.counts(),
        outcome="done" if summary.complete else "done, some held or skipped",
    )  # fmt: skip
