"""The shared synthetic site that the synth tests read: its seed, size and what it returned."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from dicomhaven.synth import AnswerKey, generate_site

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
