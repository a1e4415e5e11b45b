"""Intake: tolerant reading of received bytes and their atomic storage in the intake zone."""

from typing import TYPE_CHECKING

from dicomhaven._lazy import lazy_exports

if TYPE_CHECKING:  # the same names, imported on first use (see dicomhaven._lazy)
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

#: The private module that defines each public name.
_EXPORTS = {
    **dict.fromkeys(("ParsedObject", "Rejection", "parse_object"), "_reader"),
    **dict.fromkeys(("CONFLICT_REASON", "Receipt", "receive_bytes"), "_receive"),
    **dict.fromkeys(
        ("IntakeArea", "IntakeStore", "StoredFile", "dicom_object_key", "sha256_file"), "_store"
    ),
}
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
