"""Coded entries: which parts of a code (Code Value, Code Meaning, ...) are text to clean.

Vendors write free text into coded sequences: a Code Meaning that names the patient, a
Code Value of a private scheme that is a typed note. So a code's parts are kept as they are
only when they are a recognised code of a known scheme:

- a scheme the standard's registry names (PS3.16 Table 8-1: DCM, SCT, SRT, LN, UCUM,
  RADLEX, ...) whose concepts pydicom ships (``pydicom.sr._concepts_dict``, read through
  the compact table ``scripts/generate_concept_codes.py`` makes of it): a code found
  there keeps its value, and its meaning when the meaning is the dictionary's (compared
  without case and extra spaces); any other meaning is cleaned as free text. A DCM code
  value that is not in the dictionary (DCM is defined whole by PS3.16) is cleaned as free
  text; a value of a larger scheme pydicom holds only in part (SCT, LN, ...) has only the
  patient's known values cut from it, since a pattern (a date's shape) may match a real code;
- a known scheme pydicom has no concepts for (SRT, RADLEX's codes outside CIDs, ...): the
  meaning is cleaned as free text, the value has the patient's known values cut;
- any other scheme (a private ``99...`` one, a local one, none): value, meaning,
  designator and version are cleaned as free text.

The verdict names, for each part to change, how: ``C`` clean as free text, ``N`` cut the
patient's known values only. A part it does not name is kept.
"""

from __future__ import annotations

import base64
import functools
import zlib
from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["CODE_PARTS", "KNOWN_SCHEMES", "code_verdict"]

#: The attributes of a code (PS3.3 Table 8.8-1) that can hold text.
CODE_PARTS = frozenset(
    {"CodeValue", "CodingSchemeDesignator", "CodingSchemeVersion", "CodeMeaning",
     "LongCodeValue", "URNCodeValue"}
)  # fmt: skip
#: Their tags, in order: a code's parts are read together before any is changed.
CODE_TAGS = {
    0x00080100: "CodeValue",
    0x00080102: "CodingSchemeDesignator",
    0x00080103: "CodingSchemeVersion",
    0x00080104: "CodeMeaning",
    0x00080119: "LongCodeValue",
    0x00080120: "URNCodeValue",
}
#: Coding scheme designators of PS3.16 Table 8-1 (the HL7 registered ones DICOM uses).
KNOWN_SCHEMES = frozenset(
    {"DCM", "SCT", "SRT", "SNM3", "LN", "UCUM", "RADLEX", "FMA", "NCIt", "NCIM", "UMLS",
     "MSH", "I10", "I9C", "I11", "ICD10", "ICD10PCS", "I10P", "RXNORM", "PUBCHEM_CID", "MDC",
     "BARI", "ITIS_TSN", "NEU", "NDC", "IBSI", "DCMUID", "ACR", "HPC", "NICIP", "MGI",
     "ISO3166_1", "ISO639_1", "ISO639_2", "RFC5646", "C4", "C5", "CD2", "POS", "NPI", "UPC",
     "ASTM-sigpurp", "HL7", "ATC", "CPT", "ICDO3", "UBERON", "CHEBI", "GO", "ENSG", "HGNC",
     "NCBI", "NUCC", "ISO_OID", "IETF"}
)  # fmt: skip
#: Schemes pydicom's dictionary holds whole: a code not in it is not one of theirs.
_COMPLETE = frozenset({"DCM"})
_CLEAN = "C"
_KNOWN_ONLY = "N"
_EVERY_PART: Mapping[str, str] = MappingProxyType(dict.fromkeys(CODE_PARTS, _CLEAN))
_MEANING_ONLY: Mapping[str, str] = MappingProxyType(
    {"CodeMeaning": _CLEAN, "CodeValue": _KNOWN_ONLY, "LongCodeValue": _KNOWN_ONLY,
     "URNCodeValue": _KNOWN_ONLY}
)  # fmt: skip
_KEEP: Mapping[str, str] = MappingProxyType({})


def _normal(text: str) -> str:
    return " ".join(text.split()).casefold()


@functools.cache
def _codes_of(scheme: str) -> dict[str, frozenset[str]] | None:
    """A scheme's code values → their meanings (normalised), from pydicom's concepts; None
    for a scheme pydicom has none of. Each scheme is unpacked on its first code only."""
    from dicomhaven.deid._concept_codes import CODES

    packed = CODES.get(scheme)
    if packed is None:
        return None
    text = zlib.decompress(base64.b85decode(packed)).decode()
    rows = (line.split("\t") for line in text.split("\n"))
    return {row[0]: frozenset(row[1:]) for row in rows}


@functools.lru_cache(maxsize=4096)
def code_verdict(scheme: str, value: str, meaning: str) -> Mapping[str, str]:
    """For a code's (Coding Scheme Designator, Code Value or Long Code Value, Code
    Meaning): each part to change, and how (``C`` clean, ``N`` cut known values only)."""
    scheme = scheme.strip()
    if scheme not in KNOWN_SCHEMES:
        return _EVERY_PART
    codes = _codes_of(scheme)
    if codes is None:
        return _MEANING_ONLY
    meanings = codes.get(value.strip())
    if meanings is None:
        return _EVERY_PART if scheme in _COMPLETE else _MEANING_ONLY
    if _normal(meaning) in meanings:
        return _KEEP
    return MappingProxyType({"CodeMeaning": _CLEAN})
