"""Folder import end to end: intake, ledger, idempotence, and bad input never crashing."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from dicomhaven.catalogue import LedgerEvent, LedgerObject, make_engine, make_sessionmaker
from dicomhaven.cli import main
from dicomhaven.deid import RELEASED_REASON
from dicomhaven.ingest import import_paths
from dicomhaven.ledger import Ledger
from dicomhaven.site import Site, open_site
from tests.corpora import pydicom_file
from tests.synth.generated import GeneratedSite

VALID = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "JPEG2000.dcm"]


def mixed_folder(root: Path) -> Path:
    """Valid DICOM, truncated DICOM, a PNG and an empty file, in nested folders."""
    folder = root / "incoming"
    (folder / "nested" / "deeper").mkdir(parents=True)
    for i, name in enumerate(VALID):
        target = folder / ("nested" if i % 2 else "") / f"valid{i}.dcm"
        shutil.copy(pydicom_file(name), target)
    ct = pydicom_file("CT_small.dcm").read_bytes()
    (folder / "nested" / "deeper" / "truncated.dcm").write_bytes(ct[: len(ct) // 2])
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, format="PNG")
    (folder / "picture.png").write_bytes(buffer.getvalue())
    (folder / "empty.dcm").write_bytes(b"")
    return folder


def rows(site: Site) -> list[LedgerObject]:
    with make_sessionmaker(make_engine(site.database_url))() as session:
        return list(session.scalars(select(LedgerObject).order_by(LedgerObject.id)))


def test_mixed_folder_valid_in_intake_rest_rejected_with_reasons(
    site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = mixed_folder(tmp_path)
    code = main(["import", "--site", str(site.root), "--json", str(folder)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Traceback" not in captured.out + captured.err
    summary = json.loads(captured.out)
    assert summary["files"] == 7
    assert summary["receipts"] == {"new": 7}
    # CT and MR slices are low risk, released without reading; the JPEG 2000 image (no
    # modality) is read and has no text; rtplan.dcm has
    # no pixel data: its de-identified headers are all there is to release.
    assert summary["outcomes"] == {"released": 4, "rejected": 3}
    reasons = {Path(r["path"]).name: r["reason"] for r in summary["rejected"]}
    assert reasons["truncated.dcm"].startswith("truncated DICOM")
    assert reasons["picture.png"].startswith("not DICOM")
    assert reasons["empty.dcm"] == "empty file"

    objects = rows(site)
    dicom = [o for o in objects if o.kind == "dicom"]
    assert len(dicom) == 4
    for obj in dicom:
        assert obj.status == "released"
        assert obj.reason == RELEASED_REASON or obj.reason.startswith("pixels: ")
        intake_file = site.intake / obj.intake_path
        assert intake_file.read_bytes() in {pydicom_file(n).read_bytes() for n in VALID}
    for obj in objects:
        if obj.kind == "blob":
            assert obj.status == "rejected" and obj.reason
            assert (site.intake / obj.intake_path).is_file()  # kept, so nothing is lost

    report = Ledger(make_engine(site.database_url)).verify(site.intake)
    assert report.consistent, report.problems
    assert report.counts["released"] == 4 and report.counts["rejected"] == 3
    assert main(["ledger", "--site", str(site.root)]) == 0


def test_reimport_is_idempotent(site: Site, tmp_path: Path) -> None:
    folder = mixed_folder(tmp_path)
    first = import_paths(site, [folder])
    before = [(o.object_key, o.status, o.intake_path) for o in rows(site)]
    second = import_paths(site, [folder])
    after = rows(site)
    assert first.receipts == {"new": 7}
    assert second.receipts == {"duplicate": 7}
    assert second.outcomes == {}
    assert [(o.object_key, o.status, o.intake_path) for o in after] == before
    assert all(o.receipts == 2 for o in after)
    report = Ledger(make_engine(site.database_url)).verify(site.intake)
    assert report.consistent and report.total == 7


def test_same_instance_with_different_content_is_kept_and_rejected(
    sqlite_site: Site, tmp_path: Path
) -> None:
    # MR_small.dcm and MR_small_bigendian.dcm share a SOP Instance UID but differ in bytes.
    import_paths(sqlite_site, [pydicom_file("MR_small.dcm")])
    summary = import_paths(sqlite_site, [pydicom_file("MR_small_bigendian.dcm")])
    assert summary.outcomes == {"rejected": 1}
    assert "conflicting duplicate" in summary.rejected[0][1]
    objects = rows(sqlite_site)
    assert [o.status for o in objects] == ["released", "rejected"]
    # The first object is untouched; the second is kept in its own place.
    assert (sqlite_site.intake / objects[0].intake_path).read_bytes() == pydicom_file(
        "MR_small.dcm"
    ).read_bytes()
    assert (sqlite_site.intake / objects[1].intake_path).read_bytes() == pydicom_file(
        "MR_small_bigendian.dcm"
    ).read_bytes()


def test_two_workers_give_the_same_ledger_as_one(tmp_path: Path, sqlite_site: Site) -> None:
    folder = mixed_folder(tmp_path)
    import_paths(sqlite_site, [folder], workers=2)
    parallel = sorted((o.object_key, o.status, o.reason) for o in rows(sqlite_site))
    other = tmp_path / "other"
    from dicomhaven.site import init_site

    serial_site = init_site(other)
    # Object keys are keyed by each site's own secret, so compare statuses and reasons.
    import_paths(serial_site, [folder], workers=1)
    serial = sorted((o.status, o.reason) for o in rows(serial_site))
    assert sorted((s, r) for _, s, r in parallel) == serial


def test_every_object_has_a_received_event_first(site: Site, tmp_path: Path) -> None:
    import_paths(site, [mixed_folder(tmp_path)])
    with make_sessionmaker(make_engine(site.database_url))() as session:
        events = list(session.scalars(select(LedgerEvent).order_by(LedgerEvent.id)))
    by_object: dict[int, list[LedgerEvent]] = {}
    for event in events:
        by_object.setdefault(event.object_id, []).append(event)
    assert len(by_object) == 7
    for history in by_object.values():
        assert history[0].from_status is None and history[0].to_status == "received"
        assert history[-1].to_status in {"quarantined", "released", "rejected"}
        assert len(history) == 2


def test_unreadable_file_is_reported_and_exit_code_is_1(
    sqlite_site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(pydicom_file("CT_small.dcm"), folder / "a.dcm")
    dangling = folder / "dangling.dcm"
    dangling.symlink_to(folder / "gone.dcm")
    code = main(["import", "--site", str(sqlite_site.root), str(folder / "a.dcm"), str(dangling)])
    out = capsys.readouterr()
    assert code == 1
    assert "not received" in out.err and "FileNotFoundError" in out.err
    assert "Traceback" not in out.out + out.err
    # The readable file was still imported and the ledger is whole.
    assert [o.status for o in rows(sqlite_site)] == ["released"]
    assert main(["ledger", "--site", str(sqlite_site.root)]) == 0


def test_missing_path_is_a_usage_error(
    sqlite_site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["import", "--site", str(sqlite_site.root), str(tmp_path / "nothing-here")])
    assert code == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_file_names_and_intake_paths_carry_no_uid(sqlite_site: Site) -> None:
    import_paths(sqlite_site, [pydicom_file("CT_small.dcm")])
    (obj,) = rows(sqlite_site)
    uid = "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"
    assert uid not in obj.intake_path and uid not in obj.object_key
    names = [str(p) for p in sqlite_site.intake.rglob("*")]
    assert names and not any(uid in n for n in names)


def test_import_streams_and_commits_batch_by_batch(
    sqlite_site: Site, synth_site: GeneratedSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches reach the ledger while the walk is still going, so an import interrupted
    part-way keeps what it did, and importing again finishes the rest exactly once."""
    import dicomhaven.ingest as ingest

    monkeypatch.setenv("DICOMHAVEN_LEDGER_BATCH_SIZE", "10")
    site = open_site(sqlite_site.root)
    files = sorted((synth_site.root / "export").rglob("*.dcm"))
    assert len(files) > 35
    walked: list[Path] = []

    def interrupted_walk(paths: object) -> Iterator[Path]:
        for path in files:
            if len(walked) == 35:
                raise KeyboardInterrupt
            walked.append(path)
            yield path

    monkeypatch.setattr(ingest, "iter_entries", interrupted_walk)
    with pytest.raises(KeyboardInterrupt):
        import_paths(site, [synth_site.root / "export"])
    # Three whole batches were committed before the walk reached file 35.
    assert len(rows(site)) == 30
    report = Ledger(make_engine(site.database_url)).verify(site.intake)
    # The 5 files of the broken batch are in intake but not the ledger: unaccounted.
    assert report.unaccounted == 5 and not report.consistent
    monkeypatch.undo()
    summary = import_paths(site, [synth_site.root / "export"])
    assert summary.receipts == {"duplicate": 30, "new": len(files) - 30}
    report = Ledger(make_engine(site.database_url)).verify(site.intake)
    assert report.consistent and report.total == len(files)
