"""Cleaning free text: identifiers are cut out of descriptions, not whole descriptions blanked.

What is cut: the patient's own known values (name parts, numbers, birth date, from the
header and the vault), and patterns that look like identifiers whoever they belong to:
NHS and CHI numbers (with a valid check digit), dates, UK postcodes, phone numbers and
e-mail addresses. Each cut becomes ``***``, so a reader sees that something was removed.
Known values are matched as whole words, case-insensitively; parts of the patient's own
name are matched whatever their length (``LI^NA``), other known values from three
characters (a house number alone would cut "12 mm"). A URL in text keeps its scheme, host
and path, but loses its user information, query and fragment (``?patientID=...``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from dicomhaven.identity import is_valid_chi_number, is_valid_nhs_number
from dicomhaven.identity._forms import known_forms

__all__ = ["MASK", "TextCleaner"]

MASK = "***"

_NUMBER10 = re.compile(r"(?<![\d])\d{3}[ -]?\d{3}[ -]?\d{4}(?![\d])")
_DATE = re.compile(
    r"(?<!\d)(?:\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})|\d{4}-\d{2}-\d{2}|(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]))(?!\d)"
)
_MONTHS = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_WORD_DATE = re.compile(
    rf"(?<![A-Za-z0-9])(?:\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTHS},?\s+\d{{2,4}}|{_MONTHS}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}})(?![A-Za-z0-9])",
    re.IGNORECASE,
)
#: A title followed by up to three capitalised words: a person's name whoever they are.
_TITLED_NAME = re.compile(
    r"\b(?:Dr|Mr|Mrs|Ms|Miss|Mx|Prof|Professor|Sister|Nurse)\.?(?:\s+[A-Z][A-Za-z'\-]+){1,3}"
)
_POSTCODE = re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}\b", re.IGNORECASE)
_PHONE = re.compile(r"(?<!\d)(?:\+44\s?|0)(?:\d[\s-]?){9,10}(?!\d)")
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
#: A URL: scheme, then (optional) user information, host and the rest.
_URL = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?:[^\s/?#@]*@)?(?P<rest>[^\s?#]*)(?:\?[^\s#]*)?(?:#\S*)?"
)
_PATTERNS = (_EMAIL, _WORD_DATE, _DATE, _TITLED_NAME, _POSTCODE, _PHONE)
_SEPARATORS = re.compile(r"[\s\-./]+")
_MIN_KNOWN = 3  # known values shorter than this would cut ordinary words


def _number_mask(match: re.Match[str]) -> str:
    text = match.group()
    if is_valid_nhs_number(text) or is_valid_chi_number(text):
        return MASK
    return text


@functools.lru_cache(maxsize=4096)
def _known_pattern(value: str) -> re.Pattern[str]:
    """A known value as a whole word, ignoring case; a number (four digits or more) also
    with separators written between its characters (``ZZ-9113-9748``, ``943 476 5919``)."""
    compact = _SEPARATORS.sub("", value)
    if sum(c.isdigit() for c in compact) >= 4 and compact.isalnum():
        body = r"[\s\-./]?".join(re.escape(c) for c in compact)
    else:
        body = re.escape(value)
    return re.compile(rf"(?<![A-Za-z0-9]){body}(?![A-Za-z0-9])", re.IGNORECASE)


@dataclass(frozen=True)
class TextCleaner:
    """Cuts identifiers out of text; built once per patient from their known values."""

    known: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def for_values(cls, values: Iterable[str], names: Iterable[str] = ()) -> TextCleaner:
        """From known values such as ``SMITH^JOHN`` (split into parts) or ``ZZ91234567``, and
        the patient's own ``names``, whose parts are cut whatever their length. Values are
        read in every form DICOM lets them take (:func:`~dicomhaven.identity.known_forms`:
        padding and what follows a NUL dropped, numbers also without separators)."""
        parts: set[str] = set()
        for value in known_forms(values):
            for part in (value, *re.split(r"[\^=\s,]+", value)):
                part = part.strip()
                if len(part) >= _MIN_KNOWN:
                    parts.add(part)
        for name in known_forms(names):
            parts.update(p for p in re.split(r"[\^=\s,]+", name) if p.strip())
        # Longest first, so "SMITHSON" is cut whole before "SMITH" could be.
        return cls(tuple(sorted(parts, key=lambda p: (-len(p), p))))

    def finds_identifier(self, text: str) -> bool:
        """Whether ``text`` holds one of the patient's known values (four characters or
        more) or a valid NHS or CHI number. Stricter than :meth:`clean`: meant for text found
        inside binary data, where loose patterns (a postcode's shape, a phone number's)
        match random bytes."""
        if _NUMBER10.sub(_number_mask, text) != text:
            return True
        return any(_known_pattern(v).search(text) for v in self.known if len(v) >= 4)

    def clean(self, text: str) -> str:
        cleaned = _URL.sub(lambda m: m.group("scheme") + m.group("rest"), text)
        cleaned = _NUMBER10.sub(_number_mask, cleaned)
        for pattern in _PATTERNS:
            cleaned = pattern.sub(MASK, cleaned)
        return self.clean_known(cleaned)

    def clean_known(self, text: str) -> str:
        """Cut only the patient's known values: for a code value of a known scheme, where a
        pattern (a date's shape, say) would match a real code."""
        cleaned = text
        for value in self.known:
            cleaned = _known_pattern(value).sub(MASK, cleaned)
        return cleaned
