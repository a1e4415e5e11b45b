"""The main job as a user runs it: ``make demo``'s script, end to end, then the canaries."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dicomhaven.synth import AnswerKey

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.integration
def test_demo_runs_and_leaks_nothing_outside_intake_and_the_vault(tmp_path: Path) -> None:
    executable = Path(sys.executable).parent / "dicomhaven"
    demo = tmp_path / "demo"
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "demo.sh"), str(executable), str(demo)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    for line in ("unaccounted: 0", "ledger consistent", "audit log intact", "20 of 20 rows stored"):
        assert line in proc.stdout
    assert "may not reidentify" in proc.stderr  # the researcher was refused

    key = AnswerKey.load(demo / "hospital" / "answer_key.json")
    values = {p.value for p in key.plants} | {p.nhs_number for p in key.patients}
    values |= {p.family_name for p in key.patients} | {p.hospital_number for p in key.patients}
    values = {v.lower() for v in values if len(v) >= 5}
    site = demo / "site"
    names = "\n".join(str(p.relative_to(site)) for p in site.rglob("*")).lower()
    assert [v for v in values if v in names] == []
    for path in site.rglob("*"):
        parts = path.relative_to(site).parts
        if path.is_file() and parts[0] not in {"intake", "vault"}:
            text = path.read_bytes().decode("latin-1").lower()
            assert [v for v in values if v in text] == [], path
    shutil.rmtree(demo)
