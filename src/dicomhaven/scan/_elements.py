"""The scanner's own reader: every element of a Part-10 file as (tag path, VR, raw bytes).

Building a pydicom data set converts every value of a file; a dose report of 160,000
elements takes seconds that way, longer than de-identifying it. The scanner needs only the
bytes of each element and where it sits, so it walks the encoding itself: explicit and
implicit VR, little and big endian, deflated data sets, sequences and items of defined or
undefined length (a UN element of undefined length is a sequence in implicit VR), and
encapsulated pixel data (skipped fragment by fragment). It is written apart from the
de-identifier's byte path on purpose: the scanner is a second, independent opinion.

Anything it does not understand raises :class:`Unreadable`; the scanner then reads the file
with pydicom instead.
"""

from __future__ import annotations

import functools
import struct
import zlib
from dataclasses import dataclass
from typing import NamedTuple

from pydicom.datadict import dictionary_VR, keyword_for_tag

__all__ = ["RawElement", "Unreadable", "raw_elements"]

_EXPLICIT_LONG = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
_IMPLICIT_LE = "1.2.840.10008.1.2"
_BIG_ENDIAN = "1.2.840.10008.1.2.2"
_DEFLATED = {"1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.8.1"}
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_PIXEL_DATA = 0x7FE00010
_MAX_DEPTH = 64
_NUMBERS = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "AT", "SV", "UV"})
_TAG_LE, _TAG_BE = struct.Struct("<HH"), struct.Struct(">HH")
_SHORT_LE, _SHORT_BE = struct.Struct("<H"), struct.Struct(">H")
_LONG_LE, _LONG_BE = struct.Struct("<L"), struct.Struct(">L")


class Unreadable(Exception):
    """The bytes are not a DICOM encoding this reader follows."""


class RawElement(NamedTuple):
    prefix: str  # the item it is in: (0040,A730)[2]/ ("" at the top level)
    tag: int
    vr: str
    value: bytes
    charset: tuple[str, ...]  # Specific Character Set in force (of the item or above)

    @property
    def path(self) -> str:
        """(0040,A730)[2]/(0040,A160)"""
        return self.prefix + _step(self.tag)


@functools.lru_cache(maxsize=8192)
def _implicit_vr(tag: int) -> str:
    if tag >> 16 & 1:
        return "LO" if 0x0010 <= (tag & 0xFFFF) <= 0x00FF else "UN"
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return "UN"
    return vr.split(" or ")[0] if " or " in vr else vr


@functools.lru_cache(maxsize=8192)
def keyword(tag: int) -> str:
    return keyword_for_tag(tag) or ""


def raw_elements(data: bytes) -> list[RawElement]:
    """Every element of a Part-10 file, file meta first, depth first."""
    if len(data) < 132 or data[128:132] != b"DICM":
        raise Unreadable("no DICOM preamble")
    out: list[RawElement] = []
    pos = _walk(data, 132, True, True, out, meta=True)  # group 0002: explicit VR LE
    syntax = next(
        (e.value.rstrip(b"\x00 ").decode("ascii", "replace") for e in out if e.tag == 0x00020010),
        "",
    )
    body = data
    if syntax in _DEFLATED:
        try:
            body, pos = zlib.decompress(data[pos:], -zlib.MAX_WBITS), 0
        except zlib.error as exc:
            raise Unreadable("deflated data set does not inflate") from exc
    _walk(body, pos, syntax != _IMPLICIT_LE, syntax != _BIG_ENDIAN, out)
    return out


@dataclass
class _Frame:
    """Where the walk is: in a data set (an item, or the top level) or in a sequence."""

    in_sequence: bool
    end: int  # -1: undefined length, ended by a delimiter
    path: str  # a data set: the prefix of its elements; a sequence: its own path
    explicit: bool
    charset: tuple[str, ...]
    index: int = 0  # a sequence: the next item's number


def _walk(
    data: bytes,
    pos: int,
    explicit: bool,
    little: bool,
    out: list[RawElement],
    *,
    meta: bool = False,
) -> int:
    """Every element from ``pos`` to the end of ``data`` (with ``meta``, to the end of group
    0002), sequences walked with a stack (not recursion: a report nests deep, and each
    level of generators costs per element); returns where it stopped. Numbers in standard
    elements (US, FL, ...) are left out: they hold no text."""
    size = len(data)
    tag_of = (_TAG_LE if little else _TAG_BE).unpack_from
    short = (_SHORT_LE if little else _SHORT_BE).unpack_from
    long = (_LONG_LE if little else _LONG_BE).unpack_from
    frame = _Frame(False, size, "", explicit, ())
    stack: list[_Frame] = []
    while True:
        if frame.end >= 0 and pos >= frame.end:
            if pos > frame.end:
                raise Unreadable("an element runs past the end of its item or sequence")
            if not stack:
                return pos
            frame = stack.pop()
            continue
        if pos + 8 > size:
            raise Unreadable("an element header is cut short")
        group, element = tag_of(data, pos)
        if meta and group != 0x0002:
            return pos
        tag = group << 16 | element
        if group == 0xFFFE:
            length, start, vr = long(data, pos + 4)[0], pos + 8, ""
        elif frame.explicit:
            vr_bytes = data[pos + 4 : pos + 6]
            if vr_bytes in _EXPLICIT_LONG:
                if pos + 12 > size:
                    raise Unreadable("an element header is cut short")
                length, start = long(data, pos + 8)[0], pos + 12
            elif vr_bytes.isalpha() and vr_bytes.isupper():
                length, start = short(data, pos + 6)[0], pos + 8
            else:
                raise Unreadable("not an explicit VR")
            vr = vr_bytes.decode()
            if vr == "UN" and not group & 1:
                # A standard element sent as UN: its value is in implicit VR, its VR the
                # dictionary's (a sequence's items are then implicit VR too).
                vr = _implicit_vr(tag)
                if vr == "SQ":
                    stack.append(frame)
                    end = -1 if length == _UNDEFINED else start + length
                    frame = _Frame(True, end, frame.path + _step(tag), False, frame.charset)
                    pos = start
                    continue
        else:
            length, start, vr = long(data, pos + 4)[0], pos + 8, _implicit_vr(tag)
        if frame.in_sequence:
            if tag == _SEQUENCE_END and frame.end < 0:
                pos, frame = start, stack.pop()
                continue
            if tag != _ITEM:
                raise Unreadable("expected an item")
            stack.append(frame)
            prefix = f"{frame.path}[{frame.index}]/"
            frame.index += 1
            if len(stack) > _MAX_DEPTH:
                raise Unreadable("sequences nested too deep")
            item_end = -1 if length == _UNDEFINED else start + length
            frame = _Frame(False, item_end, prefix, frame.explicit, frame.charset)
            pos = start
            continue
        if group == 0xFFFE:
            if tag == _ITEM_END and frame.end < 0:
                pos, frame = start, stack.pop()
                continue
            raise Unreadable("a delimiter out of place")
        if length == _UNDEFINED:
            if tag == _PIXEL_DATA:
                pos = _skip_fragments(data, start, little)
                continue
            if vr not in ("SQ", "UN"):
                raise Unreadable("undefined length outside a sequence")
            inner = frame.explicit if vr == "SQ" else False  # UN: implicit VR inside
            stack.append(frame)
            frame = _Frame(True, -1, frame.path + _step(tag), inner, frame.charset)
            pos = start
            continue
        pos = start + length
        if pos > size:
            raise Unreadable("a value runs past the end of the file")
        if vr == "SQ":
            stack.append(frame)
            frame = _Frame(True, pos, frame.path + _step(tag), frame.explicit, frame.charset)
            pos = start
            continue
        if vr in _NUMBERS and not group & 1 and not 0x5000 <= group <= 0x501E and group != 2:
            continue  # (the file meta's numbers are kept: an RTV element is a finding)
        value = data[start:pos]
        if tag == 0x00080005:
            frame.charset = tuple(v.strip() for v in value.decode("ascii", "replace").split("\\"))
        out.append(RawElement(frame.path, tag, vr, value, frame.charset))


@functools.lru_cache(maxsize=8192)
def _step(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _skip_fragments(data: bytes, pos: int, little: bool) -> int:
    order = "<" if little else ">"
    while pos + 8 <= len(data):
        group, element, length = struct.unpack_from(order + "HHL", data, pos)
        tag = group << 16 | element
        pos += 8
        if tag == _SEQUENCE_END:
            return pos
        if tag != _ITEM:
            raise Unreadable("expected a fragment")
        pos += length
    raise Unreadable("encapsulated pixel data not closed")
