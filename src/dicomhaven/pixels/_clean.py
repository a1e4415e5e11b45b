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
verification passed. Images the triage calls low risk are not read; the decision and its
reasons are kept either way.
"""

from __future__ import annotations

import functools
import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset

from dicomhaven.pixels._codec import RedactionError, decode
from dicomhaven.pixels._match import KnownValues, Rule, find_identifiers
from dicomhaven.pixels._ocr import (
    Box,
    OcrEngine,
    RapidOcrEngine,
    TesseractEngine,
    Word,
    display_image,
)
from dicomhaven.pixels._redact import mark_burned_in_annotation_removed, redact
from dicomhaven.pixels._region import Region
from dicomhaven.pixels._templates import DeviceKey, TemplateStore
from dicomhaven.pixels._triage import Triage, triage

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
    """How risky images are read. Engines are named, so a policy is plain data."""

    detector: str = "rapidocr"
    verifier: str = "tesseract"
    frames_to_read: int = 3
    padding: int = 3


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


def _frames_to_read(count: int, wanted: int) -> list[int]:
    """All frames of a short clip; of a long one, ``wanted`` spread from first to last."""
    if count <= wanted:
        return list(range(count))
    return sorted({round(i * (count - 1) / (wanted - 1)) for i in range(wanted)})


def _images(dataset: Dataset, frames: Sequence[int]) -> list[npt.NDArray[Any]]:
    """``frames`` of ``dataset`` as a viewer shows them, 8 bits, for an OCR engine."""
    decoded = decode(dataset)
    header = dataset
    big_endian = not getattr(dataset, "is_little_endian", True)
    if decoded.photometric != str(dataset.get("PhotometricInterpretation", "")) or big_endian:
        header = Dataset()  # describe what the decoder gave: its colours, native byte order
        header.update(dataset.group_dataset(0x0028))
        header.PhotometricInterpretation = decoded.photometric
        if big_endian:  # pydicom's palette lookup reads the tables as little endian
            for colour in ("Red", "Green", "Blue"):
                keyword = f"{colour}PaletteColorLookupTableData"
                if keyword in header and isinstance(header[keyword].value, bytes):
                    swapped = np.frombuffer(header[keyword].value, ">u2").astype("<u2")
                    header[keyword].value = swapped.tobytes()
    images = []
    for index in frames:
        frame = decoded.frames[index]
        images.append(display_image(header, frame[..., 0] if frame.shape[-1] == 1 else frame))
    return images


#: What each engine read on each image this process has seen, by the image's hash: a cine
#: clip repeats its frames, an object is sent twice, the verifier rereads a clean frame.
#: Bounded, and in memory only (the words are patient data).
_READ_CACHE: OrderedDict[tuple[str, str], list[Word]] = OrderedDict()
_READ_CACHE_SIZE = 512


def _read_image(engine: OcrEngine, image: npt.NDArray[Any]) -> list[Word]:
    digest = hashlib.sha256(image.tobytes() + str(image.shape).encode()).hexdigest()
    key = (engine.name, digest)
    words = _READ_CACHE.get(key)
    if words is None:
        words = _READ_CACHE[key] = engine.read(image)
        if len(_READ_CACHE) > _READ_CACHE_SIZE:
            _READ_CACHE.popitem(last=False)
    else:
        _READ_CACHE.move_to_end(key)
    return words


def _read(dataset: Dataset, engine: OcrEngine, frames: Sequence[int]) -> list[Word]:
    return [word for image in _images(dataset, frames) for word in _read_image(engine, image)]


def _sampled(dataset: Dataset, every: int) -> bool:
    """Whether this image is the one in ``every`` whose template is checked by reading."""
    uid = str(dataset.get("SOPInstanceUID", ""))
    return int(hashlib.sha256(uid.encode()).hexdigest()[:8], 16) % every == 0


def clean_pixels(
    dataset: Dataset,
    known: KnownValues | None = None,
    *,
    policy: PixelPolicy | None = None,
    templates: TemplateStore | None = None,
    trusted_device: bool = False,
) -> PixelResult:
    """Make ``dataset``'s pixels safe in place, or say why they cannot be."""
    policy = policy or PixelPolicy()
    decision = triage(dataset, trusted_device=trusted_device)
    if not decision.needs_reading:
        return PixelResult(
            PixelOutcome.NOT_READ, "low risk: " + "; ".join(decision.reasons), decision
        )
    try:
        return _clean_risky(dataset, known, policy, templates, decision)
    except RedactionError as exc:  # names what failed, never a value
        return PixelResult(PixelOutcome.HELD, f"pixels cannot be made safe: {exc}", decision)


def _clean_risky(
    dataset: Dataset,
    known: KnownValues | None,
    policy: PixelPolicy,
    templates: TemplateStore | None,
    decision: Triage,
) -> PixelResult:
    frames_total = int(dataset.get("NumberOfFrames", 1) or 1)
    frames = _frames_to_read(frames_total, policy.frames_to_read)
    rows, columns = int(dataset.Rows), int(dataset.Columns)
    device = DeviceKey.of(dataset)
    template = templates.get(device) if templates is not None else None
    use_template = template is not None and template.in_use
    boxes: list[Box] = []
    rules: set[str] = set()
    # With an approved template, only the sampled image is read (and verified): the others
    # are blanked in the template's regions, as the data manager approved.
    reading = not use_template or _sampled(dataset, template.sample_every if template else 1)
    if reading:
        words = _read(dataset, engine_named(policy.detector), frames)
        boxes = [w.box.padded(policy.padding, (rows, columns)) for w in words]
        # Everything read is blanked; which rules fired is recorded for review.
        rules = {f.rule.value for f in find_identifiers(words, known)}
        outside = template is not None and not all(template.covers(b) for b in boxes)
        if use_template and outside and templates is not None:
            templates.revoke(device, "a sampled reading found text outside the template")
            use_template = False
    regions = [Region(*box) for box in boxes]
    if use_template and template is not None:
        regions += [Region(*box) for box in template.regions]
    if not regions:
        verdict = _verify(dataset, known, policy, frames)
        if verdict:
            return PixelResult(PixelOutcome.HELD, verdict, decision)
        return PixelResult(PixelOutcome.CLEAN, "read; no text found", decision)
    redact(dataset, regions)
    verdict = _verify(dataset, known, policy, frames) if reading else None
    if verdict:
        return PixelResult(PixelOutcome.HELD, verdict, decision, tuple(regions), use_template)
    mark_burned_in_annotation_removed(dataset)
    if templates is not None and not use_template and boxes:
        templates.propose(device, [boxes])
    how = "with the device's template" if use_template else f"{len(regions)} text regions"
    return PixelResult(
        PixelOutcome.REDACTED,
        f"text blanked on every frame ({how}) and verified",
        decision,
        tuple(regions),
        use_template,
        tuple(sorted(rules)),
    )


def _verify(
    dataset: Dataset, known: KnownValues | None, policy: PixelPolicy, frames: Sequence[int]
) -> str | None:
    """A reason to hold, if the verifying engine still reads an identifier."""
    engine = engine_named(policy.verifier)
    for index, image in zip(frames, _images(dataset, frames), strict=True):
        findings = find_identifiers(_read_image(engine, image), known, rules=VERIFY_RULES)
        if findings:
            fired = ", ".join(sorted({f.rule.value for f in findings}))
            return f"identifying text remains after blanking ({fired}, frame {index + 1})"
    return None
