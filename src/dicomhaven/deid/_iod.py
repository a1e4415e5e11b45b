"""Which attributes an object's IOD requires, and how strictly: the adapter to highdicom's
copy of the standard's IOD tables.

highdicom 0.28 ships, as data, the standard's SOP Class → IOD → module → attribute tables
(``highdicom/_standard/*.json``). They are not highdicom's public API, so they are read here,
in one place, with highdicom pinned. The header stage asks one question: for this SOP
Class, what Type is the attribute at this path? — to empty rather than delete a Type 2
attribute, and to give a Type 1 attribute a dummy value.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType

import highdicom

__all__ = ["AttributeType", "attribute_types", "iod_name", "resolve_action"]

_STANDARD = Path(highdicom.__file__).parent / "_standard"


class AttributeType(StrEnum):
    TYPE_1 = "1"
    TYPE_1C = "1C"
    TYPE_2 = "2"
    TYPE_2C = "2C"
    TYPE_3 = "3"


_STRICTNESS = {"1": 5, "1C": 4, "2": 3, "2C": 2, "3": 1}


@functools.cache
def _tables() -> tuple[
    dict[str, str], dict[str, list[dict[str, str]]], dict[str, list[dict[str, object]]]
]:
    def load(name: str) -> object:
        return json.loads((_STANDARD / name).read_text(encoding="utf-8"))

    sop_iod = load("sop_class_iod_map.json")
    iod_modules = load("iod_module_map.json")
    module_attributes = load("module_attribute_map.json")
    assert isinstance(sop_iod, dict) and isinstance(iod_modules, dict)
    assert isinstance(module_attributes, dict)
    return sop_iod, iod_modules, module_attributes


def iod_name(sop_class_uid: str) -> str | None:
    """The IOD of a SOP Class (e.g. ``ct-image``), or None for a class the tables lack."""
    return _tables()[0].get(sop_class_uid)


@functools.lru_cache(maxsize=256)
def attribute_types(sop_class_uid: str) -> Mapping[tuple[str, ...], AttributeType]:
    """Attribute path (sequence keywords then the keyword) → its strictest Type across the
    IOD's modules. Conditional types count as their unconditional selves: an attribute that
    is present is treated as if its condition held, which errs towards keeping it valid."""
    sop_iod, iod_modules, module_attributes = _tables()
    iod = sop_iod.get(sop_class_uid)
    if iod is None:
        return MappingProxyType({})
    found: dict[tuple[str, ...], str] = {}
    for module in iod_modules.get(iod, []):
        for attribute in module_attributes.get(module["key"], []):
            path = (*attribute["path"], attribute["keyword"])  # type: ignore[misc]
            kind = str(attribute["type"])
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
