"""De-identification of pixels: which images may hold burned-in text, reading it, removing
it for good, and defacing head volumes."""

from dicomhaven.pixels._match import Finding, KnownValues, Rule, Scope, find_identifiers
from dicomhaven.pixels._ocr import (
    Box,
    FrameValues,
    OcrEngine,
    OcrError,
    RapidOcrEngine,
    TesseractEngine,
    Windowing,
    Word,
    display_image,
)
from dicomhaven.pixels._templates import (
    DeviceKey,
    Template,
    TemplateStatus,
    TemplateStore,
    learn_regions,
)
from dicomhaven.pixels._triage import Risk, Triage, triage

__all__ = [
    "Box",
    "DeviceKey",
    "Finding",
    "FrameValues",
    "KnownValues",
    "OcrEngine",
    "OcrError",
    "RapidOcrEngine",
    "Risk",
    "Rule",
    "Scope",
    "Template",
    "TemplateStatus",
    "TemplateStore",
    "TesseractEngine",
    "Triage",
    "Windowing",
    "Word",
    "display_image",
    "find_identifiers",
    "learn_regions",
    "triage",
]
