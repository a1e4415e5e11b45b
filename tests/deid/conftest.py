"""A de-identified copy of the shared synthetic site, made once per session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest

from dicomhaven.deid import DeidContext, Profile, deidentify, load_profile
from dicomhaven.identity import ProjectKeys
from tests.synth.generated import GeneratedSite

SECRET = bytes(range(32))


@dataclass(frozen=True)
class DeidentifiedSite:
    source: GeneratedSite
    out: Path
    profile: Profile
    keys: ProjectKeys
    masters: dict[int, str]  # patient index → master pseudonym used

    def output(self, path: str) -> Path:
        return self.out / path


def context(keys: ProjectKeys, master: str) -> DeidContext:
    return DeidContext(keys=keys, master_pseudonym=master, pseudonym=keys.pseudonym(master))


@pytest.fixture(scope="session")
def publication_site(
    synth_site: GeneratedSite, tmp_path_factory: pytest.TempPathFactory
) -> DeidentifiedSite:
    out = tmp_path_factory.mktemp("deid-publication")
    keys = ProjectKeys("test-project", SECRET)
    profile = load_profile("publication")
    masters = {p.index: f"MASTERPATIENT{p.index:03d}"[-12:] for p in synth_site.key.patients}
    for record in synth_site.key.files:
        ds = pydicom.dcmread(synth_site.root / record.path)
        deidentify(ds, profile, context(keys, masters[record.patient]))
        target = out / record.path
        target.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(target, enforce_file_format=True)
    return DeidentifiedSite(synth_site, out, profile, keys, masters)
