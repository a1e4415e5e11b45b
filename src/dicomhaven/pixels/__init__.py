"""De-identification of pixels: which images may hold burned-in text, reading it, removing
it for good, and defacing head volumes."""

from dicomhaven.pixels._clean import (
    PixelOutcome,
    PixelPolicy,
    PixelResult,
    clean_pixels,
    engine_named,
)
from dicomhaven.pixels._codec import RedactionError, WriteBack
from dicomhaven.pixels._deface import (
    Defaced,
    DefaceResult,
    DirectionSource,
    FaceTissue,
    deface_series,
    deface_volume,
)
from dicomhaven.pixels._face_render import render_face, write_face_review
from dicomhaven.pixels._face_triage import FaceDecision, FaceTriage, face_triage
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
from dicomhaven.pixels._stage import AWAITS_DEFACING, PixelStage, head_volume_slice
from dicomhaven.pixels._templates import (
    DeviceKey,
    Template,
    TemplateStatus,
    TemplateStore,
    learn_regions,
)
from dicomhaven.pixels._triage import Risk, Triage, triage
from dicomhaven.pixels._volume import DefacingError, Volume, read_volume

__all__ = [
    "AWAITS_DEFACING",
    "CLEAN_PIXEL_DATA",
    "Box",
    "DefaceResult",
    "Defaced",
    "DefacingError",
    "DeviceKey",
    "DirectionSource",
    "FaceDecision",
    "FaceTissue",
    "FaceTriage",
    "Finding",
    "FrameValues",
    "KnownValues",
    "OcrEngine",
    "OcrError",
    "OverlayAction",
    "PixelOutcome",
    "PixelPolicy",
    "PixelResult",
    "PixelStage",
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
    "Volume",
    "Windowing",
    "Word",
    "WriteBack",
    "black_value",
    "clean_pixels",
    "deface_series",
    "deface_volume",
    "display_image",
    "engine_named",
    "face_triage",
    "find_identifiers",
    "head_volume_slice",
    "learn_regions",
    "mark_burned_in_annotation_removed",
    "read_volume",
    "redact",
    "render_face",
    "triage",
    "write_face_review",
]
