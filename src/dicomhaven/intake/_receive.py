"""Receiving bytes into intake: parse, name, store, and say what happened (a Receipt)."""

from __future__ import annotations

import hashlib
import mmap
import os
from dataclasses import dataclass
from pathlib import Path

from dicomhaven.catalogue import ObjectKind
from dicomhaven.intake._reader import ParsedObject, Received, parse_object
from dicomhaven.intake._store import IntakeArea, IntakeStore, StagedBytes, dicom_object_key

__all__ = ["CONFLICT_REASON", "Receipt", "receive_bytes", "receive_file"]

CONFLICT_REASON = (
    "conflicting duplicate: an object with this SOP Instance UID but different content was "
    "received before; both are kept in intake for review"
)


@dataclass(frozen=True)
class Receipt:
    """What the intake step did with one received object; carries no identifier.

    ``rejection`` is set when the bytes cannot enter the pipeline; they are still kept in
    intake so nothing received is lost.
    """

    object_key: str
    kind: ObjectKind
    sha256: str
    size: int
    intake_path: str
    created: bool
    rejection: str | None = None
    sop_class_uid: str | None = None
    transfer_syntax_uid: str | None = None
    modality: str | None = None


def receive_bytes(data: bytes, store: IntakeStore, site_key: bytes) -> Receipt:
    """Store ``data`` in intake and describe it; never raises on bad content.

    The bytes are staged first, so the store writes them while they are hashed and parsed.
    """
    with store.stage(data) as staged:
        return _receive(data, hashlib.sha256(data).hexdigest(), staged, store, site_key)


def receive_file(path: Path, store: IntakeStore, site_key: bytes) -> Receipt:
    """Store the file at ``path`` (an object written to disk as it arrived) in intake and
    describe it, as :func:`receive_bytes` does, without reading it into memory: it is
    linked (or copied) into intake, hashed in blocks and parsed through a read-only map, of
    which only the header and the element headers after it are touched. ``path`` itself is
    left where it is. Never raises on bad content."""
    with path.open("rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:  # nothing to map
            return receive_bytes(b"", store, site_key)
        sha256 = hashlib.file_digest(handle, "sha256").hexdigest()
        with (
            mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data,
            store.stage_file(path) as staged,
        ):
            return _receive(data, sha256, staged, store, site_key)


def _receive(
    data: Received, sha256: str, staged: StagedBytes, store: IntakeStore, site_key: bytes
) -> Receipt:
    """Parse staged bytes, place them under their name and say what happened."""
    parsed = parse_object(data)
    size = len(data)
    if isinstance(parsed, ParsedObject):
        key = dicom_object_key(site_key, parsed.sop_instance_uid)
        stored = store.place(staged, IntakeArea.DICOM, key, sha256)
        if stored.same_content:
            return Receipt(
                object_key=key,
                kind=ObjectKind.DICOM,
                sha256=sha256,
                size=size,
                intake_path=stored.relpath,
                created=stored.created,
                sop_class_uid=parsed.sop_class_uid,
                transfer_syntax_uid=parsed.transfer_syntax_uid,
                modality=parsed.modality,
            )
        area, reason = IntakeArea.CONFLICTS, CONFLICT_REASON
    else:
        area, reason = IntakeArea.REJECTED, parsed.reason
    stored = store.place(staged, area, sha256, sha256)
    return Receipt(
        object_key=f"content:{sha256}",
        kind=ObjectKind.BLOB,
        sha256=sha256,
        size=size,
        intake_path=stored.relpath,
        created=stored.created,
        rejection=reason,
    )
