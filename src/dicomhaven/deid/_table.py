"""The Basic Application Level Confidentiality Profile and its options, as typed rules.

Reads the generated table (:mod:`dicomhaven.deid._annex_e`) once and answers: what does the
profile, with a chosen set of options, do to this attribute? Combined codes (``X/Z``,
``X/D``, ``X/Z/D``, ``Z/D``, ``X/Z/U*``) are returned as they are: which of their actions
applies depends on the attribute's Type in the object's IOD, which the header stage decides.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from dicomhaven.deid import _annex_e

__all__ = [
    "EDITION",
    "Action",
    "AttributeRule",
    "ContentItemRule",
    "Option",
    "attribute_rule",
    "attribute_rules",
    "content_item_rules",
    "options_conflict",
]

EDITION = _annex_e.EDITION


class Action(StrEnum):
    """The action codes of PS3.15 Table E.1-1."""

    DUMMY = "D"  # replace with a non-zero-length dummy value consistent with the VR
    ZERO = "Z"  # replace with a zero-length value, or a dummy
    REMOVE = "X"  # remove
    KEEP = "K"  # keep (sequences are still cleaned recursively)
    CLEAN = "C"  # clean: replace with values of similar meaning known not to identify
    UID = "U"  # replace with an internally consistent UID


class Option(StrEnum):
    """The profile's options, by their names in the standard (Table E.1-1 columns)."""

    RETAIN_SAFE_PRIVATE = "retain_safe_private"
    RETAIN_UIDS = "retain_uids"
    RETAIN_DEVICE_IDENTITY = "retain_device_identity"
    RETAIN_INSTITUTION_IDENTITY = "retain_institution_identity"
    RETAIN_PATIENT_CHARACTERISTICS = "retain_patient_characteristics"
    RETAIN_LONGITUDINAL_FULL_DATES = "retain_longitudinal_full_dates"
    RETAIN_LONGITUDINAL_MODIFIED_DATES = "retain_longitudinal_modified_dates"
    CLEAN_DESCRIPTORS = "clean_descriptors"
    CLEAN_STRUCTURED_CONTENT = "clean_structured_content"
    CLEAN_GRAPHICS = "clean_graphics"

    @property
    def standard_name(self) -> str:
        """The option's name as the standard writes it, e.g. 'Retain UIDs Option'."""
        dates = {
            "retain_longitudinal_full_dates": "Retain Longitudinal Temporal Information with Full Dates Option",
            "retain_longitudinal_modified_dates": "Retain Longitudinal Temporal Information with Modified Dates Option",
        }  # fmt: skip
        if self.value in dates:
            return dates[self.value]
        words = {"uids": "UIDs"}
        return " ".join(words.get(w, w.capitalize()) for w in self.value.split("_")) + " Option"


#: Options of which a profile may choose at most one.
_EXCLUSIVE = (
    frozenset({Option.RETAIN_LONGITUDINAL_FULL_DATES, Option.RETAIN_LONGITUDINAL_MODIFIED_DATES}),
)


def options_conflict(options: Iterable[Option]) -> str | None:
    """A reason if the options cannot be chosen together, else None."""
    chosen = frozenset(options)
    for group in _EXCLUSIVE:
        both = chosen & group
        if len(both) > 1:
            names = " and ".join(sorted(o.standard_name for o in both))
            return f"{names} cannot both be chosen: pick one"
    return None


def _resolve(basic: str, options: Mapping[Option, str], chosen: frozenset[Option]) -> str:
    """The action under ``chosen`` options. When several chosen options name an action for
    the same attribute, the more protective wins: clean (C) over keep (K)."""
    actions = {options[o] for o in chosen if o in options}
    if Action.CLEAN.value in actions:
        return Action.CLEAN.value
    if Action.KEEP.value in actions:
        return Action.KEEP.value
    return basic


@dataclass(frozen=True)
class AttributeRule:
    """One row of Table E.1-1."""

    tag: str  # eight hex digits, a pattern with 'x' for any hex digit, or "PRIVATE"
    name: str
    retired: bool
    in_standard_iod: bool
    basic: str  # a single action code or a combined one such as "X/Z"
    options: Mapping[Option, str]

    def action(self, chosen: Iterable[Option] = ()) -> str:
        """The action code under the Basic Profile with the ``chosen`` options."""
        return _resolve(self.basic, self.options, frozenset(chosen))

    @property
    def is_pattern(self) -> bool:
        return "x" in self.tag.lower() or self.tag == "PRIVATE"


@dataclass(frozen=True)
class ContentItemRule:
    """One row of Table E.3.4-1: an SR content item, by its concept name code."""

    code: str
    scheme: str
    meaning: str
    value_type: str
    retired: bool
    basic: str
    options: Mapping[Option, str]

    def action(self, chosen: Iterable[Option] = ()) -> str:
        return _resolve(self.basic, self.options, frozenset(chosen))


def _options(pairs: tuple[tuple[str, str], ...]) -> Mapping[Option, str]:
    return MappingProxyType({Option(name): action for name, action in pairs})


@functools.cache
def attribute_rules() -> tuple[AttributeRule, ...]:
    """Every row of Table E.1-1, in the generated table's order."""
    return tuple(
        AttributeRule(tag, name, retired, in_iod, basic, _options(options))
        for tag, name, retired, in_iod, basic, options in _annex_e.ATTRIBUTES
    )


@functools.cache
def _by_tag() -> tuple[dict[int, AttributeRule], tuple[tuple[re.Pattern[str], AttributeRule], ...]]:
    exact: dict[int, AttributeRule] = {}
    patterns = []
    for rule in attribute_rules():
        if rule.tag == "PRIVATE":
            continue
        if rule.is_pattern:
            regex = re.compile(rule.tag.upper().replace("X", "[0-9A-F]"))
            patterns.append((regex, rule))
        else:
            exact[int(rule.tag, 16)] = rule
    return exact, tuple(patterns)


def attribute_rule(tag: int) -> AttributeRule | None:
    """The rule for a standard attribute tag (repeating groups such as overlays included), or
    None when the table does not name it. Private tags are the caller's business: see the
    Retain Safe Private Option."""
    exact, patterns = _by_tag()
    rule = exact.get(tag)
    if rule is not None:
        return rule
    text = f"{tag:08X}"
    for regex, candidate in patterns:
        if regex.fullmatch(text):
            return candidate
    return None


@functools.cache
def content_item_rules() -> dict[tuple[str, str], ContentItemRule]:
    """Table E.3.4-1 by (coding scheme, code value)."""
    return {
        (scheme, code): ContentItemRule(code, scheme, meaning, vtype, retired, basic, _options(o))
        for code, scheme, meaning, vtype, retired, basic, o in _annex_e.CONTENT_ITEMS
    }
