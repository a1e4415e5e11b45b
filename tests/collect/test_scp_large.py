"""A large C-STORE goes to disk as it arrives: the receiver never holds the object whole.

Before, a 1 GB object took the receiver to 2.2 GB: the data set in pynetdicom's buffer,
then copied into one bytes object with its File Meta Information (and, from a sender told
"no limit", a third time as one PDU). Here a ~20 MB object is sent by pynetdicom from its
file (so the sender's memory is not the receiver's) to a real ``dicomhaven scp`` process,
whose own peak resident set (VmHWM) is read from /proc before and after: it must grow by
far less than the object, and what intake holds must be the bytes that were sent.
"""

from __future__ import annotations

import struct
import tempfile
from pathlib import Path

import pytest
from pydicom.uid import UID, CTImageStorage, EnhancedMRImageStorage, ExplicitVRLittleEndian
from pynetdicom import AE, _config
from pynetdicom.dsutils import create_file_meta, encode_file_meta

from dicomhaven.collect._chunked import ChunkedReceive
from dicomhaven.intake import dicom_object_key, sha256_file
from dicomhaven.site import Site
from tests.collect.test_scp import AE_TITLE, ScpRunner, ledger_exit_code, ledger_rows
from tests.collect.test_scp import sop_instance_uid as uid_of
from tests.corpora import pydicom_file
from tests.pixels.bombs import large_image

CALLING = "PYNETDICOM"


def peak_kib(pid: int) -> int:
    """The process's own peak resident set size (VmHWM), KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc status (Linux only)")


def send(port: int, *paths: Path) -> list[int]:
    """C-STORE each file as its bytes are (pynetdicom reads it in PDUs of our maximum)."""
    ae = AE(ae_title=CALLING)
    for sop_class in (CTImageStorage, EnhancedMRImageStorage):
        ae.add_requested_context(sop_class, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title=AE_TITLE)
    assert assoc.is_established
    try:
        return [int(assoc.send_c_store(path).Status) for path in paths]
    finally:
        assoc.release()


def data_set_bytes(part10: bytes) -> bytes:
    """What follows the File Meta Information of a Part-10 file (the data set as sent)."""
    assert part10[128:132] == b"DICM" and part10[132:136] == b"\x02\x00\x00\x00"
    (group_length,) = struct.unpack("<I", part10[140:144])
    return part10[144 + group_length :]


@pytest.mark.integration
def test_a_large_c_store_is_written_to_disk_as_it_arrives_and_kept_intact(
    sqlite_site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = large_image(tmp_path / "large.dcm", 20)
    size_kib = big.stat().st_size // 1024
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)  # our side streams too
    scp_runner = ScpRunner()
    try:
        scp = scp_runner.start(sqlite_site, "--allow", CALLING, "--drain-seconds", "0")
        assert send(scp.port, pydicom_file("CT_small.dcm")) == [0x0000]  # every path once
        before = peak_kib(scp.proc.pid)
        assert send(scp.port, big) == [0x0000]
        grown = peak_kib(scp.proc.pid) - before
        scp.stop()
    finally:
        scp_runner.close()
    # Holding it whole even once would grow the peak by the object's size; reading it in
    # PDUs of 1 MiB costs a few MiB whatever the size (measured: 4 MiB here, 74 MiB before).
    assert grown < size_kib // 2, f"the receiver's peak grew {grown} KiB for {size_kib} KiB"

    key = dicom_object_key(sqlite_site.site_key(), uid_of(big))
    [row] = [r for r in ledger_rows(sqlite_site) if r.object_key == key]
    stored = sqlite_site.intake / row.intake_path
    # Byte for byte what the in-memory path stored before (event.encoded_dataset()), so an
    # object received before and again now is a duplicate, not a conflict.
    meta = create_file_meta(
        sop_class_uid=EnhancedMRImageStorage,
        sop_instance_uid=UID(uid_of(big)),
        transfer_syntax=ExplicitVRLittleEndian,
    )
    sent = data_set_bytes(big.read_bytes())
    assert stored.read_bytes() == b"\x00" * 128 + b"DICM" + encode_file_meta(meta) + sent
    assert sha256_file(stored) == row.sha256
    assert oct(stored.stat().st_mode & 0o777) == "0o600"
    # Nothing received is left outside intake's areas (the transfer files are gone).
    assert not list((sqlite_site.intake / ".partial").rglob("*.dcm"))
    assert ledger_exit_code(sqlite_site, "--deep") == 0


def test_transfer_files_stay_in_the_intake_zone_and_are_cleaned_up(tmp_path: Path) -> None:
    intake = tmp_path / "intake"
    crashed = intake / ".partial" / "received-999999999"  # no such process
    crashed.mkdir(parents=True)
    (crashed / "tmpbroken.dcm").write_bytes(b"half an object")
    before = (_config.STORE_RECV_CHUNKED_DATASET, tempfile.gettempdir())
    receiving = ChunkedReceive()
    receiving.start(intake)
    try:
        assert _config.STORE_RECV_CHUNKED_DATASET
        folder = Path(tempfile.gettempdir())  # where pynetdicom makes its files now
        assert folder.parent == intake / ".partial"
        assert oct(folder.stat().st_mode & 0o777) == "0o700"
        assert not crashed.exists()  # a dead receiver's broken transfers are removed
        with tempfile.NamedTemporaryFile(delete=False, suffix=".dcm") as broken:
            broken.write(b"an association aborted half-way")  # pynetdicom leaves these
    finally:
        receiving.stop()
    assert not folder.exists()
    assert (_config.STORE_RECV_CHUNKED_DATASET, tempfile.gettempdir()) == before
