"""A screening service's clinical export for the synthetic patients: CSV plus the mapping
file that translates its own column names into dicomhaven's clinical vocabulary.

The CSV uses a hospital's habits (spaced NHS numbers, dd/mm/yyyy dates, its own column
names) and has a free-text comments column that names the patient, which the mapping
drops on purpose.
"""

from __future__ import annotations

import csv
import datetime
import random
from pathlib import Path

from dicomhaven.synth._answer_key import AnswerKey

__all__ = ["MAPPING", "write_clinical"]

MAPPING = """\
# How this hospital's screening export maps onto dicomhaven's clinical vocabulary.
columns:
  NHS No: nhs_number
  Round: screening_episode
  Screen date: episode_date
  Biopsy: biopsy_result
  Biopsy date: biopsy_date
  Grade: cancer_grade
  Outcome: outcome
  Outcome date: outcome_date
  Comments: ignore
"""

_HEADER = ["NHS No", "Round", "Screen date", "Biopsy", "Biopsy date", "Grade", "Outcome",
           "Outcome date", "Comments"]  # fmt: skip


def write_clinical(out: Path, key: AnswerKey, seed: int) -> None:
    """Write ``out/clinical/clinical.csv`` and ``out/clinical/mapping.yaml``."""
    rng = random.Random(f"{seed}:clinical")
    folder = out / "clinical"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mapping.yaml").write_text(MAPPING, encoding="utf-8")
    with (folder / "clinical.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(_HEADER)
        for patient in key.patients:
            screened = datetime.date(2022, 1, 3) + datetime.timedelta(days=rng.randrange(700))
            nhs = patient.nhs_number
            row = [f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}", str(rng.randint(1, 6)),
                   screened.strftime("%d/%m/%Y")]  # fmt: skip
            if rng.random() < 0.3:
                biopsy = screened + datetime.timedelta(days=rng.randint(7, 28))
                grade = rng.choice(["1", "2", "3"])
                outcome_date = biopsy + datetime.timedelta(days=rng.randint(20, 90))
                row += [rng.choice(["B3", "B4", "B5a", "B5b"]), biopsy.strftime("%d/%m/%Y"),
                        grade, "treated", outcome_date.strftime("%d/%m/%Y")]  # fmt: skip
            else:
                row += ["", "", "", "routine recall", ""]
            row.append(f"Seen by {patient.referring_clinician}; pt {patient.family_name} happy")
            writer.writerow(row)
