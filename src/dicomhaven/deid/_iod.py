"""Which attributes an object's IOD requires, and how strictly: the standard's IOD tables.

highdicom 0.28 ships, as data, the standard's SOP Class → IOD → module → attribute tables
(``highdicom/_standard/*.json``). They are not highdicom's public API, and reading them (and
importing highdicom to find them) cost seconds at every start, so
``scripts/generate_iod_types.py`` writes what is needed into ``_iod_types``, with highdicom
pinned. The header stage asks one question: for this SOP Class, what Type is the attribute
at this path? — to empty rather than delete a Type 2 attribute, and to give a Type 1
attribute a dummy value. Only the modules of the IODs a run meets are unpacked.
"""

from __future__ import annotations

import base64
import functools
import zlib
from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from dicomhaven.deid import _iod_types

__all__ = ["AttributeType", "attribute_types", "iod_name", "resolve_action"]


class AttributeType(StrEnum):
    TYPE_1 = "1"
    TYPE_1C = "1C"
    TYPE_2 = "2"
    TYPE_2C = "2C"
    TYPE_3 = "3"


_STRICTNESS = {"1": 5, "1C": 4, "2": 3, "2C": 2, "3": 1}


@functools.lru_cache(maxsize=512)
def _module(key: str) -> tuple[tuple[tuple[str, ...], str], ...]:
    """A module's attributes: (sequence keywords then the keyword, Type)."""
    packed = _iod_types.MODULE_ATTRIBUTES.get(key)
    if not packed:
        return ()
    text = zlib.decompress(base64.b85decode(packed)).decode()
    rows = []
    for line in text.splitlines():
        path, _, kind = line.rpartition(" ")
        rows.append((tuple(path.split("\\")), kind))
    return tuple(rows)


def iod_name(sop_class_uid: str) -> str | None:
    """The IOD of a SOP Class (e.g. ``ct-image``), or None for a class the tables lack."""
    return _iod_types.SOP_IOD.get(sop_class_uid)


@functools.lru_cache(maxsize=256)
def attribute_types(sop_class_uid: str) -> Mapping[tuple[str, ...], AttributeType]:
    """Attribute path (sequence keywords then the keyword) → its strictest Type across the
    IOD's modules. Conditional types count as their unconditional selves: an attribute that
    is present is treated as if its condition held, which errs towards keeping it valid."""
    iod = _iod_types.SOP_IOD.get(sop_class_uid)
    if iod is None:
        return MappingProxyType({})
    found: dict[tuple[str, ...], str] = {}
    for module in _iod_types.IOD_MODULES.get(iod, ()):
        for path, kind in _module(module):
            kind = kind if kind in _STRICTNESS else "3"
            if _STRICTNESS[kind] > _STRICTNESS.get(found.get(path, ""), 0):
                found[path] = kind
    return MappingProxyType({p: AttributeType(t) for p, t in found.items()})


def resolve_action(code: str, kind: AttributeType | None) -> str:
    """One action for a (possibly combined) Table E.1-1 code, given the attribute's Type.

    ``X/Z``: Z where the IOD needs the attribute present (Type 1 or 2), else X.
    ``X/D``: D where present and non-empty is needed (Type 1) or present (Type 2), else X.
    ``X/Z/D``: D for Type 1, Z for Type 2, else X.  ``Z/D``: D for Type 1, else Z.
    ``X/Z/U*``: a referencing sequence; always U (keep it, with every UID inside replaced
    consistently), the alternative the code allows that keeps references resolving within
    the de-identified set. An attribute the IOD does not name counts as Type 3.
    """
    if "/" not in code:
        return code
    level = _STRICTNESS[kind.value] if kind is not None else 1
    required = level >= _STRICTNESS["1C"]
    present = level >= _STRICTNESS["2C"]
    if code == "X/Z":
        return "Z" if present else "X"
    if code == "X/D":
        return "D" if present else "X"
    if code == "X/Z/D":
        return "D" if required else "Z" if present else "X"
    if code == "Z/D":
        return "D" if required else "Z"
    if code == "X/Z/U*":
        return "U"
    raise ValueError(f"unknown combined action code {code!r}")
