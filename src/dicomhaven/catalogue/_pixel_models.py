"""The catalogue table of pixel verdicts: what was checked in an image's pixels, and on
exactly which bytes.

A verdict names the copy it was reached on by the SHA-256 of the copy's bytes as written,
so the release gate can tell that the file it is about to move is the one that was checked
(:mod:`dicomhaven.pixels._verdict`). It keeps no value from the file: an outcome per check
and the reasons the checks gave, which name rules and counts, never what was read.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import DateTime, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from dicomhaven.catalogue._models import Base

__all__ = ["FaceVerdict", "PixelVerdict", "TextVerdict"]


class TextVerdict(StrEnum):
    """What the text check (:func:`~dicomhaven.pixels.clean_pixels`) found."""

    NOT_READ = "not-read"  # triage called the image low risk; its reasons are kept
    CLEAN = "clean"  # read on every frame, no text found
    REDACTED = "redacted"  # text blanked, and the blanking verified by a second engine


class FaceVerdict(StrEnum):
    """What the face check found (``dicomhaven deface`` for slices of head volumes)."""

    NOT_HEAD = "not-head"  # nothing in the header as received says head
    NO_FACE = "no-face"  # a head image that cannot show a face; the reason says why
    DEFACED = "defaced"  # the series was defaced, and the defacing verified


class PixelVerdict(Base):
    """The latest verdict on one object's copy: replaced whenever a stage writes it again."""

    __tablename__ = "pixel_verdicts"

    object_id: Mapped[int] = mapped_column(ForeignKey("ledger_objects.id"), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))  # of the copy's bytes as written
    text: Mapped[str] = mapped_column(String(16))  # a TextVerdict
    face: Mapped[str] = mapped_column(String(16))  # a FaceVerdict
    reason: Mapped[str] = mapped_column(Text)  # what was checked: the ledger reason on release
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
