"""Every plant in the answer key is really where the key says, and nothing is left out."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileDataset

from dicomhaven.errors import ConfigError
from dicomhaven.synth import (
    AnswerKey,
    Category,
    FileKind,
    IdentifierKind,
    PatientRecord,
    PixelRegion,
    Plant,
)
from tests.synth.generated import GeneratedSite
from tests.synth.tagpaths import as_text, resolve, walk


@cache
def _read(path: Path) -> FileDataset:
    return pydicom.dcmread(path)


def _element_plants(synth_site: GeneratedSite) -> Iterator[tuple[Plant, str]]:
    for plant in synth_site.key.plants:
        if isinstance(plant.location, str):
            yield plant, plant.location


def test_every_element_plant_is_at_its_location(synth_site: GeneratedSite) -> None:
    checked = 0
    for plant, location in _element_plants(synth_site):
        element = resolve(_read(synth_site.root / plant.path), location)
        assert plant.value in as_text(element), (plant.path, location, plant.kind)
        checked += 1
    assert checked > 100


def test_every_pixel_plant_covers_drawn_text(synth_site: GeneratedSite) -> None:
    for plant in synth_site.key.plants:
        if not isinstance(plant.location, PixelRegion):
            continue
        dataset = _read(synth_site.root / plant.path)
        x, y, w, h = plant.location.box
        assert w > 0 and h > 0
        assert x >= 0 and y >= 0 and x + w <= dataset.Columns and y + h <= dataset.Rows
        if plant.category is Category.OVERLAY:
            assert plant.location.frames == (1,)
            bits = dataset.overlay_array(0x6000)
            region = bits[y : y + h, x : x + w]
            assert region.any()
            # The box is tight: every set bit of the overlay lies inside it.
            assert int(region.sum()) == int(bits.sum())
            continue
        assert plant.category is Category.BURNED_IN_PIXELS
        assert dataset.BurnedInAnnotation == "YES"
        frames = int(dataset.get("NumberOfFrames", 1))
        assert plant.location.frames == tuple(range(1, frames + 1))
        pixels = dataset.pixel_array
        stack = pixels if frames > 1 else pixels[None, ...]
        for number in plant.location.frames:
            region = stack[number - 1, y : y + h, x : x + w]
            assert region.max() > 128, (plant.path, plant.kind, number)
            # Text sits on black: the rows just outside the box are background there.
            if y > 0 and plant.kind is not IdentifierKind.INSTITUTION:
                assert np.asarray(stack[number - 1, y + h, x : x + w]).max() < 255


def test_categories_follow_the_documented_rule(synth_site: GeneratedSite) -> None:
    for plant in synth_site.key.plants:
        if isinstance(plant.location, PixelRegion):
            assert plant.category in {Category.BURNED_IN_PIXELS, Category.OVERLAY}
            continue
        steps = plant.location.split("/")
        groups = [int(step[1:5], 16) for step in steps]
        if any(g % 2 for g in groups):
            expected = {Category.PRIVATE_TAG}
        elif len(steps) > 1 and not plant.location.startswith("(0010,1002)"):
            expected = {Category.NESTED_SEQUENCE}
        else:
            expected = {Category.STANDARD_ATTRIBUTE, Category.FREE_TEXT}
        assert plant.category in expected, plant


def test_every_category_and_identifier_kind_is_planted(synth_site: GeneratedSite) -> None:
    assert {p.category for p in synth_site.key.plants} == set(Category)
    assert {p.kind for p in synth_site.key.plants} == set(IdentifierKind)


def test_nested_plants_reach_two_levels_deep(synth_site: GeneratedSite) -> None:
    depths = {p.location.count("[") for p in synth_site.key.plants if isinstance(p.location, str)}
    assert max(depths) >= 2
    sr = {f.path for f in synth_site.key.files_of_kind(FileKind.SR)}
    sr_text = [
        p
        for p in synth_site.key.plants
        if p.path in sr and isinstance(p.location, str) and p.location.count("(0040,A730)") >= 2
    ]
    assert {p.kind for p in sr_text} >= {IdentifierKind.NAME, IdentifierKind.NHS_NUMBER}


def test_private_block_holds_lo_ob_and_un(synth_site: GeneratedSite) -> None:
    record = synth_site.key.files[0]
    dataset = _read(synth_site.root / record.path)
    assert dataset[0x00290010].value == "ACME PACS 1.0"
    vrs = {
        resolve(dataset, p.location).VR
        for p in synth_site.key.plants_in(record.path)
        if p.category is Category.PRIVATE_TAG and isinstance(p.location, str)
    }
    assert vrs == {"LO", "OB", "UN"}


def test_free_text_uses_varied_formats(synth_site: GeneratedSite) -> None:
    free = [p for p in synth_site.key.plants if p.category is Category.FREE_TEXT]
    nhs_forms = {
        "spaced" if " " in p.value else "hyphen" if "-" in p.value else "plain"
        for p in free
        if p.kind is IdentifierKind.NHS_NUMBER
    }
    assert len(nhs_forms) >= 2
    assert any(p.value.islower() for p in free if p.kind is IdentifierKind.NAME)


def _canonical(patient: PatientRecord) -> list[str]:
    """Forms of a patient's identifiers that must never appear unrecorded."""
    nhs = patient.nhs_number
    forms = [
        nhs,
        f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}",
        f"{nhs[:3]}-{nhs[3:6]}-{nhs[6:]}",
        patient.hospital_number,
        patient.family_name.lower(),
        patient.postcode.lower(),
        patient.phone,
        patient.birth_date,
    ]
    if patient.chi_number:
        forms.append(patient.chi_number)
    return forms


def test_no_identifier_is_left_out_of_the_key(synth_site: GeneratedSite) -> None:
    """Wherever a patient's identifier occurs in a header, the key has a plant there."""
    for record in synth_site.key.files:
        patient = synth_site.key.patients[record.patient]
        located = {p.location for p in synth_site.key.plants_in(record.path)}
        for location, element in walk(_read(synth_site.root / record.path)):
            text = as_text(element).lower()
            for form in _canonical(patient):
                if form.lower() in text:
                    assert location in located, (record.path, location)


def test_no_other_patients_identifiers_in_a_file(synth_site: GeneratedSite) -> None:
    for record in synth_site.key.files:
        others = [p for p in synth_site.key.patients if p.index != record.patient]
        forms = [f for p in others for f in (p.nhs_number, p.hospital_number)]
        for _, element in walk(_read(synth_site.root / record.path)):
            text = as_text(element)
            assert not any(form in text for form in forms)


def test_plants_name_their_own_patient(synth_site: GeneratedSite) -> None:
    for plant in synth_site.key.plants:
        assert plant.patient == synth_site.key.file(plant.path).patient


def test_round_trip_through_json(synth_site: GeneratedSite) -> None:
    assert AnswerKey.from_json(synth_site.key.to_json()) == synth_site.key


def test_load_rejects_another_format(tmp_path: Path, synth_site: GeneratedSite) -> None:
    document = json.loads(synth_site.key.to_json())
    document["format"] = 2
    path = tmp_path / "key.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ConfigError, match="format 1"):
        AnswerKey.load(path)


@pytest.mark.parametrize("text", ["[]", "{", '{"generator": "dicomhaven.synth", "format": 1}'])
def test_load_rejects_malformed_keys(tmp_path: Path, text: str) -> None:
    path = tmp_path / "key.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError):
        AnswerKey.load(path)


def test_load_reports_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        AnswerKey.load(tmp_path / "missing.json")
