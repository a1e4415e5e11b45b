"""Making the pixels of a folder of files safe outside the pipeline (``dicomhaven redact``).

Headers are not touched (``dicomhaven deid`` does those): each file's pixels are triaged,
read, blanked and verified as in the pipeline, looking for the values its own header names
(the patient's name, identifiers and birth date) besides the generic patterns. A file made
safe is written to ``OUT/<SOP Instance UID>.dcm``; a file that cannot be made safe is not
written, and the summary says why. Input file names are never reused: a hospital's export
may name files after patients.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pydicom

from dicomhaven.collect import read_files
from dicomhaven.deid._engine import write_dataset
from dicomhaven.intake import ParsedObject, parse_object
from dicomhaven.pixels._clean import PixelOutcome, PixelPolicy, clean_pixels
from dicomhaven.pixels._match import KnownValues
from dicomhaven.pixels._templates import TemplateStore

__all__ = ["RedactSummary", "redact_paths"]


@dataclass
class RedactSummary:
    files: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    #: One line per file: input path, outcome, and the output (relative to OUT) or reason.
    results: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def held(self) -> int:
        return self.outcomes[PixelOutcome.HELD.value] + self.outcomes["skipped"]

    def as_dict(self) -> dict[str, object]:
        return {
            "files": self.files,
            "outcomes": dict(self.outcomes),
            "results": [
                {
                    "path": p,
                    "outcome": o,
                    ("output" if o != "held" and o != "skipped" else "reason"): d,
                }
                for p, o, d in self.results
            ],
        }


def redact_paths(
    paths: Sequence[Path],
    out: Path,
    *,
    policy: PixelPolicy | None = None,
    templates: TemplateStore | None = None,
    progress: Callable[[int], None] | None = None,
) -> RedactSummary:
    """Make the pixels of every readable DICOM file under ``paths`` safe, into ``out``."""
    summary = RedactSummary()
    for path, data in read_files(paths, progress):
        summary.files += 1
        if isinstance(data, str):
            _skip(summary, path, data)
            continue
        parsed = parse_object(data)
        if not isinstance(parsed, ParsedObject):
            _skip(summary, path, parsed.reason)
            continue
        dataset = pydicom.dcmread(io.BytesIO(data), force=True)
        result = clean_pixels(  # headers are not touched here: the original is the copy
            dataset,
            KnownValues.from_header(dataset),
            original=dataset,
            policy=policy,
            templates=templates,
        )
        summary.outcomes[result.outcome.value] += 1
        if result.outcome is PixelOutcome.HELD:
            summary.results.append((str(path), result.outcome.value, result.reason))
            continue
        target = out / f"{parsed.sop_instance_uid}.dcm"
        write_dataset(dataset, target)
        summary.results.append((str(path), result.outcome.value, target.name))
    return summary


def _skip(summary: RedactSummary, path: Path, reason: str) -> None:
    summary.outcomes["skipped"] += 1
    summary.results.append((str(path), "skipped", reason))
