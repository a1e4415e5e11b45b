"""A header's body part and procedure as codes, by the vocabulary's rules.

The body part and the procedure are found independently: each is given by the first
source, by priority, that gives one. A source is a code the header already holds (an
Anatomic Region or Procedure Code Sequence item in the standard's tables), a Body Part
Examined that is an Annex L defined term, or a rule that matched (the files' rules and
the standard's words, in :attr:`Vocabulary.rules` order); at equal priority the header's
own code comes first.

Nothing here logs, and nothing it returns is taken from the header's text except
:attr:`Normalised.unmapped_terms`, whose words pass :func:`._terms.clinical_terms`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from dicomhaven.vocabulary._codes import (
    SNOMED_CT,
    SNOMED_RT_SCHEMES,
    Code,
    body_part_code,
    body_part_for_term,
    procedure_code,
    snomed_rt_body_part,
)
from dicomhaven.vocabulary._mapping import (
    CODE_SEQUENCES,
    TEXT_ATTRIBUTES,
    Vocabulary,
    default_vocabulary,
)
from dicomhaven.vocabulary._terms import clinical_terms
from dicomhaven.vocabulary._words import words

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

__all__ = ["Header", "Normalised", "normalise"]

#: A pydicom data set, or a mapping of DICOM keywords to values (sequences as lists of
#: such mappings): what the catalogue keeps of a header is enough.
Header: TypeAlias = "Mapping[str, Any] | Dataset"
#: What a header value that cannot be read raises (pydicom converts values on access).
_UNREADABLE = (ValueError, TypeError, AttributeError, LookupError)


@dataclass(frozen=True)
class Normalised:
    """A header's codes: ``matched_by`` names where each came from (``default.yaml:40
    chest (StudyDescription)``; ``body part: ...; procedure: ...`` when two sources gave
    them, empty when none did). ``unmapped_terms`` are the header's words the vocabulary
    does not know (see :mod:`._terms`), given only when it found no body part or no
    procedure: words to count, which the data managers' list shows only once they are
    found for several patients (:func:`unmapped_terms`)."""

    body_part: Code | None
    procedure: Code | None
    matched_by: str
    unmapped_terms: list[str]


# A source: the order it is tried in (-priority, then the header's own codes first), the
# code, and where it came from.
_Found = tuple[tuple[int, int], Code, str]


def normalise(header: Header, vocabulary: Vocabulary | None = None) -> Normalised:
    """The body part and procedure of one header (the shipped vocabulary by default)."""
    vocabulary = vocabulary if vocabulary is not None else default_vocabulary()
    codes = {keyword: _codes(header, keyword) for keyword in CODE_SEQUENCES}
    texts = {
        keyword: [m for _s, _v, m in codes[keyword] if m]
        if keyword in codes
        else _texts(header, keyword)
        for keyword in TEXT_ATTRIBUTES
    }  # a code sequence's text is its items' Code Meanings
    modality = next(iter(_texts(header, "Modality")), "").strip().upper()

    body, procedure = _from_the_header(vocabulary, texts, codes)
    for rank, attribute in sorted(_matches(vocabulary, texts, codes, modality).items()):
        rule = vocabulary.rules[rank]
        where = f"{rule.where} {rule.name} ({attribute})"
        key = (-rule.priority, 1)
        if rule.body_part is not None and (body is None or key < body[0]):
            body = (key, rule.body_part, where)
        if rule.procedure is not None and (procedure is None or key < procedure[0]):
            procedure = (key, rule.procedure, where)
        if body is not None and procedure is not None and max(body[0], procedure[0]) <= key:
            break  # rules come in order: none after this one can beat what was found

    unmapped: list[str] = []
    if body is None or procedure is None:
        known = vocabulary.index.known
        for values in texts.values():
            for value in values:
                for term in clinical_terms(value, known):
                    if term not in unmapped:
                        unmapped.append(term)
    return Normalised(
        body_part=body[1] if body else None,
        procedure=procedure[1] if procedure else None,
        matched_by=_matched_by(body, procedure),
        unmapped_terms=unmapped,
    )


def _from_the_header(
    vocabulary: Vocabulary,
    texts: Mapping[str, list[str]],
    codes: Mapping[str, list[tuple[str, str, str]]],
) -> tuple[_Found | None, _Found | None]:
    """The codes the header itself holds, as the standard's tables know them."""
    standard = vocabulary.standard
    body: _Found | None = None
    procedure: _Found | None = None
    if standard.anatomic_region_sequence is not None:
        for scheme, value, _meaning in codes["AnatomicRegionSequence"]:
            code = (
                body_part_code(value)
                if scheme == SNOMED_CT
                else snomed_rt_body_part(value)
                if scheme in SNOMED_RT_SCHEMES
                else None
            )
            if code is not None:
                key = (-standard.anatomic_region_sequence, 0)
                body = (key, code, f"AnatomicRegionSequence ({scheme})")
                break
    if standard.body_part_examined is not None:
        for value in texts["BodyPartExamined"]:
            code = body_part_for_term(value)
            key = (-standard.body_part_examined, 0)
            if code is not None and (body is None or key < body[0]):
                body = (key, code, "BodyPartExamined (PS3.16 Annex L)")
                break
    if standard.procedure_code_sequence is not None:
        for scheme, value, _meaning in codes["ProcedureCodeSequence"]:
            code = procedure_code(scheme, value)
            if code is not None:
                key = (-standard.procedure_code_sequence, 0)
                procedure = (key, code, f"ProcedureCodeSequence ({scheme})")
                break
    return body, procedure


def _matches(
    vocabulary: Vocabulary,
    texts: Mapping[str, list[str]],
    codes: Mapping[str, list[tuple[str, str, str]]],
    modality: str,
) -> dict[int, str]:
    """The rules that match, by rank, each with the attribute it matched first in."""
    rules, index = vocabulary.rules, vocabulary.index
    found: dict[int, str] = {}

    def hit(ranks: Iterable[int], attribute: str, *, text: bool = True) -> None:
        for rank in ranks:
            rule = rules[rank]
            if rank in found or (rule.modalities and modality not in rule.modalities):
                continue
            if not text or attribute in rule.attributes:  # codes and modality: anywhere
                found[rank] = attribute

    for attribute, values in texts.items():
        for value in values:
            said = words(value)
            for start, word in enumerate(said):
                if word not in index.first_words:
                    continue
                for end in range(start + 1, min(start + index.longest, len(said)) + 1):
                    hit(index.phrases.get(" ".join(said[start:end]), ()), attribute)
            if index.regexes:
                spaced = " ".join(said)
                hit((rank for rank, regex in index.regexes if regex.search(spaced)), attribute)
    for keyword, items in codes.items():
        for scheme, value, _meaning in items:
            hit(index.codes.get((scheme, value), ()), keyword, text=False)
    hit(index.unconditional, "Modality", text=False)
    return found


def _matched_by(body: _Found | None, procedure: _Found | None) -> str:
    if body is None or procedure is None:
        return body[2] if body else procedure[2] if procedure else ""
    if body[2] == procedure[2]:
        return body[2]
    return f"body part: {body[2]}; procedure: {procedure[2]}"


def _texts(header: Header, keyword: str) -> list[str]:
    """A text attribute's values (one per value of a multi-valued one), or none."""
    try:
        value = header.get(keyword)
    except _UNREADABLE:
        return []
    if value is None or isinstance(value, bytes | bytearray):
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, Iterable):
        return [str(v) for v in value if v is not None and not isinstance(v, bytes)]
    return [str(value)]


def _codes(header: Header, keyword: str) -> list[tuple[str, str, str]]:
    """(upper-case scheme, value, meaning) of each item of a code sequence."""
    try:
        items = header.get(keyword) or []
        found = []
        for item in items:
            scheme = str(item.get("CodingSchemeDesignator") or "").strip().upper()
            value = str(item.get("CodeValue") or item.get("LongCodeValue") or "").strip()
            meaning = str(item.get("CodeMeaning") or "")
            if scheme and value:
                found.append((scheme, value, meaning))
        return found
    except _UNREADABLE:
        return []
