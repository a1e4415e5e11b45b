"""A stage that raises: the object's content is rejected with a reason, the environment's
fault is failed and retried (issue 22 #5).

On main, a file without a Study Instance UID, a sequence 1,000 deep and a Number of Frames
of ``1A`` all ended "failed ... retry with 'dicomhaven process'", and every retry failed the
same way for ever. What fails on the same bytes every time is a rejection, with a reason.
"""

from __future__ import annotations

import errno
import io
import struct
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from sqlalchemy.exc import OperationalError

from dicomhaven import ingest
from dicomhaven.catalogue import ObjectStatus
from dicomhaven.errors import UnsafeContent
from dicomhaven.ingest import import_paths, process_pending
from dicomhaven.pipeline import Pipeline, PipelineObject, StageContext
from dicomhaven.pipeline._failures import disk_full_zones, is_disk_full
from dicomhaven.site import Site
from tests.corpora import pydicom_file
from tests.test_import import rows

CANARY = "ZZTEST^Canary ZZ91139748"


def slice_with(number: int) -> pydicom.FileDataset:
    """pydicom's CT slice as a new instance (synthetic UID)."""
    template = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    uid = f"1.2.826.0.1.3680043.8.498.7002.{number}"
    template.SOPInstanceUID = uid
    template.file_meta.MediaStorageSOPInstanceUID = uid
    return template


def without_study_uid(folder: Path) -> Path:
    dataset = slice_with(1)
    del dataset.StudyInstanceUID
    dataset.save_as(folder / "nostudy.dcm", enforce_file_format=True)
    return folder / "nostudy.dcm"


def deep_sequence(folder: Path, depth: int = 1000) -> Path:
    """A CT slice with a Content Sequence nested ``depth`` deep, each level of defined
    length (so intake reads past it, as a real export's is read), its bytes written by hand:
    pydicom itself cannot write it without a deeper recursion limit."""
    content = struct.pack("<HH", 0x0008, 0x0100) + b"SH" + struct.pack("<H", 6) + b"ZZTEST"
    for _ in range(depth):
        item = struct.pack("<HHL", 0xFFFE, 0xE000, len(content)) + content
        content = struct.pack("<HH", 0x0040, 0xA730) + b"SQ\x00\x00"
        content += struct.pack("<L", len(item)) + item
    buffer = io.BytesIO()
    slice_with(2).save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue()
    pixels = data.rindex(struct.pack("<HH", 0x7FE0, 0x0010))
    (folder / "deep.dcm").write_bytes(data[:pixels] + content + data[pixels:])
    return folder / "deep.dcm"


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (without_study_uid, "required attribute Study Instance UID (0020,000D) is missing"),
        (deep_sequence, "nested too deep to read (RecursionError)"),
    ],
)
def test_content_that_fails_every_time_is_rejected_with_a_reason(
    sqlite_site: Site, tmp_path: Path, make: object, words: str
) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    import_paths(sqlite_site, [path])
    (obj,) = rows(sqlite_site)
    assert obj.status == ObjectStatus.REJECTED, obj.reason
    assert words in obj.reason
    assert process_pending(sqlite_site).outcomes == {}  # nothing to retry


@dataclass(frozen=True)
class Raising:
    """A stage that raises ``error`` (its text quotes a value, as a parser's would)."""

    error: Exception
    name: str = "raising"

    def __call__(self, obj: PipelineObject, ctx: StageContext) -> None:
        raise self.error


def outcome_of(error: Exception, tmp_path: Path) -> tuple[ObjectStatus, str]:
    obj = PipelineObject(1, "k" * 64, tmp_path / "none.dcm")
    outcome = Pipeline(stages=(Raising(error),)).run(obj, StageContext(tmp_path))
    assert CANARY not in outcome.reason
    return outcome.status, outcome.reason


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ValueError(f"invalid literal for int() with base 10: '{CANARY}'"), ObjectStatus.REJECTED),
        (RecursionError("maximum recursion depth exceeded"), ObjectStatus.REJECTED),
        (UnicodeDecodeError("utf-8", CANARY.encode(), 0, 1, "bad"), ObjectStatus.REJECTED),
        (UnsafeContent(f"cannot clean {CANARY}"), ObjectStatus.QUARANTINED),
        (PermissionError(errno.EACCES, "denied", f"/x/{CANARY}"), ObjectStatus.FAILED),
        (OperationalError("SELECT", {}, Exception("database is locked")), ObjectStatus.FAILED),
        (TypeError(f"our bug on {CANARY}"), ObjectStatus.FAILED),
    ],
)
def test_each_kind_of_failure_ends_in_its_status(
    tmp_path: Path, error: Exception, status: ObjectStatus
) -> None:
    found, reason = outcome_of(error, tmp_path)
    assert found is status, reason
    assert type(error).__name__ in reason
    if status is ObjectStatus.FAILED:
        assert "dicomhaven process" in reason


def test_a_missing_attribute_read_through_pydicom_is_named(tmp_path: Path) -> None:
    try:
        _ = Dataset().StudyInstanceUID
    except AttributeError as exc:
        found, reason = outcome_of(exc, tmp_path)
    assert found is ObjectStatus.REJECTED
    assert "Study Instance UID (0020,000D) is missing" in reason


def test_a_full_disk_fails_the_object_naming_the_zone(tmp_path: Path) -> None:
    (tmp_path / "quarantine").mkdir()
    error = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "quarantine" / "x"))
    found, reason = outcome_of(error, tmp_path)
    assert found is ObjectStatus.FAILED
    assert reason.startswith("disk full: no space left in zone quarantine")
    assert disk_full_zones(reason) == ["quarantine"]


def test_sqlite_and_postgresql_full_are_disk_full() -> None:
    class SqliteFull(Exception):
        sqlite_errorcode = 13

    class PgDiskFull(Exception):
        sqlstate = "53100"

    for orig in (SqliteFull("database or disk is full"), PgDiskFull("could not extend file")):
        assert is_disk_full(OperationalError("INSERT", {}, orig))
    assert not is_disk_full(OperationalError("INSERT", {}, Exception("database is locked")))
    assert not is_disk_full(OSError(errno.EACCES, "denied"))


def test_process_rejects_objects_failed_on_main_for_their_content(
    sqlite_site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A site upgraded from main holds such objects 'failed': the next retry settles them."""
    path = without_study_uid(tmp_path)
    real = ingest.pipeline_for
    monkeypatch.setattr(
        ingest, "pipeline_for", lambda site: Pipeline(stages=(Raising(OSError(errno.EIO, "io")),))
    )
    import_paths(sqlite_site, [path])
    assert rows(sqlite_site)[0].status == ObjectStatus.FAILED
    monkeypatch.setattr(ingest, "pipeline_for", real)
    assert process_pending(sqlite_site).outcomes == {"rejected": 1}
