"""The header de-identifier on the file's bytes: the engine's decisions, without a data set.

:func:`deidentify_bytes` gives, for a DICOM file, the same output as reading it with
pydicom, :func:`~dicomhaven.deid._engine.deidentify` and writing it (every element at every
depth has the same tag, VR and value once read back), without building pydicom objects for
the elements it keeps. It walks the element headers on the raw bytes and asks the engine's
own rules (``_Run.decide``, once per path, tag and VR) what to do with each element:

- a kept element is copied byte for byte, pixel data too, and runs of kept elements are
  copied as one slice;
- a removed element is left out; an element the engine would change is made into a pydicom
  element (with the character set in force at its depth), changed by the engine's
  ``_Run.apply`` and written back by pydicom's writer;
- a sequence or item in which something changed is written with undefined length and
  delimiters, so no length is patched; an untouched one keeps its original bytes;
- the values cut from free text (every person name and patient identifier, at any depth)
  are gathered in the same pass, and the changed text is made once the pass is over;
- the parts of a code (Code Value, Code Meaning, ...) are read together at the first of
  them in an item, and kept or changed as the engine's ``_code_verdict`` says;
- the marking elements of ``_mark`` are placed at their sorted positions, the file meta is
  rebuilt from the engine's allow-list, and the preamble is zeros (never the input's).

It follows the engine's options as the engine applies them: the Clean Structured Content
Option's SR content items (by concept name, before the item is walked), a sequence given a
dummy (every text left in it becomes the dummy text), the Clean Graphics Option (overlay and
curve groups kept and decided), the retained values not cut from text, the Retain Safe
Private Option (each private element decided with its creator's name; a creator written
only if its block keeps an element).

It handles Explicit VR Little Endian (and the encapsulated syntaxes, whose data set is
encoded the same way), Deflated Explicit VR Little Endian (written inflated, as the engine
does) and Implicit VR Little Endian (written implicit, as the engine does). It declines,
returning None so that the caller falls back to the pydicom path, whatever it cannot be
sure pydicom would read the same way: no preamble or file meta, big endian, a private or
unknown transfer syntax, elements out of order or repeated, a VR that is not a standard
one, a sequence stored as UN (its items are implicit VR), an undefined length where none
is allowed, a truncated element, command or file meta elements in the data set, and any
error on the way (the engine then raises what it raises, ``UnsafeContent`` say).

:func:`rewrite_bytes` also says what a caller needs of the output without reading it (its
Study and SOP Instance UIDs, its top-level tags); :func:`leading_elements` reads
only the first top-level elements of a file (the patient's, to find the pseudonym);
:func:`write_bytes` writes atomically, as ``write_dataset`` does.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import os
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import (
    DataElement,
    RawDataElement,
    convert_raw_data_element,
    empty_value_for_VR,
)
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import dcmread, read_dataset
from pydicom.filewriter import write_data_element, write_file_meta_info
from pydicom.tag import BaseTag
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, STANDARD_VR
from pydicom.values import convert_string

from dicomhaven.deid._codes import CODE_TAGS, code_verdict
from dicomhaven.deid._engine import (
    _CONTENT_VALUE_TAGS,
    _DUMMIES,
    _IDENTIFYING_KEYWORDS,
    _NOT_DUMMY_TEXT,
    _REFERENCE_VALUE_TYPES,
    _RETAINED_BY,
    _TEXT_VRS,
    DeidContext,
    _creator,
    _identifying_values,
    _keyword,
    _private_name,
    _Run,
    _vr,
    mark_pixels_not_checked,
    rebuilt_file_meta,
)
from dicomhaven.deid._iod import AttributeType, attribute_types
from dicomhaven.deid._profile import Profile
from dicomhaven.deid._stream_memo import (
    changed_elements,
    cleaner,
    decision_tables,
    encoded_mark,
    gathered,
    marks,
)
from dicomhaven.deid._table import ContentItemRule, Option, content_item_rules

__all__ = ["Rewritten", "deidentify_bytes", "leading_elements", "rewrite_bytes", "write_bytes"]

#: Options the byte path does not follow yet: a profile with one goes the pydicom way. None
#: now; an option that changes how the engine walks (not only what ``decide`` and
#: ``apply`` do) belongs here until this module follows it.
_NOT_ON_BYTES: frozenset[Option] = frozenset()

_EXPLICIT = struct.Struct("<HHHH")  # group, element, VR (as a number), 16-bit length
_IMPLICIT = struct.Struct("<HHL")  # group, element, 32-bit length (also an item header)
_UL = struct.Struct("<L")
_UNDEFINED = 0xFFFFFFFF
_ITEM = 0xFFFEE000
_ITEM_END = 0xFFFEE00D
_SEQUENCE_END = 0xFFFEE0DD
_PIXEL_DATA = 0x7FE00010
_CHARSET = 0x00080005
_SOP_CLASS = 0x00080016
_SOP_INSTANCE = 0x00080018
_STUDY_INSTANCE = 0x0020000D
_TRACKED_UIDS = frozenset({_SOP_CLASS, _SOP_INSTANCE, _STUDY_INSTANCE})
_METHOD = 0x00120063  # De-identification Method
_BURNED_IN = 0x00280301  # Burned In Annotation
_METHOD_NOT_CHECKED = 1 << 32 | _METHOD  # the key of that mark made by ``mark_pixels_not_checked``
#: Top-level elements that pydicom converts, and so writes anew, when a copy is read,
#: marked as not checked and written (``mark_pixels_not_checked``, ``write_dataset``):
#: the character set, the UIDs the writer and the copy's name need, Burned In Annotation.
_REREAD = frozenset({_CHARSET, _SOP_CLASS, _SOP_INSTANCE, _STUDY_INSTANCE, _BURNED_IN})
_ITEM_HEADER = _IMPLICIT.pack(0xFFFE, 0xE000, _UNDEFINED)
_ITEM_DELIMITER = _IMPLICIT.pack(0xFFFE, 0xE00D, 0)
_SEQUENCE_DELIMITER = _IMPLICIT.pack(0xFFFE, 0xE0DD, 0)
_NO_MARK = 1 << 33  # beyond every tag: below the top level nothing is inserted

#: Each standard VR, keyed by its two bytes read as a little-endian number: (VR, whether its
#: explicit length takes 32 bits).
_VRS: dict[int, tuple[str, bool]] = {
    int.from_bytes(str(vr).encode(), "little"): (str(vr), vr in EXPLICIT_VR_LENGTH_32)
    for vr in STANDARD_VR
}

# What to do with an element, decided once per (path, tag, VR). KEEP is the common case
# and the only one the inner loop handles by itself.
KEEP, DROP, CHANGE, SEQUENCE, CHARSET, DECLINE, ZERO, REPLACE, TRACK = range(9)
# A part of a code (decided, with the other parts, by the code they make).
CODE = 9
# Under the Retain Safe Private Option: a private creator (kept while its block keeps an
# element), and a private element (decided with its creator's name).
CREATOR, PRIVATE = 10, 11


_IOV_MAX = 1024  # pieces per writev call (the Linux limit)


class _Decline(Exception):
    """The input is outside what the byte path can rewrite exactly like the engine."""


@dataclass(frozen=True, slots=True)
class _Decision:
    kind: int
    action: str  # the engine's action code
    here: tuple[str, ...]  # the element's path: sequence keywords, then its own keyword
    vr: str  # as the engine sees it (the file's, or the dictionary's for implicit VR or UN)
    raw_vr: str  # as the file has it ("" for implicit VR)
    collect: bool  # a value to cut from free text (a person name or patient identifier)
    drop_if_empty: bool  # an optional (Type 3) sequence, left out when it has no item
    dummy_text: bool = False  # text in a sequence given a dummy: made the dummy text after
    sequence_dummy: bool = False  # a sequence given a dummy (its texts, at any depth)


@dataclass(slots=True)
class _Pending:
    """An element the engine changes; made, changed and encoded once the pass is over."""

    slot: int  # its place in the output
    raw: RawDataElement
    action: str
    here: tuple[str, ...]
    encodings: list[str]
    content: str = ""  # an SR content item's value: its Table E.3.4-1 action (K, D or C)
    dummy_text: str = ""  # the VR whose dummy text it then takes (as ``_dummy_text`` does)
    result: DataElement | None = None


@dataclass(slots=True)
class _Creator:
    """A private creator under the Retain Safe Private Option: written in its place only if
    an element of its block is left, as the engine decides once its walk is over."""

    out: list[bytes | memoryview]  # the output its slot is in (not a discarded one)
    slot: int
    data: bytes  # the element as read
    name: str  # the creator, as the engine reads it for an element of its block
    survivors: list[bool | _Pending]  # each element of its block, and whether it is left

    def kept(self) -> bool:
        return any(_present(s) for s in self.survivors)


def _present(item: bool | _Pending | _Creator) -> bool:
    """Whether an element whose fate is ``item`` is in the output."""
    if isinstance(item, _Pending):
        return item.result is not None
    if isinstance(item, _Creator):
        return item.kept()
    return item


@functools.lru_cache(maxsize=4096)
def _dictionary_vr(tag: int) -> str:
    """The VR the engine sees for an element of an implicit VR data set."""
    return _vr(None, BaseTag(tag))


class _FileVR:
    """What the engine's ``_vr`` looks at in an element read from the file: its VR."""

    __slots__ = ("VR",)

    def __init__(self, vr: str) -> None:
        self.VR = vr


def _encode(element: DataElement, encodings: list[str], implicit: bool) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = implicit
    write_data_element(fp, element, encodings)
    return fp.getvalue()


class _Rewriter:
    """One pass over one data set: output chunks, and the elements to change after it."""

    def __init__(
        self, data: bytes, start: int, implicit: bool, compressed: bool, run: _Run
    ) -> None:
        self.data = data
        self.view = memoryview(data)
        self.implicit = implicit
        self.compressed = compressed
        self.run = run
        self.out: list[bytes | memoryview] = []
        self.copy_from = start  # input bytes from here on are still to be copied as they are
        # The sequences and items being walked, outermost first: where each starts, where its
        # value starts, and its header with undefined length. The first ``opened`` have been
        # re-emitted with that header, because something in them changed.
        self.open: list[tuple[int, int, bytes]] = []
        self.opened = 0
        self.pending: list[_Pending] = []
        # identifying values, as the engine's pre-pass gathers them (with their keywords)
        self.found: list[tuple[str, str]] = []
        self.code_decisions: dict[tuple[_Decision, str], _Decision] = {}
        self.tables: dict[tuple[tuple[str, ...], bool], dict[int, _Decision]] = {}
        self.dummy = False  # inside a sequence given a dummy (``_dummy_text``)
        self.top: dict[int, RawDataElement | _Pending] = {}  # the output's top-level UIDs
        # Each top-level element and whether the output has it (a changed one: if its
        # change leaves it); and whether the last sequence walked was left out.
        self.top_tags: dict[int, bool | _Pending | _Creator] = {}
        self.sequence_dropped = False
        self.presence: bool | _Pending = True  # the fate of the last element handled
        self.safe_private = Option.RETAIN_SAFE_PRIVATE in run.options
        self.creators: list[_Creator] = []
        self.private_tables: dict[
            tuple[tuple[str, ...], bool], dict[tuple[int, str, str], _Decision]
        ]
        self.private_tables = {}
        self.marks: list[tuple[int, DataElement]] = []
        # Marking as not checked (``_rewrite``'s ``mark_if``): each output slot that the
        # marking writes anew, with its bytes unmarked and marked (None: left out); and
        # whether the marked output is certainly pydicom's (see ``_rewrite``).
        self.not_checked = False
        self.edits: list[tuple[int, bytes | memoryview, bytes | None]] = []
        self.can_mark = True
        self.values: dict[tuple[int, str, bytes, tuple[str, ...]], Any] = {}
        self.content_rules: dict[tuple[str, str], ContentItemRule] | None = None
        if Option.CLEAN_STRUCTURED_CONTENT in run.options:
            self.content_rules = content_item_rules()
        self.graphics_removed = Option.CLEAN_GRAPHICS not in run.options
        # As ``deidentify`` works it out: values an option keeps are not cut from text.
        self.retained: frozenset[str] = frozenset().union(
            *(_RETAINED_BY.get(option, frozenset()) for option in run.options)
        )

    # --- output -----------------------------------------------------------------------------

    def change(self, begin: int, end: int, replacement: bytes | None) -> None:
        """Replace input ``[begin, end)`` (nothing, for an insertion) in the output."""
        out = self.out
        view = self.view
        for where, header_end, header in self.open[self.opened :]:
            # Something changes inside a sequence or item not yet re-emitted: its length
            # would be wrong, so it is written from here with undefined length.
            if where > self.copy_from:
                out.append(view[self.copy_from : where])
            out.append(header)
            self.copy_from = header_end
        self.opened = len(self.open)
        if begin > self.copy_from:
            out.append(view[self.copy_from : begin])
        if replacement:
            out.append(replacement)
        self.copy_from = end

    def close(self, content_end: int, end: int, delimiter: bytes) -> None:
        """Leave the innermost container; end it with a delimiter if it was re-emitted."""
        self.open.pop()
        if self.opened > len(self.open):
            self.opened = len(self.open)
            if content_end > self.copy_from:
                self.out.append(self.view[self.copy_from : content_end])
            self.out.append(delimiter)
            self.copy_from = end

    # --- decisions --------------------------------------------------------------------------

    def decide(self, table: dict[Any, _Decision], key: Any, path: tuple[str, ...], tag: int,
               file_vr: str, creator: str | None = None) -> _Decision:  # fmt: skip
        """Decide for one (path, tag, VR): ``file_vr`` is the file's (explicit VR) or the
        one pydicom's reader gives (implicit VR). ``creator``: a private element's, under
        the Retain Safe Private Option."""
        # The VR the engine decides by: a standard element stored as UN has its dictionary's.
        vr = file_vr if self.implicit else _vr(_FileVR(file_vr), tag)
        keyword = _keyword(tag) or _private_name(BaseTag(tag), creator or "")
        here = (*path, keyword)
        group = tag >> 16
        action = ""
        drop_if_empty = False
        if (group < 0x0008 and not path) or group == 0xFFFE:
            kind = DECLINE  # command or file meta elements in the data set, a stray item
        elif tag & 0xFFFF == 0 and group > 6:
            kind = DROP  # a group length: pydicom's writer leaves them out
        elif (
            not path
            and self.graphics_removed
            and (0x5000 <= group <= 0x501E or 0x6000 <= group <= 0x601E)
            and group % 2 == 0
        ):
            kind = DROP  # overlay and curve groups: the engine removes them first
        elif file_vr == "UN" and vr == "SQ":
            kind = DECLINE  # a sequence stored as UN: its items are in implicit VR
        elif self.safe_private and group % 2 and creator is None:
            # decided with its creator's name (or, a creator, kept with its block)
            kind = CREATOR if 0x0010 <= tag & 0xFFFF <= 0x00FF else PRIVATE
        else:
            action = self.run.decide(BaseTag(tag), vr, keyword, here, creator or "")
            if vr == "SQ":
                kind = DROP if action == "X" else SEQUENCE
                drop_if_empty = self.run.type_of(here) is AttributeType.TYPE_3
            elif tag == _CHARSET:
                kind = CHARSET if action == "K" else DECLINE
            elif action == "Q":
                kind = CODE
            elif action == "K":
                kind = KEEP
            elif action == "X":
                kind = DROP
            else:
                kind = CHANGE
        collect = vr == "PN" or keyword in _IDENTIFYING_KEYWORDS
        # Inside a sequence given a dummy, every text that is left becomes the dummy text.
        dummy_text = (
            self.dummy
            and kind in (KEEP, CHANGE)
            and vr in _TEXT_VRS
            and keyword not in _NOT_DUMMY_TEXT
        )
        if dummy_text:
            kind = CHANGE
        if kind == KEEP and not path:
            kind = TRACK  # kept, but looked at (top-level tags and UIDs): not the fast path
        sequence_dummy = (
            kind == SEQUENCE
            and action == "D"
            and not (self.content_rules is not None and keyword == "ContentSequence")
        )
        raw_vr = "" if self.implicit else file_vr
        decision = _Decision(
            kind, action, here, vr, raw_vr, collect, drop_if_empty, dummy_text, sequence_dummy
        )
        table[key] = decision
        return decision

    def table(self, path: tuple[str, ...]) -> dict[int, _Decision]:
        table = self.tables.get((path, self.dummy))
        if table is None:
            table = self.tables[(path, self.dummy)] = {}
        return table

    # --- the walk ---------------------------------------------------------------------------

    def dataset(
        self,
        pos: int,
        limit: int,
        path: tuple[str, ...],
        encodings: list[str],
        in_item: bool,
        undefined: bool,
        plan: tuple[str, int] | None = None,
    ) -> int:
        """Walk one data set from ``pos``: to ``limit``, or (``undefined``) to its item
        delimiter, whose position is returned. ``plan``: an SR content item's value tag and
        the action it takes (see ``content_plan``)."""
        data = self.data
        implicit = self.implicit
        unpack_explicit = _EXPLICIT.unpack_from
        unpack_implicit = _IMPLICIT.unpack_from
        unpack_ul = _UL.unpack_from
        long_vrs = _LONG
        table = self.table(path)
        get = table.get
        previous = -1
        blocks: dict[int, _Creator] | None = None  # private creators seen, by tag
        verdict: Any = None  # what the code this item holds changes of its parts
        if in_item:
            barrier = plan[1] if plan is not None else _NO_MARK
        else:
            barrier = self.marks[0][0] if self.marks else _NO_MARK
        while pos < limit:
            # The inner loop: most elements of a report are kept, and cost only this much.
            if limit - pos < 8:
                if in_item:
                    raise _Decline("truncated element header")
                self.change(pos, limit, None)  # pydicom ignores a few trailing bytes
                pos = limit
                break
            if implicit:
                group, element, length = unpack_implicit(data, pos)
                tag = key = group << 16 | element
                start = pos + 8
            else:
                group, element, code, length = unpack_explicit(data, pos)
                tag = group << 16 | element
                key = tag << 16 | code
                start = pos + 8
                if code in long_vrs:
                    if limit - pos < 12:
                        raise _Decline("truncated element header")
                    length = unpack_ul(data, start)[0]
                    start += 4
            if tag <= previous:
                raise _Decline("elements out of order or repeated")
            previous = tag
            if not length and self.not_checked and (implicit or code == _UN):
                # pydicom reads an empty value of these VRs as not yet read, and converts it
                # when it writes it (an empty UN takes its dictionary's VR): its case
                self.can_mark = False
            plain = True
            if tag >= barrier:
                mark, content = None, ""
                if in_item:
                    if plan is not None and tag == plan[1]:
                        content, plain = plan[0], False
                    barrier = _NO_MARK
                else:
                    barrier, mark = self.insert_marks(pos, tag, encodings)
                    plain = mark is None
            decision = get(key)
            if decision is None or (implicit and length == _UNDEFINED):
                if tag == _ITEM_END and undefined:
                    return pos
                decision = self.decide_here(table, key, path, tag, length, start, limit)
            end = start + length
            if decision.kind == CODE:
                if verdict is None:
                    verdict = self.code_verdict(pos, limit, encodings)
                decision = self.code_part(decision, verdict.get(decision.here[-1], "K"))
            if decision.kind == KEEP and end <= limit and plain and not decision.collect:
                pos = end
                continue
            if decision.kind >= CREATOR:
                if blocks is None:
                    blocks = {}
                pos = self.private(
                    pos, start, length, limit, tag, decision, encodings, in_item, blocks, path
                )
            elif plain:
                pos = self.element(pos, start, length, limit, tag, decision, encodings, in_item)
            else:
                pos = self.element(
                    pos, start, length, limit, tag, decision, encodings, in_item, mark, content
                )
            if decision.kind == CHARSET:
                encodings = self.charset(start, length, decision)
                if path:
                    self.can_mark = False  # an item's own character set: pydicom's case
        if pos != limit:
            raise _Decline("an element runs past the end of its data set")
        if undefined:
            raise _Decline("an item without its delimiter")
        if not in_item:
            self.insert_marks(limit, _NO_MARK, encodings)
        return limit

    def decide_here(
        self,
        table: dict[int, _Decision],
        key: int,
        path: tuple[str, ...],
        tag: int,
        length: int,
        start: int,
        limit: int,
    ) -> _Decision:
        if not self.implicit:
            found = _VRS.get(key & 0xFFFF)
            if found is None:
                raise _Decline("not a standard VR (or implicit VR inside explicit VR)")
            return self.decide(table, key, path, tag, found[0])
        vr = _dictionary_vr(tag)
        if length == _UNDEFINED and vr == "UN":
            # pydicom reads an unknown element of undefined length made of items as a
            # sequence, and the engine decides on it as one: not cached, as the same tag
            # with a defined length is of VR UN
            if limit - start >= 4 and _UL.unpack_from(self.data, start)[0] == 0xE000FFFE:
                vr = "SQ"
            return self.decide({}, key, path, tag, vr)
        cached = table.get(key)
        return cached if cached is not None else self.decide(table, key, path, tag, vr)

    def insert_marks(self, pos: int, tag: int, encodings: list[str]) -> tuple[int, bytes | None]:
        """Insert the marking elements that sort before ``tag`` at ``pos``; return the tag
        of the next one, and the encoded mark that replaces the element ``tag`` if any."""
        marks = self.marks
        while marks and marks[0][0] < tag:
            mark_tag, element = marks.pop(0)
            encoded = self.mark_bytes(mark_tag, element, encodings)
            self.change(pos, pos, encoded)
            self.top_tags[mark_tag] = True
            if mark_tag == _METHOD and self.not_checked:
                self.edits.append((len(self.out) - 1, encoded, self.method(encoded, encodings)))
        replacement = None
        if marks and marks[0][0] == tag:
            _, element = marks.pop(0)
            replacement = self.mark_bytes(tag, element, encodings)
        return (marks[0][0] if marks else _NO_MARK), replacement

    def mark_bytes(self, tag: int, element: DataElement, encodings: list[str]) -> bytes:
        """A marking element encoded (once per profile and character set)."""
        return encoded_mark(self.run.profile, tag, encodings, self.implicit,
                            lambda: _encode(element, encodings, self.implicit))  # fmt: skip

    def code_verdict(self, pos: int, limit: int, encodings: list[str]) -> Any:
        """What ``_code_verdict`` says of the code whose first part is at ``pos``: its
        parts are read from the bytes, up to the last part's tag."""
        found = dict.fromkeys(CODE_TAGS.values(), "")
        last = max(CODE_TAGS)
        while pos < limit:
            tag, vr, length, start = _next(self.data, pos, limit, self.implicit)
            if tag > last or length == _UNDEFINED:
                break
            if tag in CODE_TAGS and length:
                value = self.value(tag, vr or "", length, start, encodings)
                found[CODE_TAGS[tag]] = "" if value is None else str(value)
            pos = start + length
        return code_verdict(
            found["CodingSchemeDesignator"],
            found["CodeValue"] or found["LongCodeValue"] or found["URNCodeValue"],
            found["CodeMeaning"],
        )

    def code_part(self, decision: _Decision, action: str) -> _Decision:
        """A part of a code as the code's verdict has it: kept, or changed by ``action``."""
        key = (decision, action)
        found = self.code_decisions.get(key)
        if found is None:
            kind = CHANGE if action != "K" else TRACK if len(decision.here) == 1 else KEEP
            found = dataclasses.replace(decision, kind=kind, action=action)
            self.code_decisions[key] = found
        return found

    def charset(self, start: int, length: int, decision: _Decision) -> list[str]:
        raw = RawDataElement(BaseTag(_CHARSET), decision.vr, length,
                             self.data[start : start + length], start, self.implicit, True)  # fmt: skip
        element = convert_raw_data_element(raw)
        encodings = list(convert_encodings(element.value))
        if self.not_checked:
            # pydicom converts the whole data set when it writes it if the character set it
            # read differs from the one it converts
            as_read = convert_encodings(convert_string(raw.value or b"", True))
            if list(as_read) != encodings:
                self.can_mark = False
        return encodings

    def element(
        self,
        pos: int,
        start: int,
        length: int,
        limit: int,
        tag: int,
        decision: _Decision,
        encodings: list[str],
        in_item: bool,
        mark: bytes | None = None,
        content: str = "",
    ) -> int:
        """Handle one element that is not simply kept; return where the next one starts.
        ``mark``: the encoded marking element that takes its place. ``content``: the value
        of an SR content item, with the action its concept name has in Table E.3.4-1."""
        kind = decision.kind
        if kind == DECLINE:
            raise _Decline(f"an element the byte path does not handle: {decision.here}")
        if decision.vr == "SQ":
            if mark is not None:
                mode = REPLACE
            elif content:  # its value is kept as it is, or (D) emptied
                if self.dummy:
                    raise _Decline("a coded SR value inside a sequence given a dummy")
                mode = ZERO if content == "D" else KEEP
            elif kind == DROP:
                mode = DROP
            elif decision.action == "Z":
                mode = ZERO
            else:
                mode = SEQUENCE
            end = self.sequence(pos, start, length, limit, decision, encodings, mode, mark)
            self.presence = not self.sequence_dropped
            if not in_item:
                self.top_tags[tag] = self.presence
            return end
        if length == _UNDEFINED:
            end = self.undefined_value(start, limit, tag, in_item)
        else:
            end = start + length
            if end > limit:
                raise _Decline("an element runs past the end of its data set")
            if tag == _PIXEL_DATA and not in_item and (self.compressed or length % 2):
                raise _Decline("pixel data pydicom would write differently")
        if tag == _PIXEL_DATA and not in_item and self.not_checked and not self.implicit:
            # pydicom writes the element's header anew: zeros in the two reserved bytes, a
            # zero length in the delimiter of encapsulated fragments
            reserved = self.data[pos + 6 : pos + 8]
            delimiter = self.data[end - 4 : end] if length == _UNDEFINED else b"\0\0\0\0"
            if decision.raw_vr not in ("OB", "OW") or reserved != b"\0\0" or any(delimiter):
                self.can_mark = False
        if content:
            kind = CHANGE if content in ("D", "C") or decision.dummy_text else KEEP
        top_uid = not in_item and tag in _TRACKED_UIDS
        raw: RawDataElement | None = None
        if decision.collect or kind == CHANGE or top_uid:
            raw = _raw(self.data, tag, decision.raw_vr, length, start, self.implicit)
            if decision.collect:
                self.collect(raw, encodings)
        if mark is not None:
            self.change(pos, end, mark)
            if tag == _METHOD and self.not_checked:
                self.edits.append((len(self.out) - 1, mark, self.method(mark, encodings)))
        elif kind == DROP:
            self.change(pos, end, None)
        elif kind == CHANGE:
            assert raw is not None
            if " or " in decision.vr and decision.vr != "OB or OW":
                # bytes either way, and the VR is not written (implicit VR): the same output
                raise _Decline("an element of ambiguous VR to change")
            self.change(pos, end, None)
            pending = _Pending(
                len(self.out),
                raw,
                decision.action,
                decision.here,
                encodings,
                content,
                decision.vr if decision.dummy_text else "",
            )
            self.out.append(b"")
            self.pending.append(pending)
            if top_uid:
                self.top[tag] = pending
        elif self.not_checked and not in_item and tag in _REREAD:
            raw = raw or _raw(self.data, tag, decision.raw_vr, length, start, self.implicit)
            self.change(pos, end, None)
            self.edits.append((len(self.out), self.view[pos:end], self.reread(raw, encodings)))
            self.out.append(b"")
            if top_uid:
                self.top[tag] = raw
        elif raw is not None and top_uid:
            self.top[tag] = raw
        self.presence = (
            True if mark is not None else self.pending[-1] if kind == CHANGE else kind != DROP
        )
        if not in_item:
            self.top_tags[tag] = self.presence
        return end

    def private(
        self,
        pos: int,
        start: int,
        length: int,
        limit: int,
        tag: int,
        decision: _Decision,
        encodings: list[str],
        in_item: bool,
        blocks: dict[int, _Creator],
        path: tuple[str, ...],
    ) -> int:
        """A private element under the Retain Safe Private Option (as ``_Run.walk`` does)."""
        if decision.kind == CREATOR:
            if self.dummy:
                raise _Decline("a private creator in a sequence given a dummy")
            end = start + length
            if length == _UNDEFINED or end > limit:
                raise _Decline("a private creator of undefined length or past its data set")
            raw = _raw(self.data, tag, decision.raw_vr, length, start, self.implicit)
            alone = Dataset({raw.tag: raw}, parent_encoding=encodings)
            first = (tag & 0xFFFF0000) | (tag & 0xFF) << 8  # the first tag of its block
            name = _creator(alone, BaseTag(first))
            self.change(pos, end, None)
            creator = _Creator(self.out, len(self.out), bytes(self.data[pos:end]), name, [])
            self.out.append(b"")
            self.creators.append(creator)
            blocks[tag] = creator
            if not in_item:
                self.top_tags[tag] = creator
            return end
        block = blocks.get((tag & 0xFFFF0000) | (tag & 0xFFFF) >> 8)
        name = block.name if block is not None else ""
        tables = self.private_tables.get((path, self.dummy))
        if tables is None:
            tables = self.private_tables[(path, self.dummy)] = {}
        key = (tag, decision.vr, name)
        found = tables.get(key)
        if found is None:
            file_vr = decision.raw_vr or decision.vr
            found = self.decide(tables, key, path, tag, file_vr, name)
        end = self.element(pos, start, length, limit, tag, found, encodings, in_item)
        if block is not None:
            block.survivors.append(self.presence)
        return end

    def reread(self, raw: RawDataElement, encodings: list[str]) -> bytes | None:
        """A top-level element as pydicom writes it once it has read it: converted and
        encoded anew; Burned In Annotation left out if it says NO (nobody looked)."""
        element = convert_raw_data_element(raw, encoding=encodings)
        if raw.tag == _BURNED_IN and str(element.value).upper() == "NO":
            return None
        return _encode(element, encodings, self.implicit)

    def reread_encoded(self, encoded: bytes, encodings: list[str]) -> bytes | None:
        """:meth:`reread` of an element this pass encoded."""
        tag, vr, length, start = _next(encoded, 0, len(encoded), self.implicit)
        raw = _raw(encoded, tag, vr, length, start, self.implicit)
        return self.reread(raw, encodings)

    def method(self, encoded: bytes, encodings: list[str]) -> bytes:
        """The De-identification Method mark as ``mark_pixels_not_checked`` leaves it, from
        the mark as encoded here (read back first, as pydicom reads it)."""

        def marked() -> bytes:
            tag, vr, length, start = _next(encoded, 0, len(encoded), self.implicit)
            holder = Dataset()
            raw = _raw(encoded, tag, vr, length, start, self.implicit)
            holder.add(convert_raw_data_element(raw, encoding=encodings))
            mark_pixels_not_checked(holder)
            return _encode(holder[_METHOD], encodings, self.implicit)

        # The plain mark is the profile's for these encodings (``insert_marks``): so is this.
        return encoded_mark(self.run.profile, _METHOD_NOT_CHECKED, encodings, self.implicit, marked)

    def undefined_value(self, start: int, limit: int, tag: int, in_item: bool) -> int:
        """The end of encapsulated pixel data: its fragments, then a sequence delimiter."""
        if tag != _PIXEL_DATA or self.implicit or (not in_item and not self.compressed):
            raise _Decline("an undefined length where the byte path allows none")
        pos = start
        while True:
            if limit - pos < 8:
                raise _Decline("truncated encapsulated pixel data")
            group, element, length = _IMPLICIT.unpack_from(self.data, pos)
            item = group << 16 | element
            if item == _SEQUENCE_END:
                return pos + 8
            if item != _ITEM:
                raise _Decline("encapsulated pixel data that is not made of items")
            pos += 8 + length

    def collect(self, raw: RawDataElement, encodings: list[str]) -> None:
        """Gather the element's values to cut from text, by the engine's own pre-pass."""
        self.found.extend(gathered(raw, encodings, self.retained, _identifying_values))

    def snapshot(self) -> tuple[int, int, int, int, int]:
        return len(self.out), self.copy_from, self.opened, len(self.pending), len(self.creators)

    def restore(self, state: tuple[int, int, int, int, int]) -> None:
        """Forget the output since ``state`` (taken at the same depth)."""
        del self.out[state[0] :]
        self.copy_from, self.opened = state[1], state[2]
        del self.pending[state[3] :]
        del self.creators[state[4] :]

    def sequence(
        self,
        pos: int,
        start: int,
        length: int,
        limit: int,
        decision: _Decision,
        encodings: list[str],
        mode: int,
        mark: bytes | None,
    ) -> int:
        """A sequence: walked (``SEQUENCE``), or read only for the values to gather and then
        kept (``KEEP``), left out (``DROP``), emptied (``ZERO``) or replaced by ``mark``."""
        data = self.data
        defined = length != _UNDEFINED
        end_of_items = start + length if defined else limit
        if end_of_items > limit:
            raise _Decline("a sequence runs past the end of its data set")
        walk = mode == SEQUENCE
        # The engine's clean structured content: each content item by its concept name.
        content = (
            walk and self.content_rules is not None and decision.here[-1] == ("ContentSequence")
        )
        state = self.snapshot()
        if walk:
            empty = (
                length == 0
                if defined
                else limit - start >= 8 and _IMPLICIT.unpack_from(data, start)[:2] == (0xFFFE, 0xE0DD)
            )  # fmt: skip
            if empty and decision.drop_if_empty:
                end = start if defined else start + 8
                self.change(pos, end, None)
                self.sequence_dropped = True
                return end
            header = (
                data[pos : pos + 4] + (b"" if self.implicit else b"SQ\0\0") + _UL.pack(_UNDEFINED)
            )
            self.open.append((pos, start, header))
        here = decision.here
        item_pos = start
        kept = 0
        outer_dummy = self.dummy
        self.dummy = outer_dummy or decision.sequence_dummy
        while True:
            if defined and item_pos >= end_of_items:
                if item_pos != end_of_items:
                    raise _Decline("sequence items overrun the sequence")
                end = content_end = end_of_items
                break
            if end_of_items - item_pos < 8:
                raise _Decline("truncated sequence")
            group, element, item_length = _IMPLICIT.unpack_from(data, item_pos)
            item_tag = group << 16 | element
            if item_tag == _SEQUENCE_END and not defined:
                content_end = item_pos
                end = item_pos + 8
                break
            if item_tag != _ITEM:
                raise _Decline("a sequence holding something other than items")
            item_start = item_pos + 8
            item_limit = end_of_items if item_length == _UNDEFINED else item_start + item_length
            if item_limit > end_of_items:
                raise _Decline("an item runs past the end of its sequence")
            undefined = item_length == _UNDEFINED
            plan: tuple[str, int] | None = None
            if content:
                plan = self.content_plan(item_start, item_limit, encodings)
            keep_item = walk and (plan is None or plan[0] != "X")
            if keep_item:
                kept += 1
                self.open.append((item_pos, item_start, _ITEM_HEADER))
            content_end = self.walk_item(
                item_start, item_limit, here, encodings, keep_item, undefined, plan
            )
            item_end = content_end + 8 if undefined else content_end
            if keep_item:
                self.close(content_end, item_end, _ITEM_DELIMITER)
            elif walk:  # an SR content item the table removes
                self.change(item_pos, item_end, None)
            item_pos = item_end
        self.dummy = outer_dummy
        dropped = False
        if walk:
            self.close(content_end, end, _SEQUENCE_DELIMITER)
            if content and not kept and item_pos > start and decision.drop_if_empty:
                self.restore(state)  # every item removed: the engine then drops it
                self.change(pos, end, None)
                dropped = True
        elif mode == REPLACE:
            self.change(pos, end, mark)
        elif mode == DROP:
            self.change(pos, end, None)
            dropped = True
        elif mode == ZERO:
            header = data[pos : pos + 4] + (b"" if self.implicit else b"SQ\0\0") + _UL.pack(0)
            self.change(pos, end, header)
        self.sequence_dropped = dropped
        return end

    def walk_item(
        self,
        start: int,
        limit: int,
        path: tuple[str, ...],
        encodings: list[str],
        walk: bool,
        undefined: bool,
        plan: tuple[str, int] | None,
    ) -> int:
        if walk:
            return self.dataset(start, limit, path, encodings, True, undefined, plan)
        # A sequence or item removed, emptied or kept whole: its values are still gathered
        # (the engine's pre-pass reads every sequence), but nothing in it is written.
        saved = self.out, self.copy_from, self.open, self.opened, self.pending
        self.out, self.open, self.opened, self.pending = [], [], 0, []
        try:
            return self.dataset(start, limit, path, encodings, True, undefined, None)
        finally:
            self.out, self.copy_from, self.open, self.opened, self.pending = saved

    def content_plan(self, start: int, limit: int, encodings: list[str]) -> tuple[str, int] | None:
        """What ``_Run.content_item`` does with the SR content item at ``start``: None to
        walk it as any item, ("X", 0) to remove it, or (action, value tag) to give its value
        that action (K, D or C) and walk the rest."""
        assert self.content_rules is not None
        value_type = ""
        scheme_code: tuple[str, str] | None = None
        pos = start
        while pos < limit:
            tag, vr, length, value_start = _next(self.data, pos, limit, self.implicit)
            if tag > 0x0040A043:
                break
            if length == _UNDEFINED:
                end = _skip(self.data, value_start, limit, self.implicit)
            else:
                end = value_start + length
            if tag == _CHARSET:
                encodings = list(convert_encodings(self.value(tag, vr, length, value_start)))
            elif tag == 0x0040A040:
                value_type = str(self.value(tag, vr, length, value_start, encodings))
            elif tag == 0x0040A043 and (vr == "SQ" or (vr == "" and length)):
                scheme_code = self.first_code(value_start, end, length, encodings)
            pos = end
        rule = self.content_rules.get(scheme_code) if scheme_code else None
        if rule is None or value_type in _REFERENCE_VALUE_TYPES:
            return None
        action = rule.action(self.run.options).split("/")[-1]
        if action == "X":
            return ("X", 0)
        value_tag = _CONTENT_VALUE_TAGS.get(value_type)
        if value_tag is None:
            return None
        return (action if action in ("D", "C") else "K", value_tag)

    def value(
        self, tag: int, vr: str, length: int, start: int, encodings: list[str] | None = None
    ) -> Any:
        # Content items repeat the same few codes thousands of times: convert each once.
        key = (tag, vr, self.data[start : start + length], tuple(encodings or ()))
        if key not in self.values:
            raw = _raw(self.data, tag, vr, length, start, self.implicit)
            self.values[key] = convert_raw_data_element(raw, encoding=encodings).value
        return self.values[key]

    def first_code(
        self, start: int, end: int, length: int, encodings: list[str]
    ) -> tuple[str, str] | None:
        """(Coding Scheme Designator, Code Value) of a code sequence's first item."""
        if end - start < 8:
            return None
        group, element, item_length = _IMPLICIT.unpack_from(self.data, start)
        if group << 16 | element != _ITEM:
            return None
        pos = start + 8
        limit = end if item_length == _UNDEFINED else pos + item_length
        found = {0x00080100: "", 0x00080102: ""}
        while pos < limit:
            tag, vr, value_length, value_start = _next(self.data, pos, limit, self.implicit)
            if tag > 0x00080102 or value_length == _UNDEFINED:
                break
            if tag == _CHARSET:
                encodings = list(convert_encodings(self.value(tag, vr, value_length, value_start)))
            elif tag in found:
                found[tag] = str(self.value(tag, vr, value_length, value_start, encodings))
            pos = value_start + value_length
        return found[0x00080102], found[0x00080100]


def _skip(data: bytes, start: int, limit: int, implicit: bool) -> int:
    """The end of an undefined-length sequence whose value starts at ``start``."""
    pos = start
    while True:
        if limit - pos < 8:
            raise _Decline("truncated sequence")
        group, element, length = _IMPLICIT.unpack_from(data, pos)
        tag = group << 16 | element
        if tag == _SEQUENCE_END:
            return pos + 8
        if tag != _ITEM:
            raise _Decline("a sequence holding something other than items")
        if length != _UNDEFINED:
            pos += 8 + length
            continue
        pos += 8
        while True:
            tag, _, length, value_start = _next(data, pos, limit, implicit)
            if tag == _ITEM_END:
                pos += 8
                break
            if length == _UNDEFINED:
                pos = _skip(data, value_start, limit, implicit)
            else:
                pos = value_start + length


def _next(data: bytes, pos: int, limit: int, implicit: bool) -> tuple[int, str, int, int]:
    """(tag, VR or "" for implicit VR, value length, value start) of the element at ``pos``."""
    if limit - pos < 8:
        raise _Decline("truncated element header")
    if implicit:
        group, element, length = _IMPLICIT.unpack_from(data, pos)
        return group << 16 | element, "", length, pos + 8
    group, element, code, length = _EXPLICIT.unpack_from(data, pos)
    tag = group << 16 | element
    if group == 0xFFFE:
        return tag, "", _UL.unpack_from(data, pos + 4)[0], pos + 8
    found = _VRS.get(code)
    if found is None:
        raise _Decline("not a standard VR")
    if found[1]:
        if limit - pos < 12:
            raise _Decline("truncated element header")
        return tag, found[0], _UL.unpack_from(data, pos + 8)[0], pos + 12
    return tag, found[0], length, pos + 8


_LONG = frozenset(code for code, (_, long) in _VRS.items() if long)
_UN = int.from_bytes(b"UN", "little")


def _raw(data: bytes, tag: int, vr: str, length: int, start: int, implicit: bool) -> RawDataElement:
    """The element as pydicom's reader would have held it before converting it."""
    raw_vr = None if implicit else vr
    value = data[start : start + length] if length else empty_value_for_VR(raw_vr, raw=True)
    assert value is None or isinstance(value, bytes)
    return RawDataElement(BaseTag(tag), raw_vr, length, value, start, implicit, True)


def _read_meta(data: bytes) -> tuple[FileMetaDataset, int]:
    """The file meta group and where the data set starts; declines without a preamble."""
    if len(data) < 144 or data[128:132] != b"DICM":
        raise _Decline("no preamble and file meta")
    if not (0x40 < data[136] < 0x5B and 0x40 < data[137] < 0x5B):
        raise _Decline("file meta in implicit VR")
    fp = DicomBytesIO(data)
    fp.seek(132)
    stop = lambda tag, vr, length: tag >> 16 != 2  # noqa: E731
    meta = FileMetaDataset(read_dataset(cast(BinaryIO, fp), False, True, stop_when=stop))
    return meta, fp.tell()


def _value(item: RawDataElement | _Pending | None) -> object:
    if item is None:
        return None
    if isinstance(item, _Pending):
        return None if item.result is None else item.result.value
    return convert_raw_data_element(item).value


def _syntax(meta: FileMetaDataset) -> UID:
    """The transfer syntax, if the byte path reads it (deflated data is inflated first)."""
    syntax = meta.get("TransferSyntaxUID")
    if syntax is None:
        raise _Decline("no transfer syntax")
    syntax = UID(str(syntax))
    if syntax in (DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian) or (
        syntax.is_transfer_syntax and not syntax.is_private and syntax.is_little_endian
        and not syntax.is_implicit_VR
    ):  # fmt: skip
        return syntax
    raise _Decline("a transfer syntax the byte path does not read")


@dataclass(frozen=True)
class Rewritten:
    """A de-identified file, and what a caller needs to know of it without reading it."""

    #: The file in pieces: kept runs are views of the input, so a large pixel data element
    #: is never copied in memory; :func:`write_bytes` writes them as they are.
    parts: tuple[bytes | memoryview, ...]
    study_instance_uid: str | None  # as de-identified; None when the output has none
    sop_instance_uid: str | None
    top_level_tags: frozenset[int]  # of its data set (Pixel Data, overlays, ...: what to check)
    #: Marked as ``mark_pixels_not_checked`` marks a data set (see :func:`rewrite_bytes`).
    pixels_not_checked: bool = False

    @functools.cached_property
    def data(self) -> bytes:
        """The file as one bytes object (one copy of every piece)."""
        return b"".join(self.parts)


def _rewrite(
    data: bytes,
    profile: Profile,
    ctx: DeidContext,
    mark_if: Callable[[frozenset[int]], bool] | None = None,
) -> Rewritten:
    """The de-identified file; raises ``_Decline`` when the byte path cannot be exact.

    ``mark_if``: given the output's top-level tags, whether to mark it as not checked. The
    marked output is then the bytes pydicom writes once it has read the output, marked it
    (``mark_pixels_not_checked``) and written it (``write_dataset``): the elements pydicom
    converts on the way (``_REREAD``, the mark, Pixel Data's header) are written as pydicom
    writes them, and the rest is pydicom's own writing of elements it never converted,
    byte for byte. Where that cannot be sure (an item with its own character set, a Pixel
    Data header pydicom writes otherwise) the output is left unmarked, for the caller to
    read and mark."""
    if profile.options & _NOT_ON_BYTES:
        raise _Decline("a profile option the byte path does not implement")
    meta, body = _read_meta(data)
    syntax = _syntax(meta)
    if syntax == DeflatedExplicitVRLittleEndian:
        dataset_bytes = zlib.decompress(data[body:], -zlib.MAX_WBITS)
        start = 0
        implicit = False
    else:
        dataset_bytes, start, implicit = data, body, syntax == ImplicitVRLittleEndian
    if implicit and len(dataset_bytes) - start >= 6:
        first_vr = dataset_bytes[start + 4 : start + 6]
        if 0x40 < first_vr[0] < 0x5B and 0x40 < first_vr[1] < 0x5B:
            raise _Decline("an implicit VR syntax over explicit VR data")

    sop_class = _sop_class(dataset_bytes, start, implicit)
    run = _Run(
        profile=profile,
        ctx=ctx,
        types=attribute_types(sop_class),
        cleaner=cleaner(ctx.known_values, []),
        options=profile.options,
    )
    rewriter = _Rewriter(dataset_bytes, start, implicit, syntax.is_compressed, run)
    rewriter.not_checked = mark_if is not None
    # Decided once per profile, SOP Class and VR encoding, not once per file (``_stream_memo``).
    tables = decision_tables(profile, sop_class, implicit)
    rewriter.tables, rewriter.private_tables = tables.tables, tables.private_tables
    rewriter.code_decisions = tables.code_decisions
    rewriter.marks = marks(profile)
    end = rewriter.dataset(start, len(dataset_bytes), (), [default_encoding], False, False)
    rewriter.change(end, end, None)  # flush the last run

    # The changed elements, now that every identifying value is known; each is made once
    # per run context (the slices of a series share most of them).
    run.cleaner = cleaner(ctx.known_values, rewriter.found)
    changed = changed_elements(profile, sop_class, implicit, ctx, run.cleaner)
    out = rewriter.out
    for pending in rewriter.pending:
        key = changed.key(pending.raw, pending.action, pending.here, tuple(pending.encodings),
                          pending.content, pending.dummy_text)  # fmt: skip
        remembered, made = changed.get(key)
        if remembered:
            if made is not None:
                out[pending.slot], pending.result = made
            continue
        element = convert_raw_data_element(pending.raw, encoding=pending.encodings)
        holder = Dataset()
        holder.add(element)
        if pending.content == "D":  # as ``_Run.content_item`` does
            element.value = _DUMMIES.get(element.VR)
        elif pending.content == "C":
            element.value = run.clean(element)
        elif not pending.content:
            run.apply(holder, element, pending.action, pending.here)
        result = holder.get(element.tag)
        if pending.dummy_text and isinstance(result, DataElement) and result.value:
            result.value = _DUMMIES[pending.dummy_text]  # as ``_dummy_text`` does
        made = None
        if isinstance(result, DataElement):
            pending.result = result
            encoded = out[pending.slot] = _encode(result, pending.encodings, implicit)
            made = (encoded, result)
        changed.remember(key, made)

    for creator in rewriter.creators:  # kept while its block keeps an element
        if creator.out is out and creator.kept():
            out[creator.slot] = creator.data

    top_level_tags = frozenset(
        tag for tag, present in rewriter.top_tags.items() if _present(present)
    )
    marked = False
    if mark_if is not None:
        for pending in rewriter.pending:  # the changed elements pydicom reads back
            if pending.result is not None and len(pending.here) == 1 and pending.raw.tag in _REREAD:
                plain = out[pending.slot]
                again = rewriter.reread_encoded(bytes(plain), pending.encodings)
                rewriter.edits.append((pending.slot, plain, again))
        marked = rewriter.can_mark and mark_if(top_level_tags)
        for slot, plain, again in rewriter.edits:
            out[slot] = (again or b"") if marked else plain
        if marked and any(again is None for _, _, again in rewriter.edits):
            top_level_tags -= {_BURNED_IN}  # it said NO: left out

    instance = rewriter.top.get(_SOP_INSTANCE)
    has_instance = instance is not None and not (
        isinstance(instance, _Pending) and instance.result is None
    )
    meta_bytes = _file_meta(
        meta, _value(rewriter.top.get(_SOP_CLASS)), _value(instance), has_instance
    )
    study = rewriter.top.get(_STUDY_INSTANCE)
    return Rewritten(
        parts=(bytes(128), b"DICM", meta_bytes, *out),  # never the sender's preamble
        study_instance_uid=_text(study),
        sop_instance_uid=_text(instance),
        top_level_tags=top_level_tags,
        pixels_not_checked=marked,
    )


def _text(item: RawDataElement | _Pending | None) -> str | None:
    if item is None or (isinstance(item, _Pending) and item.result is None):
        return None
    return str(_value(item))


def _file_meta(
    file_meta: FileMetaDataset, sop_class: object, sop_instance: object, has_instance: bool
) -> bytes:
    """The engine's file meta, then pydicom's changes when it writes a file."""
    # values of any type, as the engine and pydicom assign them; as ``deidentify`` does:
    meta: Any = rebuilt_file_meta(file_meta, sop_instance if has_instance else None)
    # As ``save_as(..., enforce_file_format=True)`` does:
    meta_class = meta.get("MediaStorageSOPClassUID", None)
    if meta_class is None or (sop_class and sop_class != meta_class):
        meta.MediaStorageSOPClassUID = sop_class
    meta_instance = meta.get("MediaStorageSOPInstanceUID", None)
    if meta_instance is None or (sop_instance and sop_instance != meta_instance):
        meta.MediaStorageSOPInstanceUID = sop_instance
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    write_file_meta_info(fp, meta, enforce_standard=True)
    return fp.getvalue()


def _sop_class(data: bytes, start: int, implicit: bool) -> str:
    """SOP Class UID, as ``str(dataset.get("SOPClassUID", ""))`` gives it: the IOD's
    attribute Types are needed before the walk reaches it."""
    pos = start
    while len(data) - pos >= 8:
        tag, vr, length, value_start = _next(data, pos, len(data), implicit)
        if tag > _SOP_CLASS:
            break
        if tag == _SOP_CLASS:
            raw = _raw(data, tag, vr or "UI", length, value_start, implicit)
            return str(convert_raw_data_element(raw).value)
        if length == _UNDEFINED:
            pos = _skip(data, value_start, len(data), implicit)
        else:
            pos = value_start + length
    return ""


def leading_elements(data: bytes, last: int) -> Dataset | None:
    """The file meta and the top-level elements of tag up to ``last``, read by pydicom from
    the bytes before the first element after it, without parsing what follows; None if the
    file is not one the byte path reads. For what a caller needs besides the output (the
    patient's identifiers, the output's Study and SOP Instance UIDs) without reading a
    large report whole."""
    try:
        meta, pos = _read_meta(data)
        syntax = _syntax(meta)
        if syntax == DeflatedExplicitVRLittleEndian:
            return None
        implicit = syntax == ImplicitVRLittleEndian
        while len(data) - pos >= 8:
            tag, _, length, value_start = _next(data, pos, len(data), implicit)
            if tag > last:
                break
            if length == _UNDEFINED:
                pos = _skip(data, value_start, len(data), implicit)
            else:
                pos = value_start + length
    except Exception:  # not a file this path reads: the caller reads it whole
        return None
    return dcmread(io.BytesIO(data[:pos]), force=True)


def rewrite_bytes(
    data: bytes,
    profile: Profile,
    ctx: DeidContext,
    *,
    mark_if: Callable[[frozenset[int]], bool] | None = None,
) -> Rewritten | None:
    """The file ``data`` de-identified as the engine would, with its output's Study and SOP
    Instance UIDs (to name the output file) and top-level tags; None when this
    path cannot be sure of giving the engine's result (the caller then reads the file with
    pydicom and calls :func:`~dicomhaven.deid._engine.deidentify`, which also raises what
    the engine raises, such as ``UnsafeContent``).

    ``mark_if``: given the output's top-level tags, whether the copy is to be marked as not
    checked (``--headers-only``); ``Rewritten.pixels_not_checked`` says whether it was
    (else the caller reads the copy and marks it with pydicom)."""
    try:
        return _rewrite(data, profile, ctx, mark_if)
    except Exception:  # declined, or an input this path misjudged: the pydicom path decides
        return None


def deidentify_bytes(data: bytes, profile: Profile, ctx: DeidContext) -> bytes | None:
    """The file ``data`` de-identified as the engine would, or None (see
    :func:`rewrite_bytes`)."""
    rewritten = rewrite_bytes(data, profile, ctx)
    return None if rewritten is None else rewritten.data


def write_bytes(data: bytes | Sequence[bytes | memoryview], target: Path) -> None:
    """Write atomically (a partial file, then a rename), as ``write_dataset`` does; pieces
    are gathered by the kernel (``writev``), not joined in memory first."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.part")
    pieces = [memoryview(data)] if isinstance(data, bytes) else [memoryview(p) for p in data]
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        index = 0
        while index < len(pieces):
            written = os.writev(fd, pieces[index : index + _IOV_MAX])
            while index < len(pieces) and written >= len(pieces[index]):  # written whole
                written -= len(pieces[index])
                index += 1
            if written:  # the rest of a piece written in part goes next
                pieces[index] = pieces[index][written:]
    finally:
        os.close(fd)
    partial.replace(target)
