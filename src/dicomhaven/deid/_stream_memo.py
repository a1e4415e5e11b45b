"""What the byte path (:mod:`dicomhaven.deid._stream`) works out once, not once per file.

The slices of one series repeat most of their elements: the same Study, Series and Frame
of Reference UIDs, the same dates, descriptions and names. Each answer below is a pure
function of what its key holds, so giving a remembered answer changes no output byte:

- the decision tables (what to do with each path, tag and VR): a function of the profile,
  the SOP Class (its IOD's attribute Types) and whether the data set is implicit VR;
- the marking elements of a profile, and each one encoded with the character set and VR
  encoding in force where it is inserted;
- the free-text cleaner of the patient's known values and the header's own;
- the values gathered from an element to cut from text;
- a changed element, as encoded: a function of the element as read (tag, VR, bytes, the
  character set in force), its action and path, and the run it is changed under (profile,
  SOP Class, project keys, the patient's pseudonyms, the cleaner).

Profiles are held by identity (a profile is built once and reused); every entry keeps its
profile alive, so an identity is never reused by another profile while it is remembered.
Every table is bounded: when full it is emptied and filled again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset

from dicomhaven.deid._engine import DeidContext, _cleaner, _mark
from dicomhaven.deid._profile import Profile
from dicomhaven.deid._text import TextCleaner

__all__ = [
    "ChangedElements",
    "DecisionTables",
    "changed_elements",
    "cleaner",
    "decision_tables",
    "encoded_mark",
    "gathered",
    "marks",
]

_RUNS = 64  # run contexts (a patient under a profile) remembered at once
_ENTRIES = 20_000  # elements remembered per table
_LARGEST = 4096  # bytes: a larger value (a vendor's blob) is worked out each time


def _bounded(table: dict[Any, Any], limit: int) -> None:
    if len(table) >= limit:
        table.clear()


@dataclass
class DecisionTables:
    """The ``_Rewriter``'s decision caches for one (profile, SOP Class, VR encoding)."""

    profile: Profile  # held: the key is its identity
    tables: dict[Any, Any] = field(default_factory=dict)
    private_tables: dict[Any, Any] = field(default_factory=dict)
    code_decisions: dict[Any, Any] = field(default_factory=dict)


_TABLES: dict[tuple[int, str, bool], DecisionTables] = {}


def decision_tables(profile: Profile, sop_class: str, implicit: bool) -> DecisionTables:
    key = (id(profile), sop_class, implicit)
    found = _TABLES.get(key)
    if found is None or found.profile is not profile:
        _bounded(_TABLES, _RUNS)
        found = _TABLES[key] = DecisionTables(profile)
    return found


_MARKS: dict[int, tuple[Profile, tuple[tuple[int, DataElement], ...]]] = {}
_ENCODED_MARKS: dict[tuple[int, int, tuple[str, ...], bool], tuple[Profile, bytes]] = {}


def marks(profile: Profile) -> list[tuple[int, DataElement]]:
    """The profile's marking elements by tag (``_mark``'s), in tag order: a new list each
    time (the walk takes them off as it inserts them)."""
    found = _MARKS.get(id(profile))
    if found is None or found[0] is not profile:
        marked = Dataset()
        _mark(marked, profile)
        _bounded(_MARKS, _RUNS)
        found = _MARKS[id(profile)] = (profile, tuple((int(e.tag), e) for e in marked))
    return list(found[1])


def encoded_mark(
    profile: Profile, key: int, encodings: list[str], implicit: bool, make: Callable[[], bytes]
) -> bytes:
    """A marking element of ``profile`` (by tag, or another key of the caller's) as
    ``make`` encodes it, once per character set and VR encoding."""
    memo_key = (id(profile), key, tuple(encodings), implicit)
    found = _ENCODED_MARKS.get(memo_key)
    if found is None or found[0] is not profile:
        _bounded(_ENCODED_MARKS, _ENTRIES)
        found = _ENCODED_MARKS[memo_key] = (profile, make())
    return found[1]


@functools.lru_cache(maxsize=1024)
def _cleaner_of(known: tuple[str, ...], found: tuple[tuple[str, str], ...]) -> TextCleaner:
    return _cleaner(known, found)


def cleaner(known: tuple[str, ...], found: list[tuple[str, str]]) -> TextCleaner:
    """The engine's ``_cleaner`` (a frozen value: shared freely)."""
    return _cleaner_of(tuple(known), tuple(found))


_GATHERED: dict[Any, tuple[tuple[str, str], ...]] = {}


def gathered(
    raw: RawDataElement,
    encodings: list[str],
    retained: frozenset[str],
    gather: Callable[[Dataset, frozenset[str]], list[tuple[str, str]]],
) -> tuple[tuple[str, str], ...]:
    """The values ``gather`` (the engine's ``_identifying_values``) finds in one element."""
    if raw.length > _LARGEST:
        return tuple(gather(Dataset({raw.tag: raw}, parent_encoding=encodings), retained))
    key = (raw.tag, raw.VR, raw.length, raw.value, raw.is_implicit_VR, tuple(encodings), retained)
    found = _GATHERED.get(key)
    if found is None:
        alone = Dataset({raw.tag: raw}, parent_encoding=encodings)
        _bounded(_GATHERED, _ENTRIES)
        found = _GATHERED[key] = tuple(gather(alone, retained))
    return found


@dataclass
class ChangedElements:
    """One run context's changed elements: element key → (encoded bytes, the element
    made), or None for an element the change removes."""

    profile: Profile  # held: the key is its identity
    results: dict[Any, tuple[bytes, DataElement] | None] = field(default_factory=dict)

    def key(self, raw: RawDataElement, *parts: object) -> tuple[Any, ...] | None:
        """The element's key, or None for a value too large to remember."""
        if raw.length > _LARGEST:
            return None
        return (raw.tag, raw.VR, raw.length, raw.value, *parts)

    def get(self, key: tuple[Any, ...] | None) -> tuple[bool, tuple[bytes, DataElement] | None]:
        """(whether it is remembered, what was made)."""
        if key is None or key not in self.results:
            return False, None
        return True, self.results[key]

    def remember(
        self, key: tuple[Any, ...] | None, result: tuple[bytes, DataElement] | None
    ) -> None:
        if key is not None:
            _bounded(self.results, _ENTRIES)
            self.results[key] = result


_CHANGED: dict[tuple[Any, ...], ChangedElements] = {}


def changed_elements(
    profile: Profile, sop_class: str, implicit: bool, ctx: DeidContext, text: TextCleaner
) -> ChangedElements:
    """The changed elements remembered for this run context (every input of ``_Run``)."""
    key = (id(profile), sop_class, implicit, ctx.keys, ctx.master_pseudonym, ctx.pseudonym, text)
    found = _CHANGED.get(key)
    if found is None or found.profile is not profile:
        _bounded(_CHANGED, _RUNS)
        found = _CHANGED[key] = ChangedElements(profile)
    return found
