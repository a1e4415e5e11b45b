"""The identity stage: find the patient's identifiers in the header, get the master
pseudonym from the vault, and hold the object if the patient withdrew consent.

Which Issuer of Patient ID means an NHS or CHI number is configuration
(``nhs_issuers``, ``chi_issuers``); any other Patient ID is a local hospital number of its
issuer. An identifier that claims to be an NHS number but fails validation quarantines the
object: the stage never guesses.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pydicom.dataset import Dataset

from dicomhaven.catalogue import ObjectStatus, make_engine
from dicomhaven.consent import ConsentRegister
from dicomhaven.errors import InvalidIdentifier
from dicomhaven.identity._derivations import ProjectKeys
from dicomhaven.identity._forms import clean_value
from dicomhaven.identity._vault import IdentityConflict, PatientIdentifier, Scheme, Vault
from dicomhaven.pipeline import Outcome, PipelineObject, StageContext

__all__ = [
    "IdentityStage",
    "Resolution",
    "begin_run",
    "consent_excluded",
    "end_run",
    "identifiers_in",
    "known_identifiers",
    "known_values",
    "project_keys",
    "resolve_patient",
]

UNSPECIFIED_ISSUER = "UNSPECIFIED"
K = TypeVar("K")
V = TypeVar("V")


def _text(dataset: Dataset, keyword: str) -> str:
    """An element's value as DICOM means it (padding and what follows a NUL dropped), so
    ``ZZ91139748\\x00junk`` and ``ZZ91139748`` name the same patient."""
    return clean_value(dataset.get(keyword))


def identifiers_in(
    header: Dataset, nhs_issuers: frozenset[str], chi_issuers: frozenset[str]
) -> list[PatientIdentifier]:
    """Every patient identifier in Patient ID and Other Patient IDs Sequence.

    Raises :class:`InvalidIdentifier` (naming the attribute, never the value) when an
    identifier declared as NHS or CHI is malformed.
    """
    found: list[PatientIdentifier] = []
    candidates = [("Patient ID (0010,0020)", header)]
    for index, item in enumerate(header.get("OtherPatientIDsSequence", [])):
        candidates.append((f"Other Patient IDs Sequence (0010,1002) item {index + 1}", item))
    for where, item in candidates:
        value = _text(item, "PatientID")
        if not value:
            continue
        issuer = _text(item, "IssuerOfPatientID")
        scheme = (
            Scheme.NHS
            if issuer.upper() in nhs_issuers
            else Scheme.CHI
            if issuer.upper() in chi_issuers
            else Scheme.LOCAL
        )
        try:
            identifier = PatientIdentifier(scheme, value, issuer or UNSPECIFIED_ISSUER)
        except InvalidIdentifier as exc:
            raise InvalidIdentifier(f"{where}: {exc}") from None
        if identifier not in found:
            found.append(identifier)
    return found


# A patient sends many objects with the same identifiers: in each worker, remember what the
# vault answered (a pseudonym never changes once given) and which details it already holds,
# so the vault is asked once per patient, not once per object. Bounded, so memory is too.
_CACHE_LIMIT = 50_000


def _remember(cache: dict[K, V], key: K, value: V) -> None:
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[key] = value


@dataclass
class _Services:
    """One site's vault, consent register and settings, opened once per worker process,
    with that site's caches (never shared between sites)."""

    vault: Vault
    register: ConsentRegister
    nhs_issuers: frozenset[str]
    chi_issuers: frozenset[str]
    resolved: dict[tuple[PatientIdentifier, ...], str] = field(default_factory=dict)
    details_kept: dict[tuple[str, tuple[tuple[str, str], ...]], bool] = field(default_factory=dict)


@functools.lru_cache(maxsize=4)
def _services(site_root: Path) -> _Services:
    from dicomhaven.site import open_site

    site = open_site(site_root)
    return _Services(
        vault=site.open_vault(),
        register=ConsentRegister(make_engine(site.database_url)),
        nhs_issuers=frozenset(i.upper() for i in site.settings.nhs_issuers),
        chi_issuers=frozenset(i.upper() for i in site.settings.chi_issuers),
    )


@dataclass
class _RunMemo:
    """During a run (one ``dicomhaven deid``), what the vault holds about each patient and
    their consent, asked once per patient, not several times per file."""

    run: str
    excluded: dict[str, bool] = field(default_factory=dict)
    values: dict[str, tuple[str, ...]] = field(default_factory=dict)
    identifiers: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def forget(self, pseudonym: str) -> None:
        """Drop a patient whose vault entry this process just changed."""
        self.values.pop(pseudonym, None)
        self.identifiers.pop(pseudonym, None)


_RUNS: dict[Path, _RunMemo] = {}  # site root → its run in this process


def begin_run(site_root: Path, run: str) -> None:
    """Remember the vault's and the consent register's answers per patient from now until
    :func:`end_run`, or until a run other than ``run`` begins in this process (a worker,
    whose process ends with its run, calls it before each file). A withdrawal recorded
    while a run goes on applies from the next run; outside a run every object asks."""
    memo = _RUNS.get(site_root)
    if memo is None or memo.run != run:
        _RUNS[site_root] = _RunMemo(run)


def end_run(site_root: Path) -> None:
    """The end of a run in the process that ran it: every object asks again."""
    _RUNS.pop(site_root, None)


def _forget(site_root: Path, pseudonym: str) -> None:
    memo = _RUNS.get(site_root)
    if memo is not None:
        memo.forget(pseudonym)


@dataclass(frozen=True)
class Resolution:
    """A header's patient: the master pseudonym, or why there is none (never a value)."""

    pseudonym: str | None = None
    problem: str | None = None


def resolve_patient(site_root: Path, header: Dataset) -> Resolution:
    """The master pseudonym of the patient a header names, found (or made) in the vault.

    What the header says about the patient is kept, sealed, for cleaning text later. The
    one place where identifiers become a pseudonym: the pipeline stage and ``dicomhaven
    deid`` both come here.
    """
    services = _services(site_root)
    try:
        identifiers = identifiers_in(header, services.nhs_issuers, services.chi_issuers)
    except InvalidIdentifier as exc:
        return Resolution(problem=f"invalid patient identifier: {exc}")
    if not identifiers:
        return Resolution(
            problem="no patient identifier: Patient ID (0010,0020) and Other Patient IDs are empty"
        )
    key = tuple(identifiers)
    pseudonym = services.resolved.get(key)
    if pseudonym is None:
        try:
            pseudonym = services.vault.resolve(identifiers)
        except IdentityConflict as exc:
            return Resolution(problem=str(exc))
        _remember(services.resolved, key, pseudonym)
        _forget(site_root, pseudonym)  # the vault may have added identifiers to the patient
    details = {
        "name": _text(header, "PatientName"),
        "birth_date": _text(header, "PatientBirthDate"),
        "address": _text(header, "PatientAddress"),
        "phone": _text(header, "PatientTelephoneNumbers"),
    }
    seen = (pseudonym, tuple(sorted(details.items())))
    if seen not in services.details_kept:
        services.vault.remember_details(pseudonym, details)
        _remember(services.details_kept, seen, True)
        _forget(site_root, pseudonym)
    return Resolution(pseudonym=pseudonym)


@functools.lru_cache(maxsize=16)
def project_keys(site_root: Path, project: str) -> ProjectKeys:
    """A project's derivations, from the secret the site's vault keeps for it."""
    return ProjectKeys(project, _services(site_root).vault.project_secret(project))


@dataclass(frozen=True)
class IdentityStage:
    """Pseudonymise: identifiers → master pseudonym; consent checked."""

    name: str = "identity"

    def __call__(self, obj: PipelineObject, ctx: StageContext) -> Outcome | None:
        resolution = resolve_patient(ctx.site_root, obj.leading_header())
        if resolution.pseudonym is None:
            assert resolution.problem is not None
            return Outcome(ObjectStatus.QUARANTINED, resolution.problem, self.name)
        obj.pseudonym = resolution.pseudonym
        # Consent is asked for every object: a withdrawal must bite at once.
        if _services(ctx.site_root).register.excluded(resolution.pseudonym):
            return Outcome(ObjectStatus.QUARANTINED, "consent withdrawn", self.name)
        return None


def consent_excluded(site_root: Path, pseudonym: str) -> bool:
    """Whether the consent decision in force excludes the patient's data (once per patient
    during a run)."""
    memo = _RUNS.get(site_root)
    if memo is not None and pseudonym in memo.excluded:
        return memo.excluded[pseudonym]
    excluded = _services(site_root).register.excluded(pseudonym)
    if memo is not None:
        _remember(memo.excluded, pseudonym, excluded)
    return excluded


def known_values(site_root: Path, pseudonym: str) -> tuple[str, ...]:
    """What the vault knows about a patient (names, birth date, ...), for cleaning text."""
    memo = _RUNS.get(site_root)
    if memo is not None and pseudonym in memo.values:
        return memo.values[pseudonym]
    details = _services(site_root).vault.details_of(pseudonym)
    values = tuple(value for found in details.values() for value in found)
    if memo is not None:
        _remember(memo.values, pseudonym, values)
    return values


def known_identifiers(site_root: Path, pseudonym: str) -> tuple[str, ...]:
    """A patient's identifiers (NHS, CHI, hospital numbers), for machines to search outputs
    for (burned-in text, residual PII), never to show: that is re-identification, which
    goes through ``dicomhaven reidentify``, authorised and audited."""
    memo = _RUNS.get(site_root)
    if memo is not None and pseudonym in memo.identifiers:
        return memo.identifiers[pseudonym]
    found = tuple(i.value for i in _services(site_root).vault.identifiers_of(pseudonym))
    if memo is not None:
        _remember(memo.identifiers, pseudonym, found)
    return found
