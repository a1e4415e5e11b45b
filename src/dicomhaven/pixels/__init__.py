"""De-identification of pixels: which images may hold burned-in text, reading it, removing
it for good, and defacing head volumes."""

from dicomhaven.pixels._codec import RedactionError, WriteBack
from dicomhaven.pixels._graphics import OverlayAction
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
from dicomhaven.pixels._redact import (
    CLEAN_PIXEL_DATA,
    RedactionReport,
    black_value,
    mark_burned_in_annotation_removed,
    redact,
)
from dicomhaven.pixels._region import Region
from dicomhaven.pixels._templates import (
    DeviceKey,
    Template,
    TemplateStatus,
    TemplateStore,
    learn_regions,
)
from dicomhaven.pixels._triage import Risk, Triage, triage

__all__ = [
    "CLEAN_PIXEL_DATA",
    "Box",
    "DeviceKey",
    "Finding",
    "FrameValues",
    "KnownValues",
    "OcrEngine",
    "OcrError",
    "OverlayAction",
    "RapidOcrEngine",
    "RedactionError",
    "RedactionReport",
    "Region",
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
    "WriteBack",
    "black_value",
    "display_image",
    "find_identifiers",
    "learn_regions",
    "mark_burned_in_annotation_removed",
    "redact",
    "triage",
]
