"""Making one image's pixels safe: triage, read, blank, verify.

For an image the header triage calls risky:

1. **Find the text.** With an approved template for its device, the template's regions are
   blanked without reading or verifying (one image in the template's ``sample_every`` is
   still read and verified in full, and revokes the template if it finds text outside it). Otherwise the detector reads a
   few frames (all of a short clip; the first, middle and last of a long one: devices
   draw their text at the same place on every frame) and **every** word it finds is
   blanked, padded, on every frame. Blanking only the words judged identifying missed
   real identifiers in our measurements (a ``[M]`` sex marker beside a name), and the
   text that is not identifying on these images is small.
2. **Blank it for good** in the stored pixel data (:func:`~dicomhaven.pixels.redact`).
3. **Verify** with a second engine, independent of the first, on the same frames after
   blanking: any identifier it still finds (the patient's own values from the vault, or
   one of the generic patterns) holds the image.

Burned In Annotation is set to NO, with the Clean Pixel Data Option's code, only after the
verification passed. Images the triage calls low risk are not read, except the sample of
their series that :mod:`~dicomhaven.pixels._sampling` chooses (when the caller asks for
sampling, as the pipeline does); the decision and its reasons are kept either way.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import traceback
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy.typing as npt
from pydicom.dataset import Dataset

from dicomhaven.errors import DicomHavenError
from dicomhaven.pixels._codec import (
    RedactionError,
    check_declared_size,
    decode,
    describe_layout,
    lut_header,
    pixel_limit,
)
from dicomhaven.pixels._match import KnownValues, Rule, find_identifiers
from dicomhaven.pixels._ocr import (
    Box,
    FrameValues,
    OcrEngine,
    OcrError,
    RapidOcrEngine,
    TesseractEngine,
    Word,
    display_image,
)
from dicomhaven.pixels._redact import mark_burned_in_annotation_removed, redact
from dicomhaven.pixels._region import Region
from dicomhaven.pixels._sampling import Sampling, looks_like_text, mark_sampled
from dicomhaven.pixels._templates import DeviceKey, TemplateStore
from dicomhaven.pixels._triage import Triage, triage
from dicomhaven.settings import MAX_PIXEL_BYTES_DEFAULT

logger = logging.getLogger(__name__)

__all__ = ["PixelOutcome", "PixelPolicy", "PixelResult", "clean_pixels", "engine_named"]

#: What the verifying pass holds an image for: the patient's own values, and the patterns
#: that name or number a person whoever they are. (A bare time of day or a long number is
#: common in legitimate annotations, and the detector has already blanked every word.)
VERIFY_RULES = frozenset(
    {Rule.KNOWN_NAME, Rule.KNOWN_IDENTIFIER, Rule.KNOWN_DATE, Rule.NHS_NUMBER,
     Rule.CHI_NUMBER, Rule.DATE, Rule.PERSON_NAME, Rule.CUE}
)  # fmt: skip


class PixelOutcome(StrEnum):
    NOT_READ = "not-read"  # low risk: released without reading
    CLEAN = "clean"  # read, no text found
    REDACTED = "redacted"  # text blanked and the blanking verified
    HELD = "held"  # cannot be made safe here: hold with the reason


@dataclass(frozen=True)
class PixelPolicy:
    """How risky images are read. Engines are named, so a policy is plain data.

    ``frames_to_read`` None (the default) has the detector read every frame; a number has
    it read that many, spread from first to last. The verifier reads every frame whatever
    it says. ``verify_rounds`` is how many times what the verifier still reads is blanked
    and verified again before the image is held.
    """

    detector: str = "rapidocr"
    verifier: str = "tesseract"
    frames_to_read: int | None = None
    padding: int = 3
    verify_rounds: int = 3
    #: The site's ``max_pixel_bytes``: larger images are held before any decoder runs.
    max_pixel_bytes: int = MAX_PIXEL_BYTES_DEFAULT

    def __post_init__(self) -> None:
        if self.frames_to_read is not None and self.frames_to_read < 1:
            raise ValueError(
                f"frames_to_read must be at least 1 (or None for every frame),"
                f" got {self.frames_to_read}"
            )
        if self.max_pixel_bytes < 1:
            raise ValueError(f"max_pixel_bytes must be positive, got {self.max_pixel_bytes}")
        if not 0 <= self.verify_rounds <= 10:
            raise ValueError(f"verify_rounds must be 0 to 10, got {self.verify_rounds}")


@dataclass(frozen=True)
class PixelResult:
    outcome: PixelOutcome
    reason: str
    triage: Triage
    regions: tuple[Region, ...] = ()
    template_used: bool = False
    rules: tuple[str, ...] = field(default=())  # rules that fired on the detector's text

    @property
    def safe(self) -> bool:
        return self.outcome is not PixelOutcome.HELD


@functools.cache
def engine_named(name: str) -> OcrEngine:
    """One engine per name per process (RapidOCR loads its models once)."""
    if name == "rapidocr":
        return RapidOcrEngine()
    if name == "tesseract":
        return TesseractEngine(rotations=(0,))
    if name == "tesseract-turned":
        return TesseractEngine()
    raise ValueError(f"unknown OCR engine {name!r}; engines: rapidocr, tesseract, tesseract-turned")


def _frames_to_read(count: int, wanted: int | None) -> list[int]:
    """Every frame (``wanted`` None, or a clip no longer than ``wanted``); of a longer clip,
    ``wanted`` frames spread from first to last."""
    if wanted is None or count <= wanted:
        return list(range(count))
    if wanted == 1:
        return [0]
    return sorted({round(i * (count - 1) / (wanted - 1)) for i in range(wanted)})


def _iter_images(dataset: Dataset, frames: Iterable[int]) -> Iterator[npt.NDArray[Any]]:
    """``frames`` of ``dataset`` as a viewer shows them, 8 bits, one at a time.

    The frames are described by a copy of the header (:func:`lut_header`): what a decoder
    converted, or the byte order of a palette, is never written back into ``dataset``.
    Lossless YCbCr is decoded as stored, so it is converted to RGB here."""
    decoded = decode(dataset)
    header = lut_header(dataset, decoded.photometric)
    ycbcr = decoded.photometric.startswith("YBR")
    values = FrameValues.STORED if ycbcr else FrameValues.DECODED
    for index in frames:
        frame = decoded.frames[index]
        yield display_image(header, frame[..., 0] if frame.shape[-1] == 1 else frame, values=values)


def _images(dataset: Dataset, frames: Iterable[int]) -> list[npt.NDArray[Any]]:
    """``frames`` of ``dataset`` as a viewer shows them, 8 bits, for an OCR engine."""
    return list(_iter_images(dataset, frames))


#: What each engine read on each image this process has seen, by the image's hash: a cine
#: clip repeats its frames, an object is sent twice, the verifier rereads a clean frame.
#: Bounded, and in memory only (the words are patient data).
_READ_CACHE: OrderedDict[tuple[str, str], list[Word]] = OrderedDict()
_READ_CACHE_SIZE = 512


def _digest(image: npt.NDArray[Any]) -> str:
    return hashlib.sha256(image.tobytes() + str(image.shape).encode()).hexdigest()


def _read_image(
    engine: OcrEngine, image: npt.NDArray[Any], digest: str | None = None
) -> list[Word]:
    key = (engine.name, digest or _digest(image))
    words = _READ_CACHE.get(key)
    if words is None:
        words = _READ_CACHE[key] = engine.read(image)
        if len(_READ_CACHE) > _READ_CACHE_SIZE:
            _READ_CACHE.popitem(last=False)
    else:
        _READ_CACHE.move_to_end(key)
    return words


def _read_frames(
    engine: OcrEngine, images: Iterable[npt.NDArray[Any]]
) -> Iterator[tuple[int, list[Word]]]:
    """What ``engine`` reads on each image, with its position. An image identical to one
    already read here (the same hash of all its pixels) is not read again: it holds the
    same words, so skipping it loses nothing."""
    seen: dict[str, list[Word]] = {}
    for index, image in enumerate(images):
        digest = _digest(image)
        if digest not in seen:
            seen[digest] = _read_image(engine, image, digest)
        yield index, seen[digest]


def _read_each(
    engine: OcrEngine, images: Iterable[npt.NDArray[Any]]
) -> Iterator[tuple[npt.NDArray[Any], list[Word]]]:
    """Each image with what ``engine`` reads on it (a repeated image is read once)."""
    seen: dict[str, list[Word]] = {}
    for image in images:
        digest = _digest(image)
        if digest not in seen:
            seen[digest] = _read_image(engine, image, digest)
        yield image, seen[digest]


def _read(dataset: Dataset, engine: OcrEngine, frames: Sequence[int]) -> list[Word]:
    """Every word ``engine`` reads on ``frames`` of ``dataset``."""
    images = _iter_images(dataset, frames)
    return [word for _, words in _read_frames(engine, images) for word in words]


def _sampled(dataset: Dataset, every: int) -> bool:
    """Whether this image is the one in ``every`` whose template is checked by reading."""
    uid = str(dataset.get("SOPInstanceUID", ""))
    return int(hashlib.sha256(uid.encode()).hexdigest()[:8], 16) % every == 0


def clean_pixels(
    dataset: Dataset,
    known: KnownValues | None = None,
    *,
    original: Dataset,
    policy: PixelPolicy | None = None,
    templates: TemplateStore | None = None,
    trusted_device: bool = False,
    sampling: Sampling | None = None,
) -> PixelResult:
    """Make ``dataset``'s pixels safe in place, or say why they cannot be.

    ``dataset`` is the copy to be released (its header may already be de-identified);
    ``original`` is the header as received (with or without its pixels), which the
    triage and the device's template are decided on: de-identification removes the
    descriptions ("Dose report", "Screen save") that say an image is a page of text.
    Pass the same data set twice when its header was not changed.

    With ``sampling`` (:mod:`~dicomhaven.pixels._sampling`), an image the triage calls low
    risk is still read, as a risky one is, when the sampling of its series chooses it;
    without, it is not read.
    """
    policy = policy or PixelPolicy()
    has_pixels = "PixelData" in dataset or "FloatPixelData" in dataset
    decision = triage(original, trusted_device=trusted_device, has_pixels=has_pixels)
    if not decision.needs_reading and original is not dataset:
        copy = triage(dataset, trusted_device=trusted_device)  # a stage may have added to it
        decision = copy if copy.needs_reading else decision
    if not decision.needs_reading and (sampling is None or not has_pixels):
        return PixelResult(
            PixelOutcome.NOT_READ, "low risk: " + "; ".join(decision.reasons), decision
        )
    try:
        with pixel_limit(policy.max_pixel_bytes):  # every decode below, the verifier's too
            check_declared_size(dataset)
            if sampling is not None and not decision.needs_reading:
                return _sample(dataset, original, known, policy, decision, sampling)
            return _clean_risky(dataset, original, known, policy, templates, decision)
    except RedactionError as exc:  # names what failed, never a value
        return PixelResult(PixelOutcome.HELD, f"pixels cannot be made safe: {exc}", decision)
    except (OSError, MemoryError, DicomHavenError):
        raise  # the environment (a full disk, an OCR engine that will not run), not the image
    except Exception as exc:  # a library (or this code) failed on this layout: hold, naming it
        return PixelResult(PixelOutcome.HELD, _unexpected(dataset, exc), decision)


def _unexpected(dataset: Dataset, exc: Exception) -> str:
    """The reason an image is held when reading or blanking its pixels raised something
    unforeseen: the stage, the tag, the layout, the exception's type and the module it was
    raised in (its text may quote a value from the file, so it is left out)."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = "/".join(Path(frames[-1].filename).parts[-2:]) if frames else "unknown"
    layout = describe_layout(dataset)
    logger.warning(
        "pixel stage failed",
        extra={"error": type(exc).__name__, "where": where, "layout": layout},
    )
    return (
        f"pixels cannot be made safe: the pixel stage failed on (7FE0,0010) Pixel Data "
        f"({layout}) with {type(exc).__name__} in {where}; report it with the site's log"
    )


def _sample(
    dataset: Dataset,
    original: Dataset,
    known: KnownValues | None,
    policy: PixelPolicy,
    decision: Triage,
    sampling: Sampling,
) -> PixelResult:
    """A low-risk image: read as a risky one is when its series' sampling chooses it (never
    with a template: a sample checks what the device really draws), else not read."""
    try:
        image = next(_iter_images(dataset, [0]))
    except OcrError as exc:
        raise RedactionError(f"the pixels cannot be displayed to be sampled: {exc}") from exc
    choice = sampling.choose(image)
    if not choice.read:
        why = "low risk: " + "; ".join(decision.reasons)
        return PixelResult(PixelOutcome.NOT_READ, f"{why}; {choice.describe()}", decision)
    try:
        result = _clean_risky(dataset, original, known, policy, None, decision, plain=True)
    except Exception:  # the caller holds it, and the sampling counts it as unreadable
        sampling.record(choice, text_found=False, unreadable=True)
        raise
    sampling.record(choice, text_found=result.outcome is not PixelOutcome.CLEAN, unreadable=False)
    if result.safe:
        mark_sampled(dataset)  # the gate's scan reads it too
    return dataclasses.replace(result, reason=f"{choice.describe()}: {result.reason}")


def _clean_risky(
    dataset: Dataset,
    original: Dataset,
    known: KnownValues | None,
    policy: PixelPolicy,
    templates: TemplateStore | None,
    decision: Triage,
    *,
    plain: bool = False,
) -> PixelResult:
    frames_total = int(dataset.get("NumberOfFrames", 1) or 1)
    frames = _frames_to_read(frames_total, policy.frames_to_read)
    rows, columns = int(dataset.Rows), int(dataset.Columns)
    device = DeviceKey.of(original if "Rows" in original else dataset)
    template = templates.get(device) if templates is not None else None
    use_template = template is not None and template.in_use
    boxes: list[Box] = []
    rules: set[str] = set()
    # With an approved template, only the sampled image is read (and verified): the others
    # are blanked in the template's regions, as the data manager approved.
    reading = not use_template or _sampled(dataset, template.sample_every if template else 1)
    if reading:
        words = _read(dataset, engine_named(policy.detector), frames)
        if plain:  # a sampled plain slice: an outline read as "0" is anatomy, not text
            words = [w for w in words if looks_like_text(w, rows)]
        boxes = _unique(w.box.padded(policy.padding, (rows, columns)) for w in words)
        # Everything read is blanked; which rules fired is recorded for review.
        rules = {f.rule.value for f in find_identifiers(words, known)}
        outside = template is not None and not all(template.covers(b) for b in boxes)
        if use_template and outside and templates is not None:
            templates.revoke(device, "a sampled reading found text outside the template")
            use_template = False
    fixed = [Region(*box) for box in template.regions] if use_template and template else []
    if not reading:
        redact(dataset, fixed)
        mark_burned_in_annotation_removed(dataset)
        return PixelResult(
            PixelOutcome.REDACTED,
            "text blanked on every frame (with the device's template)",
            decision,
            tuple(fixed),
            True,
        )
    verdict, more = _verify_and_blank(dataset, known, policy, boxes, fixed)
    regions = tuple(fixed) + tuple(Region(*box) for box in [*boxes, *more])
    if verdict:
        return PixelResult(PixelOutcome.HELD, verdict, decision, regions, use_template)
    if not regions:
        return PixelResult(PixelOutcome.CLEAN, "read on every frame; no text found", decision)
    mark_burned_in_annotation_removed(dataset)
    if templates is not None and not use_template:
        templates.propose(device, [[*boxes, *more]])
    how = "with the device's template" if use_template else f"{len(regions)} text regions"
    rounds = f"; {_rounds_note(more)}" if more else ""
    return PixelResult(
        PixelOutcome.REDACTED,
        f"text blanked on every frame ({how}{rounds}) and verified on every frame",
        decision,
        regions,
        use_template,
        tuple(sorted(rules)),
    )


def _rounds_note(more: Sequence[Box]) -> str:
    return f"{len(more)} more found by the verifier"


def _unique(boxes: Iterable[Box]) -> list[Box]:
    """Each box once, in the order first met (a clip's frames repeat their text)."""
    return list(dict.fromkeys(boxes))


def _verify_and_blank(
    dataset: Dataset,
    known: KnownValues | None,
    policy: PixelPolicy,
    boxes: Sequence[Box],
    fixed: Sequence[Region],
) -> tuple[str | None, list[Box]]:
    """Blank ``boxes`` (and ``fixed``) on every frame, then verify every frame; blank what
    the verifier still reads when it reads an identifier (the identifiers, the rest of a
    line already partly blanked, and every word the detector reads again on that frame),
    and verify again, up to ``policy.verify_rounds`` times.

    Returns a reason to hold (None when every frame reads clean) and the boxes the
    verifier's rounds added. Every frame of the data set as it will be written is read by
    the verifier (a frame identical to one already read is known to read the same).
    """
    rows, columns = int(dataset.Rows), int(dataset.Columns)
    blanked: list[Box] = list(boxes)
    more: list[Box] = []
    if blanked or fixed:
        redact(dataset, [*fixed, *(Region(*b) for b in blanked)])
    engine, detector = engine_named(policy.verifier), engine_named(policy.detector)
    everything = range(int(dataset.get("NumberOfFrames", 1) or 1))
    for round_ in range(policy.verify_rounds + 1):
        held: tuple[int, set[str]] | None = None
        found: list[Box] = []
        flagged: dict[str, npt.NDArray[Any]] = {}  # frames the verifier found identifiers on
        images = _iter_images(dataset, everything)
        for index, (image, words) in enumerate(_read_each(engine, images)):
            findings = find_identifiers(words, known, rules=VERIFY_RULES)
            if findings:
                seen = _read_image(detector, image)
                findings = [f for f in findings if _confirmed(f.box, words, seen)]
            if findings:
                held = held or (index, {f.rule.value for f in findings})
                # The verifier may read only part of a line: what the detector reads on
                # this frame (the rest of the line) goes too.
                flagged.setdefault(_digest(image), image)
            found += [f.box for f in findings]
            found += [w.box for w in words if _continues(w.box, [*blanked, *fixed])]
        for image in flagged.values():
            found += [w.box for w in _read_image(detector, image)]
        new = [
            b
            for b in _unique(box.padded(policy.padding, (rows, columns)) for box in found)
            if b.area and not any(_inside(b, other) for other in blanked)
        ]
        if held is None:  # every frame reads clean: what was written is verified
            return None, more
        if not new or round_ == policy.verify_rounds:
            index, fired = held
            return (
                f"identifying text remains after blanking ({', '.join(sorted(fired))},"
                f" frame {index + 1})",
                more,
            )
        blanked += new
        more += new
        redact(dataset, [Region(*b) for b in new])
    raise AssertionError("unreachable: the last round returns")  # pragma: no cover


#: Below this confidence a verifier's word that the detector does not see is taken for
#: noise (Tesseract reads "words" in ultrasound speckle); above it, it is text.
NOISE_CONFIDENCE = 0.5


def _confirmed(box: Box, words: Sequence[Word], detected: Sequence[Word]) -> bool:
    """Whether a verifier's finding in ``box`` is text: read with confidence, or seen as
    text by the detector too. Low-confidence words of the verifier alone, where the
    detector sees nothing, are the speckle of an ultrasound image, not writing."""
    inside = [w for w in words if w.box.intersection(box).area]
    if any(w.confidence >= NOISE_CONFIDENCE for w in inside):
        return True
    return any(w.box.intersection(box).area for w in detected)


def _inside(box: Box, other: Box) -> bool:
    return other.x0 <= box.x0 and other.y0 <= box.y0 and box.x1 <= other.x1 and box.y1 <= other.y1


def _continues(box: Box, blanked: Sequence[Box | Region]) -> bool:
    """Whether ``box`` carries on a line that is partly blanked: beside a blanked box, on
    the same line, within about two characters of it (the detector read part of a line)."""
    for other in blanked:
        top, bottom = max(box.y0, other.y0), min(box.y1, other.y1)
        if bottom - top < 0.5 * min(box.y1 - box.y0, other.y1 - other.y0):
            continue
        gap = max(other.x0 - box.x1, box.x0 - other.x1, 0)
        if gap <= 2 * (box.y1 - box.y0):
            return True
    return False
