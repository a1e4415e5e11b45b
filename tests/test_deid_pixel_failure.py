"""A file the pixel step fails on is held with the reason, and the run goes on: one odd
image does not end an export of thousands (found by ``benchmarks/commands.py``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dicomhaven.cli import main
from dicomhaven.site import Site
from dicomhaven.synth import FileKind
from tests.corpora import pydicom_file
from tests.synth.generated import GeneratedSite
from tests.test_deid_safe_path import deid, pick, tokens, written


@pytest.mark.integration
def test_pixels_the_step_cannot_read_hold_the_copy_and_the_run_goes_on(
    sqlite_site: Site, synth_site: GeneratedSite, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Regression: a big-endian palette colour ultrasound made pydicom's colour LUT raise
    AttributeError inside the pixel step, and ``deid`` ended with an internal error. That
    file is read now (tests/pixels/test_every_layout.py); pydicom's JPEG with a misplaced
    marker, which no decoder reads, stands in for a file the step cannot process."""
    manager, _ = tokens(sqlite_site)
    folder = tmp_path / "in"
    folder.mkdir()
    odd = folder / "a-odd.dcm"
    shutil.copy(pydicom_file("JPEG-lossy.dcm"), odd)
    pick(synth_site, folder, 0, {FileKind.SR: 1})  # after it in the walk
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(deid(sqlite_site, [folder], out, "--token", manager)) == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["written"] == 1 and len(written(out)) == 1  # the run went on
    (held,) = summary["held"]
    assert held["path"] == str(odd) and held["stage"] == "pixels"
    assert held["reason"].startswith(
        "pixels cannot be made safe: pixels not decodable (JPEG Extended (Process 2 and 4), "
    )
    assert (out / held["held_as"]).is_file()
