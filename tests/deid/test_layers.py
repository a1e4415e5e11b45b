"""Profile layers: modality and device profiles composed on the site's profile, in the
stated order (base → modality → device), with errors that name file and line."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from sqlalchemy import select

from dicomhaven.catalogue import LedgerObject, make_engine, make_sessionmaker
from dicomhaven.deid import Option, ProfileLayers, load_layers, load_profile
from dicomhaven.errors import ConfigError
from dicomhaven.ingest import import_paths
from dicomhaven.site import Site, open_site
from dicomhaven.synth import FileKind
from dicomhaven.synth._modules import DEVICES
from tests.synth.generated import GeneratedSite

US = DEVICES[FileKind.US]


def write_layers(folder: Path, *, device_first: bool = True) -> Path:
    (folder / "ultrasound.yaml").write_text(
        "name: ultrasound\noptions: [retain_device_identity]\nkeep: [StationName]\n"
    )
    (folder / "vista.yaml").write_text("name: vista\nremove: [StationName]\n")
    device = f"  - profile: vista.yaml\n    match: {{manufacturer: '{US.manufacturer.upper()} ', model: {US.model}}}\n"
    modality = "  - profile: ultrasound.yaml\n    match: {modality: US}\n"
    body = device + modality if device_first else modality + device
    path = folder / "layers.yaml"
    path.write_text("layers:\n" + body)
    return path


def header(modality: str, manufacturer: str = US.manufacturer, model: str = US.model) -> Dataset:
    ds = Dataset()
    ds.Modality = modality
    ds.Manufacturer = manufacturer
    ds.ManufacturerModelName = model
    return ds


def test_layers_compose_base_then_modality_then_device(tmp_path: Path) -> None:
    layers = load_layers(write_layers(tmp_path), load_profile("publication"))
    profile = layers.for_header(header("US"))
    # The device layer comes second in the file but applies last: its remove wins.
    assert profile.chain[-2:] == ("ultrasound.yaml", "vista.yaml")
    assert profile.name == "publication+ultrasound+vista"
    assert Option.RETAIN_DEVICE_IDENTITY in profile.options
    assert "StationName" in profile.remove and "StationName" not in profile.keep
    assert profile.sha256 != layers.base.sha256


def test_only_matching_layers_apply(tmp_path: Path) -> None:
    layers = load_layers(write_layers(tmp_path), load_profile("publication"))
    assert layers.for_header(header("CT", "Other", "Model")) is layers.base
    other_device = layers.for_header(header("US", "Other", "Model"))
    assert other_device.chain[-1] == "ultrasound.yaml" and "StationName" in other_device.keep


def test_no_layers_means_the_base_profile() -> None:
    base = load_profile("limited-access")
    assert ProfileLayers(base).for_header(header("US")) is base


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("layers:\n  - profile: ultrasound.yaml\n    match: {colour: US}\n", r"layers\.yaml:2: unknown match key 'colour'"),
        ("layers:\n  - profile: ultrasound.yaml\n", r"layers\.yaml:2: each layer has"),
        ("layers:\n  - profile: missing.yaml\n    match: {modality: US}\n", r"missing\.yaml not found"),
        ("layers:\n  - profile: child.yaml\n    match: {modality: US}\n", r"child\.yaml:1: a layer does not extend"),
        ("- a list\n", r"layers\.yaml: a layers file is a mapping"),
    ],
)  # fmt: skip
def test_bad_layers_are_refused_with_file_and_line(tmp_path: Path, text: str, problem: str) -> None:
    (tmp_path / "ultrasound.yaml").write_text("options: [retain_device_identity]\n")
    (tmp_path / "child.yaml").write_text("extends: base\n")
    path = tmp_path / "layers.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=problem):
        load_layers(path, load_profile("publication"))


def test_pipeline_records_the_composed_profile_of_each_object(
    sqlite_site: Site, synth_kinds: GeneratedSite
) -> None:
    write_layers(sqlite_site.root)
    settings = sqlite_site.root / "dicomhaven.yaml"
    settings.write_text(settings.read_text() + "\ndeid_layers: layers.yaml\n")
    site = open_site(sqlite_site.root)
    base = load_profile(site.settings.deid_profile)
    composed = load_layers(sqlite_site.root / "layers.yaml", base).for_header(header("US"))
    import_paths(site, [synth_kinds.root / "export"])
    with make_sessionmaker(make_engine(site.database_url))() as session:
        by_sha = {o.sha256: o for o in session.scalars(select(LedgerObject))}
    for record in synth_kinds.key.files:
        data = (synth_kinds.root / record.path).read_bytes()
        obj = by_sha[hashlib.sha256(data).hexdigest()]
        ultrasound = record.kind in (FileKind.US, FileKind.US_CINE)
        assert obj.profile_sha256 == (composed.sha256 if ultrasound else base.sha256)
