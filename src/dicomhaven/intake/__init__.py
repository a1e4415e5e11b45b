"""Intake: tolerant reading of received bytes and their atomic storage in the intake zone."""

from dicomhaven.intake._reader import ParsedObject, Rejection, parse_object
from dicomhaven.intake._receive import CONFLICT_REASON, Receipt, receive_bytes
from dicomhaven.intake._store import (
    IntakeArea,
    IntakeStore,
    StoredFile,
    dicom_object_key,
    sha256_file,
)

__all__ = [
    "CONFLICT_REASON",
    "IntakeArea",
    "IntakeStore",
    "ParsedObject",
    "Receipt",
    "Rejection",
    "StoredFile",
    "dicom_object_key",
    "parse_object",
    "receive_bytes",
    "sha256_file",
]
