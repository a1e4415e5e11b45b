"""Attribute Types from the standard's IOD tables, and combined codes resolved by them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import highdicom
import pytest

from dicomhaven.deid import AttributeType, attribute_rule, attribute_types, iod_name, resolve_action

CT = "1.2.840.10008.5.1.4.1.1.2"
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"


def test_ct_types_come_from_the_standard() -> None:
    assert iod_name(CT) == "ct-image"
    types = attribute_types(CT)
    assert types[("PatientID",)] is AttributeType.TYPE_2
    assert types[("PatientName",)] is AttributeType.TYPE_2
    assert types[("StudyInstanceUID",)] is AttributeType.TYPE_1
    assert types[("AccessionNumber",)] is AttributeType.TYPE_2
    assert types[("Rows",)] is AttributeType.TYPE_1
    assert ("InstitutionName",) in types and types[("InstitutionName",)] is AttributeType.TYPE_3


def test_nested_paths_are_typed() -> None:
    types = attribute_types(COMPREHENSIVE_SR)
    nested = [p for p in types if len(p) > 1]
    assert nested
    assert all(isinstance(t, AttributeType) for t in types.values())


def test_unknown_sop_class_has_no_types() -> None:
    assert iod_name("1.2.3.4") is None
    assert attribute_types("1.2.3.4") == {}


@pytest.mark.parametrize(
    ("code", "kind", "expected"),
    [
        ("X/Z", AttributeType.TYPE_2, "Z"),
        ("X/Z", AttributeType.TYPE_3, "X"),
        ("X/Z", None, "X"),
        ("X/D", AttributeType.TYPE_1, "D"),
        ("X/D", AttributeType.TYPE_3, "X"),
        ("X/Z/D", AttributeType.TYPE_1, "D"),
        ("X/Z/D", AttributeType.TYPE_1C, "D"),
        ("X/Z/D", AttributeType.TYPE_2, "Z"),
        ("X/Z/D", AttributeType.TYPE_3, "X"),
        ("Z/D", AttributeType.TYPE_1, "D"),
        ("Z/D", AttributeType.TYPE_2, "Z"),
        ("Z/D", None, "Z"),
        ("X/Z/U*", AttributeType.TYPE_1, "U"),
        ("X/Z/U*", AttributeType.TYPE_2, "U"),
        ("X/Z/U*", AttributeType.TYPE_3, "U"),
        ("X/Z/U*", None, "U"),
        ("U", AttributeType.TYPE_1, "U"),
    ],
)
def test_combined_codes(code: str, kind: AttributeType | None, expected: str) -> None:
    assert resolve_action(code, kind) == expected


def test_patient_id_in_a_ct_is_emptied_not_removed() -> None:
    rule = attribute_rule(0x00100020)
    assert rule is not None
    kind = attribute_types(CT)[("PatientID",)]
    assert resolve_action(rule.action(), kind) == "Z"


def test_every_combined_code_in_the_table_resolves() -> None:
    from dicomhaven.deid import attribute_rules

    for rule in attribute_rules():
        for kind in [*AttributeType, None]:
            assert resolve_action(rule.basic, kind) in {"D", "Z", "X", "K", "C", "U"}


def _from_highdicom(sop_class_uid: str) -> dict[tuple[str, ...], str]:
    """The Types as highdicom's JSON tables give them, read the slow way."""
    folder = Path(highdicom.__file__).parent / "_standard"
    sop_iod = json.loads((folder / "sop_class_iod_map.json").read_text())
    iod_modules = json.loads((folder / "iod_module_map.json").read_text())
    module_attributes = json.loads((folder / "module_attribute_map.json").read_text())
    strictness = {"1": 5, "1C": 4, "2": 3, "2C": 2, "3": 1}
    found: dict[tuple[str, ...], str] = {}
    for module in iod_modules.get(sop_iod[sop_class_uid], []):
        for attribute in module_attributes.get(module["key"], []):
            path = (*attribute["path"], attribute["keyword"])
            kind = attribute["type"] if attribute["type"] in strictness else "3"
            if strictness[kind] > strictness.get(found.get(path, ""), 0):
                found[path] = kind
    return found


@pytest.mark.parametrize(
    "sop_class_uid",
    [
        "1.2.840.10008.5.1.4.1.1.2",  # CT Image
        "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR Image: functional groups, deep paths
        "1.2.840.10008.5.1.4.1.1.1.2",  # Digital Mammography X-Ray Image - For Presentation
        "1.2.840.10008.5.1.4.1.1.88.67",  # X-Ray Radiation Dose SR
        "1.2.840.10008.5.1.4.1.1.6.1",  # Ultrasound Image
    ],
)
def test_the_generated_table_agrees_with_highdicoms_json(sop_class_uid: str) -> None:
    generated = {path: kind.value for path, kind in attribute_types(sop_class_uid).items()}
    assert generated == _from_highdicom(sop_class_uid)


def test_the_generated_table_is_not_stale() -> None:
    script = Path(__file__).resolve().parents[2] / "scripts" / "generate_iod_types.py"
    done = subprocess.run([sys.executable, script, "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_reading_the_table_does_not_import_highdicom() -> None:
    code = (
        f"import sys, dicomhaven.deid._iod as iod; iod.attribute_types({CT!r}); "
        "print('highdicom' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
