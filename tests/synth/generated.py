"""The shared synthetic site that the synth tests read: its seed, size and what it returned,
and the smaller exports cut from it for tests that need a few patients or kinds, not all."""

from __future__ import annotations

import dataclasses
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dicomhaven.synth import AnswerKey, FileRecord, generate_site

SEED = 7
PATIENTS = 6


@dataclass(frozen=True)
class GeneratedSite:
    root: Path
    key: AnswerKey
    progress: list[tuple[int, int]]


def generate(root: Path) -> GeneratedSite:
    """Generate the shared site; any warning (pydicom checks every value) is an error."""
    calls: list[tuple[int, int]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        key = generate_site(
            root,
            patients=PATIENTS,
            seed=SEED,
            progress=lambda done, total: calls.append((done, total)),
        )
    return GeneratedSite(root, key, calls)


def subset(site: GeneratedSite, root: Path, keep: Callable[[FileRecord], bool]) -> GeneratedSite:
    """The files of ``site`` that ``keep`` selects, copied under ``root/export``, with the
    answer key cut to them (their patients and plants only).

    Importing the whole site makes the pixel stage read every risky image (each frame of a
    cine clip); a test about pseudonyms or recorded profiles needs only the patients or kinds
    its assertion is about. The copies are byte-identical, so OCR results cached in the test
    process serve the whole site's import too.
    """
    files = tuple(record for record in site.key.files if keep(record))
    if not files:
        raise ValueError("the subset selects no file of the synthetic site")
    for record in files:
        target = root / record.path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(site.root / record.path, target)
    paths = {record.path for record in files}
    patients = {record.patient for record in files}
    key = dataclasses.replace(
        site.key,
        patients=tuple(p for p in site.key.patients if p.index in patients),
        files=files,
        plants=tuple(p for p in site.key.plants if p.path in paths),
    )
    return GeneratedSite(root, key, [])
