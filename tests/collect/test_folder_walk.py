"""The folder walk accounts for every entry it meets (issue 22 #4).

A symbolic link loop aborted a whole import ("internal error (OSError)", nothing received),
a folder that could not be listed, a FIFO or a socket was skipped without a word, and a
FIFO named on the command line made ``import``, ``deid`` and ``scan`` wait for ever. Now each
such entry is reported with its reason, the readable files are still received, and the
command exits 1.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomhaven.cli import main
from dicomhaven.collect import Unreadable, iter_entries, read_files
from dicomhaven.site import Site
from tests.corpora import pydicom_file
from tests.deid.test_cli import manager_token
from tests.test_import import rows

#: Only a guard for the old behaviour (waiting for ever on a FIFO); a passing run takes
#: a few seconds.
HANG_GUARD_SECONDS = 120


def good_file(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "good.dcm"
    shutil.copy(pydicom_file("CT_small.dcm"), target)
    return target


@pytest.fixture
def loop_folder(tmp_path: Path) -> Path:
    """A good file and two symbolic links that point at each other."""
    folder = tmp_path / "in"
    good_file(folder)
    (folder / "loop-a").symlink_to(folder / "loop-b")
    (folder / "loop-b").symlink_to(folder / "loop-a")
    return folder


@pytest.fixture
def special_folder(tmp_path: Path) -> Iterator[Path]:
    """A good file, a dangling link, a link to a folder, a FIFO and a socket."""
    folder = tmp_path / "in"
    good_file(folder)
    (folder / "dangling.dcm").symlink_to(folder / "gone.dcm")
    (folder / "sub").mkdir()
    (folder / "to-sub").symlink_to(folder / "sub")
    os.mkfifo(folder / "pipe")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(folder / "sock"))
        yield folder


def reasons(summary: dict[str, list[dict[str, str]]]) -> dict[str, str]:
    return {Path(u["path"]).name: u["reason"] for u in summary["unreadable"]}


def test_a_link_loop_is_reported_and_the_good_file_imported(
    sqlite_site: Site, loop_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["import", "--site", str(sqlite_site.root), "--json", str(loop_folder)])
    captured = capsys.readouterr()
    assert code == 1, captured.err
    summary = json.loads(captured.out)
    assert summary["receipts"] == {"new": 1}
    assert reasons(summary) == {
        "loop-a": "symbolic link loop (OSError)",
        "loop-b": "symbolic link loop (OSError)",
    }
    assert len(rows(sqlite_site)) == 1
    assert main(["ledger", "--site", str(sqlite_site.root)]) == 0


def test_deid_of_a_folder_with_a_link_loop_skips_the_links(
    sqlite_site: Site, loop_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main(["deid", "--site", str(sqlite_site.root), "--json", "--headers-only",
                 "--token", manager_token(sqlite_site), str(loop_folder), str(out)])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1, captured.err
    assert "internal error" not in captured.err
    skipped = {Path(s["path"]).name: s["reason"] for s in json.loads(captured.out)["skipped"]}
    assert skipped == {
        "loop-a": "symbolic link loop (OSError)",
        "loop-b": "symbolic link loop (OSError)",
    }
    assert len(list(out.rglob("*.dcm"))) == 1


def test_special_entries_are_reported_not_skipped(
    sqlite_site: Site, special_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["import", "--site", str(sqlite_site.root), "--json", str(special_folder)])
    captured = capsys.readouterr()
    assert code == 1, captured.err
    summary = json.loads(captured.out)
    assert summary["receipts"] == {"new": 1}
    found = reasons(summary)
    assert found == {
        "dangling.dcm": "dangling symbolic link (FileNotFoundError)",
        "to-sub": "symbolic link to a folder: not followed (name the folder)",
        "pipe": "a FIFO (named pipe), not a regular file: not read",
        "sock": "a socket, not a regular file: not read",
    }


def test_a_folder_that_cannot_be_listed_is_reported(
    sqlite_site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    folder = tmp_path / "in"
    good_file(folder)
    locked = folder / "locked"
    good_file(locked)
    real_scandir = os.scandir

    def scandir(path: object) -> object:  # as for a folder of another user, mode 0700
        if Path(str(path)) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "scandir", scandir)
    code = main(["import", "--site", str(sqlite_site.root), "--json", str(folder)])
    captured = capsys.readouterr()
    assert code == 1
    summary = json.loads(captured.out)
    assert summary["receipts"] == {"new": 1}
    assert reasons(summary) == {
        "locked": "folder not read: no permission to list it (PermissionError)"
    }


def test_the_shared_reader_reports_a_fifo_without_opening_it_for_ever(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert list(iter_entries([fifo])) == [
        Unreadable(fifo, "a FIFO (named pipe), not a regular file: not read")
    ]
    assert list(read_files([fifo])) == [(fifo, "a FIFO (named pipe), not a regular file: not read")]


@pytest.mark.integration
@pytest.mark.parametrize("command", ["import", "deid", "scan"])
def test_a_fifo_named_on_the_command_line_does_not_hang(
    sqlite_site: Site, tmp_path: Path, command: str
) -> None:
    token = manager_token(sqlite_site)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    args = {
        "import": ["import", "--site", str(sqlite_site.root), str(fifo)],
        "deid": [
            "deid",
            "--site",
            str(sqlite_site.root),
            "--headers-only",
            "--token",
            token,
            str(fifo),
            str(tmp_path / "out"),
        ],
        "scan": ["scan", str(fifo)],
    }[command]
    done = subprocess.run(
        [sys.executable, "-m", "dicomhaven", *args],
        capture_output=True, text=True, timeout=HANG_GUARD_SECONDS, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "FIFO" in done.stderr
    assert "internal error" not in done.stderr
