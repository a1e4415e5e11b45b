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
  headers that cannot be de-identified, a copy that cannot be written as its header
  describes it, such as native pixels under a compressed transfer syntax), and the
  summary says why.

Copies are written into ``OUT/held/.pending/`` first and moved out only once the scanner
passed them, so a run that stops half way leaves nothing unscanned outside ``held/``.

No copy replaces another: two input files that de-identify to the same name in OUT (the same
SOP Instance UID: one object sent twice, or a UID clash) give one copy in OUT; the other,
when its bytes differ, is held under a name of its own with the reason, and when they are
the same bytes is skipped as a duplicate. A copy left in OUT by an earlier run is replaced
only by the same bytes.

With ``workers`` above one, files go through these steps on a process pool (the pipeline's
executor); the copies are moved to OUT or ``held/`` here, in input order, so the run's
outputs and summary are those of one worker.
"""

from __future__ import annotations

import filecmp
import json
import pickle
import secrets
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileDataset
from pydicom.uid import UID

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
    read_dataset,
    scan_copy,
)
from dicomhaven.deid._stream import Rewritten, write_bytes
from dicomhaven.errors import DicomHavenError

if TYPE_CHECKING:
    from dicomhaven.access import Actor
    from dicomhaven.collect._folder import Entry
    from dicomhaven.pipeline._runner import Executor
    from dicomhaven.site import Site

__all__ = ["HELD", "FolderSummary", "audit_export", "authorise_export", "run_folder"]

HELD = "held"
_PENDING = ".pending"
#: Why a copy whose name in OUT is taken by a different copy is held (our words only).
NAME_TAKEN = (
    "OUT already holds a different copy under this name (another input file, or an earlier "
    "run, with the same SOP Instance UID): held so that neither replaces the other"
)
#: Why a copy identical to one already in OUT from this run is not written again.
DUPLICATE = "the same object as another input file of this run (identical copy): written once"


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


class _End(StrEnum):
    """How a file's own steps ended: what the run still has to do with it."""

    SKIPPED = "skipped"  # nothing written
    HELD = "held"  # its pending copy goes to held/
    PASSED = "passed"  # its pending copy passed the scan: it goes to OUT
    SERIES = "series"  # a head slice: its series is decided when every file is in


@dataclass
class _Done:
    """A file after its own steps (in a worker or here): picklable, holds no open file."""

    path: Path
    end: _End
    step: Step | None = None  # SKIPPED
    reason: str = ""  # SKIPPED
    hold: Hold | None = None  # HELD
    pending: Path | None = None  # HELD, PASSED, SERIES: the copy in held/.pending/
    names: tuple[str, str] = ("", "")  # its names in OUT and in held/
    outcome: str = ""  # PASSED: the pixel outcome
    profile_sha256: str | None = None
    obj: _Object | None = None  # SERIES: what deciding the series needs


@dataclass(frozen=True)
class _FileSteps:
    """A file's own steps, from its bytes to a scanned copy in ``held/.pending/``; picklable,
    so that it runs in any worker (each opens the site's services once, and asks the vault
    and the consent register once per patient of the run: ``run`` names it)."""

    safe: SafePath
    out: Path
    run: str

    def __reduce__(self) -> tuple[Callable[[bytes], _FileSteps], tuple[bytes]]:
        """The executor sends the steps with every file: they are pickled once here, and
        unpickled once per worker (:func:`_steps_of`), not once per file."""
        blob = self.__dict__.get("_blob")
        if blob is None:
            blob = pickle.dumps((self.safe, self.out, self.run))
            object.__setattr__(self, "_blob", blob)
        return _steps_of, (blob,)

    def __call__(self, item: tuple[int, Entry]) -> _Done:
        from dicomhaven.collect._folder import Unreadable
        from dicomhaven.identity._stage import begin_run

        index, entry = item
        begin_run(self.safe.site_root, self.run)
        if isinstance(entry, Unreadable):
            return _Done(entry.path, _End.SKIPPED, Step.READ, entry.reason)
        return self.one(index, entry)

    def one(self, index: int, path: Path) -> _Done:
        """The steps of the run's ``index``-th file. The file's bytes are let go as soon as
        the copy is made, and the copy once it is written: the scan reads it from disk, so
        a large image is not held three times over."""
        from dicomhaven.collect._folder import describe_error, read_file
        from dicomhaven.intake._reader import ParsedObject, parse_object

        try:
            data = read_file(path)
        except OSError as exc:
            return _Done(path, _End.SKIPPED, Step.READ, describe_error(exc, path))
        parsed = parse_object(data)
        if not isinstance(parsed, ParsedObject):
            return _Done(path, _End.SKIPPED, Step.READ, parsed.reason)
        original = parsed.dataset  # the header as received (read without the pixel data)
        if isinstance(original, FileDataset):
            original.buffer = None  # it holds the file's bytes; the header needs none of them
        del parsed
        identity = identify(self.safe, original)
        if isinstance(identity, Hold):
            return _Done(path, _End.SKIPPED, identity.step, identity.reason)
        obj = _Object(path, original, identity)
        copy: Dataset | Rewritten
        if self.safe.profiles is not None:
            done = deidentify_headers(self.safe, data, original, identity)
            if isinstance(done, Hold):
                return _Done(path, _End.SKIPPED, done.step, done.reason)
            copy, obj.profile_sha256 = done
        else:
            copy = read_dataset(data)
        del data  # a Rewritten copy keeps the views of it it needs
        names = _names(self.safe, obj, copy)
        # A name of its own for the pending copy: two files may share their names in OUT.
        pending_dir = _restricted(self.out, self.out / HELD / _PENDING)
        pending = pending_dir / f"{keyed_name(self.safe.site_key, f'{names[1]}#{index}')}.dcm"
        if isinstance(copy, Rewritten):  # nothing but headers, or marked as not checked
            outcome = "not checked" if copy.pixels_not_checked else "no pixel data"
            write_bytes(copy.parts, pending)
            del copy
            return scanned(self.safe, obj, pending, names, outcome)
        try:
            if self.safe.pixels is PixelCheck.HEADERS_ONLY:
                mark_pixels_not_checked(copy)
                write_copy(copy, pending)
                del copy
                return scanned(self.safe, obj, pending, names, "not checked")
            why = head_slice(original, copy)
            if why is not None:
                write_copy(copy, pending)
                from dicomhaven.pixels._stage import AWAITS_DEFACING

                if why == AWAITS_DEFACING:
                    return _Done(path, _End.SERIES, pending=pending, names=names, obj=obj)
                return _held(obj, pending, names, Hold(Step.DEFACE, why))
            cleaned = clean_and_write(self.safe, obj, copy, pending)
        except NotWritten as exc:  # nothing was written: nothing to hold
            return _Done(path, _End.SKIPPED, Step.WRITE, str(exc))
        del copy
        return after_pixels(self.safe, obj, pending, names, cleaned)


_STEPS: dict[bytes, _FileSteps] = {}  # in a worker: the run's steps, unpickled once


def _steps_of(blob: bytes) -> _FileSteps:
    steps = _STEPS.get(blob)
    if steps is None:
        _STEPS.clear()  # one run's steps at a time
        safe, out, run = pickle.loads(blob)
        steps = _STEPS[blob] = _FileSteps(safe, out, run)
    return steps


def _restricted(out: Path, folder: Path) -> Path:
    """``folder`` (under OUT/held/), made owner-only up to OUT."""
    folder.mkdir(parents=True, exist_ok=True)
    held = out / HELD
    current = folder
    while current != out and held in (current, *current.parents):
        current.chmod(0o700)
        current = current.parent
    return folder


def _names(safe: SafePath, obj: _Object, dataset: Dataset | Rewritten) -> tuple[str, str]:
    """Where the copy goes in OUT and in held/: the pseudonym and new UIDs; without the
    header step (``redact``), the input's own SOP Instance UID in OUT (the copy keeps
    its headers anyway) and a keyed hash of it in held/."""
    if isinstance(dataset, Rewritten):
        study, sop = str(dataset.study_instance_uid), str(dataset.sop_instance_uid)
    else:
        study, sop = str(dataset.StudyInstanceUID), str(dataset.SOPInstanceUID)
    if safe.profiles is not None:
        name = f"{obj.identity.pseudonym}/{study}/{sop}.dcm"
        return name, name
    keyed = keyed_name(safe.site_key, sop)
    return f"{sop}.dcm", f"{obj.identity.pseudonym}/{keyed}.dcm"


def _held(obj: _Object, pending: Path, names: tuple[str, str], hold: Hold) -> _Done:
    return _Done(
        obj.path, _End.HELD, hold=hold, pending=pending, names=names,
        profile_sha256=obj.profile_sha256,
    )  # fmt: skip


def scanned(
    safe: SafePath, obj: _Object, pending: Path, names: tuple[str, str], outcome: str
) -> _Done:
    """Scan the pending copy on its own: passed (for OUT) or held."""
    pending.chmod(0o600)
    _, failed = scan_copy(safe, pending, obj.original, obj.identity)
    if failed is not None:
        return _held(obj, pending, names, failed)
    return _Done(
        obj.path, _End.PASSED, pending=pending, names=names, outcome=outcome,
        profile_sha256=obj.profile_sha256,
    )  # fmt: skip


class NotWritten(DicomHavenError):
    """The copy cannot be written as its header describes it; says why in our words."""


def layout_problem(dataset: Dataset) -> str | None:
    """Why the copy's Pixel Data cannot be written under its transfer syntax, or None: a
    compressed syntax needs encapsulated fragments (undefined length), any other syntax
    native pixels. The syntax is named only when the standard names it."""
    element = dataset.get_item(0x7FE00010)
    meta = getattr(dataset, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if element is None or syntax is None:
        return None
    syntax = UID(str(syntax))
    if not syntax.is_transfer_syntax or syntax.is_private:
        return None
    encapsulated = element.is_undefined_length if isinstance(element, DataElement) else (
        element.length == 0xFFFFFFFF
    )  # fmt: skip
    if encapsulated == syntax.is_compressed:
        return None
    said = "compressed" if syntax.is_compressed else "native"
    found = "encapsulated fragments" if encapsulated else "native pixels"
    return (
        f"its transfer syntax ({syntax.name}) says {said} Pixel Data, but it holds {found}: "
        "the copy cannot be written as its header describes it"
    )


def write_copy(dataset: Dataset, target: Path) -> None:
    """Write the copy (``write_dataset``), or raise :class:`NotWritten` (nothing left at
    ``target``) when it cannot be written as its header describes it."""
    problem = layout_problem(dataset)
    if problem is not None:
        raise NotWritten(problem)
    try:
        write_dataset(dataset, target)
    except (OSError, DicomHavenError):
        raise
    except Exception as exc:  # pydicom's text may quote a value: keep only the type
        raise NotWritten(f"the copy could not be written ({type(exc).__name__})") from None


def clean_and_write(safe: SafePath, obj: _Object, dataset: Dataset, pending: Path) -> Hold | str:
    """Make the pixels safe and write the copy to ``pending``: why it is held, or the
    pixel outcome; raises :class:`NotWritten` when the copy cannot be written."""
    result = clean_image(safe, dataset, obj.original, obj.identity)
    write_copy(dataset, pending)
    if isinstance(result, Hold):
        return result
    return "no pixel data" if result is None else str(result.outcome)


def after_pixels(
    safe: SafePath, obj: _Object, pending: Path, names: tuple[str, str], cleaned: Hold | str
) -> _Done:
    if isinstance(cleaned, Hold):
        return _held(obj, pending, names, cleaned)
    return scanned(safe, obj, pending, names, cleaned)


@dataclass
class _Run:
    """The run's own state: the summary, and what it placed in OUT and held/ so far."""

    safe: SafePath
    out: Path
    summary: FolderSummary
    #: Head CT and MR slices by (pseudonym, original Series Instance UID): their copies
    #: wait in pending/ until the whole series is decided.
    series: dict[tuple[str, str], list[tuple[_Object, Path]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    placed: set[str] = field(default_factory=set)  # names in OUT written by this run
    held_names: set[str] = field(default_factory=set)  # names in held/ used by this run

    @property
    def held_dir(self) -> Path:
        return self.out / HELD

    # -- the file's end: skipped, held or written ------------------------------------------
    def settle(self, done: _Done) -> None:
        if done.end is _End.SKIPPED:
            assert done.step is not None
            self.skip(done.path, done.step, done.reason)
        elif done.end is _End.SERIES:
            assert done.obj is not None and done.pending is not None
            obj = done.obj
            key = (obj.identity.pseudonym, str(obj.original.get("SeriesInstanceUID", "")))
            self.series[key].append((obj, done.pending))
        elif done.end is _End.HELD:
            assert done.hold is not None and done.pending is not None
            self.hold(done.path, done.pending, done.names[1], done.hold)
        else:
            self.release(done)

    def skip(self, path: Path, step: Step, reason: str) -> None:
        self.summary.skipped.append((str(path), step.value, reason))
        self.summary.results.append((str(path), "skipped", reason))

    def hold(self, path: Path, copy: Path, relpath: str, hold: Hold) -> None:
        """Move ``copy`` to ``held/relpath`` (numbered when this run used that name
        already) with its reason file beside it."""
        relpath = self._unused(relpath)
        target = self.held_dir / relpath
        _restricted(self.out, target.parent)
        copy.replace(target)
        target.chmod(0o600)
        reason = target.with_name(f"{target.stem}.reason.json")
        reason.write_text(json.dumps(hold.as_dict(), indent=2, sort_keys=True) + "\n")
        reason.chmod(0o600)
        relative = str(target.relative_to(self.out))
        self.summary.held.append((str(path), hold.step.value, hold.reason, relative))
        self.summary.results.append((str(path), HELD, f"{hold.step.value}: {hold.reason}"))

    def _unused(self, relpath: str) -> str:
        name, number = relpath, 1
        while name in self.held_names:
            number += 1
            stem, dot, suffix = relpath.rpartition(".")
            name = f"{stem}.{number}{dot}{suffix}"
        self.held_names.add(name)
        return name

    def release(self, done: _Done) -> None:
        """Move a copy that passed every step to OUT, unless the name holds another copy."""
        assert done.pending is not None
        target = self.out / done.names[0]
        if target.exists():
            same = filecmp.cmp(done.pending, target, shallow=False)
            if not same:
                self.hold(done.path, done.pending, done.names[1], Hold(Step.WRITE, NAME_TAKEN))
                return
            if done.names[0] in self.placed:  # written by this run: once is enough
                done.pending.unlink()
                self.skip(done.path, Step.WRITE, DUPLICATE)
                return
        target.parent.mkdir(parents=True, exist_ok=True)
        done.pending.replace(target)
        target.chmod(0o644)
        self.placed.add(done.names[0])
        self.summary.written += 1
        self.summary.pixels[done.outcome] += 1
        if done.outcome == "not checked":
            self.summary.pixels_not_checked += 1
        if done.profile_sha256 is not None:
            self.summary.profiles[done.profile_sha256] += 1
        self.summary.results.append((str(done.path), "written", done.names[0]))

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
        named = [_names(self.safe, obj, ds) for (obj, _), ds in zip(slices, datasets, strict=True)]
        hold: Hold | None = None
        if decision.decision is FaceDecision.REVIEW:
            hold = Hold(Step.DEFACE, "head series needs review: " + "; ".join(decision.reasons))
        elif decision.decision is FaceDecision.DEFACE:
            first = self.held_dir / named[0][1]
            folder = _restricted(self.out, first.parent)
            review = folder / f"face-review-{Path(named[0][1]).stem}.png"
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
        datasets.reverse()  # each is let go once written: the scan reads it from disk
        for (obj, pending), names in zip(slices, named, strict=True):
            dataset = datasets.pop()
            if hold is not None:
                self.hold(obj.path, pending, names[1], hold)
                continue
            try:
                cleaned = clean_and_write(self.safe, obj, dataset, pending)
            except NotWritten as exc:
                pending.unlink(missing_ok=True)  # the slice as received, not defaced
                self.skip(obj.path, Step.WRITE, str(exc))
                continue
            del dataset
            self.settle(after_pixels(self.safe, obj, pending, names, cleaned))

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
    workers: int = 1,
) -> FolderSummary:
    """Every file under ``paths`` through the safe path into ``out``; ``workers`` above
    one runs the files' own steps on a process pool, with the same outputs and summary."""
    from dicomhaven.collect._folder import iter_entries
    from dicomhaven.identity._stage import begin_run, end_run

    mode = "redact" if safe.profiles is None else f"deid ({safe.pixels.value})"
    summary = FolderSummary(mode=mode)
    out.mkdir(parents=True, exist_ok=True)
    run = _Run(safe, out, summary)
    steps = _FileSteps(safe, out, run=secrets.token_hex(8))
    executor = _executor(workers)  # after the run's imports: workers start warm
    try:
        begin_run(safe.site_root, steps.run)  # head series are decided here
        for done in executor.imap(steps, enumerate(iter_entries(paths))):
            summary.files += 1
            if progress is not None:
                progress(1)
            run.settle(done)
        run.decide_series()
    finally:
        end_run(safe.site_root)
        executor.close()
        run.tidy()
    return summary


def _executor(workers: int) -> Executor:
    """The pipeline's executor, sending one file a round trip: files differ a thousandfold
    in cost (a structured report, a mammogram), and in chunks one worker would get every
    large file of a folder while the other waits."""
    from dicomhaven.pipeline._runner import ProcessExecutor, make_executor

    return ProcessExecutor(workers, chunk_size=1) if workers > 1 else make_executor(workers)


def authorise_export(site: Site, token: str | None, target: str) -> Actor:
    """The user behind ``token``, if their role may export copies; every attempt is
    audited before anything is read, including one without a valid token."""
    from dicomhaven.access import Action, NotAuthenticated, Users
    from dicomhaven.catalogue import make_engine

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
    from dicomhaven.access import Action, Users
    from dicomhaven.catalogue import make_engine

    Users(make_engine(site.database_url)).audit.append(
        actor=actor.name, role=actor.role.value, action=Action.EXPORT_COPIES.value,
        target=target, reason=summary.counts(),
        outcome="done" if summary.complete else "done, some held or skipped",
    )  # fmt: skip
