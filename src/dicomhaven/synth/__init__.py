"""A synthetic hospital: fake UK patients, their DICOM studies, and an answer key.

:func:`generate_site` writes mammograms, CT series, ultrasound stills and cine loops, CT
dose screen captures and structured reports, with fake identifiers planted wherever real
ones hide (standard attributes, free text, nested sequences, private tags, burned-in
pixels, overlays). The :class:`AnswerKey` records every identifier and its exact location,
so each later stage can be tested for what it must find or remove.
"""

from dicomhaven.synth._answer_key import (
    AnswerKey,
    Category,
    FileKind,
    FileRecord,
    IdentifierKind,
    PatientRecord,
    PixelRegion,
    Plant,
)
from dicomhaven.synth._site import generate_site

__all__ = [
    "AnswerKey",
    "Category",
    "FileKind",
    "FileRecord",
    "IdentifierKind",
    "PatientRecord",
    "PixelRegion",
    "Plant",
    "generate_site",
]
