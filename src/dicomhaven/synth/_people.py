"""Fake UK patients, clinicians and the fake hospital that imaged them.

Names and places come from Faker's ``en_GB`` locale. Numbers that could otherwise reach a
real person come from ranges reserved for fiction: NHS numbers from the 999 test range and
telephone numbers from Ofcom's drama ranges. CHI numbers have no such range (see
:func:`dicomhaven.identity.generate_chi_number`).
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Callable
from dataclasses import dataclass

from faker import Faker

from dicomhaven.identity import generate_chi_number, generate_nhs_number
from dicomhaven.synth._answer_key import PatientRecord
from dicomhaven.synth._derive import derived_rng, stream_name

__all__ = ["HOSPITAL_PREFIX", "Patient", "Person", "Site", "make_patients", "make_site"]

#: Local hospital numbers (MRNs) are this prefix and seven digits; also the IssuerOfPatientID.
HOSPITAL_PREFIX = "ZZ9"  # a made-up code, so no real hospital number is imitated

# Ofcom reserves these for drama; no line is ever allocated from them.
_DRAMA_PHONE_PREFIXES = ("07700 900", "0113 496 0", "0161 496 0", "020 7946 0", "0117 496 0")

_CHI_SHARE = 0.2


@dataclass(frozen=True, slots=True)
class Person:
    """A name in DICOM order; ``pn`` is the Person Name value as written."""

    family: str
    given: tuple[str, ...]
    prefix: str = ""

    @property
    def pn(self) -> str:
        middle = " ".join(self.given[1:])
        parts = [self.family.upper(), self.given[0], middle, self.prefix]
        return "^".join(parts).rstrip("^")

    @property
    def display(self) -> str:
        """How a letter or report would write the name, e.g. ``Dr Ann Lee``."""
        return " ".join(w for w in (self.prefix, self.given[0], self.family) if w)


@dataclass(frozen=True, slots=True)
class Patient:
    """One fake patient with every identifier a UK hospital would hold."""

    index: int
    name: Person
    sex: str
    birth_date: datetime.date
    address: str
    postcode: str
    phone: str
    nhs_number: str
    chi_number: str | None
    hospital_number: str
    clinician: Person

    @property
    def folder(self) -> str:
        """The patient's folder name: the index only, never an identifier."""
        return f"P{self.index:04d}"

    def record(self) -> PatientRecord:
        return PatientRecord(
            index=self.index,
            nhs_number=self.nhs_number,
            chi_number=self.chi_number,
            hospital_number=self.hospital_number,
            family_name=self.name.family,
            given_names=self.name.given,
            birth_date=self.birth_date.strftime("%Y%m%d"),
            sex=self.sex,
            address=self.address,
            postcode=self.postcode,
            phone=self.phone,
            referring_clinician=self.clinician.pn,
        )


@dataclass(frozen=True, slots=True)
class Site:
    """The fake hospital trust: two hospitals, its staff and its scanner rooms."""

    institutions: tuple[str, ...]
    institution_addresses: tuple[str, ...]
    operators: tuple[Person, ...]
    radiologists: tuple[Person, ...]


def _faker(seed: int, *parts: object) -> Faker:
    fake = Faker("en_GB")
    fake.seed_instance(stream_name(seed, *parts))
    return fake


def _person(fake: Faker, rng: random.Random, sex: str, prefix: str = "") -> Person:
    first = fake.first_name_female() if sex == "F" else fake.first_name_male()
    given: tuple[str, ...] = (first,)
    if rng.random() < 0.35:
        middle = fake.first_name_female() if sex == "F" else fake.first_name_male()
        if middle != first:
            given = (first, middle)
    return Person(family=fake.last_name(), given=given, prefix=prefix)


def _street_address(fake: Faker, rng: random.Random) -> str:
    return f"{rng.randint(1, 240)} {fake.street_name()}, {fake.city()}"


def make_site(seed: int) -> Site:
    """The trust every patient of this seed attended."""
    fake = _faker(seed, "site")
    rng = derived_rng(seed, "site")
    towns = [fake.city() for _ in range(2)]
    institutions = (f"{towns[0]} General Hospital", f"{towns[1]} Community Hospital")
    addresses = tuple(
        f"{rng.randint(1, 240)} {fake.street_name()}, {town}, {fake.postcode()}" for town in towns
    )
    operators = tuple(_person(fake, rng, rng.choice("FM")) for _ in range(4))
    radiologists = tuple(_person(fake, rng, rng.choice("FM"), prefix="Dr") for _ in range(3))
    return Site(institutions, addresses, operators, radiologists)


def _phone(rng: random.Random) -> str:
    return rng.choice(_DRAMA_PHONE_PREFIXES) + f"{rng.randrange(1000):03d}"


def _unique(draw: Callable[[], str], used: set[str]) -> str:
    while True:
        value = draw()
        if value not in used:
            used.add(value)
            return value


def make_patients(seed: int, count: int, site: Site) -> list[Patient]:
    """``count`` patients; patient ``i`` is the same whatever ``count`` is.

    Family names, NHS, CHI and hospital numbers, postcodes and phone numbers are unique
    across the site (staff family names included), so finding one patient's identifier in
    another's file is always a leak. Patient 0 is always female and always has a CHI number,
    so even a one-patient site has every kind of study and identifier.
    """
    used = {person.family for person in (*site.operators, *site.radiologists)}
    return [_make_patient(seed, index, used) for index in range(count)]


def _make_patient(seed: int, index: int, used: set[str]) -> Patient:
    rng = derived_rng(seed, "patient", index)
    fake = _faker(seed, "patient", index)
    sex = "F" if index == 0 or rng.random() < 0.6 else "M"
    if index == 0:  # of screening age, since she always has mammograms
        birth_date = datetime.date(1948, 1, 1) + datetime.timedelta(days=rng.randrange(7_300))
    else:
        birth_date = datetime.date(1940, 1, 1) + datetime.timedelta(days=rng.randrange(18_262))
    name = _unique_person(fake, rng, sex, used)
    clinician = _unique_person(fake, rng, rng.choice("FM"), used, prefix="Dr")
    nhs = _unique(lambda: generate_nhs_number(rng), used)
    chi = None
    if rng.random() < _CHI_SHARE or index == 0:
        chi = _unique(lambda: generate_chi_number(rng, birth_date, sex), used)
    hospital = _unique(lambda: f"{HOSPITAL_PREFIX}{rng.randrange(10**7):07d}", used)
    return Patient(
        index=index,
        name=name,
        sex=sex,
        birth_date=birth_date,
        address=_street_address(fake, rng),
        postcode=_unique(fake.postcode, used),
        phone=_unique(lambda: _phone(rng), used),
        nhs_number=nhs,
        chi_number=chi,
        hospital_number=hospital,
        clinician=clinician,
    )


def _unique_person(
    fake: Faker, rng: random.Random, sex: str, used: set[str], prefix: str = ""
) -> Person:
    while True:
        person = _person(fake, rng, sex, prefix)
        if person.family not in used:
            used.add(person.family)
            return person
