"""The Retain Safe Private Option: the standard's safe list (generated), the profile's own
additions, and that everything else private still goes."""

from __future__ import annotations

import csv
import importlib.util
import re
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from dicomhaven.deid import deidentify, load_profile
from dicomhaven.deid._safe_private import (
    DELETED_BY_TCIA,
    SAFE_PRIVATE,
    SAFE_PRIVATE_SEQUENCES,
    SOURCE,
)
from dicomhaven.errors import ConfigError
from dicomhaven.identity import ProjectKeys
from tests.corpora import pydicom_file
from tests.deid.conftest import context
from tests.peers import shared_reference

KEYS = ProjectKeys("p", bytes(32))
MASTER = "BCDFGHJKLMNP"


def profile_with(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(text)
    return path


def private_keys(dataset: Dataset) -> set[tuple[str, int, int]]:
    found = set()
    for element in dataset:
        if element.tag.is_private and not element.tag.is_private_creator:
            creator = dataset[(element.tag.group << 16) | (element.tag.element >> 8)].value
            found.add((creator, element.tag.group, element.tag.element & 0xFF))
    return found


def test_generated_list_is_well_formed() -> None:
    assert SOURCE.startswith("libpixelmed-java ")
    assert len(SAFE_PRIVATE) > 400
    for creator, group, element in SAFE_PRIVATE | SAFE_PRIVATE_SEQUENCES:
        assert creator and creator == creator.strip()
        assert group % 2 == 1 and group > 0x0008
        assert 0 <= element <= 0xFF


def _tcia_dispositions() -> dict[tuple[str, int, int], set[str]]:
    """TCIA's dispositions for each private element it names, at any depth (creator
    compared without case)."""
    kb_path = shared_reference("tcia_private_tag_kb_2024-02-01.csv")
    pattern = re.compile(r'\(([0-9a-f]{4}),"?(.+?)"?,([0-9a-f]{2})\)$', re.IGNORECASE)
    dispositions: dict[tuple[str, int, int], set[str]] = {}
    with kb_path.open(encoding="utf-8-sig") as handle:
        for row in csv.DictReader(handle):
            match = pattern.search(row["element_sig_pattern"])
            if match:
                key = (match.group(2).casefold(), int(match.group(1), 16), int(match.group(3), 16))
                dispositions.setdefault(key, set()).add(row["private_disposition"].strip().lower())
    return dispositions


def test_no_kept_element_is_one_tcia_deletes() -> None:
    """Where PixelMed's list and TCIA's knowledge base disagree, the safer action wins: no
    element kept under the Retain Safe Private Option is one TCIA does not keep."""
    dispositions = _tcia_dispositions()
    kept = SAFE_PRIVATE | SAFE_PRIVATE_SEQUENCES
    named = [key for key in kept if (key[0].casefold(), key[1], key[2]) in dispositions]
    assert len(named) >= 80  # the two sources overlap: the check means something
    not_kept = sorted(k for k in named if dispositions[(k[0].casefold(), k[1], k[2])] != {"k"})
    assert not_kept == []
    assert DELETED_BY_TCIA, "the reconciliation took the disagreeing elements off"
    assert not {(c, g, e) for c, g, e, _ in DELETED_BY_TCIA} & kept


def test_generated_module_is_what_the_script_makes() -> None:
    """The module is generated, not edited: the script's reconciliation step, re-run on
    PixelMed's answers as the module holds them, writes it byte for byte."""
    script = Path(__file__).resolve().parents[2] / "scripts" / "generate_safe_private.py"
    spec = importlib.util.spec_from_file_location("generate_safe_private", script)
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    kept, deleted = generator.reconcile(
        generator.current_rows(), shared_reference("tcia_private_tag_kb_2024-02-01.csv")
    )
    assert generator.render(kept, deleted) == generator.TARGET.read_text(encoding="utf-8")


def test_without_the_option_every_private_element_goes() -> None:
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    deidentify(ds, load_profile("base"), context(KEYS, MASTER))
    assert not any(e.tag.is_private for e in ds.iterall())


def test_option_keeps_exactly_the_safe_elements_of_a_real_file(tmp_path: Path) -> None:
    before = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    safe_before = {k for k in private_keys(before) if k in SAFE_PRIVATE}
    assert safe_before, "CT_small.dcm has GE acquisition elements on the safe list"
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    profile = load_profile(
        profile_with(tmp_path, "extends: base\noptions: [retain_safe_private]\n")
    )
    deidentify(ds, profile, context(KEYS, MASTER))
    assert private_keys(ds) == safe_before
    # Kept values are untouched; creators of blocks left empty are gone.
    for creator, group, element in safe_before:
        block = next(
            t
            for t in range(0x10, 0x100)
            if (group << 16 | t) in before and before[group << 16 | t].value == creator
        )
        tag = (group << 16) | (block << 8) | element
        assert ds[tag].value == before[tag].value
    creators = {e.value for e in ds if e.tag.is_private_creator}
    assert creators == {creator for creator, _, _ in safe_before}
    assert "113111" in {item.CodeValue for item in ds.DeidentificationMethodCodeSequence}


def test_profile_adds_known_safe_elements_and_uids_are_still_remapped(tmp_path: Path) -> None:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.9.9999.1"
    block = ds.private_block(0x0029, "EXAMPLE SITE 1.0", create=True)
    block.add_new(0x01, "DS", "2.5")
    block.add_new(0x02, "UI", "1.2.826.0.1.3680043.9.9999.2")
    block.add_new(0x03, "LO", "EXAMPLE^UNSAFE")
    other = ds.private_block(0x0031, "UNKNOWN VENDOR", create=True)
    other.add_new(0x01, "LO", "EXAMPLE^NOTE")
    profile = load_profile(
        profile_with(
            tmp_path,
            "extends: base\noptions: [retain_safe_private]\n"
            'safe_private:\n  - (0029,"EXAMPLE SITE 1.0",01)\n  - (0029,"EXAMPLE SITE 1.0",02)\n',
        )
    )
    deidentify(ds, profile, context(KEYS, MASTER))
    kept = ds.private_block(0x0029, "EXAMPLE SITE 1.0")
    assert kept[0x01].value == "2.5"
    assert kept[0x02].value == KEYS.uid("1.2.826.0.1.3680043.9.9999.2")
    assert 0x03 not in kept
    assert not any(e.tag.group == 0x0031 for e in ds)  # no safe element, so no creator either


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ('(0018,"GEMS_ACQU_01",23)', "not a private group"),
        ("(0019,GEMS_ACQU_01,23)", "is not"),
        ('(0019,"GEMS_ACQU_01",123)', "is not"),
    ],
)
def test_malformed_safe_private_entries_are_refused_with_file_and_line(
    tmp_path: Path, entry: str, problem: str
) -> None:
    path = profile_with(tmp_path, f"extends: base\nsafe_private:\n  - '{entry}'\n")
    with pytest.raises(ConfigError, match=rf"site\.yaml:2: .*{problem}"):
        load_profile(path)


def test_safe_private_additions_change_the_profile_hash(tmp_path: Path) -> None:
    plain = load_profile(profile_with(tmp_path, "extends: base\n"))
    added = load_profile(
        profile_with(tmp_path, "extends: base\nsafe_private: ['(0029,\"X\",01)']\n")
    )
    assert plain.sha256 != added.sha256
