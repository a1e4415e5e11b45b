"""Library warnings reach the site's log by kind, never the terminal (issues 21, 22 #5).

pydicom's warnings quote the value they complain of: a Study Instance UID of
``ZZTEST^Canary ZZ91139748`` was printed by ``import``, ``deid``, ``scan`` and the receiver,
in the middle of the progress bar. A warning is now logged as a kind in our words (the
category and the library's line when the text is not one we know), without its text, and
counted by kind in the command's summary.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicomhaven import ingest
from dicomhaven._logging import (
    classify_warning,
    collect_warnings,
    library_warnings,
    route_library_warnings,
)
from dicomhaven.cli import main
from dicomhaven.intake import Rejection, parse_object
from dicomhaven.site import Site
from tests.corpora import pydicom_file

CANARY = "ZZTEST^Canary ZZ91139748"
UI_KIND = "invalid value for VR UI"


def canary_file(folder: Path, number: int = 1) -> Path:
    """A CT slice whose Study Instance UID is a name and a number: pydicom warns, quoting it."""
    folder.mkdir(parents=True, exist_ok=True)
    dataset = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    uid = f"1.2.826.0.1.3680043.8.498.7003.{number}"
    dataset.SOPInstanceUID = uid
    dataset.file_meta.MediaStorageSOPInstanceUID = uid
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset.StudyInstanceUID = CANARY
        dataset.save_as(folder / f"canary{number}.dcm", enforce_file_format=True)
    return folder / f"canary{number}.dcm"


def site_log(site: Site) -> str:
    return (site.logs / "dicomhaven.log").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        (f"Invalid value for VR UI: '{CANARY}'. Please see <https://x>", UI_KIND),
        ("The value length (80) exceeds the maximum length of 64 allowed for VR LO.",
         "value longer than VR LO allows"),
        ("End of file reached before delimiter (FFFE,E0DD) found in file <no filename>",
         "end of file before a sequence delimiter"),
        (f"Unknown encoding '{CANARY}' - using default encoding instead",
         "unknown or invalid character set"),
        (f"something new about {CANARY}", "UserWarning at pydicom/valuerep.py:440"),
    ],
)  # fmt: skip
def test_a_warning_is_classified_in_our_words(message: str, kind: str) -> None:
    where = "/venv/lib/python3.11/site-packages/pydicom/valuerep.py"
    assert classify_warning(message, UserWarning, where, 440) == kind


def test_import_counts_warnings_by_kind_and_logs_no_value(
    sqlite_site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = canary_file(tmp_path / "in")
    code = main(["import", "--site", str(sqlite_site.root), "--json", str(path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["warnings"].get(UI_KIND, 0) >= 1
    text = site_log(sqlite_site)
    assert CANARY not in text
    logged = [json.loads(line) for line in text.splitlines()]
    assert any(r.get("kind") == UI_KIND and r["logger"] == "dicomhaven.warnings" for r in logged)
    # Without --json the summary names the kinds and counts.
    other = canary_file(tmp_path / "in", 2)
    assert main(["import", "--site", str(sqlite_site.root), str(other)]) == 0
    out, err = capsys.readouterr()
    assert "library warnings" in out and f"1 {UI_KIND}" in out
    assert CANARY not in out + err


@pytest.mark.integration
@pytest.mark.parametrize(
    "command",
    [["import", "--workers", "1"], ["import", "--workers", "2"], ["scan"]],
    ids=["import", "import-workers", "scan"],
)
def test_no_value_from_a_file_reaches_the_terminal(
    sqlite_site: Site, tmp_path: Path, command: list[str]
) -> None:
    """A real process, so that nothing (pytest's own capture of warnings, say) stands between
    the command and its terminal; with workers, their output too."""
    folder = tmp_path / "in"
    canary_file(folder)
    for name in ("MR_small.dcm", "rtplan.dcm"):
        (folder / name).write_bytes(pydicom_file(name).read_bytes())
    site = ["--site", str(sqlite_site.root)] if command[0] == "import" else []
    done = subprocess.run(
        [sys.executable, "-m", "dicomhaven.cli", *command, *site, "--json", str(folder)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert CANARY not in done.stdout + done.stderr
    assert "Warning" not in done.stderr, done.stderr
    if command[0] == "import":
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["warnings"].get(UI_KIND, 0) >= 1
        assert CANARY not in site_log(sqlite_site)


def test_an_internal_error_in_the_text_log_keeps_no_exception_text(
    sqlite_site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError(f"cannot handle {CANARY}")

    monkeypatch.setenv("DICOMHAVEN_LOG_FORMAT", "text")
    monkeypatch.setattr(ingest, "import_paths", broken)
    path = canary_file(tmp_path / "in")
    assert main(["import", "--site", str(sqlite_site.root), str(path)]) == 70
    out, err = capfd.readouterr()
    text = site_log(sqlite_site)
    assert "ValueError" in text and "internal error" in text
    assert CANARY not in text + out + err


def eof_before_delimiter() -> bytes:
    """An RT plan ending in an element of undefined length that is never closed: pydicom
    reads it with only a warning, from which intake learns it is truncated."""
    dataset = pydicom.dcmread(pydicom_file("rtplan.dcm"))
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    tail = struct.pack("<HH", 0x7FE1, 0x1010) + b"OB\x00\x00\xff\xff\xff\xff" + b"\x01" * 40
    return buffer.getvalue() + tail


def test_intake_reads_its_own_threads_warnings_while_routed() -> None:
    """The receiver parses on several threads: each must see its own truncation warning,
    and none another's, without touching the process's warning filters."""
    truncated = eof_before_delimiter()
    whole = pydicom_file("CT_small.dcm").read_bytes()
    answers: dict[str, list[str]] = {"truncated": [], "whole": []}

    def parse(kind: str, data: bytes) -> None:
        for _ in range(5):
            result = parse_object(data)
            answers[kind].append(result.reason if isinstance(result, Rejection) else "parsed")

    before = library_warnings()
    with route_library_warnings():
        threads = [threading.Thread(target=parse, args=("truncated", truncated)) for _ in range(3)]
        threads += [threading.Thread(target=parse, args=("whole", whole)) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with collect_warnings() as mine:
            warnings.warn("End of file reached before delimiter, said another", stacklevel=1)
        assert len(mine) == 1
    assert answers["whole"] == ["parsed"] * 15
    assert (
        answers["truncated"] == ["truncated DICOM: the file ends before a sequence delimiter"] * 15
    )
    assert (library_warnings() - before)["end of file before a sequence delimiter"] == 16
    assert warnings.showwarning.__name__ != "_route"  # the route ends with the block
