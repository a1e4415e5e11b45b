"""Reading a sample of the plain slices: what a device is trusted for includes its pixels.

The header triage (:mod:`~dicomhaven.pixels._triage`) calls plain CT, MR, PET and
mammography slices low risk, and a trusted device's Burned In Annotation NO is believed.
Devices are known to say NO and stamp the patient's name anyway, on some slices of some
series. Reading every slice costs a second or more each; so a **sample** of each series
is read, chosen by a cheap look at every slice:

- the **text-band signature** (:func:`band_signature`): the image's border bands (the top
  and bottom 12 % of its rows, the left and right 12 % of its columns), thresholded near
  the top of the displayed range, as a grid of inked cells, and a count of marks that
  line up like writing (many short, separate marks on one line: characters);
- a slice is read (by the same detector and verifier as a risky image, in
  :func:`~dicomhaven.pixels.clean_pixels`) when it is the first of its series seen here,
  when its bands show writing, when its bands differ from those of the series' last clean
  read, when its series already showed text, and otherwise one in ``every`` slices
  (``pixel_sample_every`` once the device is trusted for the kind, the denser
  ``pixel_sample_every_untrusted`` until then);
- text found on a sampled slice revokes the trust of the device for that kind of object
  (:func:`~dicomhaven.scan._devices.object_kind`), and the revocation's cause lists the
  ledger objects of that device and kind released since its last clean sample, for the
  data manager to re-read;
- while a device is not trusted its copies are held by the release gate, so
  ``dicomhaven release`` reads the first, middle and last held slice of each series
  (:func:`series_ends_with_text`) before releasing any of them.

The series state is memory of this process (a worker sees the series' slices it is given;
a slice whose series it has not seen is a first, so splitting a series across workers
means more reads, never fewer). Series are keyed by a keyed hash, never by their UID.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset

if TYPE_CHECKING:
    from dicomhaven.pipeline import Outcome
    from dicomhaven.pixels._ocr import Word
    from dicomhaven.scan._stage import GateServices

__all__ = [
    "BandSignature",
    "KindWatch",
    "PlainSliceSampling",
    "SampleChoice",
    "SampleReason",
    "Sampling",
    "SeriesSampler",
    "band_signature",
    "held_for_text",
    "kind_watch",
    "looks_like_text",
    "mark_sampled",
    "reset_sampling",
    "revoke_for_text",
    "series_ends_with_text",
    "stage_sampling",
    "was_sampled",
]

#: The share of the rows (top and bottom) and of the columns (left and right) that make
#: the border bands, where devices draw their text.
BAND_FRACTION = 0.12
#: A pixel is ink at or above this share of the displayed range (text is drawn at or near
#: the brightest value; anatomy in the bands is air, or tissue below it).
INK_LEVEL = 0.85
#: Writing: at least this many short, separate marks on one line, close together.
MIN_MARKS = 4
#: A mark whose ink fills more of its box than this is a blob (tissue), not a character.
MAX_STROKE_DENSITY = 0.7
#: Bands differ when more cells changed than this many, and than this share of the inked.
DIFF_MIN_CELLS = 2
DIFF_SHARE = 0.25


@dataclass(frozen=True)
class BandSignature:
    """What an image's border bands show: which cells of a small grid hold ink, and how
    many marks line up like writing (0: none)."""

    cells: npt.NDArray[np.bool_]
    writing: int

    @property
    def text_like(self) -> bool:
        return self.writing >= MIN_MARKS

    def differs(self, other: BandSignature) -> bool:
        """Whether the bands changed beyond the drift of anatomy from slice to slice."""
        if self.cells.shape != other.cells.shape:
            return True
        changed = int(np.count_nonzero(self.cells ^ other.cells))
        inked = max(int(self.cells.sum()), int(other.cells.sum()))
        return changed > max(DIFF_MIN_CELLS, DIFF_SHARE * inked)


def _cell_size(rows: int, columns: int) -> int:
    return max(4, min(rows, columns) // 64)


def _bands(image: npt.NDArray[Any], cell: int) -> list[npt.NDArray[Any]]:
    rows, columns = image.shape
    band_rows = min(rows, max(cell, round(BAND_FRACTION * rows)))
    band_columns = min(columns, max(cell, round(BAND_FRACTION * columns)))
    middle = image[band_rows : rows - band_rows]
    return [
        image[:band_rows],
        image[rows - band_rows :],
        middle[:, :band_columns],
        middle[:, columns - band_columns :],
    ]


def _inked_cells(mask: npt.NDArray[np.bool_], cell: int) -> npt.NDArray[np.bool_]:
    """Which ``cell`` x ``cell`` cells of ``mask`` hold at least two ink pixels."""
    rows, columns = mask.shape
    padded = np.zeros((-(-rows // cell) * cell, -(-columns // cell) * cell), np.int32)
    padded[:rows, :columns] = mask
    sums = padded.reshape(padded.shape[0] // cell, cell, padded.shape[1] // cell, cell)
    inked: npt.NDArray[np.bool_] = sums.sum(axis=(1, 3)) >= 2
    return inked


def _writing(mask: npt.NDArray[np.bool_], cell: int) -> int:
    """The most marks that line up like writing in one line of ``mask``: in a slab two
    cells high, runs of inked columns no wider than three cells, with enough ink to be a
    stroke (speckle is not) but made of strokes (a solid blob of tissue is not), no more
    than two cells apart. A curve, an edge or a table crossing the slab is one run, or a
    long one, and starts the count again."""
    best = 0
    least_ink = max(3, cell // 2)
    for top in range(0, max(1, mask.shape[0] - cell), cell):
        slab = mask[top : top + 2 * cell]
        if not slab.any() or slab.mean() > 0.5:
            continue
        edges = np.diff(np.concatenate(([0], slab.any(axis=0).astype(np.int8), [0])))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        if len(starts) < MIN_MARKS:
            continue
        ink = np.add.reduceat(slab.sum(axis=0), starts)
        count, last_end = 0, -(10**9)
        for start, end, amount in zip(starts.tolist(), ends.tolist(), ink.tolist(), strict=True):
            if amount < least_ink:
                continue  # speckle: neither a mark nor a break
            width = end - start
            solid = amount > MAX_STROKE_DENSITY * width * int(slab[:, start:end].any(axis=1).sum())
            if width > 3 * cell or solid or start - last_end > 2 * cell:
                count = 0
            if width <= 3 * cell and not solid:
                count += 1
                best = max(best, count)
            last_end = end
    return best


def band_signature(image: npt.NDArray[Any]) -> BandSignature:
    """The text-band signature of one 8-bit image as a viewer shows it (``H x W`` grey or
    ``H x W x 3``): cheap (a few milliseconds on a 512 x 512 slice), so every plain slice
    gets one, and only the slices it points at are read."""
    grey = image.max(axis=2) if image.ndim == 3 else image
    cell = _cell_size(*grey.shape)
    level = max(1, int(np.ceil(INK_LEVEL * 255)))
    masks = [band >= level for band in _bands(grey, cell)]
    cells = np.concatenate([_inked_cells(m, cell).ravel() for m in masks])
    return BandSignature(cells, max(_writing(m, cell) for m in masks))


#: A word read on a plain slice is text only if its line is no taller than this share of
#: the rows (or 32 pixels), with two letters or digits and some confidence: the detector
#: reads a body's outline, a vertebra, as "0" or "o", and blanking that would blank anatomy.
MAX_LINE_SHARE = 0.125
MIN_CONFIDENCE = 0.5


def looks_like_text(word: Word, rows: int) -> bool:
    """Whether a word the detector read on a plain slice is writing, not anatomy."""
    height = word.box.y1 - word.box.y0
    if height > max(32, MAX_LINE_SHARE * rows) or word.confidence < MIN_CONFIDENCE:
        return False
    return sum(c.isalnum() for c in word.text) >= 2


class SampleReason(StrEnum):
    """Why a plain slice is read."""

    FIRST = "first of its series"
    SERIES_SHOWED_TEXT = "its series showed text"
    WRITING = "its border bands show writing"
    BANDS_DIFFER = "its border bands differ from the series' last clean read"
    EVERY = "one in every {every} of its series"
    NOT_SAMPLED = "not sampled"


@dataclass(frozen=True)
class SampleChoice:
    """Whether one plain slice is read, and why; ``since`` counts the slices of its series
    passed unread since its last read, ``every`` the rule that applied."""

    read: bool
    reason: SampleReason
    series: str
    signature: BandSignature
    every: int
    since: int = 0

    def describe(self) -> str:
        if self.read:
            return f"sampled ({self.reason.value.format(every=self.every)})"
        return (
            f"not sampled ({self.since} of its series unread since its last read;"
            f" one in {self.every} is read)"
        )


@dataclass
class _SeriesState:
    reference: BandSignature | None = None  # the bands of its last clean read
    since_read: int = 0
    showed_text: bool = False


class SeriesSampler:
    """The series this process has seen: bounded memory (a series forgotten is read again
    from its next slice, the safe direction), safe across threads (a receiver)."""

    def __init__(self, capacity: int = 4096) -> None:
        self._series: OrderedDict[str, _SeriesState] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def choose(self, series: str, signature: BandSignature, every: int) -> SampleChoice:
        """Whether to read the slice whose bands are ``signature``; an unread slice is
        counted at once, a read one by :meth:`record` once its reading is known."""
        with self._lock:
            state = self._series.get(series)
            if state is None:
                state = self._series[series] = _SeriesState()
                if len(self._series) > self._capacity:
                    self._series.popitem(last=False)
                reason: SampleReason | None = SampleReason.FIRST
            elif state.showed_text:
                reason = SampleReason.SERIES_SHOWED_TEXT
            elif signature.text_like:
                reason = SampleReason.WRITING
            elif state.reference is None or signature.differs(state.reference):
                reason = SampleReason.BANDS_DIFFER
            elif state.since_read + 1 >= every:
                reason = SampleReason.EVERY
            else:
                reason = None
            self._series.move_to_end(series)
            if reason is None:
                state.since_read += 1
                return SampleChoice(
                    False, SampleReason.NOT_SAMPLED, series, signature, every, state.since_read
                )
            return SampleChoice(True, reason, series, signature, every, state.since_read)

    def record(self, choice: SampleChoice, *, clean: bool) -> None:
        """What the reading of a chosen slice found: a clean read is the series' new
        reference; text (or a slice that could not be read) has every later slice of the
        series read."""
        with self._lock:
            state = self._series.setdefault(choice.series, _SeriesState())
            state.since_read = 0
            if clean:
                state.reference = choice.signature
            else:
                state.showed_text = True

    def clear(self) -> None:
        with self._lock:
            self._series.clear()


class Sampling(Protocol):
    """What :func:`~dicomhaven.pixels.clean_pixels` asks about a plain slice: whether to
    read it, and (for a slice read) what the reading found."""

    def choose(self, image: npt.NDArray[Any]) -> SampleChoice: ...

    def record(self, choice: SampleChoice, *, text_found: bool, unreadable: bool) -> None: ...


#: This process's series: the pixel stage's, and the default of :class:`PlainSliceSampling`.
SERIES = SeriesSampler()


@dataclass
class PlainSliceSampling:
    """The sampling of one plain slice: its series' key, the rule for its device and kind,
    and (in the pipeline) the watch over that device and kind, told of every slice passed
    unread and of what each reading found; ``object_id`` is the slice's ledger id."""

    series: str
    every: int
    sampler: SeriesSampler = field(default_factory=lambda: SERIES)
    watch: KindWatch | None = None
    object_id: int | None = None

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"every must be at least 1 (1 reads every slice), got {self.every}")

    def choose(self, image: npt.NDArray[Any]) -> SampleChoice:
        choice = self.sampler.choose(self.series, band_signature(image), self.every)
        if not choice.read and self.watch is not None and self.object_id is not None:
            self.watch.passed_unread(self.object_id)
        return choice

    def record(self, choice: SampleChoice, *, text_found: bool, unreadable: bool) -> None:
        self.sampler.record(choice, clean=not (text_found or unreadable))
        if self.watch is None:
            return
        if text_found:
            why = choice.reason.value.format(every=choice.every)
            self.watch.text_found(f"burned-in text on a sampled plain slice ({why})")
        elif not unreadable:
            self.watch.clean_sample(self.object_id)


def series_key(*parts: str) -> str:
    """A key for a series in this process's memory: a keyed hash (the key is made per
    process and never kept), so no UID is held as such."""
    message = "\x1f".join(parts).encode()
    return hmac.new(_PROCESS_KEY, message, hashlib.sha256).hexdigest()[:32]


_PROCESS_KEY = secrets.token_bytes(32)


# ---------------------------------------------------------------- the gate's scan


#: The pixel data of the copies this process sampled and read (by hash, bounded): the
#: release gate's scan, which runs next in the same worker, reads their pixels too.
_SAMPLED: OrderedDict[str, None] = OrderedDict()
_SAMPLED_SIZE = 2048
_SAMPLED_LOCK = threading.Lock()


def _pixel_digest(dataset: Dataset) -> str | None:
    value = dataset.get("PixelData")
    if not isinstance(value, bytes | bytearray):
        return None
    return hashlib.sha256(value).hexdigest()


def mark_sampled(dataset: Dataset) -> None:
    """Remember that this copy's pixels were sampled and read (as they will be written)."""
    digest = _pixel_digest(dataset)
    if digest is None:
        return
    with _SAMPLED_LOCK:
        _SAMPLED[digest] = None
        _SAMPLED.move_to_end(digest)
        if len(_SAMPLED) > _SAMPLED_SIZE:
            _SAMPLED.popitem(last=False)


def was_sampled(dataset: Dataset) -> bool:
    """Whether this process sampled and read a copy with exactly these pixel data: the
    gate's scan reads the pixels of every sampled image, not only of risky ones."""
    digest = _pixel_digest(dataset)
    with _SAMPLED_LOCK:
        return digest is not None and digest in _SAMPLED


# ---------------------------------------------------------------- the pipeline's sampling


@dataclass(frozen=True)
class _SiteRules:
    every: int
    every_untrusted: int


@functools.lru_cache(maxsize=4)
def _site_rules(site_root: Path) -> _SiteRules:
    from dicomhaven.site import open_site

    settings = open_site(site_root).settings
    return _SiteRules(settings.pixel_sample_every, settings.pixel_sample_every_untrusted)


class KindWatch:
    """This process's watch over one device's objects of one kind: when it last read a
    clean sample of them, and which it passed unread since (their ledger ids), so that text
    found on a sample lists what was released since, even before the ledger has recorded
    it (decisions are recorded in batches)."""

    #: Ids kept per device and kind; beyond, the ledger's record is relied on.
    MAX_UNREAD = 100_000

    def __init__(self, site_root: Path, device_id: str, kind: str) -> None:
        self.site_root, self.device_id, self.kind = site_root, device_id, kind
        self.last_clean: datetime | None = None
        self.last_clean_object: int | None = None  # the clean sample: not to re-read
        self.unread: list[int] = []
        self._lock = threading.Lock()

    def passed_unread(self, object_id: int) -> None:
        with self._lock:
            if len(self.unread) < self.MAX_UNREAD:
                self.unread.append(object_id)

    def clean_sample(self, object_id: int | None = None) -> None:
        with self._lock:
            self.last_clean, self.last_clean_object = datetime.now(UTC), object_id
            self.unread.clear()

    def text_found(self, found: str) -> bool:
        """Revoke the device's trust for the kind; whether this call revoked it."""
        with self._lock:
            unread, since, clean = list(self.unread), self.last_clean, self.last_clean_object
        return revoke_for_text(
            self.site_root, self.device_id, self.kind, found, since, unread, exclude=clean
        )


_WATCHES: dict[tuple[Path, str, str], KindWatch] = {}
_WATCHES_LOCK = threading.Lock()


def kind_watch(site_root: Path, device_id: str, kind: str) -> KindWatch:
    """This process's watch over ``device_id``'s objects of ``kind``."""
    with _WATCHES_LOCK:
        key = (site_root, device_id, kind)
        if key not in _WATCHES:
            _WATCHES[key] = KindWatch(site_root, device_id, kind)
        return _WATCHES[key]


def reset_sampling() -> None:
    """Forget the series, samples, watches and settings this process knows (tests)."""
    SERIES.clear()
    with _WATCHES_LOCK:
        _WATCHES.clear()
    with _SAMPLED_LOCK:
        _SAMPLED.clear()
    _site_rules.cache_clear()


def stage_sampling(
    site_root: Path,
    device_id: str | None,
    original: Dataset,
    object_id: int | None = None,
    *,
    device_trusted: bool,
) -> PlainSliceSampling:
    """The sampling of one object in the pipeline, from its header as received: its
    series, its device's rule (trusted for its kind, or not) and the watch over that
    device and kind (text found revokes its trust). ``device_trusted`` is the registry's
    state of the device, which the caller has already read for triage."""
    from dicomhaven.scan._devices import object_kind
    from dicomhaven.scan._stage import gate_services

    rules = _site_rules(site_root)
    kind = object_kind(original)
    trusted = False
    if device_id is not None and device_trusted:
        trusted = not gate_services(site_root).registry.kind_revoked(device_id, kind)
    series_uid = str(original.get("SeriesInstanceUID", "") or "")
    # No Series Instance UID: each such object is a series of its own, so it is read.
    series = series_key(
        str(site_root), device_id or "", series_uid or str(original.get("SOPInstanceUID", ""))
    )
    every = rules.every if trusted else rules.every_untrusted
    watch = kind_watch(site_root, device_id, kind) if device_id is not None else None
    return PlainSliceSampling(series, every, watch=watch, object_id=object_id)


def revoke_for_text(
    site_root: Path,
    device_id: str,
    kind: str,
    found: str,
    last_clean: datetime | None = None,
    unread: Sequence[int] = (),
    *,
    exclude: int | None = None,
) -> bool:
    """Revoke the trust of ``device_id`` for ``kind`` because ``found``. The cause names
    the objects of that device and kind to re-read: those the ledger records as released
    since ``last_clean`` (the last clean sample this process read; without one, since the
    device was trusted) and those passed ``unread`` here since (the ledger may not have
    them yet), but not ``exclude`` (the clean sample itself). Whether this call revoked it
    (once per device and kind)."""
    from dicomhaven.catalogue import DeviceState
    from dicomhaven.scan._devices import SYSTEM_ACTOR, describe_objects, released_since
    from dicomhaven.scan._stage import gate_services

    services = gate_services(site_root)
    registry = services.registry
    if registry.kind_revoked(device_id, kind):
        return False
    record = registry.get(device_id)
    since = last_clean
    if since is None:
        since = record.changed_at if record.state is DeviceState.TRUSTED else record.first_seen
    released = released_since(
        services.sessions, site_root / "intake", services.site_key, device_id, kind, since
    )
    listed = sorted((set(released) | set(unread)) - {exclude})
    cause = (
        f"{found}; re-read the objects of this kind released since its last clean sample"
        f" ({since.isoformat(timespec='seconds')}): {len(listed)}"
        + (f", {describe_objects(listed)}" if listed else "")
    )
    revoked = registry.revoke_kind(
        device_id, kind, group_id="pixel-sample", cause=cause, by=SYSTEM_ACTOR
    )
    if revoked:
        _audit(site_root, device_id, kind, len(listed))
    return revoked


def _audit(site_root: Path, device_id: str, kind: str, released: int) -> None:
    from dicomhaven.access import AuditLog
    from dicomhaven.catalogue import make_engine
    from dicomhaven.scan._devices import SYSTEM_ACTOR
    from dicomhaven.site import open_site

    AuditLog(make_engine(open_site(site_root).database_url)).append(
        actor=SYSTEM_ACTOR, role="system", action="revoke-device-kind",
        target=f"{device_id} {kind}"[:128],
        reason=(
            "burned-in text on a sampled plain slice of this kind; "
            f"{released} objects released since its last clean sample to re-read"
        ),
        outcome="revoked",
    )  # fmt: skip


# ---------------------------------------------------------------- release: series' ends


@dataclass(frozen=True)
class _HeldSlice:
    object_id: int
    relpath: str
    order: tuple[int, int]


def series_ends_with_text(
    site_root: Path, held: Iterable[tuple[int, str, str, str]], services: GateServices
) -> set[int]:
    """Read the first, middle and last held plain slice of each series of a trusted device
    (``held``: object id, device id, copy's path under ``quarantine/``, intake path), before
    ``dicomhaven release`` releases any of them; the ids of those showing text, which stay
    held. Text revokes the device's trust for the kind (so the gate holds the rest of it)."""
    import warnings

    import pydicom

    from dicomhaven.catalogue import DeviceState
    from dicomhaven.pixels._clean import PixelPolicy, _frames_to_read, _read, engine_named
    from dicomhaven.pixels._triage import triage
    from dicomhaven.scan._devices import object_kind

    registry = services.registry
    series: dict[tuple[str, str, str], list[_HeldSlice]] = {}
    trusted: dict[str, bool] = {}
    for object_id, device_id, relpath, intake_path in held:
        if device_id not in trusted:
            trusted[device_id] = registry.state(device_id) is DeviceState.TRUSTED
        if not trusted[device_id]:
            continue  # stays held whatever its pixels show: read when it is trusted
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                original = pydicom.dcmread(
                    site_root / "intake" / intake_path, stop_before_pixels=True, force=True
                )
        except Exception:  # an unreadable original: the gate decides on the copy as before
            continue
        kind = object_kind(original)
        if triage(original, trusted_device=True, has_pixels=True).needs_reading:
            continue  # a risky image: read in full by the pixel stage
        if registry.kind_revoked(device_id, kind):
            continue  # held by the gate anyway
        uid = str(original.get("SeriesInstanceUID", "") or original.get("SOPInstanceUID", ""))
        number = original.get("InstanceNumber")
        order = (int(number) if str(number or "").strip().lstrip("-").isdigit() else 0, object_id)
        series.setdefault((device_id, kind, series_key(uid)), []).append(
            _HeldSlice(object_id, relpath, order)
        )
    engine = engine_named(PixelPolicy().detector)
    flagged: set[int] = set()
    for (device_id, kind, _), slices in series.items():
        for chosen in _ends(sorted(slices, key=lambda s: s.order)):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    copy = pydicom.dcmread(site_root / "quarantine" / chosen.relpath, force=True)
                if "PixelData" not in copy:
                    continue
                frames = _frames_to_read(int(copy.get("NumberOfFrames", 1) or 1), 3)
                rows = int(copy.Rows)
                found = any(looks_like_text(w, rows) for w in _read(copy, engine, frames))
            except Exception:  # pixels that cannot be read cannot be vouched for: held
                flagged.add(chosen.object_id)
                continue
            if found:
                flagged.add(chosen.object_id)
                revoke_for_text(
                    site_root, device_id, kind,
                    "burned-in text on the first, middle or last held slice of a series, "
                    f"read before release (object {chosen.object_id} kept held)",
                )  # fmt: skip
    return flagged


def held_for_text() -> Outcome:
    """What ``dicomhaven release`` records for a held slice that showed text."""
    from dicomhaven.catalogue import ObjectStatus
    from dicomhaven.pipeline import Outcome

    return Outcome(
        ObjectStatus.QUARANTINED,
        "held: burned-in text on a slice read before release; its kind's trust is revoked",
        "gate",
    )


def _ends(slices: Sequence[_HeldSlice]) -> list[_HeldSlice]:
    """The first, middle and last of ``slices`` (each once)."""
    if not slices:
        return []
    picks = {0, len(slices) // 2, len(slices) - 1}
    return [slices[i] for i in sorted(picks)]
