"""The compact table of PS3.16's codes says what pydicom's concepts say, and reading it
does not import them (a fifth of a second of every ``deid`` that meets a code)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dicomhaven.deid._codes import _codes_of, _normal

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "generate_concept_codes.py"


def test_every_scheme_s_codes_are_pydicom_s() -> None:
    from pydicom.sr._concepts_dict import concepts

    for scheme, names in concepts.items():
        expected: dict[str, set[str]] = {}
        for entries in names.values():
            for value, (meaning, _cids) in entries.items():
                expected.setdefault(value, set()).add(_normal(meaning))
        assert _codes_of(scheme) == {v: frozenset(m) for v, m in expected.items()}, scheme
    assert _codes_of("99LOCAL") is None


def test_the_generated_table_is_not_stale() -> None:
    done = subprocess.run([sys.executable, SCRIPT, "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_verdict_does_not_import_pydicoms_concepts() -> None:
    code = (
        "import sys\n"
        "from dicomhaven.deid._codes import code_verdict\n"
        "assert code_verdict('DCM', '121320', 'Uncompressed predecessor') == {}\n"
        "assert code_verdict('DCM', '121320', 'ZZTEST Canary')\n"
        "print('pydicom.sr' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
