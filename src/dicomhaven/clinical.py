"""Linked clinical data: CSV rows keyed by NHS number, stored under the master pseudonym.

Columns must be in the vocabulary below, directly or through a mapping file::

    # mapping.yaml
    columns:
      NHS No: nhs_number
      Biopsy: biopsy_result
      Free-text notes: ignore      # dropped on purpose; never stored

Every ``*_date`` field is shifted by the patient's own date offset (the same one the
limited-access images get), so intervals between a patient's images and outcomes hold.
Rows whose NHS number fails validation are reported by row number and not stored; the
NHS number itself is never stored, logged or echoed.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from dicomhaven.catalogue import ClinicalRecord, make_engine, make_sessionmaker
from dicomhaven.errors import ConfigError, InvalidIdentifier
from dicomhaven.identity import SITE_PROJECT, PatientIdentifier, ProjectKeys, Scheme
from dicomhaven.site import Site

__all__ = ["IGNORE", "VOCABULARY", "ClinicalImport", "import_clinical", "load_mapping"]

#: The common vocabulary of linked clinical data (field → meaning).
VOCABULARY: dict[str, str] = {
    "nhs_number": "the patient's NHS number (used to find the pseudonym, never stored)",
    "screening_episode": "screening episode identifier or round number",
    "episode_date": "date of the screening episode",
    "biopsy_result": "biopsy result (e.g. B1-B5)",
    "biopsy_date": "date of biopsy",
    "diagnosis": "diagnosis (e.g. invasive ductal carcinoma)",
    "diagnosis_date": "date of diagnosis",
    "cancer_grade": "histological grade (1-3)",
    "tumour_size_mm": "largest tumour dimension in millimetres",
    "laterality": "left, right or bilateral",
    "outcome": "outcome (e.g. recall, treated, no cancer at follow-up)",
    "outcome_date": "date of outcome",
}
IGNORE = "ignore"
_DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%Y%m%d")


@dataclass
class ClinicalImport:
    rows: int = 0
    stored: int = 0
    invalid: list[tuple[int, str]] = field(default_factory=list)  # (row number, reason)

    def as_dict(self) -> dict[str, object]:
        return {
            "rows": self.rows,
            "stored": self.stored,
            "invalid": [{"row": n, "reason": r} for n, r in self.invalid],
        }


def load_mapping(path: Path | None) -> dict[str, str]:
    """Column name → vocabulary field (or ``ignore``); refuses unknown targets with file:line."""
    if path is None:
        return {}
    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict) or set(data) - {"columns"}:
        raise ConfigError(f"{path}: expected one key, 'columns', mapping CSV columns to fields")
    columns = data.get("columns") or {}
    node = yaml.compose(text)
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == "columns" and isinstance(value, yaml.MappingNode):
                lines = {str(k.value): k.start_mark.line + 1 for k, _ in value.value}
    mapping: dict[str, str] = {}
    for column, target in columns.items():
        if target != IGNORE and target not in VOCABULARY:
            raise ConfigError(
                f"{path}:{lines.get(str(column), 1)}: column '{column}' maps to unknown field "
                f"'{target}'; fields are: {', '.join(VOCABULARY)}, or '{IGNORE}'"
            )
        mapping[str(column)] = str(target)
    return mapping


def _shift(value: str, days: int) -> str:
    for fmt in _DATE_FORMATS:
        try:
            date = datetime.datetime.strptime(value.strip(), fmt).date()
        except ValueError:
            continue
        return (date + datetime.timedelta(days=days)).isoformat()
    raise ValueError("not a date in YYYY-MM-DD, DD/MM/YYYY or YYYYMMDD form")


def import_clinical(site: Site, csv_path: Path, mapping_path: Path | None = None) -> ClinicalImport:
    """Store each valid row under its patient's master pseudonym; report the rest."""
    mapping = load_mapping(mapping_path)
    raw = csv_path.read_bytes()
    result = ClinicalImport()
    with csv_path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        headers = reader.fieldnames or []
        fields = {h: mapping.get(h, h) for h in headers}
        unknown = [h for h, f in fields.items() if f != IGNORE and f not in VOCABULARY]
        if unknown:
            raise ConfigError(
                f"{csv_path}: unknown column(s) {', '.join(repr(u) for u in unknown)}; map them "
                f"to a field or to '{IGNORE}' in a mapping file (--mapping); fields are: "
                f"{', '.join(VOCABULARY)}"
            )
        if "nhs_number" not in fields.values():
            raise ConfigError(f"{csv_path}: no column gives 'nhs_number'")
        vault = site.open_vault()
        keys = ProjectKeys(SITE_PROJECT, vault.project_secret(SITE_PROJECT))
        records: list[ClinicalRecord] = []
        now = datetime.datetime.now(datetime.UTC)
        source = hashlib.sha256(raw).hexdigest()
        for number, row in enumerate(reader, start=2):  # row 1 is the header
            result.rows += 1
            values = {
                fields[k]: v.strip() for k, v in row.items() if k is not None and v and v.strip()
            }
            values.pop(IGNORE, None)
            try:
                identifier = PatientIdentifier(Scheme.NHS, values.pop("nhs_number", ""))
            except InvalidIdentifier as exc:
                result.invalid.append((number, str(exc)))
                continue
            pseudonym = vault.resolve([identifier])
            offset = keys.date_offset_days(pseudonym)
            try:
                data = {
                    k: (_shift(v, offset) if k.endswith("_date") and v else v)
                    for k, v in values.items()
                }
            except ValueError as exc:
                result.invalid.append((number, f"a date column: {exc}"))
                continue
            records.append(
                ClinicalRecord(
                    pseudonym=pseudonym,
                    data=json.dumps(data, sort_keys=True),
                    source=source,
                    imported_at=now,
                )
            )
    with make_sessionmaker(make_engine(site.database_url)).begin() as session:
        session.add_all(records)
    result.stored = len(records)
    return result
