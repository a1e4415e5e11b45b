"""De-identification of pixels: which images may hold burned-in text, reading it, removing
it for good, and defacing head volumes."""

from dicomhaven.pixels._triage import Risk, Triage, triage

__all__ = [
    "Risk",
    "Triage",
    "triage",
]
