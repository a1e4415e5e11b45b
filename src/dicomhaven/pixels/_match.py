"""Which recognised words are identifiers.

Words are first put together into phrases: runs of words on one line (or one column, for
vertical text) with no more than about a character's height between them, so that
``SMITH JOHN`` or ``943 476 5919`` is judged as a whole. Then two kinds of rules fire:

* **The patient's own values** (``KnownValues``, from the vault or the header): name parts,
  identifiers (NHS, CHI, hospital and accession numbers) and dates (of birth) are compared
  with the text, tolerant of what OCR gets wrong: ``^`` read as ``*`` or a space, spaces
  inside or missing between numbers, and look-alike characters (O and 0, I and l and 1,
  S and 5, B and 8, Z and 2, G and 6) are the same character here. Dates are tried in the
  usual orders (day first, month first, year first, with month names).
* **Generic patterns**, for text on an image whose patient we do not know: dates, times, NHS
  and CHI numbers with a valid check digit (``dicomhaven.identity``), other long numbers,
  UK postcodes and telephone numbers, DICOM-style names (``SMITH^JOHN``), and whatever
  follows a cue label such as ``Name:``, ``DOB``, ``ID:``, ``MRN``, ``Pt:``.

Each rule that fires gives a ``Finding``: the box to blank, the ``Rule`` and a score between
0 and 1. A finding never holds the text; nothing here logs it.
"""

from __future__ import annotations

import contextlib
import datetime
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from pydicom.dataset import Dataset
from rapidfuzz import fuzz
from rapidfuzz.distance import Levenshtein

from dicomhaven.identity import is_valid_chi_number, is_valid_nhs_number
from dicomhaven.pixels._ocr import Box, Word
from dicomhaven.pixels._triage import values_of

__all__ = [
    "Finding",
    "KnownValues",
    "Rule",
    "Scope",
    "find_identifiers",
    "phrases",
]


class Rule(StrEnum):
    """Why a piece of text was judged an identifier."""

    KNOWN_NAME = "known-name"  # a part of the patient's own name
    KNOWN_IDENTIFIER = "known-identifier"  # the patient's own NHS, CHI, hospital number...
    KNOWN_DATE = "known-date"  # one of the patient's own dates (of birth) in any format
    NHS_NUMBER = "nhs-number"  # ten digits with a valid NHS check digit
    CHI_NUMBER = "chi-number"  # ten digits, a real birth date and a valid check digit
    LONG_NUMBER = "long-number"  # six or more characters, four or more digits: an ID
    DATE = "date"
    TIME = "time"
    POSTCODE = "postcode"  # UK
    PHONE = "phone"  # UK
    PERSON_NAME = "person-name"  # DICOM person name written out: WORD^WORD
    CUE = "cue-label"  # the words after "Name", "DOB", "ID:", "MRN", "Pt:" ...


KNOWN_RULES = frozenset({Rule.KNOWN_NAME, Rule.KNOWN_IDENTIFIER, Rule.KNOWN_DATE})
GENERIC_RULES = frozenset(Rule) - KNOWN_RULES


class Scope(StrEnum):
    """How much a finding blanks."""

    #: Only the words that matched.
    WORDS = "words"
    #: The whole phrase the match sits in: the rest of "DAVIDSON DOUGLAS [M] 01.09.2012"
    #: goes with the name, as burned-in demographics come in lines.
    PHRASE = "phrase"


@dataclass(frozen=True)
class KnownValues:
    """A patient's own identifiers, to be looked for in the pixels. Never printed."""

    names: tuple[str, ...] = field(default=(), repr=False)
    identifiers: tuple[str, ...] = field(default=(), repr=False)
    dates: tuple[datetime.date, ...] = field(default=(), repr=False)

    @classmethod
    def from_header(cls, header: Dataset) -> KnownValues:
        """The values a DICOM header holds: Patient's Name and Other Patient Names, Patient
        ID and Other Patient IDs, Accession Number, Patient's Birth Date."""
        names = [str(header.get("PatientName", "") or "")]
        names += [str(n) for n in values_of(header.get("OtherPatientNames"))]
        identifiers = [str(header.get("PatientID", "") or "")]
        identifiers += [str(i) for i in values_of(header.get("OtherPatientIDs"))]
        for item in header.get("OtherPatientIDsSequence", []) or []:
            identifiers.append(str(item.get("PatientID", "") or ""))
        identifiers.append(str(header.get("AccessionNumber", "") or ""))
        dates = []
        born = str(header.get("PatientBirthDate", "") or "")
        if re.fullmatch(r"\d{8}", born):
            with contextlib.suppress(ValueError):  # an impossible date is no known date
                dates.append(datetime.date(int(born[:4]), int(born[4:6]), int(born[6:])))
        return cls(
            names=tuple(n for n in names if n.strip()),
            identifiers=tuple(i for i in identifiers if i.strip()),
            dates=tuple(dates),
        )


@dataclass(frozen=True)
class Finding:
    """A region judged to hold an identifier: where, by which rule, how sure (0 to 1)."""

    box: Box
    rule: Rule
    score: float


# --------------------------------------------------------------------------- phrases


def _vertical(word: Word) -> bool:
    return word.box.height > 1.5 * word.box.width and len(word.text) >= 2


def phrases(words: Iterable[Word], *, gap: float = 1.2) -> list[list[Word]]:
    """Words grouped into phrases, each in reading order: same line (or, for vertical text,
    same column) and separated by at most ``gap`` times the text's height."""
    horizontal: list[Word] = []
    vertical: list[Word] = []
    for word in words:
        (vertical if _vertical(word) else horizontal).append(word)
    return _group(horizontal, gap, vertical=False) + _group(vertical, gap, vertical=True)


def _group(words: list[Word], gap: float, *, vertical: bool) -> list[list[Word]]:
    def across(b: Box) -> tuple[float, float]:  # position and size across the line
        return ((b.x0 + b.x1) / 2, b.width) if vertical else ((b.y0 + b.y1) / 2, b.height)

    def along(b: Box) -> tuple[int, int]:
        return (b.y0, b.y1) if vertical else (b.x0, b.x1)

    lines: list[list[Word]] = []
    for word in sorted(words, key=lambda w: across(w.box)[0]):
        centre, size = across(word.box)
        for line in lines:
            line_centre, line_size = across(line[-1].box)
            if abs(centre - line_centre) <= 0.5 * min(size, line_size):
                line.append(word)
                break
        else:
            lines.append([word])
    result: list[list[Word]] = []
    for line in lines:
        line.sort(key=lambda w: along(w.box)[0])
        current = [line[0]]
        for word in line[1:]:
            size = max(across(current[-1].box)[1], across(word.box)[1])
            if along(word.box)[0] - along(current[-1].box)[1] > gap * size:
                result.append(current)
                current = [word]
            else:
                current.append(word)
        result.append(current)
    return result


# --------------------------------------------------------------------------- normalising

#: Look-alike characters made one, for comparing OCR text with a known value.
_CANONICAL = str.maketrans("OQIL|!SBZG", "0011115826")
#: Letters OCR puts for digits, for reading a token that is mostly digits.
_DIGITS = str.maketrans("OoQDUIl|!iZzSsGbTBgq", "00000111112255667899")
_TOKEN = re.compile(r"[^\W_]+")


def _upper(text: str) -> str:
    """Upper case, one character for one (so offsets stay valid)."""
    return "".join(u if len(u := c.upper()) == 1 else c for c in text)


def _canonical(text: str) -> str:
    """Letters and digits only, upper case, look-alikes made one."""
    return "".join(_TOKEN.findall(_upper(text))).translate(_CANONICAL)


def _digitised(text: str) -> str:
    """Each whitespace-separated token that is mostly digits gets its look-alike letters
    read as digits (``Q1.O9.2Ol2`` → ``01.09.2012``); the length never changes."""

    def fix(match: re.Match[str]) -> str:
        token = match.group(0)
        alnum = [c for c in token if c.isalnum()]
        digits = sum(c.isdigit() for c in alnum)
        if digits >= 2 and digits * 2 >= len(alnum):
            return token.translate(_DIGITS)
        return token

    return re.sub(r"\S+", fix, text)


# --------------------------------------------------------------------------- patterns

_MONTHS = r"(JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)[A-Z]{0,6}"
_DATE_DMY = re.compile(
    r"(?<![0-9])([0-3]?\d)\s?([./\-])\s?([0-3]?\d)\s?\2\s?(\d{4}|\d{2})(?![0-9])"
)
_DATE_YMD = re.compile(
    r"(?<![0-9])((?:18|19|20)\d\d)\s?([./\-])\s?([01]?\d)\s?\2\s?([0-3]?\d)(?![0-9])"
)
_DATE_DA = re.compile(r"(?<![0-9])((?:18|19|20)\d\d)([01]\d)([0-3]\d)(?![0-9])")
_DATE_NAMED = re.compile(
    rf"(?<![A-Z0-9])(?:[0-3]?\d\s?[\-./ ]?\s?{_MONTHS}\.?\s?[\-./, ]?\s?(?:\d{{4}}|\d{{2}})"
    rf"|{_MONTHS}\.?\s?[0-3]?\d(?:ST|ND|RD|TH)?,?\s?\d{{4}})(?![A-Z0-9])"
)
_TIME = re.compile(r"(?<![0-9:])([01]?\d|2[0-3])\s?:\s?[0-5]\d(?:\s?:\s?[0-5]\d)?(?![0-9:])")
_TEN_DIGITS = re.compile(r"(?<![0-9])\d{3}[ \-]?\d{3}[ \-]?\d{4}(?![0-9])")
_LONG_NUMBER = re.compile(r"(?<![A-Z0-9])[A-Z0-9]{6,}(?![A-Z0-9])")
_DIMENSIONS = re.compile(r"\d+X\d+")
_PHONE = re.compile(
    r"(?<![0-9+])(?:\+\s?44\s?(?:\(0\)\s?)?|0)\d{2,4}[ \-]?\d{3,4}[ \-]?\d{3,4}(?![0-9])"
)
_POSTCODE = re.compile(r"(?<![A-Z0-9])[A-Z]{1,2}\d[A-Z0-9]?\s?\d[A-Z]{2}(?![A-Z0-9])")
_PERSON_NAME = re.compile(r"(?<![A-Za-z])[A-Za-z][A-Za-z'\-]+\s?[\^*~]\s?[A-Za-z][A-Za-z'\-]+")

#: Labels whose next words are an identifier, colon or not.
STRONG_CUES = frozenset(
    [
        "NAME",
        "PATIENT",
        "PATIENTNAME",
        "PATNAME",
        "DOB",
        "BIRTH",
        "BORN",
        "MRN",
        "NHS",
        "CHI",
        "HOSP",
        "HOSPITAL",
        "PID",
        "URN",
        "ACCESSION",
    ]
)
#: Short labels that are ordinary words too: a cue only with ``:``, ``#`` or ``.`` after.
WEAK_CUES = frozenset({"ID", "PT", "NO", "NUMBER", "ACC", "REG", "SEX", "AGE", "MR", "HN"})
_CUE = re.compile(r"^[^A-Z]*([A-Z](?:[A-Z]|\.(?=[A-Z]))*)\s*([:#.]?)(.*)$")


def _plausible_date(first: int, second: int) -> bool:
    return 1 <= first <= 31 and 1 <= second <= 31 and (first <= 12 or second <= 12)


def _date_forms(date: datetime.date) -> set[str]:
    d, m, y = date.day, date.month, date.year
    yy = y % 100
    month = date.strftime("%b").upper()
    forms = {
        f"{d:02d}{m:02d}{y}",
        f"{m:02d}{d:02d}{y}",
        f"{y}{m:02d}{d:02d}",
        f"{d:02d}{m:02d}{yy:02d}",
        f"{m:02d}{d:02d}{yy:02d}",
        f"{d}{m}{y}",
        f"{m}{d}{y}",
        f"{d:02d}{month}{y}",
        f"{d}{month}{y}",
        f"{d:02d}{month}{yy:02d}",
        f"{month}{d:02d}{y}",
        f"{month}{d}{y}",
    }
    return {f.translate(_CANONICAL) for f in forms}


def _name_parts(names: Iterable[str]) -> set[str]:
    parts: set[str] = set()
    for name in names:
        parts.update(_canonical(p) for p in re.split(r"[\s^,]+", name) if _canonical(p))
    return parts


def _full_names(names: Iterable[str]) -> set[str]:
    """Every name compacted, in its order and reversed (SMITHJOHN and JOHNSMITH)."""
    full: set[str] = set()
    for name in names:
        parts = [_canonical(p) for p in re.split(r"[\s^,]+", name) if _canonical(p)]
        if len(parts) >= 2:
            full.add("".join(parts))
            full.add("".join(reversed(parts)))
    return full


def _allowed_edits(length: int) -> int:
    return 0 if length <= 3 else 1 if length <= 6 else 2


# --------------------------------------------------------------------------- matching


@dataclass
class _Phrase:
    words: list[Word]
    text: str = ""
    starts: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        offset = 0
        pieces = []
        for word in self.words:
            self.starts.append(offset)
            pieces.append(word.text)
            offset += len(word.text) + 1
        self.text = " ".join(pieces)

    def span(self, start: int, end: int) -> list[int]:
        """Indexes of the words a character span [start, end) touches."""
        return [
            i
            for i, (s, w) in enumerate(zip(self.starts, self.words, strict=True))
            if s < end and start < s + len(w.text)
        ]


def find_identifiers(
    words: Sequence[Word],
    known: KnownValues | None = None,
    *,
    rules: Iterable[Rule] | None = None,
    scope: Scope = Scope.PHRASE,
    gap: float = 1.2,
) -> list[Finding]:
    """The identifiers among ``words``: one finding per rule and region, best score kept.

    ``rules`` defaults to every rule (the known-value rules need ``known``). An unknown
    rule name is an error, never skipped.
    """
    chosen = frozenset(Rule(r) for r in rules) if rules is not None else frozenset(Rule)
    found: dict[tuple[Box, Rule], float] = {}
    for group in phrases(words, gap=gap):
        phrase = _Phrase(group)
        hits: list[tuple[list[int], Rule, float]] = []
        hits += _generic(phrase, chosen)
        if known is not None:
            hits += _known(phrase, known, chosen)
        phrase_box = _union([w.box for w in group])
        spans = {(frozenset(indexes), rule) for indexes, rule, _ in hits}
        for indexes, rule, score in hits:
            here = frozenset(indexes)
            if not here or any(r is rule and other < here for other, r in spans):
                continue  # a smaller span already holds this match
            box = phrase_box if scope is Scope.PHRASE else _union([group[i].box for i in indexes])
            key = (box, rule)
            found[key] = max(score, found.get(key, 0.0))
    return [Finding(box, rule, round(score, 3)) for (box, rule), score in found.items()]


def _union(boxes: Sequence[Box]) -> Box:
    box = boxes[0]
    for other in boxes[1:]:
        box = box.union(other)
    return box


def _generic(phrase: _Phrase, chosen: frozenset[Rule]) -> list[tuple[list[int], Rule, float]]:
    hits: list[tuple[list[int], Rule, float]] = []
    text = phrase.text
    digits = _digitised(text)
    upper = _upper(text)
    upper_digits = _upper(digits)

    def add(match: re.Match[str], rule: Rule, score: float) -> None:
        if rule in chosen:
            hits.append((phrase.span(match.start(), match.end()), rule, score))

    for m in _DATE_DMY.finditer(digits):
        if _plausible_date(int(m.group(1)), int(m.group(3))):
            add(m, Rule.DATE, 0.9)
    for m in _DATE_YMD.finditer(digits):
        if 1 <= int(m.group(3)) <= 12 and 1 <= int(m.group(4)) <= 31:
            add(m, Rule.DATE, 0.9)
    for m in _DATE_DA.finditer(digits):
        if 1 <= int(m.group(2)) <= 12 and 1 <= int(m.group(3)) <= 31:
            add(m, Rule.DATE, 0.8)
    for m in _DATE_NAMED.finditer(upper):
        add(m, Rule.DATE, 0.9)
    for m in _TIME.finditer(digits):
        add(m, Rule.TIME, 0.8)
    for m in _TEN_DIGITS.finditer(digits):
        compact = re.sub(r"\D", "", m.group(0))
        if is_valid_chi_number(compact):
            add(m, Rule.CHI_NUMBER, 1.0)
        elif is_valid_nhs_number(compact):
            add(m, Rule.NHS_NUMBER, 1.0)
    for m in _LONG_NUMBER.finditer(upper_digits):
        token = m.group(0)
        if sum(c.isdigit() for c in token) >= 4 and not _DIMENSIONS.fullmatch(token):
            add(m, Rule.LONG_NUMBER, 0.6)
    for m in _PHONE.finditer(digits):
        if 10 <= len(re.sub(r"\D", "", m.group(0).replace("+44", "0", 1))) <= 11:
            add(m, Rule.PHONE, 0.8)
    for m in _POSTCODE.finditer(upper):
        add(m, Rule.POSTCODE, 0.8)
    for m in _PERSON_NAME.finditer(text):
        add(m, Rule.PERSON_NAME, 0.7)
    if Rule.CUE in chosen:
        hits += _cues(phrase)
    return hits


def _cue(word: Word) -> tuple[bool, bool]:
    """Whether a word is a cue label, and whether a value is glued to it (``ID:1234``)."""
    match = _CUE.match(_upper(word.text))
    if match is None:
        return False, False
    label = match.group(1).replace(".", "")
    separated = bool(match.group(2))
    glued = any(c.isalnum() for c in match.group(3))
    if label == "DOB" or label in STRONG_CUES or (label in WEAK_CUES and separated):
        return True, glued
    return False, False


def _cues(phrase: _Phrase, *, follow: int = 3) -> list[tuple[list[int], Rule, float]]:
    hits: list[tuple[list[int], Rule, float]] = []
    cues = [_cue(w) for w in phrase.words]
    for i, (is_cue, glued) in enumerate(cues):
        if not is_cue:
            continue
        if glued:
            hits.append(([i], Rule.CUE, 0.8))
        value: list[int] = []
        for j in range(i + 1, min(len(phrase.words), i + 1 + follow)):
            if cues[j][0] or phrase.words[j].text.endswith(":"):
                break
            value.append(j)
        if value:
            hits.append((value, Rule.CUE, 0.8))
    return hits


def _known(
    phrase: _Phrase, known: KnownValues, chosen: frozenset[Rule]
) -> list[tuple[list[int], Rule, float]]:
    hits: list[tuple[list[int], Rule, float]] = []
    words = phrase.words
    if Rule.KNOWN_NAME in chosen and known.names:
        parts = _name_parts(known.names)
        full = _full_names(known.names)
        for i, word in enumerate(words):
            best = 0.0
            compact = _canonical(word.text)
            for token in _TOKEN.findall(_upper(word.text)):
                canon = token.translate(_CANONICAL)
                for part in parts:
                    allowed = _allowed_edits(len(part))
                    if abs(len(canon) - len(part)) > allowed:
                        continue
                    distance = Levenshtein.distance(canon, part, score_cutoff=allowed)
                    if distance <= allowed:
                        best = max(best, 1.0 - distance / max(len(part), 1))
            if any(_glued(part, compact, parts) for part in parts):
                best = max(best, 0.9)
            if best:
                hits.append(([i], Rule.KNOWN_NAME, best))
        for n in range(2, min(4, len(words)) + 1):
            for i in range(len(words) - n + 1):
                compact = "".join(_canonical(w.text) for w in words[i : i + n])
                for name in full:
                    allowed = _allowed_edits(len(name))
                    if Levenshtein.distance(compact, name, score_cutoff=allowed) <= allowed:
                        hits.append((list(range(i, i + n)), Rule.KNOWN_NAME, 1.0))
    checks: list[tuple[Rule, set[str]]] = []
    if Rule.KNOWN_IDENTIFIER in chosen and known.identifiers:
        checks.append(
            (Rule.KNOWN_IDENTIFIER, {c for i in known.identifiers if len(c := _canonical(i)) >= 3})
        )
    if Rule.KNOWN_DATE in chosen and known.dates:
        checks.append((Rule.KNOWN_DATE, set().union(*(_date_forms(d) for d in known.dates))))
    for rule, values in checks:
        for n in range(1, min(4, len(words)) + 1):
            for i in range(len(words) - n + 1):
                compact = "".join(_canonical(_digitised(w.text)) for w in words[i : i + n])
                score = max((_similarity(compact, v) for v in values), default=0.0)
                if score:
                    hits.append((list(range(i, i + n)), rule, score))
    return hits


#: Labels a name is glued to when OCR drops the space or colon (``NAME:SMITH``).
_NAME_LABELS = frozenset(_canonical(c) for c in (*STRONG_CUES, "PT", "MR", "MRS", "MS", "DR"))


def _glued(part: str, compact: str, parts: set[str]) -> bool:
    """Whether a name part sits in a word glued to what may stand beside a name: the other
    name parts (``SMITHJOHN``), a label (``NAME5MITH``) or digits; ``JOHNSTONE`` is not
    ``JOHN``."""
    if len(part) < 4 or part not in compact:
        return False
    rest = compact.replace(part, " ", 1).split()
    return all(r in parts or r in _NAME_LABELS or r.isdigit() for r in rest)


def _similarity(text: str, value: str) -> float:
    """How well OCR'd ``text`` holds a known ``value`` (both canonical): 1 when equal or
    contained, less for an edit or two, 0 when too different."""
    if not text:
        return 0.0
    if text == value:
        return 1.0
    if len(value) >= 5 and value in text:
        return 1.0
    allowed = 1 if len(value) >= 6 else 0
    if allowed and Levenshtein.distance(text, value, score_cutoff=allowed) <= allowed:
        return 1.0 - 1.0 / len(value)
    if len(value) >= 8 and len(text) >= len(value):
        partial = fuzz.partial_ratio(value, text, score_cutoff=90)
        if partial:
            return float(partial) / 100.0 * 0.9
    return 0.0
