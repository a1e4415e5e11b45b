"""``dicomhaven templates``: a data manager reviews what the pixel stage learned."""

from __future__ import annotations

import json

import pytest
from pydicom.dataset import Dataset

from dicomhaven.cli import main
from dicomhaven.pixels import DeviceKey, TemplateStore
from dicomhaven.site import Site


def learned(site: Site) -> str:
    ds = Dataset()
    ds.Manufacturer, ds.ManufacturerModelName, ds.SoftwareVersions = "Sonaris", "Vista U7", "7.0"
    ds.Rows, ds.Columns = 480, 640
    device = DeviceKey.of(ds)
    TemplateStore(site.root / "templates").propose(device, [[(10, 10, 120, 24)]])
    return device.id


def test_only_a_data_manager_approves_and_every_attempt_is_audited(
    sqlite_site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    root = str(sqlite_site.root)
    assert main(["users", "add", "manager1", "--role", "data-manager", "--site", root]) == 0
    manager = capsys.readouterr().out.strip().splitlines()[-1]
    add = ["users", "add", "researcher1", "--role", "researcher", "--site", root]
    assert main([*add, "--token", manager]) == 0
    researcher = capsys.readouterr().out.strip().splitlines()[-1]
    device_id = learned(sqlite_site)

    assert main(["templates", "list", "--site", root, "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["id"] == device_id and listed["status"] == "proposed"

    assert main(["templates", "approve", device_id, "--site", root, "--token", researcher]) == 1
    assert "may not" in capsys.readouterr().err
    assert main(["templates", "approve", device_id, "--site", root, "--token", manager]) == 0
    assert TemplateStore(sqlite_site.root / "templates").all()[0].in_use
    revoke = ["templates", "revoke", device_id, "--reason", "moved text", "--site", root]
    assert main([*revoke, "--token", manager]) == 0
    assert not TemplateStore(sqlite_site.root / "templates").all()[0].in_use
    assert main(["templates", "approve", "device-nope", "--site", root, "--token", manager]) == 2
    capsys.readouterr()

    assert main(["audit", "show", "--site", root, "--token", manager, "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    actions = [(e["actor"], e["action"], e["outcome"]) for e in entries if e["target"] == device_id]
    assert ("researcher1", "review-templates", "refused") in actions
    assert ("manager1", "review-templates", "allowed") in actions
