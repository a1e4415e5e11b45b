"""Head volumes through the pipeline: each slice is held until ``dicomhaven deface`` takes the
whole series, defaces it, keeps the review render in quarantine and releases the slices."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from sqlalchemy import select

from dicomhaven.catalogue import LedgerObject, make_engine, make_sessionmaker
from dicomhaven.cli import main
from dicomhaven.ingest import import_paths
from dicomhaven.pixels import AWAITS_DEFACING
from dicomhaven.site import Site, open_site
from tests.pixels.head_phantom import head_phantom, slices

STUDY = "1.2.826.0.1.3680043.9.9999.77"


def objects(site: Site) -> list[LedgerObject]:
    with make_sessionmaker(make_engine(site.database_url))() as session:
        return list(session.scalars(select(LedgerObject).order_by(LedgerObject.id)))


def test_held_head_series_is_defaced_and_released(
    sqlite_site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    phantom = head_phantom("CT")
    folder = tmp_path / "head"
    folder.mkdir()
    for ds in slices(phantom.values, "CT"):
        ds.StudyInstanceUID = STUDY
        ds.save_as(folder / f"{ds.InstanceNumber:03d}.dcm", enforce_file_format=True)
    # the import leaves the series open, so that 'dicomhaven deface' decides it
    (sqlite_site.root / "dicomhaven.yaml").write_text("import_series_quiet_seconds: 300\n")
    import_paths(open_site(sqlite_site.root), [folder])
    held = objects(sqlite_site)
    assert len(held) == phantom.values.shape[0]
    assert {(o.status, o.reason) for o in held} == {("quarantined", AWAITS_DEFACING)}
    assert not (sqlite_site.root / "store").exists() or not any(
        (sqlite_site.root / "store").rglob("*.dcm")
    )

    root = str(sqlite_site.root)
    assert main(["deface", "--site", root, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["series"] == 1 and summary["defaced"] == 1
    assert summary["objects_released"] == len(held)
    [decided] = summary["decisions"]  # why the series was treated as a head
    assert decided["decision"] == "deface" and decided["slices"] == len(held)
    assert decided["evidence"] == "header" and decided["reasons"]
    after = objects(sqlite_site)
    assert {o.status for o in after} == {"released"}
    # What was checked: the text, on the defaced slice as written, and the face.
    assert all(o.reason.startswith(("pixels: not-read: ", "pixels: clean: ")) for o in after)
    assert all("; face: defaced and verified (" in o.reason for o in after)
    assert all("no face found" in o.reason and "review render " in o.reason for o in after)
    assert list((sqlite_site.root / "quarantine").rglob("face-review-*.png"))  # for review
    assert not list((sqlite_site.root / "quarantine").rglob("*.dcm"))

    released = [pydicom.dcmread(p) for p in (sqlite_site.root / "store").rglob("*.dcm")]
    assert len(released) == len(held)
    assert all(ds.RecognizableVisualFeatures == "NO" for ds in released)
    assert all(
        "113102" in {c.CodeValue for c in ds.DeidentificationMethodCodeSequence} for ds in released
    )
    # The nose is air now; the brain is untouched.
    by_z = sorted(released, key=lambda ds: float(ds.ImagePositionPatient[2]))
    volume = np.stack([ds.pixel_array.astype(np.float32) - 1024 for ds in by_z])
    assert (volume[phantom.nose] < -900).all()
    assert np.allclose(
        volume[phantom.brain],
        np.clip(np.rint(phantom.values[phantom.brain] + 1024), 0, 4095) - 1024,
    )
    assert main(["ledger", "--site", root]) == 0
    assert main(["deface", "--site", root]) == 0  # nothing left to do
