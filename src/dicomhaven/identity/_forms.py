"""The forms in which a patient's known value can appear in text: one normaliser for all.

A Patient ID as a PACS sends it is rarely the clean string a person would type: values are
padded with spaces (or NUL, which many readers take as the end of the value), several
values share one element with ``\\``, a name has ``=`` groups and ``^`` components, and a
number is written with spaces or dashes. Free text elsewhere in the file carries the clean
value, so a search for the raw value (``ZZ91139748\\x00junk``) finds nothing and the number
is released.

The de-identifier (cleaning text) and the scanner (the leak check) both take a patient's
known values through :func:`known_forms` and identity reads identifiers through
:func:`clean_value`. Only the normalising is shared; what each does with the forms (cut
them, or fail a file for them) stays its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["clean_value", "known_forms", "value_parts"]

#: Separators written inside numbers ("943 476 5919", "ZZ-9113-9748", "01/02/1960").
_NUMBER_SEPARATORS = re.compile(r"[\s\-./]+")
#: Where a person name splits into the words that can appear alone in text.
_NAME_SPLIT = re.compile(r"[\^=\s,]+")


def clean_value(value: object) -> str:
    """One value as DICOM means it: cut at the first NUL, padding spaces stripped.

    The text after a NUL is a vendor's artefact, not part of the value.
    """
    text = "" if value is None else str(value)
    return text.split("\x00", 1)[0].strip()


def value_parts(value: object) -> list[str]:
    """The separate values one element holds (``\\`` multiplicity), each as
    :func:`clean_value` reads it, empty ones dropped."""
    text = "" if value is None else str(value)
    parts: list[str] = []
    for item in text.split("\\"):
        item = clean_value(item)
        if item and item not in parts:
            parts.append(item)
    return parts


def _without_titles(name: str) -> str:
    """A person name without its prefix and suffix components ("Dr", "Mrs", "Jr"): they
    name nobody, and as known values they would be found in "DR 7500" or "CR/DR"."""
    groups = ("^".join(group.split("^")[:3]).rstrip("^") for group in name.split("="))
    return "=".join(groups).rstrip("=")


def _forms_of(item: str) -> list[str]:
    if any(c in item for c in "^="):
        item = _without_titles(item)
    forms = [item]
    if any(c in item for c in "^="):
        forms += [p for p in _NAME_SPLIT.split(item) if p]
        readable = " ".join(p for p in re.split(r"[\^=]+", item.split("=", 1)[0]) if p.strip())
        forms.append(readable.strip())
    if sum(c.isdigit() for c in item) >= 4:
        joined = _NUMBER_SEPARATORS.sub("", item)
        if joined != item:
            forms.append(joined)
    return forms


def known_forms(values: Iterable[object]) -> tuple[str, ...]:
    """Every form of a patient's known values to search text for, longest first.

    Each value is split into its values (``\\``), each cut at a NUL; a name also gives its components
    (``SMITH^JOHN`` → ``SMITH``, ``JOHN``, ``SMITH JOHN``; never its prefix or suffix, a
    title such as ``Dr``), short ones included (the
    callers match those as whole words only); a number also gives its form without
    separators. Duplicates are dropped case-insensitively: matching ignores case.
    """
    seen: dict[str, str] = {}
    for value in values:
        for item in value_parts(value):
            for form in _forms_of(item):
                form = form.strip()
                if form and form.casefold() not in seen:
                    seen[form.casefold()] = form
    return tuple(sorted(seen.values(), key=lambda f: (-len(f), f)))
