"""Which words of a header may be shown as unmapped terms: words that look like clinical
vocabulary, never a name, a number or a date.

Descriptions and protocol names are free text, and people type names, hospital numbers
and dates into them. The data managers' page lists the words the vocabulary does not
know, so a word is listed only when every one of these holds:

1. it is 3 to 24 letters a to z and nothing else: no digit, so no number, identifier,
   date written in figures, accession number or sequence code (``T1``, ``5MM``), and no
   letter outside ASCII (a name in another script);
2. it is not a month or a day of the week, nor their abbreviation (a date in words);
3. the scanner's text detectors (:func:`dicomhaven.scan.detect_text`) find nothing in
   the attribute's value: a value in which they see a person's name (a given name and a
   family name, a title and a family name, ``SMITH^JOHN``), an NHS or CHI number, a
   postcode, a telephone number, an e-mail or network address or a date gives no word;
4. it is not a word of a given or family name in the scanner's US census lists
   (including those the scanner keeps for common words, ``WHITE``, ``KING``) or in
   Faker's lists for Great Britain and Ireland (``KIRSTY``, ``RHYS``: names the census
   lacks), nor a title (``DR``, ``MRS``), even when it is a clinical word too (``WILLIS``
   of the Circle of Willis; ``HEART`` and ``SHOULDER``, family names as well, are words
   the vocabulary maps, so never unmapped);
5. the vocabulary does not already know it (a rule's one-word phrase, or an ignored word).

A rare name typed alone can still pass; the list shows a word only once it is found for
several patients (:data:`._unmapped.MIN_PATIENTS`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from dicomhaven.scan._detect import _CUES, _NOT_NAMES, _census, detect_text
from dicomhaven.vocabulary._words import words

__all__ = ["clinical_terms"]

_LETTERS = re.compile(r"[a-z]{3,24}")
_CALENDAR = frozenset(
    {"january", "february", "march", "april", "may", "june", "july", "august", "september",
     "october", "november", "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug",
     "sep", "sept", "oct", "nov", "dec", "monday", "tuesday", "wednesday", "thursday",
     "friday", "saturday", "sunday", "mon", "tue", "tues", "wed", "thu", "thur", "thurs",
     "fri", "sat", "sun"}
)  # fmt: skip


def clinical_terms(value: str, known: frozenset[str]) -> list[str]:
    """The words of one attribute's value that may be listed as unmapped (see the module
    docstring), upper case, in order, each once; ``known`` are the vocabulary's words."""
    candidates = [
        w for w in dict.fromkeys(words(value)) if w not in known and _LETTERS.fullmatch(w)
    ]
    candidates = [w for w in candidates if w not in _CALENDAR]
    if not candidates or detect_text(value):
        return []
    names = _name_words()
    return [w.upper() for w in candidates if w not in names]


@functools.cache
def _name_words() -> frozenset[str]:
    """Every word of the name lists, case folded (read once: about 0.2 s)."""
    from faker.providers.person.en_GB import Provider as British
    from faker.providers.person.en_IE import Provider as Irish

    given, family = _census()
    lists: list[Iterable[str]] = [given, family, _CUES, _NOT_NAMES]
    lists += [British.first_names, British.last_names, Irish.first_names, Irish.last_names]
    return frozenset(w for names in lists for name in names for w in words(name))
