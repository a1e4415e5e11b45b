"""The DICOM receiver, ``dicomhaven scp``, run as a real process on loopback and driven by
real peers: DCMTK's echoscu and storescu, and pynetdicom as an SCU (for what storescu will
not send: truncated data, TLS).

The invariant under test: an object the receiver acknowledged is in intake and in the
ledger, exactly once, whatever happens to the receiver afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, _config
from pynetdicom.sop_class import CTImageStorage, Verification  # type: ignore[attr-defined]
from sqlalchemy import select

from dicomhaven.catalogue import LedgerObject, make_engine, make_sessionmaker
from dicomhaven.cli import main
from dicomhaven.collect import AllowRule
from dicomhaven.errors import ConfigError
from dicomhaven.intake import dicom_object_key, sha256_file
from dicomhaven.site import Site
from tests.corpora import pydicom_data_folder, pydicom_file
from tests.peers import require_tool
from tests.synth.generated import GeneratedSite

AE_TITLE = "DICOMHAVEN"
START_SECONDS = 60.0
STOP_SECONDS = 120.0
PEER_SECONDS = 120.0


def free_port() -> int:
    """A port free on loopback now (a small race with other programs, which start notices)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Scp:
    """One ``dicomhaven scp`` process and what it printed."""

    proc: subprocess.Popen[str]
    port: int
    stderr: list[str] = field(default_factory=list)

    def stop(self) -> dict[str, object]:
        """SIGTERM, wait for the clean shutdown, and return its JSON summary."""
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=STOP_SECONDS)
        assert self.proc.returncode == 0, "".join(self.stderr)
        summary: dict[str, object] = json.loads(out)
        return summary

    def kill(self) -> None:
        """kill -9 the receiver and its pipeline processes at once, as a crash of the host
        would (it leads its own process group)."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=STOP_SECONDS)


class ScpRunner:
    """Starts receivers for a test and stops whatever is still running at teardown."""

    def __init__(self) -> None:
        self.started: list[Scp] = []

    def start(self, site: Site, *args: str) -> Scp:
        port = free_port()
        command = [sys.executable, "-m", "dicomhaven", "scp", "--site", str(site.root)]
        command += ["--port", str(port), "--json", *args]
        proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ,
            start_new_session=True,
        )
        scp = Scp(proc, port)
        self.started.append(scp)
        ready = threading.Event()

        def drain() -> None:  # stderr is read to its end, so the pipe never fills up
            assert proc.stderr is not None
            for line in proc.stderr:
                scp.stderr.append(line)
                if "listening on" in line:
                    ready.set()
            ready.set()

        threading.Thread(target=drain, daemon=True).start()
        assert ready.wait(START_SECONDS), "dicomhaven scp did not start listening"
        assert proc.poll() is None, "dicomhaven scp exited: " + "".join(scp.stderr)
        return scp

    def close(self) -> None:
        for scp in self.started:
            if scp.proc.poll() is None:
                scp.kill()


@pytest.fixture
def scp_runner() -> Iterator[ScpRunner]:
    runner = ScpRunner()
    try:
        yield runner
    finally:
        runner.close()


def run_peer(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=PEER_SECONDS)


def echoscu(scp: Scp, calling: str, called: str = AE_TITLE) -> subprocess.CompletedProcess[str]:
    tool = require_tool("echoscu")
    return run_peer(tool, "-aet", calling, "-aec", called, "127.0.0.1", str(scp.port))


def storescu(
    scp: Scp, *paths: str, options: tuple[str, ...] = (), calling: str = "STORESCU"
) -> subprocess.CompletedProcess[str]:
    tool = require_tool("storescu")
    command = [tool, "-nh", "-aet", calling, "-aec", AE_TITLE, *options]
    return run_peer(*command, "127.0.0.1", str(scp.port), *paths)


def ledger_rows(site: Site) -> list[LedgerObject]:
    with make_sessionmaker(make_engine(site.database_url))() as session:
        return list(session.scalars(select(LedgerObject).order_by(LedgerObject.id)))


def ledger_exit_code(site: Site, *args: str) -> int:
    return main(["ledger", "--site", str(site.root), "--json", *args])


def sop_instance_uid(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def expected_keys(site: Site, files: list[Path]) -> set[str]:
    return {dicom_object_key(site.site_key(), sop_instance_uid(f)) for f in files}


def copies(source: Path, folder: Path, count: int) -> list[Path]:
    """``count`` copies of ``source``, each a new SOP Instance (UIDs are seeded, so repeatable)."""
    folder.mkdir(parents=True, exist_ok=True)
    dataset = pydicom.dcmread(source)
    made = []
    for index in range(count):
        uid = generate_uid(entropy_srcs=[folder.name, str(index)])
        dataset.SOPInstanceUID = uid
        dataset.file_meta.MediaStorageSOPInstanceUID = uid
        path = folder / f"{index:05d}.dcm"
        dataset.save_as(path, enforce_file_format=True)
        made.append(path)
    return made


# -- configuration ----------------------------------------------------------------------------


def test_allow_rules_match_title_and_host() -> None:
    anywhere = AllowRule.parse("MODALITY", "test")
    one_host = AllowRule.parse("PACS@127.0.0.1", "test").resolved()
    assert anywhere.admits("MODALITY", "10.1.2.3")
    assert not anywhere.admits("modality", "10.1.2.3")  # AE titles are case sensitive
    assert one_host.admits("PACS", "127.0.0.1")
    assert not one_host.admits("PACS", "127.0.0.2")
    with pytest.raises(ConfigError, match="--allow: 'BAD\\\\TITLE'"):
        AllowRule.parse("BAD\\TITLE", "--allow")
    with pytest.raises(ConfigError, match="AE@host"):
        AllowRule.parse("PACS@not a host", "--allow")


def test_receiver_without_an_allow_list_refuses_to_start(
    sqlite_site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scp", "--site", str(sqlite_site.root), "--port", "0"]) == 2
    assert "no calling AE title is allowed" in capsys.readouterr().err


def test_bad_allow_entry_in_settings_names_file_and_line(
    sqlite_site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = sqlite_site.root / "dicomhaven.yaml"
    settings.write_text("workers: 1\nscp_allow:\n  - MODALITY\n  - WAY_TOO_LONG_AE_TITLE_X\n")
    assert main(["scp", "--site", str(sqlite_site.root), "--port", "0"]) == 2
    message = capsys.readouterr().err
    assert f"{settings}:4" in message and "scp_allow" in message and "16 characters" in message


def test_tls_needs_both_certificate_and_key(
    sqlite_site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("not used")
    args = ["scp", "--site", str(sqlite_site.root), "--allow", "A", "--tls-cert", str(cert)]
    assert main(args) == 2
    assert "both --tls-cert and --tls-key" in capsys.readouterr().err


# -- association control ----------------------------------------------------------------------


def test_echo_and_the_allow_list(sqlite_site: Site, scp_runner: ScpRunner) -> None:
    require_tool("echoscu")
    scp = scp_runner.start(
        sqlite_site, "--allow", "ECHOSCU", "--allow", "ONHOST@127.0.0.1",
        "--allow", "ELSEWHERE@127.0.0.2",
    )  # fmt: skip
    assert echoscu(scp, "ECHOSCU").returncode == 0
    assert echoscu(scp, "ONHOST").returncode == 0
    for calling in ("STRANGER", "ELSEWHERE"):  # unknown title; known title from another host
        refused = echoscu(scp, calling)
        assert refused.returncode != 0
        assert "Association Rejected" in refused.stderr
        assert "Calling AE Title Not Recognized" in refused.stderr
    wrong_called = echoscu(scp, "ECHOSCU", called="SOMEONE-ELSE")
    assert wrong_called.returncode != 0
    assert "Called AE Title Not Recognized" in wrong_called.stderr
    summary = scp.stop()
    assert summary["associations"] == {"accepted": 2, "released": 2, "rejected": 3}
    assert ledger_exit_code(sqlite_site) == 0


def test_associations_beyond_the_limit_are_rejected_as_transient(
    sqlite_site: Site, scp_runner: ScpRunner
) -> None:
    require_tool("echoscu")
    scp = scp_runner.start(sqlite_site, "--allow", "HOLDER", "--allow", "ECHOSCU",
                           "--max-associations", "1")  # fmt: skip
    ae = AE(ae_title="HOLDER")
    ae.add_requested_context(Verification)
    held = ae.associate("127.0.0.1", scp.port, ae_title=AE_TITLE)  # takes the only slot
    assert held.is_established
    try:
        refused = echoscu(scp, "ECHOSCU")
        assert refused.returncode != 0
        assert "Rejected Transient" in refused.stderr and "Local Limit Exceeded" in refused.stderr
    finally:
        held.release()
    assert echoscu(scp, "ECHOSCU").returncode == 0  # the slot is free again
    summary = scp.stop()
    assert summary["associations"] == {"accepted": 2, "released": 2, "rejected": 1}


# -- storing ----------------------------------------------------------------------------------

# (file, storescu option proposing its transfer syntax): each is sent as it is, not converted.
TRANSFER_SYNTAXES = [
    ("CT_small.dcm", "-xe"),  # Explicit VR Little Endian
    ("MR_small_implicit.dcm", "-xi"),  # Implicit VR Little Endian
    ("MR_small_bigendian.dcm", "-xb"),  # Explicit VR Big Endian (retired, still sent)
    ("image_dfl.dcm", "-xd"),  # Deflated Explicit VR Little Endian
    ("SC_rgb_jpeg_dcmtk.dcm", "-xy"),  # JPEG Baseline (Process 1)
    ("JPEG-lossy.dcm", "-xx"),  # JPEG Extended (Process 2 and 4)
    ("JPEG-LL.dcm", "-xs"),  # JPEG Lossless, First-Order Prediction (Process 14 SV1)
    ("MR_small_jpeg_ls_lossless.dcm", "-xt"),  # JPEG-LS Lossless
    ("MR_small_jp2klossless.dcm", "-xv"),  # JPEG 2000 (Lossless Only)
    ("MR_small_RLE.dcm", "-xr"),  # RLE Lossless
]


def _test_file(name: str) -> Path:
    return pydicom_data_folder() / name if name == "JPEG-LL.dcm" else pydicom_file(name)


def test_every_common_transfer_syntax_is_stored_as_sent(
    sqlite_site: Site, scp_runner: ScpRunner, tmp_path: Path
) -> None:
    require_tool("storescu")
    # Several test files are one MR image in several encodings, under one SOP Instance UID;
    # each gets its own instance here, or the receiver rightly calls them conflicts.
    files = {name: copies(_test_file(name), tmp_path / name, 1)[0] for name, _ in TRANSFER_SYNTAXES}
    scp = scp_runner.start(sqlite_site, "--allow", "STORESCU", "--drain-seconds", "0")
    for name, option in TRANSFER_SYNTAXES:
        sent = storescu(scp, str(files[name]), options=(option,))
        assert sent.returncode == 0, f"{name}: {sent.stderr}"
    summary = scp.stop()
    assert summary["statuses"] == {"0x0000": len(TRANSFER_SYNTAXES)}
    by_key = {row.object_key: row for row in ledger_rows(sqlite_site)}
    for name, _ in TRANSFER_SYNTAXES:
        source = pydicom.dcmread(files[name])
        row = by_key[dicom_object_key(sqlite_site.site_key(), str(source.SOPInstanceUID))]
        assert row.transfer_syntax_uid == source.file_meta.TransferSyntaxUID, name
        assert row.status != "rejected", f"{name}: {row.reason}"
        received = pydicom.dcmread(sqlite_site.intake / row.intake_path)
        # The pixel data is the sender's, byte for byte: nothing was decoded or re-encoded.
        assert received.PixelData == source.PixelData, name
    assert ledger_exit_code(sqlite_site, "--deep") == 0


def _dicom_files(*folders: Path) -> list[Path]:
    return sorted(p for folder in folders for p in folder.rglob("*.dcm"))


def test_storescu_pushes_a_folder_once_and_again(
    sqlite_site: Site, synth_site: GeneratedSite, scp_runner: ScpRunner, tmp_path: Path
) -> None:
    require_tool("storescu")
    extra = tmp_path / "pydicom"
    extra.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "waveform_ecg.dcm", "test-SR.dcm"):
        shutil.copy(pydicom_file(name), extra / name)
    export = synth_site.root / "export"
    files = _dicom_files(export, extra)
    assert len(files) > 50
    keys = expected_keys(sqlite_site, files)
    assert len(keys) == len(files)  # every file a distinct SOP Instance

    # Receiving is under test here, not the pipeline: what is not processed at once is left
    # failed (retryable) at shutdown, and the ledger is consistent all the same.
    scp = scp_runner.start(sqlite_site, "--allow", "STORESCU@127.0.0.1", "--drain-seconds", "0")
    first = storescu(scp, str(export), str(extra), options=("+sd", "+r"))
    assert first.returncode == 0, first.stderr
    again = storescu(scp, str(export), str(extra), options=("+sd", "+r"))
    assert again.returncode == 0, again.stderr
    summary = scp.stop()

    assert summary["statuses"] == {"0x0000": 2 * len(files)}
    # The second copy of each object is never new: a duplicate if its first copy was decided
    # by then, "resumed" (picked up again, still in flight) if the pipeline is behind.
    receipts = summary["receipts"]
    assert receipts.get("new") == len(files) and set(receipts) <= {"new", "duplicate", "resumed"}
    assert receipts.get("duplicate", 0) + receipts.get("resumed", 0) == len(files)
    rows = ledger_rows(sqlite_site)
    assert {row.object_key for row in rows} == keys  # every object, exactly once
    assert len(rows) == len(files)
    for row in rows:
        assert row.receipts == 2 and row.source == "dicom:STORESCU"
        deferred = row.status == "failed" and row.reason.startswith("not processed")
        assert row.status in {"released", "quarantined"} or deferred, row.reason
        assert sha256_file(sqlite_site.intake / row.intake_path) == row.sha256
    assert ledger_exit_code(sqlite_site, "--deep") == 0

    # The log names AE titles, hosts, SOP Classes and keys, never a value from the data sets.
    log_text = (sqlite_site.logs / "dicomhaven.log").read_text()
    assert "C-STORE" in log_text and "STORESCU" in log_text
    for path in files:
        header = pydicom.dcmread(path, stop_before_pixels=True)
        for value in (header.get("PatientName"), header.get("PatientID")):
            if value is not None and len(str(value)) >= 4:
                assert str(value) not in log_text


def test_malformed_and_conflicting_objects_are_kept_rejected_and_refused(
    sqlite_site: Site, scp_runner: ScpRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = pydicom_file("CT_small.dcm").read_bytes()
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(original[:-1000])
    conflicting = tmp_path / "conflicting.dcm"  # same SOP Instance, other pixel bytes
    conflicting.write_bytes(original[:-10] + b"\x01" * 10)
    intact = tmp_path / "intact.dcm"
    intact.write_bytes(original)

    scp = scp_runner.start(sqlite_site, "--allow", "PYNETDICOM")
    # pynetdicom sends a file's bytes as they are (chunked), so a truncated file stays
    # truncated on the wire; storescu would refuse to read it.
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)
    ae = AE(ae_title="PYNETDICOM")
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", scp.port, ae_title=AE_TITLE)
    assert assoc.is_established
    try:
        statuses = [assoc.send_c_store(p) for p in (intact, truncated, conflicting, intact)]
    finally:
        assoc.release()
    assert [s.Status for s in statuses] == [0x0000, 0xC000, 0x0111, 0x0000]
    assert statuses[1].ErrorComment.startswith("truncated DICOM")
    scp.stop()

    rows = ledger_rows(sqlite_site)
    assert len(rows) == 3
    good, bad, conflict = rows
    assert good.kind == "dicom" and good.receipts == 2 and good.status != "rejected"
    assert bad.status == "rejected" and bad.reason.startswith("truncated DICOM")
    assert conflict.status == "rejected" and conflict.reason.startswith("conflicting duplicate")
    for row in rows:
        assert (sqlite_site.intake / row.intake_path).is_file()  # kept, whatever it was
    assert ledger_exit_code(sqlite_site, "--deep") == 0


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dicomhaven test receiver")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "receiver.pem", tmp_path / "receiver.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls_receiver_talks_tls_only(
    sqlite_site: Site, scp_runner: ScpRunner, tmp_path: Path
) -> None:
    require_tool("echoscu")  # the plain-TCP peer: skip locally, fail in CI when missing
    cert, key = _self_signed(tmp_path)
    scp = scp_runner.start(
        sqlite_site, "--allow", "TLSSCU", "--tls-cert", str(cert), "--tls-key", str(key)
    )
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cert))
    ae = AE(ae_title="TLSSCU")
    ae.add_requested_context(Verification)
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", scp.port, ae_title=AE_TITLE, tls_args=(client, "127.0.0.1"))
    assert assoc.is_established
    try:
        assert assoc.send_c_echo().Status == 0x0000
        assert assoc.send_c_store(pydicom.dcmread(pydicom_file("CT_small.dcm"))).Status == 0
    finally:
        assoc.release()
    assert echoscu(scp, "TLSSCU").returncode != 0  # a plain TCP peer cannot associate
    summary = scp.stop()
    assert summary["statuses"] == {"0x0000": 1}
    assert ledger_exit_code(sqlite_site) == 0


# -- load and crashes -------------------------------------------------------------------------


@pytest.mark.integration
def test_eight_concurrent_associations_send_2000_instances(
    sqlite_site: Site,
    scp_runner: ScpRunner,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    tool = require_tool("storescu")
    source = pydicom_file("MR_small.dcm")
    folders = [tmp_path / f"batch{i}" for i in range(8)]
    files = [f for folder in folders for f in copies(source, folder, 250)]
    keys = expected_keys(sqlite_site, files)
    assert len(keys) == 2000

    scp = scp_runner.start(sqlite_site, "--allow", "LOAD", "--max-associations", "8")
    started = time.monotonic()
    senders = [
        subprocess.Popen(
            [tool, "-nh", "-aet", "LOAD", "-aec", AE_TITLE, "+sd", "127.0.0.1", str(scp.port),
             str(folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        for folder in folders
    ]  # fmt: skip
    try:
        errors = [sender.communicate(timeout=PEER_SECONDS)[1] for sender in senders]
    finally:
        for sender in senders:
            if sender.poll() is None:
                sender.kill()
    elapsed = time.monotonic() - started
    assert [s.returncode for s in senders] == [0] * 8, errors
    summary = scp.stop()

    request.node.add_report_section(
        "call", "receive rate", f"2000 instances in {elapsed:.1f} s: {2000 / elapsed:.0f}/s"
    )
    assert summary["statuses"] == {"0x0000": 2000}
    assert summary["associations"] == {"accepted": 8, "released": 8}
    rows = ledger_rows(sqlite_site)
    assert len(rows) == 2000 and {row.object_key for row in rows} == keys  # none lost or twice
    assert all(row.receipts == 1 for row in rows)
    assert ledger_exit_code(sqlite_site) == 0


@pytest.mark.integration
def test_killed_receiver_loses_no_acknowledged_object(
    sqlite_site: Site, scp_runner: ScpRunner, tmp_path: Path
) -> None:
    tool = require_tool("storescu")
    files = copies(pydicom_file("CT_small.dcm"), tmp_path / "crash", 300)
    keys = expected_keys(sqlite_site, files)
    key_of = {str(f): dicom_object_key(sqlite_site.site_key(), sop_instance_uid(f)) for f in files}

    scp = scp_runner.start(sqlite_site, "--allow", "CRASH")
    sender = subprocess.Popen(
        [tool, "-v", "-nh", "-aet", "CRASH", "-aec", AE_TITLE, "127.0.0.1", str(scp.port),
         *map(str, files)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    acknowledged: list[str] = []
    try:
        assert sender.stderr is not None
        current = ""
        for line in sender.stderr:  # storescu -v: "Sending file: X" ... "Received Store Response"
            if line.startswith("I: Sending file: "):
                current = line.removeprefix("I: Sending file: ").strip()
            elif "Received Store Response (Success)" in line:
                acknowledged.append(current)
                if len(acknowledged) == 60:
                    scp.kill()  # kill -9 in the middle of the transfer
        sender.wait(timeout=PEER_SECONDS)
    finally:
        if sender.poll() is None:
            sender.kill()
    assert 60 <= len(acknowledged) < len(files)
    recorded = {row.object_key for row in ledger_rows(sqlite_site)}
    assert {key_of[path] for path in acknowledged} <= recorded  # acknowledged ⇒ in the ledger

    again = scp_runner.start(sqlite_site, "--allow", "CRASH")
    resent = storescu(again, *map(str, files), calling="CRASH")
    assert resent.returncode == 0, resent.stderr
    again.stop()
    assert main(["process", "--site", str(sqlite_site.root)]) == 0
    rows = ledger_rows(sqlite_site)
    assert len(rows) == len(files) and {row.object_key for row in rows} == keys
    assert all(row.status in {"released", "quarantined"} for row in rows)
    assert ledger_exit_code(sqlite_site, "--deep") == 0
