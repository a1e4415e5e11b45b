"""The codes the vocabulary normalises to, and lookups in the standard's tables.

Body parts are SNOMED CT codes of PS3.16 CID 4031 Common Anatomic Region or of Annex L
(the Body Part Examined defined terms and their codes); procedures are codes of PS3.16's
imaging procedure context groups, or codes a mapping file declares. The tables are
generated modules (``scripts/generate_body_parts.py``) of plain literals: no highdicom,
no pydicom.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from dicomhaven.vocabulary import _body_parts, _procedures

__all__ = [
    "SNOMED_CT",
    "Code",
    "body_part_code",
    "body_part_for_term",
    "compact_term",
    "defined_term",
    "in_cid_4031",
    "procedure_code",
    "snomed_rt_body_part",
]

#: The coding scheme designator of SNOMED CT in DICOM.
SNOMED_CT = "SCT"
#: Designators under which devices send SNOMED RT codes (``T-D3000``).
SNOMED_RT_SCHEMES = frozenset({"SRT", "SNM3"})
_NOT_TERM = re.compile(r"[^A-Z0-9]")


@dataclass(frozen=True, slots=True)
class Code:
    """A coded concept: coding scheme designator, code value and code meaning, as in a
    DICOM code sequence item."""

    scheme: str
    value: str
    meaning: str

    def __str__(self) -> str:
        return f"{self.scheme} {self.value} ({self.meaning})"


def body_part_code(value: str) -> Code | None:
    """The SCT body-part code with this code value (CID 4031 or Annex L), or None."""
    known = _body_parts.CODES.get(value)
    return Code(SNOMED_CT, value, known[0]) if known is not None else None


def in_cid_4031(value: str) -> bool:
    """Whether an SCT code value is in CID 4031 Common Anatomic Region."""
    known = _body_parts.CODES.get(value)
    return known is not None and known[1]


def body_part_for_term(term: str) -> Code | None:
    """The code of a Body Part Examined value that is an Annex L defined term, compared as
    the terms are written: upper case, without spaces or punctuation (devices send
    ``WHOLE BODY`` and ``L-SPINE`` for ``WHOLEBODY`` and ``LSPINE``)."""
    row = _body_parts.TERMS.get(compact_term(term))
    return body_part_code(row[0]) if row is not None else None


def compact_term(text: str) -> str:
    """A value as Annex L writes its defined terms: upper case letters and digits only."""
    return _NOT_TERM.sub("", text.upper())


def defined_term(code: Code) -> str | None:
    """The Annex L Body Part Examined defined term for a body-part code (the first in
    alphabetical order whose meaning is not Annex L's "Endo-" form), or None when Annex L
    has no term for it (some CID 4031 codes)."""
    return _terms_by_code().get(code.value) if code.scheme == SNOMED_CT else None


@functools.cache
def _terms_by_code() -> dict[str, str]:
    found: dict[str, str] = {}
    for term, (value, meaning, _paired) in sorted(_body_parts.TERMS.items()):
        current = found.get(value)
        if current is None or (
            _body_parts.TERMS[current][1].startswith("Endo-") and not meaning.startswith("Endo-")
        ):
            found[value] = term
    return found


def snomed_rt_body_part(value: str) -> Code | None:
    """The body-part code of a SNOMED RT code value (``T-D3000``), or None."""
    new = _body_parts.SNOMED_RT.get(value)
    return body_part_code(new) if new is not None else None


def procedure_code(scheme: str, value: str) -> Code | None:
    """A procedure code of PS3.16's imaging procedure context groups, or None."""
    known = _procedures.CODES.get((scheme, value))
    return Code(scheme, value, known[0]) if known is not None else None
