"""What to pull: criteria for a study-level query, and lists of identifiers read from CSV files.

Patient IDs and accession numbers are identifiers: they are sent to the PACS in queries
and never written anywhere else. Error messages name the file, the line and the column,
never the value. A job remembers its criteria as a keyed fingerprint (so a resumed run can
be checked against them) plus their non-identifying parts (modality, dates, list sizes).
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from pydicom.dataset import Dataset

from dicomhaven.errors import ConfigError

__all__ = ["Criteria", "read_id_column"]

_MODALITY = re.compile(r"^[A-Z0-9_]{1,16}$")
# Characters a C-FIND would read as wildcards or as a value separator: an identifier holding
# one would match other patients' studies (PS3.4 C.2.2.2.4, C.2.2.2.2).
_QUERY_SPECIALS = frozenset("*?\\")
_MAX_LENGTH = {"PatientID": 64, "AccessionNumber": 16}  # LO, SH


def _check_value(value: str, keyword: str, where: str) -> str:
    value = value.strip()
    if not value:
        raise ConfigError(f"{where}: empty {keyword}; remove the line or fill it in")
    if len(value) > _MAX_LENGTH[keyword]:
        raise ConfigError(
            f"{where}: {keyword} is {len(value)} characters long; DICOM allows at most "
            f"{_MAX_LENGTH[keyword]}"
        )
    if any(c in _QUERY_SPECIALS or not (0x20 <= ord(c) < 0x7F) for c in value):
        raise ConfigError(
            f"{where}: {keyword} holds a wildcard (* ?), a backslash or a non-printable "
            "character; a query would match other patients, so it is refused"
        )
    return value


def read_id_column(path: Path, keyword: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """The values of one column of a CSV file with a header row, in order, without repeats.

    The column is the first header cell matching one of ``names`` (case and spaces ignored).
    Values must be non-empty, at most as long as the attribute allows, and free of query
    wildcards. Errors name ``path:line`` and the column, never a value.
    """
    wanted = {n.lower().replace(" ", "").replace("_", "") for n in names}
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file ({exc.strerror})") from None
    with handle:
        try:
            rows = list(csv.reader(handle))
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"{path}: not a readable CSV file ({type(exc).__name__}); expected UTF-8 with "
                "a header row"
            ) from None
    if not rows:
        raise ConfigError(f"{path}:1: the file is empty; expected a header row with a column "
                          f"named {names[0]}")  # fmt: skip
    header = [cell.strip().lower().replace(" ", "").replace("_", "") for cell in rows[0]]
    column = next((i for i, cell in enumerate(header) if cell in wanted), None)
    if column is None:
        raise ConfigError(
            f"{path}:1: no column named {' or '.join(names)} in the header row "
            f"({len(header)} columns); add one"
        )
    values: dict[str, None] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue  # a blank line
        if column >= len(row):
            raise ConfigError(
                f"{path}:{line}: the row has {len(row)} columns; column {names[0]} is "
                f"number {column + 1}"
            )
        values[_check_value(row[column], keyword, f"{path}:{line}: column {names[0]}")] = None
    if not values:
        raise ConfigError(f"{path}: no {keyword} values below the header row")
    return tuple(values)


@dataclass(frozen=True)
class Criteria:
    """Which studies to pull. Every given criterion must match (AND); each list is an OR of
    its values. ``modality`` also selects the series within the matching studies."""

    modality: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    accession_numbers: tuple[str, ...] = ()
    patient_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.modality is not None and not _MODALITY.match(self.modality):
            raise ConfigError(
                f"--modality: expected a DICOM modality code such as CT, MR or MG "
                f"(capitals, digits, _; up to 16), not {self.modality!r}"
            )
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ConfigError("--from is after --to; give the earlier date first")
        for value in self.accession_numbers:
            _check_value(value, "AccessionNumber", "--accession")
        for value in self.patient_ids:
            _check_value(value, "PatientID", "--patient")

    @property
    def empty(self) -> bool:
        return not (
            self.modality
            or self.date_from
            or self.date_to
            or self.accession_numbers
            or self.patient_ids
        )

    def study_date(self) -> str:
        """The Study Date matching value: a range ``FROM-TO``, open at either end, or ''."""
        if not (self.date_from or self.date_to):
            return ""
        start = self.date_from.strftime("%Y%m%d") if self.date_from else ""
        end = self.date_to.strftime("%Y%m%d") if self.date_to else ""
        return f"{start}-{end}"

    def study_queries(self) -> list[Dataset]:
        """Study-level C-FIND identifiers: one per patient ID (or per accession number when
        there are no patient IDs), or one in all. Return keys cover what :meth:`matches`
        re-checks on the answers (a PACS may ignore a matching key it does not support)."""

        def query(**values: str) -> Dataset:
            made = Dataset()  # a fresh one each time: datasets share their elements
            made.QueryRetrieveLevel = "STUDY"
            made.StudyInstanceUID = ""
            made.StudyDate = self.study_date()
            made.ModalitiesInStudy = self.modality or ""
            made.AccessionNumber = values.get("AccessionNumber", "")
            made.PatientID = values.get("PatientID", "")
            return made

        if self.patient_ids:
            single = self.accession_numbers[0] if len(self.accession_numbers) == 1 else ""
            return [query(PatientID=p, AccessionNumber=single) for p in self.patient_ids]
        if self.accession_numbers:
            return [query(AccessionNumber=a) for a in self.accession_numbers]
        return [query()]

    def matches(self, answer: Dataset) -> bool:
        """Whether a study-level answer meets every criterion (the PACS's matching is not
        trusted: some ignore keys they do not support)."""
        accession = str(answer.get("AccessionNumber", "")).strip()
        if self.accession_numbers and accession not in self.accession_numbers:
            return False
        if self.patient_ids and str(answer.get("PatientID", "")).strip() not in self.patient_ids:
            return False
        if self.modality:
            found = answer.get("ModalitiesInStudy")
            values = [found] if isinstance(found, str) else list(found or [])
            offered = {str(v).strip() for v in values} - {""}
            if offered and self.modality not in offered:
                return False
        study_date = str(answer.get("StudyDate", "")).strip()
        if study_date and (self.date_from or self.date_to):
            start = self.date_from.strftime("%Y%m%d") if self.date_from else "00000000"
            end = self.date_to.strftime("%Y%m%d") if self.date_to else "99999999"
            if not start <= study_date <= end:
                return False
        return True

    def describe(self) -> dict[str, object]:
        """The criteria without identifiers: what a job record and a log line may hold."""
        return {
            "modality": self.modality,
            "from": self.date_from.isoformat() if self.date_from else None,
            "to": self.date_to.isoformat() if self.date_to else None,
            "accession_numbers": len(self.accession_numbers),
            "patient_ids": len(self.patient_ids),
        }

    def fingerprint(self, key: bytes) -> str:
        """A keyed hash of the whole criteria (lists sorted): equal criteria, equal prints."""
        canonical = json.dumps(
            {
                **self.describe(),
                "accession_numbers": sorted(self.accession_numbers),
                "patient_ids": sorted(self.patient_ids),
            },
            sort_keys=True,
        )
        return hmac.new(key, b"pull-criteria:" + canonical.encode(), hashlib.sha256).hexdigest()
