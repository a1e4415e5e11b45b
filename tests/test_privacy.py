"""Canaries: no planted identifier may leak into logs, file names, console output or the
catalogue. Only the intake zone (identifiable originals) may hold them."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

from dicomhaven.cli import main
from dicomhaven.site import init_site
from tests.synth.generated import GeneratedSite


def planted_values(generated: GeneratedSite) -> set[str]:
    # Device and institution identity is kept, by design, in the limited-access copies the
    # header stage writes to the store or quarantine; every value that identifies a patient
    # must be gone.
    values = {plant.value for plant in generated.key.plants if plant.kind.value != "institution"}
    for patient in generated.key.patients:
        values.update(
            v
            for v in (patient.nhs_number, patient.hospital_number, patient.family_name,
                      patient.birth_date, patient.chi_number, patient.phone, patient.postcode)
            if v
        )  # fmt: skip
    # Very short values (a two-letter initial, say) would match by chance.
    return {v for v in values if len(v) >= 5}


@functools.cache
def _pattern(values: frozenset[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(v.lower()) for v in sorted(values, key=len, reverse=True))
    return re.compile(rf"(?<![a-z0-9])(?:{alternatives})(?![a-z0-9])")


def leaks(text: str, values: set[str]) -> list[str]:
    """Values found in ``text`` as whole words (so the family name "North" is not found in
    the manufacturer "Northwind"); one pass over the text for all values."""
    return sorted(set(_pattern(frozenset(values)).findall(text.lower())))


@pytest.mark.integration
def test_import_leaks_no_identifier_outside_intake(
    synth_site: GeneratedSite,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("DICOMHAVEN_DATABASE_URL", raising=False)
    monkeypatch.setenv("DICOMHAVEN_LOG_LEVEL", "DEBUG")
    values = planted_values(synth_site)
    assert len(values) > 20
    site = init_site(tmp_path / "site")
    export = synth_site.root / "export"
    assert main(["import", "--site", str(site.root), str(export)]) == 0
    assert main(["import", "--site", str(site.root), "--json", str(export)]) == 0
    assert main(["ledger", "--site", str(site.root), "--json"]) == 0
    console = capsys.readouterr()
    assert leaks(console.out + console.err, values) == []

    # Identity work: users, clinical data (whose comments name patients), consent,
    # re-identification. Only the clinician's own answer may show identifiers.
    root = str(site.root)
    assert main(["users", "add", "dana", "--role", "data-manager", "--site", root]) == 0
    manager = capsys.readouterr().out.strip().splitlines()[-1]
    clinical = synth_site.root / "clinical"
    assert main(["clinical", "import", str(clinical / "clinical.csv"), "--mapping",
                 str(clinical / "mapping.yaml"), "--site", root, "--token", manager]) == 0  # fmt: skip
    optout = tmp_path / "optout.txt"
    optout.write_text(synth_site.key.patients[0].nhs_number + "\n")
    assert main(["consent", "import-optout", str(optout), "--site", root, "--token", manager]) == 0
    assert main(["pseudonyms", "--site", root]) == 0
    pseudonym = capsys.readouterr().out.split()[-1]
    assert main(["patient", pseudonym, "--site", root]) == 0
    console = capsys.readouterr()
    assert leaks(console.out + console.err, values) == []
    assert main(["reidentify", pseudonym, "--reason", "canary test of the audit log",
                 "--site", root, "--token", manager]) == 0  # fmt: skip
    assert leaks(capsys.readouterr().out, values)  # the clinician's answer, on the console only

    # Every file name anywhere in the site, intake included.
    names = "\n".join(str(p.relative_to(site.root)) for p in site.root.rglob("*"))
    assert leaks(names, values) == []
    # Every byte of every file outside intake: logs, settings, the catalogue database, and
    # the vault, which is sealed.
    checked = 0
    for path in site.root.rglob("*"):
        if path.is_file() and "intake" not in path.relative_to(site.root).parts:
            content = path.read_bytes().decode("latin-1")
            assert leaks(content, values) == [], path
            checked += 1
    assert checked >= 5
    log = (site.root / "logs" / "dicomhaven.log").read_text()
    assert "import finished" in log
    # The canary is alive: the same values are there in intake, where they belong.
    intake_bytes = b"".join(p.read_bytes() for p in site.intake.rglob("*.dcm"))
    assert leaks(intake_bytes.decode("latin-1"), values)
