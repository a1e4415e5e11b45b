"""The mapping file: every mistake is a ConfigError naming the file and line, a site's file
adds to, replaces and removes the defaults, and rules match as they say."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dicomhaven.errors import ConfigError
from dicomhaven.vocabulary import (
    SITE_FILE,
    Vocabulary,
    default_vocabulary,
    load_vocabulary,
    normalise,
    site_vocabulary,
)


def _part(header: Mapping[str, object], vocabulary: Vocabulary | None = None) -> str | None:
    """The meaning of the body part a header normalises to."""
    code = normalise(header, vocabulary).body_part
    return code.meaning if code else None


def _procedure(header: Mapping[str, object]) -> str | None:
    code = normalise(header).procedure
    return code.value if code else None


def _site(tmp_path: Path, text: str) -> Path:
    path = tmp_path / SITE_FILE
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


#: (file, the line the error names, what the message says)
MISTAKES = [
    ("rules:\n  - name: x\n    words: [FOO]\n    body_part: T-12345\n", 4,
     "unknown body-part code 'T-12345' (not in CID 4031"),
    ("rules:\n  - name: x\n    words: [FOO]\n    body_part: 99999999\n", 4,
     "unknown body-part code '99999999'"),
    ("rules:\n  - name: x\n    words: [FOO]\n    procedure: LN 0000-0\n", 4,
     "unknown procedure code 'LN 0000-0'"),
    ("rules:\n  - name: x\n    words: [FOO]\n    procedure: LN24725-4\n", 4, "is not a code"),
    ("rules:\n  - name: x\n    words: [FOO]\n    body_part: HEAD\n    colour: red\n", 5,
     "unknown key 'colour' in a rule"),
    ("rules:\n  - name: x\n    words: [FOO, 12]\n    body_part: HEAD\n", 3, "12 (quote it)"),
    ("rules:\n  - name: x\n    words: [FOO, '--']\n    body_part: HEAD\n", 3, "no letters"),
    ("rules:\n  - name: x\n    regex: '(unclosed'\n    body_part: HEAD\n", 3,
     "not a regular expression"),
    ("rules:\n  - name: x\n    words: [FOO]\n    attributes: [PatientName]\n    body_part: HEAD\n",
     4, "'PatientName' is not an attribute rules read"),
    ("rules:\n  - name: x\n    words: [FOO]\n    modality: [c/t]\n    body_part: HEAD\n", 4,
     "not a Modality value"),
    ("rules:\n  - name: x\n    body_part: HEAD\n", 2, "rule 'x' matches nothing"),
    ("rules:\n  - name: x\n    words: [FOO]\n", 2, "rule 'x' gives nothing"),
    ("rules:\n  - words: [FOO]\n    body_part: HEAD\n", 2, "a rule needs a name"),
    ("rules:\n  - {name: x, words: [A], body_part: HEAD}\n  - {name: x, words: [B], body_part: HEAD}\n",
     3, "a second rule named 'x'"),
    ("rules:\n  - {name: no-such-rule, enabled: false}\n", 2,
     "no earlier rule named 'no-such-rule' to disable"),
    ("rules:\n  - {name: chest, enabled: false, words: [A]}\n", 2, "only names the rule"),
    ("rules:\n  - name: x\n    words: [FOO]\n    body_part: HEAD\n    priority: high\n", 5,
     "priority is a whole number"),
    ("colour: red\n", 1, "unknown key 'colour' in a vocabulary file"),
    ("version: 2\n", 1, "version 2 is unknown"),
    ("standard:\n  body_part_examined: yes\n", 2, "is a priority"),
    ("ignore: [ok, two words]\n", 1, "'two words' is not one"),
    ("procedure_codes:\n  - {code: LN 24725-4, meaning: Head CT}\n", 2,
     "'LN 24725-4' is a standard procedure code"),
    ("procedure_codes:\n  - {code: 99LOCAL X}\n", 2, "needs a meaning"),
    ("rules:\n  - name: x\n    name: y\n", 3, "'name' given twice"),
    ("rules:\n  - name: x\n    words: [FOO\n", 4, "not valid YAML"),
    ("- a list\n", 1, "a vocabulary file is a mapping"),
    ("rules: {name: x}\n", 1, "rules is a list"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "line", "message"), MISTAKES)
def test_a_mistake_names_the_file_and_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = _site(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_vocabulary(path)
    assert str(raised.value).startswith(f"{path}:{line}: "), str(raised.value)
    assert message in str(raised.value)


def test_a_missing_site_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"vocabulary file .*nowhere\.yaml not found"):
        load_vocabulary(tmp_path / "nowhere.yaml")


def test_a_hostile_file_is_a_config_error(tmp_path: Path) -> None:
    deep = _site(tmp_path, "rules: " + "[" * 5000 + "]" * 5000)
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_vocabulary(deep)
    laughs = [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, 40)]
    aliases = _site(tmp_path, "\n".join(["a0: &a0 [x]", *laughs, "rules: *a39"]))
    with pytest.raises(ConfigError, match="unknown key 'a0'"):
        load_vocabulary(aliases)  # walked once per node, not 2**39 times
    (tmp_path / "latin1.yaml").write_bytes("ignore: [caf\xe9]\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_vocabulary(tmp_path / "latin1.yaml")


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.text(
        alphabet=st.sampled_from(list("rules:-name[]{},'\"\n body_part HEAD12!&*|>")), max_size=80
    )
)
def test_any_text_loads_or_is_a_config_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / SITE_FILE
    path.write_text(text, encoding="utf-8")
    try:
        load_vocabulary(path)
    except ConfigError as exc:
        assert str(exc).startswith(str(path))


def test_the_shipped_vocabulary_loads_and_records_what_made_it(tmp_path: Path) -> None:
    vocabulary = default_vocabulary()
    assert vocabulary is default_vocabulary()  # loaded once
    assert len(vocabulary.files) == 1 and len(vocabulary.digest) == 64
    with_site = load_vocabulary(_site(tmp_path, "ignore: [foo]\n"))
    assert with_site.digest != vocabulary.digest and len(with_site.files) == 2
    assert site_vocabulary(tmp_path).digest == with_site.digest
    assert site_vocabulary(tmp_path / "elsewhere").digest == vocabulary.digest


def test_a_site_rule_of_the_same_name_replaces_the_default(tmp_path: Path) -> None:
    header = {"Modality": "CR", "StudyDescription": "CXR PA"}
    assert _part(header) == "Chest"
    site = load_vocabulary(_site(tmp_path, """
        rules:
          - name: chest
            words: [CXR]
            body_part: LUNG
    """))  # fmt: skip
    found = normalise(header, site)
    assert found.body_part is not None and found.body_part.meaning == "Lung"
    assert found.matched_by.startswith(f"body part: {SITE_FILE}:2 chest (StudyDescription)")


def test_a_site_rule_wins_a_tie_with_a_default(tmp_path: Path) -> None:
    site = load_vocabulary(_site(tmp_path, """
        rules:
          - {name: our-knee, words: [KNEE], body_part: PATELLA}
    """))  # fmt: skip
    header = {"Modality": "MR", "SeriesDescription": "knee rt"}
    assert _part(header) == "Knee"
    assert _part(header, site) == "Patella"


def test_a_site_removes_a_default_rule_and_a_standard_source(tmp_path: Path) -> None:
    site = load_vocabulary(_site(tmp_path, """
        standard:
          body_part_examined: null
        rules:
          - {name: chest, enabled: false}
    """))  # fmt: skip
    assert normalise({"StudyDescription": "CXR"}, site).body_part is None
    header = {"BodyPartExamined": "HUMERUS"}
    assert normalise(header).matched_by == "BodyPartExamined (PS3.16 Annex L)"
    assert normalise(header, site).matched_by == "PS3.16 Annex L HUMERUS (BodyPartExamined)"


def test_a_declared_procedure_code_and_a_local_code_map(tmp_path: Path) -> None:
    site = load_vocabulary(_site(tmp_path, """
        procedure_codes:
          - {code: 99ORION CTHD, meaning: CT head (Orion)}
        rules:
          - name: orion-ct-head
            codes: [99orion CTHD]
            procedure: 99ORION CTHD
            body_part: 69536005
    """))  # fmt: skip
    header = {
        "Modality": "OT",
        "ProcedureCodeSequence": [{"CodingSchemeDesignator": "99ORION", "CodeValue": "CTHD"}],
    }
    found = normalise(header, site)
    assert found.procedure is not None and found.procedure.meaning == "CT head (Orion)"
    assert found.body_part is not None and found.body_part.meaning == "Head"
    assert found.matched_by == f"{SITE_FILE}:4 orion-ct-head (ProcedureCodeSequence)"
    assert normalise(header).procedure is None


def test_conditions_and_priorities_choose_the_rule(tmp_path: Path) -> None:
    # The modality condition: HEAD on a CT is a head CT, on an MR a brain MRI.
    assert _procedure({"Modality": "CT", "SeriesDescription": "HEAD"}) == "24725-4"
    assert _procedure({"Modality": "MR", "SeriesDescription": "HEAD"}) == "24590-2"
    # Regions named together outrank each one alone, whatever their order in the text.
    for text in ("ABD/PELVIS", "Abdo-Pelvis", "abd pelvis"):
        assert _part({"StudyDescription": text}) == "Abdomen and Pelvis"
    # A Body Part Examined defined term outranks a description.
    found = normalise({"BodyPartExamined": "KNEE", "StudyDescription": "CHEST"})
    assert found.body_part is not None and found.body_part.meaning == "Knee"
    # Attributes restrict where a rule reads; the standard's words are a fallback.
    site = load_vocabulary(_site(tmp_path, """
        rules:
          - {name: protocol-only, words: [ZZPART], attributes: [ProtocolName], body_part: HAND}
          - {name: by-regex, regex: "\\\\bpaw\\\\w*", body_part: FOOT}
    """))  # fmt: skip
    assert normalise({"StudyDescription": "ZZPART"}, site).body_part is None
    assert _part({"ProtocolName": "zzpart"}, site) == "Hand"
    assert _part({"ProtocolName": "Pawprint"}, site) == "Foot"
    assert normalise({"StudyDescription": "Humerus"}).matched_by == (
        "PS3.16 Annex L HUMERUS (StudyDescription)"
    )


def test_a_header_value_that_cannot_be_read_is_absent() -> None:
    class Broken(dict[str, object]):
        def get(self, key: str, default: object = None) -> object:
            if key == "StudyDescription":
                raise ValueError("cannot convert")
            return super().get(key, default)

    header = Broken(Modality="CT", BodyPartExamined=b"HEAD", SeriesDescription=["ABD", "PELVIS"])
    found = normalise(header)
    assert found.procedure is not None and found.procedure.value == "25045-6"
    # Bytes are not read, and each value of a multi-valued attribute is its own text.
    assert found.body_part is not None and found.body_part.meaning == "Abdomen"


def test_the_documented_site_file_loads_and_does_what_it_says(tmp_path: Path) -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "vocabulary.md").read_text()
    example = page.split("```yaml\n", 1)[1].split("```", 1)[0]
    site = load_vocabulary(_site(tmp_path, example))
    found = normalise({"Modality": "CT", "StudyDescription": "craniotomy"}, site)
    assert found.procedure is not None and found.procedure.meaning == "CT head"
    assert "fluoroscopy" not in {rule.name for rule in site.rules}
    assert normalise({"StudyDescription": "hardware"}, site).unmapped_terms == []
