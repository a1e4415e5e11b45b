"""Tolerant reading of received bytes: a DICOM object worth keeping, or a reason to reject.

pydicom reads a truncated file without complaint (it stops at the end of the bytes), so the
structure is checked here: the last element must end inside the file, and an element of
undefined length must be closed by its delimiter. Rejection reasons are our own words and
never repeat a value from the file, so they cannot carry a patient identifier.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

__all__ = ["ParsedObject", "Rejection", "parse_object"]

_SEQUENCE_DELIMITER_LE = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
_SEQUENCE_DELIMITER_BE = b"\xff\xfe\xe0\xdd\x00\x00\x00\x00"
_UNDEFINED_LENGTH = 0xFFFFFFFF
_SHORTEST_ELEMENT = 8
_EOF_BEFORE_DELIMITER = "End of file reached before delimiter"  # pydicom's warning  # tag (4) + length (4) with no value


@dataclass(frozen=True)
class ParsedObject:
    """A readable DICOM object and the few header facts the ledger keeps (none identifying)."""

    dataset: Dataset
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str | None
    modality: str | None


@dataclass(frozen=True)
class Rejection:
    """Why some bytes cannot enter the pipeline."""

    reason: str


def _valid_uid(value: object) -> bool:
    return isinstance(value, str) and UID(value).is_valid


def _read(data: bytes) -> FileDataset | Rejection:
    try:
        return pydicom.dcmread(io.BytesIO(data))
    except InvalidDicomError:
        pass
    except Exception as exc:
        return Rejection(f"malformed DICOM: the header could not be parsed ({type(exc).__name__})")
    # Tolerant: files without a preamble or file meta (old ACR-NEMA style exports) are
    # still read, but only kept if they turn out to name their SOP Class and Instance.
    try:
        dataset = pydicom.dcmread(io.BytesIO(data), force=True)
        named = _valid_uid(dataset.get("SOPInstanceUID")) and _valid_uid(dataset.get("SOPClassUID"))
    except Exception:
        named = False
    if not named:
        return Rejection("not DICOM: no 'DICM' prefix and not a readable DICOM data set")
    return dataset


def _truncation(dataset: Dataset, data: bytes) -> str | None:
    """A reason if the last top-level element runs past the end of the bytes."""
    meta = getattr(dataset, "file_meta", None)
    if meta is not None and meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
        return None  # offsets refer to the inflated stream; zlib itself reports truncation
    tags = list(dataset.keys())
    if not tags:
        return "malformed DICOM: the data set is empty"
    last: object = dataset.get_item(tags[-1])
    if isinstance(last, RawDataElement):
        if last.length == _UNDEFINED_LENGTH:
            if not data.endswith((_SEQUENCE_DELIMITER_LE, _SEQUENCE_DELIMITER_BE)):
                return (
                    f"truncated DICOM: element {last.tag} of undefined length is not closed "
                    "by a sequence delimiter"
                )
            return None
        end = last.value_tell + last.length
        if end > len(data):
            return (
                f"truncated DICOM: element {last.tag} declares {last.length} bytes but the file "
                f"ends {end - len(data)} bytes short"
            )
        leftover = len(data) - end
        if 0 < leftover < _SHORTEST_ELEMENT and data[end:].strip(b"\x00"):
            return (
                f"truncated DICOM: {leftover} bytes after element {last.tag} "
                "are an incomplete element"
            )
    return None


def parse_object(data: bytes) -> ParsedObject | Rejection:
    """Read ``data`` as a DICOM object and check it is whole and identifiable as an instance.

    pydicom's warnings quote values from the file, so they are silenced here: a value may be
    a patient identifier.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = _parse(data)
    if isinstance(result, ParsedObject) or result.reason.startswith("truncated"):
        return result
    if any(_EOF_BEFORE_DELIMITER in str(w.message) for w in caught):
        return Rejection("truncated DICOM: the file ends before a sequence delimiter")
    return result


def _parse(data: bytes) -> ParsedObject | Rejection:
    if not data:
        return Rejection("empty file")
    read = _read(data)
    if isinstance(read, Rejection):
        return read
    dataset = read
    truncated = _truncation(dataset, data)
    if truncated:
        return Rejection(truncated)
    try:
        sop_instance_uid = dataset.get("SOPInstanceUID")
        sop_class_uid = dataset.get("SOPClassUID")
    except Exception as exc:
        return Rejection(f"malformed DICOM: SOP identification unreadable ({type(exc).__name__})")
    if not _valid_uid(sop_instance_uid):
        return Rejection("malformed DICOM: SOP Instance UID (0008,0018) missing or not a valid UID")
    if not _valid_uid(sop_class_uid):
        return Rejection("malformed DICOM: SOP Class UID (0008,0016) missing or not a valid UID")
    meta = getattr(dataset, "file_meta", None)
    transfer_syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    modality = dataset.get("Modality")
    return ParsedObject(
        dataset=dataset,
        sop_instance_uid=str(sop_instance_uid),
        sop_class_uid=str(sop_class_uid),
        transfer_syntax_uid=str(transfer_syntax) if transfer_syntax else None,
        modality=str(modality)[:16] if modality else None,
    )
