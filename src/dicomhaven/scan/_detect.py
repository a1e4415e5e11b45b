"""What counts as personal information in a piece of text, found without the de-identifier.

The scanner is a second opinion: it shares no rule with the de-identification profiles.
Text detectors work on one value at a time and say which detector fired and where; the
scanner's rules then decide whether that matters (``dicomhaven.scan._rules``).

* **Patterns**: NHS and CHI numbers with a valid modulus-11 check digit, UK postcodes and
  telephone numbers, e-mail addresses, calendar dates in the usual written forms.
* **Network addresses**: IPv4 and IPv6 addresses (checked by ``ipaddress``), host names
  that look fully qualified (two or more labels ending in a known top-level domain), and
  URLs that carry a user name or an identifying query parameter (``patientID=``, ...).
* **Person names**: a given name followed by a family name (US census name lists, from the
  ``names`` package on PyPI: independent of the synthetic generator's lists), a title or
  cue (``Dr``, ``Mr``, ``patient``) followed by a family name, and DICOM-style names
  (``SMITH^JOHN``, both parts in the lists) written into text.
* **Known values** (the leak check): this patient's own names, identifiers and birth date,
  exact or nearly so (one edit in a long name, separators anywhere in a number). Name parts
  of any length (``LI``, ``O``) match as whole words.

A hit never holds the text: only the detector and the span, so nothing found here can end
up in a log line.
"""

from __future__ import annotations

import bisect
import datetime
import functools
import ipaddress
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from rapidfuzz.distance import Levenshtein

from dicomhaven.identity import is_valid_chi_number, is_valid_nhs_number
from dicomhaven.identity._forms import known_forms

__all__ = [
    "Detector",
    "Hit",
    "KnownIdentifiers",
    "detect_known",
    "detect_text",
    "local_number_pattern",
    "shape_pattern",
    "value_shape",
]


class Detector(StrEnum):
    """What produced a finding. Rule files name detectors by these values."""

    KNOWN_VALUE = "known-value"  # this patient's own identifier (the leak check)
    NHS_NUMBER = "nhs-number"
    CHI_NUMBER = "chi-number"
    HOSPITAL_NUMBER = "hospital-number"  # text of the shape of the site's local numbers
    POSTCODE = "postcode"
    PHONE = "phone"
    EMAIL = "email"
    DATE = "date"
    PERSON_NAME = "person-name"  # a name in text (dictionary, cue, or SMITH^JOHN form)
    NAME_ELEMENT = "name-element"  # a PN element with a value that is not the pseudonym
    IDENTIFYING_ATTRIBUTE = "identifying-attribute"  # a watched attribute has a value
    ORIGINAL_UID = "original-uid"  # a UID not made by the de-identifier nor registered
    PRIVATE_ELEMENT = "private-element"
    OVERLAY = "overlay"  # overlay or curve data: graphics drawn over the image
    NETWORK_ADDRESS = "network-address"  # an IP address or a fully qualified host name
    URL_IDENTIFIER = "url-identifier"  # a URL with a user name or an identifying parameter
    NETWORK_ATTRIBUTE = "network-attribute"  # a UR/AE value, a presentation address, RTV
    IMPLEMENTATION = "implementation"  # file meta names software that is not dicomhaven
    PREAMBLE = "preamble"  # the 128-byte preamble is neither zeros nor a TIFF header
    UNVERIFIED_UID = "unverified-uid"  # a 2.25 UID, but no project key to check it with


@dataclass(frozen=True)
class Hit:
    detector: Detector
    start: int
    end: int


@dataclass(frozen=True)
class KnownIdentifiers:
    """One patient's own values, to search outputs for. Never shown, never logged."""

    names: tuple[str, ...] = ()
    numbers: tuple[str, ...] = ()
    dates: tuple[datetime.date, ...] = ()

    @classmethod
    def of(cls, values: Iterable[str]) -> KnownIdentifiers:
        """Sort raw values (vault details, identifiers) into names, numbers and dates, each
        in every form DICOM lets it take (:func:`~dicomhaven.identity.known_forms`: padding
        and what follows a NUL dropped, name components, numbers without separators)."""
        names: list[str] = []
        numbers: list[str] = []
        dates: list[datetime.date] = []
        for value in known_forms(values):
            if re.fullmatch(r"(18|19|20)\d{6}", value):
                try:
                    dates.append(datetime.date(int(value[:4]), int(value[4:6]), int(value[6:])))
                    continue
                except ValueError:
                    pass
            if any(c.isalpha() for c in value) and sum(c.isdigit() for c in value) < 3:
                names.append(value)
            elif value:
                numbers.append(value)
        return cls(tuple(names), tuple(numbers), tuple(dates))

    def __bool__(self) -> bool:
        return bool(self.names or self.numbers or self.dates)

    @functools.cached_property
    def _name_tokens(self) -> frozenset[str]:
        tokens: set[str] = set()
        for name in self.names:
            words = _WORD.findall(name.upper().replace("^", " "))
            tokens.update(w for w in words if any(c.isalpha() for c in w))
        return frozenset(tokens)

    @functools.cached_property
    def shortest(self) -> int:
        """The length of the shortest value the leak check looks for (binary values are
        searched in runs of text down to this length)."""
        lengths = [len(n.strip()) for n in self.names if n.strip()]
        lengths += [len(d) for d in self._digit_strings] + [8] * len(self.dates)
        return min(lengths, default=0)

    def short_values(self, below: int) -> tuple[str, ...]:
        """Name parts and numbers shorter than ``below``: all a short run of text can leak."""
        return tuple(v for v in (*self._name_tokens, *self._digit_strings) if len(v) < below)

    @functools.cached_property
    def _digit_strings(self) -> tuple[str, ...]:
        out = []
        for number in self.numbers:
            compact = re.sub(r"[\s\-/]", "", number).upper()
            if len(compact) >= 5:
                out.append(compact)
        return tuple(out)

    @functools.cached_property
    def _date_patterns(self) -> tuple[re.Pattern[str], ...]:
        return tuple(_date_pattern(d) for d in self.dates)


#: A word for the leak check: letters and digits together ("CT1" is one word, so a name part
#: "CT" is not found in "CT01").
_WORD = re.compile(r"[A-Z0-9][A-Z0-9'\-]*[A-Z0-9]|[A-Z0-9]")
_WORD_SPANS = re.compile(r"[A-Za-z][A-Za-z'\-]*[A-Za-z]|[A-Za-z]")

_NUMBER_10 = re.compile(r"(?<![\d])\d{3}[ \-]?\d{3}[ \-]?\d{4}(?![\d])")
_POSTCODE = re.compile(r"\b(GIR ?0AA|[A-PR-UWYZ][A-HK-Y]?\d[A-Z\d]? ?\d[ABD-HJLNP-UW-Z]{2})\b")
_PHONE = re.compile(
    r"(?<![\d+])(?:\+44[ \-]?(?:\(0\)[ \-]?)?|\(?0)[1-9]\d{1,3}\)?[ \-]?\d{3,4}[ \-]?\d{3,4}(?![\d])"
)
_EMAIL = re.compile(r"\b[\w.%+\-]+@[\w\-]+(?:\.[\w\-]+)+\b")
_IPV4 = re.compile(
    r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w]|[.\-]\d)"
)
_IPV6 = re.compile(r"(?<![\w:.])\[?[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f.]{0,15}){2,8}\]?(?![\w:])")
_HOST = re.compile(
    r"(?<![\w.@%\-])(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,63})(?![\w\-]|\.\w)"
)
#: Top-level domains of host names (two labels suffice); any other two-letter one (a
#: country's) needs three labels, so ``e.g`` or ``Fig.AB`` is not a host.
_TLDS = frozenset(
    {"COM", "ORG", "NET", "EDU", "GOV", "MIL", "INT", "INFO", "BIZ", "IO", "AI", "CLOUD",
     "LOCAL", "LAN", "INTERNAL", "INTRANET", "LOCALDOMAIN", "CORP", "HOME", "ARPA",
     "NHS", "UK", "SCOT", "WALES", "DE", "FR", "NL", "US", "CA", "AU", "EU"}
)  # fmt: skip
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s\\]+")
_USERINFO = re.compile(r"://[^/?#\s@]+@")
#: Query parameters that name a patient, a study or a person (compared without case, "_").
_ID_PARAMS = frozenset(
    {"patientid", "patientname", "pid", "mrn", "nhs", "nhsnumber", "chi", "accession",
     "accessionnumber", "patient", "name", "dob", "birthdate", "patientbirthdate", "email",
     "user", "username", "userid", "login", "token", "key", "apikey", "password", "pw",
     "studyinstanceuid", "studyuid", "seriesinstanceuid", "sopinstanceuid", "objectuid",
     "ssn", "hospitalnumber", "otherpatientids", "issuerofpatientid"}
)  # fmt: skip
_MONTH = (
    r"(?:JAN(?:UARY)?|FEB(?:RUARY)?|MAR(?:CH)?|APR(?:IL)?|MAY|JUNE?|JULY?|AUG(?:UST)?"
    r"|SEP(?:T|TEMBER)?|OCT(?:OBER)?|NOV(?:EMBER)?|DEC(?:EMBER)?)"
)
_DATES = (
    re.compile(r"(?<![\d])(0?[1-9]|[12]\d|3[01])([./\-])(0?[1-9]|1[0-2])\2((?:18|19|20)?\d\d)(?![\d])"),
    re.compile(r"(?<![\d])((?:18|19|20)\d\d)([./\-])(0?[1-9]|1[0-2])\2(0?[1-9]|[12]\d|3[01])(?![\d])"),
    re.compile(rf"(?<![\w])(0?[1-9]|[12]\d|3[01])(?:ST|ND|RD|TH)?[ \-.]?{_MONTH}\.?[ \-.,]+((?:18|19|20)\d\d)(?![\d])", re.I),
    re.compile(rf"(?<![\w]){_MONTH}\.? (0?[1-9]|[12]\d|3[01])(?:ST|ND|RD|TH)?,? ((?:18|19|20)\d\d)(?![\d])", re.I),
)  # fmt: skip
_DICOM_NAME = re.compile(r"(?<![A-Za-z])[A-Za-z][A-Za-z'\-]+\^[A-Za-z][A-Za-z'\-]+")
#: Words after which a family name is a person's: titles and roles.
_CUES = frozenset(
    {"DR", "MR", "MRS", "MS", "MISS", "MX", "PROF", "PROFESSOR", "SIR", "DAME", "NURSE",
     "PATIENT", "PT", "CONSULTANT", "RADIOLOGIST", "SONOGRAPHER", "REFERRER", "REFERRED"}
)  # fmt: skip
#: Census "names" that are common words in radiology text; never a name on their own here.
_NOT_NAMES = frozenset(
    {"HEAD", "CHEST", "BODY", "BRAIN", "NECK", "HAND", "FOOT", "LEFT", "RIGHT", "BACK", "HIP",
     "KNEE", "LONG", "SHORT", "WHITE", "BLACK", "GREEN", "BROWN", "GRAY", "GREY", "YOUNG",
     "HILL", "KING", "NORMAL", "SCAN", "VIEW", "SERIES", "STUDY", "IMAGE", "AXIAL", "ROUTINE",
     "CONTRAST", "WITH", "WITHOUT", "AND", "THE", "FOR", "NOT", "MAY", "JUNE", "APRIL",
     "AUGUST", "MARCH", "WILL", "CAN", "SAID", "SEE", "NEW", "OLD", "SAME", "DOSE", "REPORT",
     "PROTOCOL", "PHASE", "LUNG", "LIVER", "BONE", "BREAST", "SOFT", "TISSUE", "LOW", "HIGH",
     "MASS", "LESION", "NODE", "CLEAR", "STABLE", "CHANGE", "MARK", "WARD", "PAGE", "CASE",
     "FIELD", "LINE", "POINT", "RATE", "TIME", "DATE", "NAME", "PATIENT", "MEAN", "SUM",
     "ANGLE", "WEDGE", "FILTER", "TABLE", "TUBE"}
)  # fmt: skip
_FAMILY_SHARE = 90.0  # census family names used: the most common, up to this share of people


@functools.lru_cache(maxsize=1)
def _census() -> tuple[frozenset[str], frozenset[str]]:
    """Given names and family names from the US census lists shipped by ``names``."""
    import names  # type: ignore[import-untyped]

    folder = Path(names.__file__).parent

    def read(name: str, *, share: float) -> frozenset[str]:
        # Lines are "NAME frequency cumulative rank", most common first: the names within
        # ``share`` are the lines before the first whose cumulative share exceeds it.
        lines = (folder / name).read_text(encoding="ascii").splitlines()
        within = bisect.bisect_right(lines, share, key=lambda line: float(line.split()[2]))
        return frozenset(line.split(None, 1)[0] for line in lines[:within]) - _NOT_NAMES

    given = read("dist.male.first", share=100.0) | read("dist.female.first", share=100.0)
    return given, read("dist.all.last", share=_FAMILY_SHARE)


def local_number_pattern(shapes: Iterable[str]) -> re.Pattern[str] | None:
    """One pattern for a site's hospital-number shapes (the ``hospital_number_patterns``
    setting), matched as whole words; None when the site names none. Raises ``re.error``
    for a shape that is not a regular expression (settings are checked before this)."""
    alternatives = [f"(?:{shape})" for shape in shapes if shape]
    if not alternatives:
        return None
    return re.compile(rf"(?<![A-Za-z0-9])(?:{'|'.join(alternatives)})(?![A-Za-z0-9])", re.I)


def detect_text(
    text: str,
    known: KnownIdentifiers | None = None,
    *,
    known_names: bool = True,
    local_numbers: re.Pattern[str] | None = None,
) -> list[Hit]:
    """Every detector's hits in one text value; ``known_names`` False leaves the patient's
    name parts out of the leak check (a code string such as ``HEAD`` is not a name);
    ``local_numbers`` finds text of the shape of the site's hospital numbers."""
    hits: list[Hit] = []
    upper = text.upper()
    for m in _NUMBER_10.finditer(text):
        compact = re.sub(r"\D", "", m.group(0))
        if is_valid_chi_number(compact):
            hits.append(Hit(Detector.CHI_NUMBER, m.start(), m.end()))
        elif is_valid_nhs_number(compact):
            hits.append(Hit(Detector.NHS_NUMBER, m.start(), m.end()))
    if local_numbers is not None:
        hits += (
            Hit(Detector.HOSPITAL_NUMBER, m.start(), m.end()) for m in local_numbers.finditer(text)
        )
    hits += (Hit(Detector.POSTCODE, m.start(), m.end()) for m in _POSTCODE.finditer(upper))
    hits += (Hit(Detector.PHONE, m.start(), m.end()) for m in _PHONE.finditer(text))
    hits += (Hit(Detector.EMAIL, m.start(), m.end()) for m in _EMAIL.finditer(text))
    for pattern in _DATES:
        hits += (Hit(Detector.DATE, m.start(), m.end()) for m in pattern.finditer(text))
    hits += _names(text)
    if "." in text or ":" in text:
        hits += _network(text)
    if known:
        hits += _known(text, upper, known, names=known_names)
    return hits


def _names(text: str) -> Iterator[Hit]:
    words = [(m.group(0).upper(), m.start(), m.end()) for m in _WORD_SPANS.finditer(text)]
    pairs = [
        (word, start, following, next_end)
        for (word, start, end), (following, next_start, next_end) in itertools.pairwise(words)
        if text[end:next_start] in (" ", ". ", "  ")
    ]
    dicom = list(_DICOM_NAME.finditer(text))
    if not pairs and not dicom:
        return  # no two words a name could be made of: the census lists are not needed
    given, family = _census()
    for word, start, following, next_end in pairs:
        if following not in family:
            continue
        if word.rstrip(".") in _CUES or (len(word) >= 3 and word in given):
            yield Hit(Detector.PERSON_NAME, start, next_end)
    for m in dicom:
        last, first = m.group(0).upper().split("^", 1)
        if last in family and first in given:
            yield Hit(Detector.PERSON_NAME, m.start(), m.end())


def _network(text: str) -> Iterator[Hit]:
    for m in _IPV4.finditer(text):
        yield Hit(Detector.NETWORK_ADDRESS, m.start(), m.end())
    for m in _IPV6.finditer(text):
        candidate = m.group(0).strip("[]")
        if "::" not in candidate and candidate.count(":") < 7:
            continue  # a time (12:30:45) or a ratio, not a full address
        try:
            ipaddress.IPv6Address(candidate.split("%")[0])
        except ValueError:
            continue
        if any(c in "0123456789abcdefABCDEF" for c in candidate):
            yield Hit(Detector.NETWORK_ADDRESS, m.start(), m.end())
    for m in _HOST.finditer(text):
        tld, labels = m.group(1).upper(), m.group(0).count(".") + 1
        if tld in _TLDS or (len(tld) == 2 and labels >= 3):
            yield Hit(Detector.NETWORK_ADDRESS, m.start(), m.end())
    for m in _URL.finditer(text):
        url = m.group(0)
        query = url.partition("?")[2].partition("#")[0]
        names = {p.partition("=")[0].lower().replace("_", "").replace("-", "") for p in re.split(r"[&;]", query) if "=" in p}  # fmt: skip
        if _USERINFO.search(url) or names & _ID_PARAMS:
            yield Hit(Detector.URL_IDENTIFIER, m.start(), m.end())


@functools.cache
def _standard_words() -> frozenset[str]:
    """Every word of the standard's code meanings (PS3.16, as pydicom ships them): a word
    one letter from a name part is a misspelt name unless it is one of these ("PERSON" is
    one letter from "PEARSON", and in "Person Name"). Exact name parts are found anyway.
    Read on the first near miss only."""
    import base64
    import zlib

    from dicomhaven.deid._concept_codes import CODES

    words: set[str] = set()
    for packed in CODES.values():
        text = zlib.decompress(base64.b85decode(packed)).decode()
        for line in text.split("\n"):
            for meaning in line.split("\t")[1:]:
                words.update(_WORD.findall(meaning.upper()))
    return frozenset(words)


def detect_known(text: str, known: KnownIdentifiers, *, known_names: bool = True) -> list[Hit]:
    """The leak check alone: hits of this patient's own values in ``text``."""
    return list(_known(text, text.upper(), known, names=known_names))


def _known(text: str, upper: str, known: KnownIdentifiers, *, names: bool) -> Iterator[Hit]:
    tokens = known._name_tokens if names else frozenset()
    for m in _WORD.finditer(upper) if tokens else ():
        word = m.group(0)
        if word in tokens or (
            len(word) >= 6
            and any(Levenshtein.distance(word, t, score_cutoff=1) <= 1 for t in tokens if abs(len(t) - len(word)) <= 1)
            and word not in _standard_words()
        ):  # fmt: skip
            yield Hit(Detector.KNOWN_VALUE, m.start(), m.end())
    if known._digit_strings and _any_in(known._digit_strings, upper.translate(_SEPARATORS)):
        compact, positions = _compact(upper)
        for value in known._digit_strings:
            # Plain substring search, as a regular expression of the escaped value would
            # match (left to right, not overlapping), without a pattern per patient value.
            start = compact.find(value)
            while start != -1:
                end = start + len(value)
                yield Hit(Detector.KNOWN_VALUE, positions[start], positions[end - 1] + 1)
                start = compact.find(value, end)
    for pattern in known._date_patterns:
        for m in pattern.finditer(upper):
            yield Hit(Detector.KNOWN_VALUE, m.start(), m.end())


#: The separators ``_compact`` drops, as a table for ``str.translate``.
_SEPARATORS = str.maketrans("", "", " -/\t.")


def _any_in(values: Iterable[str], text: str) -> bool:
    return any(value in text for value in values)


def _compact(text: str) -> tuple[str, list[int]]:
    """The text without separators, and where each kept character came from."""
    kept, positions = [], []
    for i, c in enumerate(text):
        if c not in " -/\t.":
            kept.append(c)
            positions.append(i)
    return "".join(kept), positions


@functools.lru_cache(maxsize=4096)  # one per patient's date, not one per file scanned
def _date_pattern(date: datetime.date) -> re.Pattern[str]:
    d, m, y = date.day, date.month, date.year
    month = date.strftime("%b").upper()
    forms = [
        f"{y}{m:02d}{d:02d}",
        rf"0?{d}[./\- ]0?{m}[./\- ](?:{y}|{y % 100:02d})",
        rf"{y}[./\- ]0?{m}[./\- ]0?{d}",
        rf"0?{d}(?:ST|ND|RD|TH)?[ \-.]?{month}[A-Z]*\.?[ \-.,]*{y}",
        rf"{month}[A-Z]*\.? 0?{d}(?:ST|ND|RD|TH)?,? {y}",
    ]
    return re.compile(r"(?<![\d])(?:" + "|".join(forms) + r")(?![\d])")


def value_shape(text: str, limit: int = 24) -> str:
    """A value's shape for grouping findings without keeping the value: letters become
    ``A``/``a``, digits ``9``; runs longer than three are shortened (``Aaaa+``)."""
    shape = []
    for c in text[:limit]:
        shape.append("A" if c.isupper() else "a" if c.isalpha() else "9" if c.isdigit() else c)
    squeezed = re.sub(r"(([Aa9])\2{3})\2+", r"\1+", "".join(shape))
    return squeezed + ("…" if len(text) > limit else "")


def shape_pattern(shape: str) -> str:
    """A regular expression for the values of one shape (see ``value_shape``)."""
    classes = {"A": "[A-Z]", "a": "[a-z]", "9": "[0-9]"}
    out: list[str] = []
    for c in shape:
        if c == "+" and out and out[-1] in classes.values():
            out.append("+")
        elif c == "…":
            out.append(".*")
        else:
            out.append(classes.get(c, re.escape(c)))
    return "^" + "".join(out) + ("" if shape.endswith("…") else "$")
