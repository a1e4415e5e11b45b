"""Pixel verdicts: no image reaches the store unless its checks were made on the exact bytes
that are moved there.

Pixels are checked in more than one place: the pixel stage reads each image for burned-in
text; ``dicomhaven deface`` decides a head series' face, defaces it, then reads the text
again on the slices it rewrote. A copy can be written more than once on its way, so a check
made on one version proves nothing about the next. Each place that checks therefore
records a **verdict** beside the copy (:func:`record_verdict`): the SHA-256 of the bytes it
wrote, the text verdict, the face verdict and the reason. The release gate, the one code
that moves a copy from ``quarantine/`` to ``store/``, asks :func:`verdict_allows` about the
bytes it is about to write, and holds the copy unless

- it carries no pixel or overlay data, or
- a verdict exists whose hash is the hash of these bytes, and, when the header as received
  says the image is a slice of a head volume (:func:`head_volume_slice`), its face verdict
  says the face was checked (no face, or defaced and verified).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from datetime import UTC, datetime

import pydicom
from pydicom.dataset import Dataset
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session, sessionmaker

from dicomhaven.catalogue._pixel_models import FaceVerdict, PixelVerdict, TextVerdict
from dicomhaven.deid._stage import unchecked_content
from dicomhaven.pixels._face_triage import head_reasons
from dicomhaven.pixels._triage import values_of

__all__ = [
    "AWAITS_DEFACING",
    "FACE_NOT_CHECKED",
    "PIXELS_NOT_CHECKED",
    "describe",
    "head_volume_slice",
    "record_verdict",
    "verdict_allows",
]

AWAITS_DEFACING = "a slice of a head volume: held until its series is defaced"
#: The gate's reasons for holding a copy whose checks do not cover the bytes it would move.
PIXELS_NOT_CHECKED = "held: pixels not checked on these bytes"
FACE_NOT_CHECKED = "held: face not checked: a slice of a head volume (run 'dicomhaven deface')"

#: Values longer than this are not read to list a file's top-level elements.
_DEFER = "16 KB"
_TEXT = frozenset(t.value for t in TextVerdict)


def head_volume_slice(dataset: Dataset) -> str | None:
    """Why this image must wait for its series to be defaced (or reviewed), or None.
    Decided on the header as received: de-identification removes what says "head"."""
    head = head_reasons(dataset)
    if not head:
        return None
    modality = str(dataset.get("Modality", "")).upper()
    image_type = {str(v).upper() for v in values_of(dataset.get("ImageType"))}
    if int(dataset.get("SamplesPerPixel", 1) or 1) != 1 or image_type & {"VOLUME", "SURFACE"}:
        return "a picture rendered from a head: held for review, it may show the face"
    if modality in ("CT", "MR") and "LOCALIZER" not in image_type:
        return AWAITS_DEFACING
    return None


def describe(text: TextVerdict, text_reason: str, face: FaceVerdict, face_reason: str) -> str:
    """The ledger reason of a verdict: what was checked, and what each check found."""
    faces = {
        FaceVerdict.NOT_HEAD: "not a head volume",
        FaceVerdict.NO_FACE: f"no face: {face_reason}",
        FaceVerdict.DEFACED: f"defaced and verified ({face_reason})",
    }
    return f"pixels: {text.value}: {text_reason}; face: {faces[face]}"


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def record_verdict(
    sessions: sessionmaker[Session],
    object_id: int,
    data: bytes,
    text: TextVerdict,
    face: FaceVerdict,
    reason: str,
) -> None:
    """Record (or replace) the verdict on the copy whose bytes, as written, are ``data``."""
    row = {
        "object_id": object_id, "sha256": sha256_of(data), "text": text.value,
        "face": face.value, "reason": reason, "at": datetime.now(UTC),
    }  # fmt: skip
    with sessions.begin() as session:  # one statement each, no ORM round trip: every image
        session.execute(delete(PixelVerdict).where(PixelVerdict.object_id == object_id))
        session.execute(insert(PixelVerdict), [row])


def _unchecked_in(data: bytes) -> str | None:
    """What in these bytes no header rule vouches for (read without their large values);
    a file that cannot be read is taken to hold pixels."""
    try:
        dataset = pydicom.dcmread(io.BytesIO(data), force=True, defer_size=_DEFER)
        tags = set(dataset.keys())
    except Exception:  # tolerant when reading, strict when releasing: check it as pixels
        return "pixel data"
    return unchecked_content(tags)


def verdict_allows(
    data: bytes,
    object_id: int,
    *,
    original: Callable[[], Dataset],
    sessions: sessionmaker[Session],
) -> str | None:
    """Why the copy whose bytes are ``data`` may not be released, or None.

    ``original`` gives the object's header as received (read only when needed): whether the
    image is a slice of a head volume is decided on it, never on the de-identified copy.
    """
    with sessions() as session:
        verdict = session.execute(
            select(PixelVerdict.sha256, PixelVerdict.text, PixelVerdict.face).where(
                PixelVerdict.object_id == object_id
            )
        ).first()
    if verdict is None or verdict.sha256 != sha256_of(data) or verdict.text not in _TEXT:
        # No check covers these bytes: only a copy with nothing to check may go.
        content = _unchecked_in(data)
        if content is None:
            return None
        if content == "an encapsulated document":
            return "held: an encapsulated document is not read"
        return PIXELS_NOT_CHECKED
    if verdict.face == FaceVerdict.NOT_HEAD.value and head_volume_slice(original()) is not None:
        return FACE_NOT_CHECKED
    return None
