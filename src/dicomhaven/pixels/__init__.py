"""De-identification of pixels: which images may hold burned-in text, reading it, removing
it for good, and defacing head volumes."""

from dicomhaven.pixels._templates import (
    DeviceKey,
    Template,
    TemplateStatus,
    TemplateStore,
    learn_regions,
)
from dicomhaven.pixels._triage import Risk, Triage, triage

__all__ = [
    "DeviceKey",
    "Risk",
    "Template",
    "TemplateStatus",
    "TemplateStore",
    "Triage",
    "learn_regions",
    "triage",
]
