"""The generated code tables say what highdicom's and pydicom's copies of PS3.16 say, and
the vocabulary reads them without importing either package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dicomhaven.vocabulary import (
    _body_parts,
    _procedures,
    body_part_code,
    body_part_for_term,
    defined_term,
    in_cid_4031,
    procedure_code,
)

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "generate_body_parts.py"


def test_the_annex_l_table_is_highdicoms() -> None:
    from highdicom._standard_utils import get_anatomic_region_map

    expected = {
        term: (concept.value, concept.meaning, paired)
        for term, (concept, paired) in get_anatomic_region_map().items()
    }
    assert expected == _body_parts.TERMS
    assert all(
        concept.scheme_designator == "SCT" for concept, _p in get_anatomic_region_map().values()
    )


def test_cid_4031_is_pydicoms() -> None:
    from pydicom.sr.codedict import codes

    expected = {code.value: code.meaning for code in codes.cid4031.concepts.values()}
    assert {v for v, (_m, common) in _body_parts.CODES.items() if common} == set(expected)
    for value, meaning in expected.items():
        code = body_part_code(value)
        assert code is not None and code.meaning == meaning
        assert in_cid_4031(value)


def test_every_annex_l_code_is_a_body_part_code() -> None:
    for term, (value, _meaning, _paired) in _body_parts.TERMS.items():
        code = body_part_for_term(term)
        assert code is not None and code.value == value
        assert defined_term(code) is not None


def test_snomed_rt_codes_map_as_pydicom_maps_them() -> None:
    from pydicom.sr._snomed_dict import mapping

    assert _body_parts.SNOMED_RT
    for old, new in _body_parts.SNOMED_RT.items():
        assert mapping["SRT"][old] == new
        assert new in _body_parts.CODES
    assert _body_parts.SNOMED_RT["T-04000"] == "76752008"  # Breast


def test_procedure_codes_are_pydicoms_cids() -> None:
    from pydicom.sr._cid_dict import cid_concepts
    from pydicom.sr._concepts_dict import concepts

    expected: set[tuple[str, str]] = set()
    for cid in _procedures.CIDS:
        for scheme, names in cid_concepts[cid].items():
            for name in names:
                expected |= {(scheme, value) for value in concepts[scheme][name]}
    assert set(_procedures.CODES) == expected
    head_ct = procedure_code("LN", "24725-4")
    assert head_ct is not None and head_ct.meaning == "Head CT"
    assert procedure_code("LN", "0000-0") is None


def test_a_body_part_term_is_compared_as_annex_l_writes_it() -> None:
    assert body_part_for_term("L-SPINE") == body_part_for_term("LSPINE") is not None
    assert body_part_for_term("whole body") == body_part_code("38266002")
    assert body_part_for_term("NOT A PART") is None
    heart = body_part_code("80891009")
    assert heart is not None and defined_term(heart) == "HEART"  # not ENDOCARDIAC


def test_the_generated_tables_are_not_stale() -> None:
    done = subprocess.run([sys.executable, SCRIPT, "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_normalising_imports_neither_highdicom_nor_pydicom() -> None:
    code = (
        "import sys\n"
        "from dicomhaven.vocabulary import normalise\n"
        "found = normalise({'Modality': 'CT', 'StudyDescription': 'CT HEAD'})\n"
        "assert found.body_part.value == '69536005', found\n"
        "print(' '.join(m for m in ('highdicom', 'pydicom', 'numpy', 'sqlalchemy') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
