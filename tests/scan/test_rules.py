"""Rule files: composed in order (first match wins), validated with file-and-line errors, and
every finding or suppression traced to its rule."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from dicomhaven.errors import ConfigError
from dicomhaven.scan import Action, Detector, Scanner, load_rules
from dicomhaven.scan._rules import DEFAULT_RULE_ID


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def report_dataset() -> Dataset:
    ds = Dataset()
    ds.PatientID = "BCDFGHJKLMNP"  # a pseudonym: not a finding
    ds.Modality = "SR"
    ds.StudyDescription = "review by Dr Henderson"
    item = Dataset()
    item.TextValue = "NHS 943 476 5919"
    ds.ContentSequence = Sequence([item])
    ds.InstitutionName = "ANONYMOUS"
    return ds


def test_shipped_rules_fail_an_nhs_number_and_report_a_name(tmp_path: Path) -> None:
    result = Scanner(load_rules([])).scan(report_dataset())
    by_detector = {f.detector: f for f in result.findings}
    nhs = by_detector[Detector.NHS_NUMBER]
    assert (nhs.action, nhs.rule, nhs.tag_path) == (
        Action.FAIL,
        "health-number",
        "(0040,A730)[0]/(0040,A160)",
    )
    assert nhs.path_pattern == "(0040,A730)[*]/(0040,A160)"
    assert by_detector[Detector.PERSON_NAME].action is Action.REPORT
    assert result.failed
    assert result.suppressed == {"dummy-values": 1}  # the dummy institution, counted by rule


def test_a_site_rule_comes_before_the_shipped_ones(tmp_path: Path) -> None:
    site_rules = write(
        tmp_path / "site.yaml",
        "rules:\n"
        "  - id: test-numbers\n"
        "    detector: nhs-number\n"
        '    tag: "(0040,A730)[*]/*"\n'
        "    value: '^943'\n"
        "    action: ignore\n"
        "    why: NHS test range used by the training set\n",
    )
    result = Scanner(load_rules([site_rules])).scan(report_dataset())
    assert Detector.NHS_NUMBER not in {f.detector for f in result.findings}
    assert result.suppressed["test-numbers"] == 1
    assert not result.failed


def test_a_finding_no_rule_matches_is_reported_under_no_rule(tmp_path: Path) -> None:
    empty_defaults = write(
        tmp_path / "r.yaml", "rules:\n  - id: only\n    detector: overlay\n    action: fail\n"
    )
    rules = load_rules([empty_defaults])
    ds = Dataset()
    ds.StudyDescription = "Margaret Thompson"
    candidate_rules = {f.rule for f in Scanner(rules).scan(ds).findings}
    assert "person-name-in-text" in candidate_rules  # the shipped defaults still apply
    assert DEFAULT_RULE_ID == "no-rule"


def test_the_publication_level_watches_device_identity() -> None:
    ds = Dataset()
    ds.StationName = "CT01"
    assert not Scanner(load_rules([])).scan(ds).findings
    [finding] = Scanner(load_rules([], level="publication")).scan(ds).findings
    assert (finding.detector, finding.action) == (Detector.IDENTIFYING_ATTRIBUTE, Action.FAIL)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules:\n  - id: x\n    action: maybe\n", "r.yaml:2: rule 'x': 'action' is one of"),
        ("rules:\n  - id: x\n    detector: vibes\n    action: fail\n", "unknown detector(s) vibes"),
        (
            "rules:\n  - id: x\n    colour: red\n    action: fail\n",
            "r.yaml:2: unknown key(s) colour",
        ),
        ("rules:\n  - id: Bad Id\n    action: fail\n", "'id' must be lower-case"),
        (
            "rules:\n  - id: x\n    value: '(['\n    action: fail\n",
            "'value' is not a valid regular",
        ),
        ("rules: {}\n", "r.yaml:1: 'rules' is a list"),
        ("other: 1\n", "only the keys 'rules' and 'watch'"),
        ("rules:\n  - id: leak\n    action: fail\n", "rule id 'leak' is already used at"),
    ],
)
def test_bad_rule_files_are_refused_with_file_and_line(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path / "r.yaml", text)
    with pytest.raises(ConfigError, match=r".*") as raised:
        load_rules([path])
    assert message in str(raised.value)
    assert str(path) in str(raised.value)
