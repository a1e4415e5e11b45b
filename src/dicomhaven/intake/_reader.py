"""Tolerant reading of received bytes: a DICOM object worth keeping, or a reason to reject.

pydicom reads a truncated file without complaint (it stops at the end of the bytes), so the
structure is checked here: the last element must end inside the file, and an element of
undefined length must be closed by its delimiter. Rejection reasons are our own words and
never repeat a value from the file, so they cannot carry a patient identifier.
"""

from __future__ import annotations

import io
import mmap
import struct
from dataclasses import dataclass
from typing import BinaryIO, cast

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileDataset
from pydicom.errors import InvalidDicomError
from pydicom.tag import Tag
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

from dicomhaven._logging import collect_warnings

__all__ = ["ParsedObject", "Rejection", "parse_object"]

_SEQUENCE_DELIMITER_LE = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
_SEQUENCE_DELIMITER_BE = b"\xff\xfe\xe0\xdd\x00\x00\x00\x00"
_UNDEFINED_LENGTH = 0xFFFFFFFF
_SHORTEST_ELEMENT = 8  # tag (4) + length (4) with no value
_LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
_PIXEL_GROUP = (b"\xe0\x7f", b"\x7f\xe0")  # (7FE0,xxxx) little or big endian
_PADDING_TAG = b"\xfc\xff\xfc\xff"  # (FFFC,FFFC) Data Set Trailing Padding
_EOF_BEFORE_DELIMITER = "End of file reached before delimiter"  # pydicom's warning

#: Received bytes: in memory, or a file mapped read-only (a large object received to disk).
Received = bytes | mmap.mmap


def _buffer(data: Received) -> BinaryIO:
    """A reader over ``data`` that does not copy it (a mapped file reads itself)."""
    if isinstance(data, mmap.mmap):
        data.seek(0)
        return cast(BinaryIO, data)  # read, seek and tell are all pydicom uses
    return io.BytesIO(data)


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


def _read(data: Received) -> tuple[FileDataset, int] | Rejection:
    """The header (everything before the pixel data) and the offset where reading stopped.

    Pixel data is not copied: its element header is checked against the bytes instead.
    """
    buffer = _buffer(data)
    try:
        return pydicom.dcmread(buffer, stop_before_pixels=True), buffer.tell()
    except InvalidDicomError:
        pass
    except Exception as exc:
        return Rejection(f"malformed DICOM: the header could not be parsed ({type(exc).__name__})")
    # Tolerant: files without a preamble or file meta (old ACR-NEMA style exports) are
    # still read, but only kept if they turn out to name their SOP Class and Instance.
    buffer = _buffer(data)
    try:
        dataset = pydicom.dcmread(buffer, force=True, stop_before_pixels=True)
        named = _valid_uid(dataset.get("SOPInstanceUID")) and _valid_uid(dataset.get("SOPClassUID"))
    except Exception:
        named = False
    if not named:
        return Rejection("not DICOM: no 'DICM' prefix and not a readable DICOM data set")
    return dataset, buffer.tell()


def _tail_truncation(dataset: Dataset, data: Received, pos: int) -> str | None:
    """A reason if an element from the pixel data at ``pos`` to the end runs past the bytes.

    The header was parsed by pydicom; the elements from the pixel data on (usually just it,
    sometimes trailing padding) are walked here by their headers, without copying values.
    """
    implicit, little = dataset.original_encoding
    endian = "<" if little in (True, None) else ">"
    # Files that say one VR encoding and use the other exist (pydicom reads them with a
    # warning), so a truncation must show under both readings to count.
    first = _walk_tail(data, pos, endian, implicit=bool(implicit))
    if first is None:
        return None
    return first if _walk_tail(data, pos, endian, implicit=not implicit) is not None else None


def _walk_tail(data: Received, pos: int, endian: str, *, implicit: bool) -> str | None:
    delimiter = _SEQUENCE_DELIMITER_LE if endian == "<" else _SEQUENCE_DELIMITER_BE
    while pos < len(data):
        if len(data) - pos < _SHORTEST_ELEMENT:
            if data[pos:].strip(b"\x00"):
                return (
                    f"truncated DICOM: {len(data) - pos} bytes at the end are an incomplete element"
                )
            return None
        tag = Tag(*struct.unpack(f"{endian}HH", data[pos : pos + 4]))
        if implicit:
            header, length_format = 8, f"{endian}L"
        elif data[pos + 4 : pos + 6] in _LONG_VRS:
            header, length_format = 12, f"{endian}L"
        else:
            header, length_format = 8, f"{endian}H"
        if len(data) < pos + header:
            return f"truncated DICOM: the header of element {tag} is incomplete"
        size = struct.calcsize(length_format)
        (length,) = struct.unpack(length_format, data[pos + header - size : pos + header])
        if length == _UNDEFINED_LENGTH:
            found = data.find(delimiter, pos + header)
            # Search on past delimiters that are bytes inside compressed fragments.
            while (
                found != -1
                and found + 8 < len(data)
                and data[found + 8 : found + 12] != _PADDING_TAG
            ):
                found = data.find(delimiter, found + 1)
            if found == -1:
                return (
                    f"truncated DICOM: element {tag} of undefined length is not closed by a "
                    "sequence delimiter"
                )
            pos = found + 8
            continue
        end = pos + header + length
        if end > len(data):
            return (
                f"truncated DICOM: element {tag} declares {length} bytes but the file ends "
                f"{end - len(data)} bytes short"
            )
        pos = end
    return None


def _truncation(dataset: Dataset, data: Received) -> str | None:
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
            if data[-8:] not in (_SEQUENCE_DELIMITER_LE, _SEQUENCE_DELIMITER_BE):
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


def parse_object(data: Received) -> ParsedObject | Rejection:
    """Read ``data`` as a DICOM object and check it is whole and identifiable as an instance.

    pydicom's warnings quote values from the file (a value may be a patient identifier):
    they are collected for this thread only, never shown, and counted by kind where the
    command line routes warnings (see ``dicomhaven._logging``). Collecting does not touch
    the process's warning filters, which ``warnings.catch_warnings`` would, racing the
    receiver's other threads.
    """
    with collect_warnings() as caught:
        result = _parse(data)
    if isinstance(result, ParsedObject) or result.reason.startswith("truncated"):
        return result
    if any(_EOF_BEFORE_DELIMITER in text for text in caught):
        return Rejection("truncated DICOM: the file ends before a sequence delimiter")
    return result


def _parse(data: Received) -> ParsedObject | Rejection:
    if not data:
        return Rejection("empty file")
    read = _read(data)
    if isinstance(read, Rejection):
        return read
    dataset, stopped_at = read
    if len(data) - stopped_at >= 4 and data[stopped_at : stopped_at + 2] in _PIXEL_GROUP:
        truncated = _tail_truncation(dataset, data, stopped_at)
    else:
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
