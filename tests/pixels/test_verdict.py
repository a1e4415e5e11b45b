"""Pixel verdicts and the release gate: a copy with pixels is released only on the bytes its
checks were made on, and a slice of a head volume only once its face was checked."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
from sqlalchemy import select

from dicomhaven.catalogue import (
    DeviceState,
    FaceVerdict,
    GateHold,
    LedgerObject,
    PixelVerdict,
    TextVerdict,
    make_engine,
    make_sessionmaker,
)
from dicomhaven.cli import main
from dicomhaven.ingest import import_paths
from dicomhaven.pixels import AWAITS_DEFACING
from dicomhaven.pixels._verdict import (
    FACE_NOT_CHECKED,
    PIXELS_NOT_CHECKED,
    record_verdict,
    verdict_allows,
)
from dicomhaven.scan import DeviceRegistry, release_held
from dicomhaven.scan._scanner import ScanResult
from dicomhaven.scan._stage import gate_services, reset_gate_services
from dicomhaven.site import Site, open_site
from tests.pixels.burned_in_mr import burned_in_mr


@pytest.fixture(autouse=True)
def _fresh_gate_services() -> Iterator[None]:
    reset_gate_services()
    yield
    reset_gate_services()


def rows(site: Site) -> list[LedgerObject]:
    with make_sessionmaker(make_engine(site.database_url))() as session:
        return list(session.scalars(select(LedgerObject).order_by(LedgerObject.id)))


def held_copies(site: Site) -> list[Path]:
    with make_sessionmaker(make_engine(site.database_url))() as session:
        paths = list(session.scalars(select(GateHold.path).order_by(GateHold.object_id)))
    return [site.zone("quarantine") / p for p in paths]


def test_a_copy_whose_bytes_changed_after_its_verdict_is_held(
    sqlite_site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DICOMHAVEN_DEVICE_GATE", "true")
    site = open_site(sqlite_site.root)
    # Two plain knee slices (no text, no Burned In Annotation), held: the device is new.
    burned_in_mr(
        tmp_path / "knee", "MR KNEE", count=2, burned_in_annotation=None, lines=(), spacing=0.4
    )
    import_paths(site, [tmp_path / "knee"])
    first, second = held_copies(site)
    # One copy is written again after its verdict: its pixels are not what was checked.
    changed = pydicom.dcmread(first)
    pixels = changed.pixel_array.copy()
    pixels[0, 0] += 1
    changed.PixelData = pixels.astype("<u2").tobytes()
    changed.save_as(first, enforce_file_format=True)

    registry = DeviceRegistry(make_engine(site.database_url))
    [device] = registry.all()
    registry.set_state(device.id, DeviceState.TRUSTED, by="dana", reason="reviewed")
    summary = release_held(site.root)
    assert dict(summary.outcomes) == {"released": 1, "quarantined": 1}
    changed_row, kept_row = rows(site)
    assert (changed_row.status, changed_row.reason) == ("quarantined", PIXELS_NOT_CHECKED)
    assert kept_row.status == "released"
    assert first.is_file() and not second.exists()  # the changed copy stays in quarantine
    assert [p.name for p in site.zone("store").rglob("*.dcm")] == [second.name]
    assert held_copies(site) == []  # no later trust can release it: its pixels go back


def test_a_head_slice_without_a_face_verdict_goes_back_to_defacing(
    sqlite_site: Site, tmp_path: Path
) -> None:
    burned_in_mr(tmp_path / "head", "MR BRAIN", burned_in_annotation=None, lines=())
    # the import leaves its series open (it would decide the series itself otherwise)
    (sqlite_site.root / "dicomhaven.yaml").write_text("import_series_quiet_seconds: 300\n")
    import_paths(open_site(sqlite_site.root), [tmp_path / "head"])
    [obj] = rows(sqlite_site)
    assert obj.reason == AWAITS_DEFACING
    [copy] = sqlite_site.zone("quarantine").rglob("*.dcm")
    gate = gate_services(sqlite_site.root)
    # Its text verdict is on these very bytes, but nothing checked its face.
    reason = "pixels: not-read: low risk; face: not a head volume"
    text, face = TextVerdict.NOT_READ, FaceVerdict.NOT_HEAD
    record_verdict(gate.sessions, obj.id, copy.read_bytes(), text, face, reason)
    relpath = str(copy.relative_to(sqlite_site.zone("quarantine")))
    device = gate.registry.all()[0].id
    outcome = gate.decide(obj.id, device, relpath, reason, ScanResult())
    assert (outcome.status.value, outcome.reason) == ("quarantined", FACE_NOT_CHECKED)
    assert not list(sqlite_site.zone("store").rglob("*.dcm"))

    assert main(["deface", "--site", str(sqlite_site.root)]) == 0
    [obj] = rows(sqlite_site)
    assert obj.status == "released" and "; face: no face: " in obj.reason
    with make_sessionmaker(make_engine(sqlite_site.database_url))() as session:
        verdict = session.get(PixelVerdict, obj.id)
    assert verdict is not None and verdict.face == FaceVerdict.NO_FACE.value


def _bytes(dataset: Dataset) -> bytes:
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_only_copies_with_pixels_need_a_verdict(sqlite_site: Site) -> None:
    sessions = make_sessionmaker(make_engine(sqlite_site.database_url))
    report = Dataset()
    report.SOPClassUID, report.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.88.11", "2.25.1"
    report.Modality = "SR"
    never = lambda: pytest.fail("the original is read only for a copy with pixels")  # noqa: E731
    assert verdict_allows(_bytes(report), 1, original=never, sessions=sessions) is None

    image = Dataset()
    image.SOPClassUID, image.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.4", "2.25.2"
    image.Rows = image.Columns = 8
    image.SamplesPerPixel, image.PhotometricInterpretation = 1, "MONOCHROME2"
    image.BitsAllocated, image.BitsStored, image.HighBit, image.PixelRepresentation = 8, 8, 7, 0
    image.PixelData = np.zeros((8, 8), np.uint8).tobytes()
    assert verdict_allows(_bytes(image), 1, original=never, sessions=sessions) == (
        PIXELS_NOT_CHECKED
    )
    document = Dataset()
    document.SOPClassUID, document.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.104.1", "2.25.3"
    document.EncapsulatedDocument = b"%PDF-1.4 "
    refused = verdict_allows(_bytes(document), 1, original=never, sessions=sessions)
    assert refused is not None and "encapsulated document" in refused
