"""The unmapped terms of many headers, with their counts: the data managers' list of the
words to map (a rule) or to ignore (an ``ignore`` entry) in the site's vocabulary.

A word is listed only when it was found for at least ``min_patients`` patients (distinct
Patient IDs; headers without one count as one unknown patient). The word filter
(:mod:`._terms`) keeps out what looks like a name, a number or a date, but a rare name
typed alone into a description can look like any other word; typed for one patient, it
never reaches the list, while the vocabulary of devices and protocols recurs across
patients by its nature.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from dicomhaven.vocabulary._mapping import Vocabulary, default_vocabulary
from dicomhaven.vocabulary._normalise import _UNREADABLE, Header, normalise

__all__ = ["MIN_PATIENTS", "UnmappedTerm", "unmapped_terms"]

#: The fewest patients a word must be found for to be listed.
MIN_PATIENTS = 5


@dataclass(frozen=True)
class UnmappedTerm:
    """A word the vocabulary does not know: the headers and the patients it was found for."""

    term: str
    count: int
    patients: int


def unmapped_terms(
    headers: Iterable[Header],
    vocabulary: Vocabulary | None = None,
    *,
    min_patients: int = MIN_PATIENTS,
) -> list[UnmappedTerm]:
    """The unmapped terms (:attr:`Normalised.unmapped_terms`) of ``headers`` found for at
    least ``min_patients`` patients, the most headers first (then alphabetical)."""
    if min_patients < 2:
        raise ValueError(
            f"min_patients is at least 2, not {min_patients}: a word found for one patient "
            "alone may be that patient's name"
        )
    vocabulary = vocabulary if vocabulary is not None else default_vocabulary()
    counts: Counter[str] = Counter()
    patients: defaultdict[str, set[str]] = defaultdict(set)
    for header in headers:
        terms = normalise(header, vocabulary).unmapped_terms
        if not terms:
            continue
        patient = _patient(header)
        counts.update(terms)
        for term in terms:
            patients[term].add(patient)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [
        UnmappedTerm(term, count, len(patients[term]))
        for term, count in ranked
        if len(patients[term]) >= min_patients
    ]


def _patient(header: Header) -> str:
    """The header's Patient ID, held only to count distinct patients."""
    try:
        return str(header.get("PatientID") or "")
    except _UNREADABLE:
        return ""
