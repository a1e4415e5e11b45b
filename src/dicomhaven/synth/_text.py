"""Free text that mentions identifiers the way clinical staff type them.

The same NHS number turns up as ``999 123 4567``, ``9991234567`` or ``999-123-4567``, a
birth date as ``01/02/1960`` or ``1960-02-01``, a name in capitals or lower case. A text is
built from parts so that the answer key records each identifier exactly as it appears.
"""

from __future__ import annotations

import datetime
import random
from dataclasses import dataclass

from dicomhaven.synth._answer_key import IdentifierKind
from dicomhaven.synth._people import Patient, Person

__all__ = [
    "MONTHS",
    "Text",
    "compose",
    "date_variant",
    "name_variant",
    "nhs_variant",
    "patient_line",
]

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

Part = str | tuple[IdentifierKind, str]


@dataclass(frozen=True, slots=True)
class Text:
    """A string and the identifiers in it, each as the exact substring written."""

    value: str
    identifiers: tuple[tuple[IdentifierKind, str], ...]


def compose(*parts: Part) -> Text:
    """Join plain strings and ``(kind, identifier)`` pairs into one text."""
    out: list[str] = []
    found: list[tuple[IdentifierKind, str]] = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
        else:
            out.append(part[1])
            found.append(part)
    return Text("".join(out), tuple(found))


def name_variant(rng: random.Random, person: Person) -> str:
    """The name as someone might type it: ``Jane SMITH``, ``SMITH, Jane``, ``jane smith``."""
    given, family = person.given[0], person.family
    return rng.choice(
        (
            f"{given} {family.upper()}",
            f"{family.upper()}, {given}",
            f"{given.lower()} {family.lower()}",
            f"{given} {family}",
            f"{family.upper()} {given.upper()}",
        )
    )


def nhs_variant(rng: random.Random, number: str) -> str:
    """An NHS or CHI number spaced 3-3-4, run together, or hyphenated."""
    return rng.choice(
        (
            f"{number[:3]} {number[3:6]} {number[6:]}",
            number,
            f"{number[:3]}-{number[3:6]}-{number[6:]}",
        )
    )


def date_variant(rng: random.Random, date: datetime.date) -> str:
    """A date as dd/mm/yyyy, yyyy-mm-dd, dd.mm.yyyy, ``1 Feb 1960`` or yyyymmdd."""
    return rng.choice(
        (
            f"{date.day:02d}/{date.month:02d}/{date.year}",
            date.isoformat(),
            f"{date.day:02d}.{date.month:02d}.{date.year}",
            f"{date.day} {MONTHS[date.month - 1]} {date.year}",
            f"{date.year}{date.month:02d}{date.day:02d}",
        )
    )


def patient_line(rng: random.Random, patient: Patient) -> Text:
    """``Pt Jane SMITH DOB 01/02/1960 NHS 999 123 4567``, in one of several layouts."""
    name = (IdentifierKind.NAME, name_variant(rng, patient.name))
    dob = (IdentifierKind.BIRTH_DATE, date_variant(rng, patient.birth_date))
    nhs = (IdentifierKind.NHS_NUMBER, nhs_variant(rng, patient.nhs_number))
    layout = rng.randrange(3)
    if layout == 0:
        return compose("Pt ", name, " DOB ", dob, " NHS ", nhs)
    if layout == 1:
        return compose(name, " (", dob, ") NHS no. ", nhs)
    return compose("nhs:", nhs, " ", name, " dob ", dob)
