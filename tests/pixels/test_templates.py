"""Device templates: learned from detections, reviewed, used, revoked; stored as checked YAML."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from dicomhaven.errors import ConfigError
from dicomhaven.pixels._templates import (
    PADDING,
    DeviceKey,
    TemplateStatus,
    TemplateStore,
    learn_regions,
)


def ultrasound() -> Dataset:
    ds = Dataset()
    ds.Manufacturer = "Sonaris"
    ds.ManufacturerModelName = "Vista U7"
    ds.SoftwareVersions = ["7.0.3", "build 12"]
    ds.Rows = 480
    ds.Columns = 640
    return ds


def test_regions_cover_every_detection_padded_and_merged() -> None:
    name_on_first = [(10, 10, 120, 24), (500, 10, 600, 24)]
    name_on_second = [(12, 11, 130, 25), (300, 460, 420, 478)]  # a date at the bottom edge
    regions = learn_regions([name_on_first, name_on_second], width=640, height=480)
    assert regions == (
        (10 - PADDING, 10 - PADDING, 130 + PADDING, 25 + PADDING),
        (300 - PADDING, 460 - PADDING, 420 + PADDING, 480),  # clipped to the image
        (500 - PADDING, 10 - PADDING, 600 + PADDING, 24 + PADDING),
    )


def test_chained_overlaps_merge_into_one_region() -> None:
    boxes = [[(0, 0, 10, 10)], [(20, 0, 30, 10)], [(9, 0, 21, 10)]]
    assert learn_regions(boxes, width=100, height=100) == ((0, 0, 34, 14),)


def test_device_key_names_no_file_after_free_text() -> None:
    key = DeviceKey.of(ultrasound())
    assert key.software == "7.0.3\\build 12" and (key.rows, key.columns) == (480, 640)
    assert key.id.startswith("device-") and "Sonaris" not in key.id
    other = DeviceKey.of(ultrasound())
    assert other.id == key.id
    smaller = ultrasound()
    smaller.Rows = 240
    assert DeviceKey.of(smaller).id != key.id  # another layout


def test_propose_approve_use_and_revoke(tmp_path: Path) -> None:
    store = TemplateStore(tmp_path / "templates")
    key = DeviceKey.of(ultrasound())
    assert store.get(key) is None
    proposed = store.propose(key, [[(10, 10, 120, 24)]])
    assert proposed.status is TemplateStatus.PROPOSED and not proposed.in_use
    grown = store.propose(key, [[(500, 10, 600, 24)]])  # more images, more regions
    assert len(grown.regions) == 2 and grown.learned_from == 2
    approved = store.approve(key, "manager1")
    assert approved.in_use and approved.approved_by == "manager1"
    assert approved.covers((20, 12, 100, 20)) and not approved.covers((200, 200, 210, 210))
    assert store.propose(key, [[(0, 0, 5, 5)]]) == approved  # approved: learning stops
    again = TemplateStore(tmp_path / "templates").get(key)  # read back from YAML
    assert again == approved
    revoked = store.revoke(key, "identifying text found outside the template")
    assert revoked is not None and revoked.status is TemplateStatus.REVOKED and not revoked.in_use


def test_nothing_to_approve_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nothing to approve"):
        TemplateStore(tmp_path).approve(DeviceKey.of(ultrasound()), "manager1")


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("device: {manufacturer: A, model: B, software: C, rows: 1, columns: 1}\nregions: [[5, 5, 1, 1]]\n", r":2: invalid 'regions'"),
        ("device: {manufacturer: A}\nregions: []\n", r":1: invalid 'device'"),
        ("device: {manufacturer: A, model: B, software: C, rows: 1, columns: 1}\nstatus: trusted\n", r":2: invalid 'status'"),
        ("device: {manufacturer: A, model: B, software: C, rows: 1, columns: 1}\ncolour: red\n", r":2: unknown key 'colour'"),
    ],
)  # fmt: skip
def test_bad_template_files_are_refused_with_file_and_line(
    tmp_path: Path, body: str, problem: str
) -> None:
    (tmp_path / "device-0000000000000000.yaml").write_text(body)
    with pytest.raises(ConfigError, match=problem):
        TemplateStore(tmp_path).all()
