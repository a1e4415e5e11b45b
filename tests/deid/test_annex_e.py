"""The generated PS3.15 Annex E table: complete, valid, and equal to an independent copy."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dicomhaven.deid import (
    EDITION,
    Action,
    Option,
    _annex_e,
    attribute_rule,
    attribute_rules,
    content_item_rules,
    options_conflict,
)
from tests.peers import shared_reference

ROOT = Path(__file__).resolve().parents[2]

# The reference copy is edition 2024e; the pinned table is 2026d. Differences between the
# two editions, each checked to be a change in the standard, not a conversion error:
EDITION_CHANGES = {
    # Requesting Service gained the Clean Descriptors Option after 2024e.
    ("00321033", "clean_descriptors"),
}
REFERENCE_OPTIONS = {
    "rtnSafePrivOpt": Option.RETAIN_SAFE_PRIVATE,
    "rtnUIDsOpt": Option.RETAIN_UIDS,
    "rtnDevIdOpt": Option.RETAIN_DEVICE_IDENTITY,
    "rtnInstIdOpt": Option.RETAIN_INSTITUTION_IDENTITY,
    "rtnPatCharsOpt": Option.RETAIN_PATIENT_CHARACTERISTICS,
    "rtnLongFullDatesOpt": Option.RETAIN_LONGITUDINAL_FULL_DATES,
    "rtnLongModifDatesOpt": Option.RETAIN_LONGITUDINAL_MODIFIED_DATES,
    "cleanDescOpt": Option.CLEAN_DESCRIPTORS,
    "cleanStructContOpt": Option.CLEAN_STRUCTURED_CONTENT,
    "cleanGraphOpt": Option.CLEAN_GRAPHICS,
}


def test_table_agrees_with_the_independent_2024e_copy() -> None:
    reference = json.loads(shared_reference("ps315_annex_e_table_e1-1_2024e.json").read_text())
    ours = {rule.tag.lower(): rule for rule in attribute_rules()}
    compared = 0
    differences = set()
    for row in reference:
        tag = "private" if row["id"].startswith("gggg") else row["id"].lower()
        rule = ours[tag]
        assert rule.basic == row["basicProfile"], row["name"]
        for column, option in REFERENCE_OPTIONS.items():
            if row.get(column, "") != rule.options.get(option, ""):
                differences.add((row["id"], option.value))
        compared += 1
    assert compared == len(reference) == 621
    assert differences == EDITION_CHANGES
    assert len(attribute_rules()) >= compared


def test_codes_are_valid_and_tags_unique() -> None:
    codes = {a.value for a in Action} | {"U*"}
    tags = [rule.tag for rule in attribute_rules()]
    assert len(tags) == len(set(tags))
    for rule in attribute_rules():
        assert re.fullmatch(r"[0-9A-Fa-fx]{8}|PRIVATE", rule.tag), rule.tag
        assert set(rule.basic.split("/")) <= codes, rule.name
        assert set(rule.options.values()) <= {"K", "C"}, rule.name
    for item in content_item_rules().values():
        assert set(item.basic.split("/")) <= codes
    assert len(content_item_rules()) > 50


@pytest.mark.parametrize(
    ("tag", "options", "expected"),
    [
        (0x00100010, (), "Z"),  # Patient's Name
        (0x00100020, (), "Z/D"),  # Patient ID: emptied, or a dummy where its IOD needs a value
        (0x00080018, (), "U"),  # SOP Instance UID
        (0x00080018, (Option.RETAIN_UIDS,), "K"),
        (0x00080020, (), "Z"),  # Study Date
        (0x00080020, (Option.RETAIN_LONGITUDINAL_MODIFIED_DATES,), "C"),
        (0x00080020, (Option.RETAIN_LONGITUDINAL_FULL_DATES,), "K"),
        (0x00081030, (), "X"),  # Study Description
        (0x00081030, (Option.CLEAN_DESCRIPTORS,), "C"),
        (0x00181000, (Option.RETAIN_DEVICE_IDENTITY,), "K"),  # Device Serial Number
        (0x00080080, (Option.RETAIN_INSTITUTION_IDENTITY,), "K"),  # Institution Name
        (0x00101010, (Option.RETAIN_PATIENT_CHARACTERISTICS,), "K"),  # Patient's Age
        (0x60023000, (), "X"),  # Overlay Data, in a repeating group
        (0x60023000, (Option.CLEAN_GRAPHICS,), "C"),
        (0x50001234, (), "X"),  # Curve Data
    ],
)
def test_actions_under_options(tag: int, options: tuple[Option, ...], expected: str) -> None:
    rule = attribute_rule(tag)
    assert rule is not None
    assert rule.action(options) == expected


def test_clean_wins_over_keep_when_two_options_meet() -> None:
    calibration = next(r for r in attribute_rules() if r.name == "Date of Last Calibration")
    both = (Option.RETAIN_DEVICE_IDENTITY, Option.RETAIN_LONGITUDINAL_MODIFIED_DATES)
    assert calibration.action(both) == "C"
    assert calibration.action((Option.RETAIN_DEVICE_IDENTITY,)) == "K"


def test_unnamed_tags_have_no_rule() -> None:
    assert attribute_rule(0x00280010) is None  # Rows: not in Table E.1-1
    assert attribute_rule(0x00091010) is None  # private: handled by its own option


def test_date_options_are_exclusive() -> None:
    assert options_conflict([Option.RETAIN_UIDS, Option.CLEAN_DESCRIPTORS]) is None
    reason = options_conflict(
        [Option.RETAIN_LONGITUDINAL_FULL_DATES, Option.RETAIN_LONGITUDINAL_MODIFIED_DATES]
    )
    assert reason is not None and "Retain Longitudinal" in reason
    assert Option.RETAIN_UIDS.standard_name == "Retain UIDs Option"


def test_generated_module_names_the_source_the_generator_pins() -> None:
    script = (ROOT / "scripts" / "generate_annex_e.py").read_text()
    assert f'MEMBER_SHA256 = "{_annex_e.SOURCE_SHA256}"' in script
    assert EDITION == "2026d"
    assert "generated: do not edit" in (_annex_e.__doc__ or "")
