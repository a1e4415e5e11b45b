"""What the terminal shows of a file name is the name, inert (issue 22 #5).

A rejected file named ``rej_rich[/].bin`` ended ``import`` and ``scan`` with "internal error
(MarkupError)": the name was read as Rich markup. ANSI escape sequences and newlines in
names reached the terminal raw, so a name could restyle the screen or forge a line.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dicomhaven.cli import main
from dicomhaven.site import Site

HOSTILE = {
    "rej_rich[/].bin": "rej_rich[/].bin",
    "[bold red]loud[/bold red].bin": "[bold red]loud[/bold red].bin",
    "\x1b[31mred\x1b[0m.bin": "\\x1b[31mred\\x1b[0m.bin",
    "two\nlines.bin": "two\\x0alines.bin",
    "back\rspace.bin": "back\\x0dspace.bin",
}


@pytest.fixture
def hostile_folder(tmp_path: Path) -> Path:
    """Files that are not DICOM (so they are rejected, and listed), with hostile names."""
    folder = tmp_path / "in"
    folder.mkdir()
    for name in HOSTILE:  # "rej_rich[/].bin" is the file "].bin" in the folder "rej_rich["
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_bytes(b"ZZTEST^Canary is not DICOM")
    return folder


def assert_inert(text: str) -> None:
    assert "\x1b" not in text and "\r" not in text
    for shown in HOSTILE.values():
        assert shown in text, shown
    for line in text.splitlines():  # no name broke a line in two
        assert not line.startswith("lines.bin")


def test_import_prints_hostile_names_as_they_are(
    sqlite_site: Site, hostile_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["import", "--site", str(sqlite_site.root), str(hostile_folder)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "internal error" not in captured.err
    assert captured.out.count("  rejected ") == len(HOSTILE)
    assert_inert(captured.out)


def test_scan_prints_hostile_names_as_they_are(
    hostile_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["scan", str(hostile_folder)])
    captured = capsys.readouterr()
    assert code == 1, captured.err  # not DICOM: every file fails
    assert "internal error" not in captured.err
    assert captured.out.count(": ERROR ") == len(HOSTILE)
    assert_inert(captured.out)


def test_import_error_messages_print_hostile_paths_inert(
    sqlite_site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "gone\x1b[2J[/]"
    assert main(["import", "--site", str(sqlite_site.root), str(missing)]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and "gone\\x1b[2J[/]" in err
