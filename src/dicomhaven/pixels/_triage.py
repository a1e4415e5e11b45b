"""Which images may carry burned-in text: decided from the header, before any OCR.

OCR is slow and most images (CT, MR, PET and mammography slices straight from the scanner)
never carry text in their pixels. Others often do: ultrasound and nuclear medicine frames,
fluoroscopy and angiography, radiographs (the reader stamps them), CT scout images, screen
captures, dose and protocol sheets saved as images. So only the cross-sectional modalities
are low risk, and only when nothing else in the header says otherwise; any other modality,
known or not, is read.
Each decision lists the reasons that made it, so a reviewer sees why an image was or was
not read. Burned In Annotation is believed only when it says NO on a trusted device: a
header saying NO on an untrusted device proves nothing (devices are known to say NO and
stamp the patient's name anyway), while YES is always believed.

Low risk means "not read in full", not "never read": in the pipeline a sample of every
series of low-risk images is read, chosen by :mod:`~dicomhaven.pixels._sampling`, and
text found there revokes the device's trust for that kind of image.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

__all__ = ["Risk", "Triage", "triage"]

#: Modalities whose slices come straight from a reconstruction with no text drawn in.
LOW_RISK_MODALITIES = frozenset({"CT", "MR", "PT", "MG"})
#: Secondary Capture and its multi-frame kinds: screens saved as images.
SECONDARY_CAPTURE = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.7",
        "1.2.840.10008.5.1.4.1.1.7.1",
        "1.2.840.10008.5.1.4.1.1.7.2",
        "1.2.840.10008.5.1.4.1.1.7.3",
        "1.2.840.10008.5.1.4.1.1.7.4",
    }
)
#: Image Type values that mark a picture of a screen or a sheet, or a scout image with its
#: annotations, rather than a plain acquisition.
RISKY_IMAGE_TYPES = frozenset({"SCREEN SAVE", "DOSE_INFO", "DOSE INFO", "CAPTURE", "LOCALIZER"})
#: Words in a series or study description that mean "a page of text saved as an image"
#: (whole words: "screening" is not "screen").
RISKY_WORDS = re.compile(
    r"\b(dose|protocol|screen|screenshot|report|summary|exam info|patient info)\b", re.IGNORECASE
)


class Risk(StrEnum):
    HIGH = "high"  # read every frame (or apply the device's template), then verify
    LOW = "low"  # no OCR; the decision and its reasons are recorded


@dataclass(frozen=True)
class Triage:
    risk: Risk
    reasons: tuple[str, ...]

    @property
    def needs_reading(self) -> bool:
        return self.risk is Risk.HIGH


def triage(
    header: Dataset, *, trusted_device: bool = False, has_pixels: bool | None = None
) -> Triage:
    """Decide from the header alone whether an image's pixels may hold text.

    ``header`` should be the header as received: de-identification removes or cleans the
    descriptions that mark a screen capture or a dose sheet. ``has_pixels`` says whether
    the object has pixel data when ``header`` was read without it (None: look in it).
    """
    if has_pixels is None:
        has_pixels = "PixelData" in header or "FloatPixelData" in header
    if not has_pixels:
        return Triage(Risk.LOW, ("no pixel data",))
    reasons: list[str] = []
    modality = str(header.get("Modality", "")).upper()
    if modality not in LOW_RISK_MODALITIES:
        reasons.append(f"modality {modality or 'not given'}")
    if str(header.get("SOPClassUID", "")) in SECONDARY_CAPTURE:
        reasons.append("secondary capture")
    image_type = {str(v).upper() for v in values_of(header.get("ImageType"))}
    risky_types = RISKY_IMAGE_TYPES | (
        {"SECONDARY"} if modality not in LOW_RISK_MODALITIES else set()
    )
    for value in sorted(image_type & risky_types):
        reasons.append(f"image type {value}")
    described = " ".join(
        str(header.get(k, "")) for k in ("SeriesDescription", "StudyDescription", "ProtocolName")
    )
    for word in sorted({m.lower() for m in RISKY_WORDS.findall(described)}):
        reasons.append(f"description mentions '{word}'")
    burned_in = str(header.get("BurnedInAnnotation", "")).upper()
    if burned_in == "YES":
        reasons.append("Burned In Annotation says YES")
    if reasons and burned_in == "NO" and trusted_device and not _hard(reasons):
        return Triage(Risk.LOW, ("Burned In Annotation says NO on a trusted device", *reasons))
    if reasons:
        return Triage(Risk.HIGH, tuple(reasons))
    why = f"{modality or 'unknown modality'} acquisition"
    if burned_in == "NO":
        why += " (Burned In Annotation NO, not relied on)" if not trusted_device else ""
    return Triage(Risk.LOW, (why,))


def _hard(reasons: list[str]) -> bool:
    """Reasons no header can talk away: a screen capture or a sheet is text by nature."""
    return any(
        r.startswith(("secondary capture", "image type", "description", "Burned In Annotation"))
        for r in reasons
    )


def values_of(value: object) -> list[object]:
    """An element's values as a list, whether it holds one, several or none."""
    if value is None:
        return []
    if isinstance(value, list | tuple | MultiValue):
        return list(value)
    return [value]
