"""``dicomhaven deid`` and ``redact`` over several workers give the outputs of one worker,
and no copy in OUT ever replaces another (issue 22 #5: two files with one SOP Instance UID)."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest

from dicomhaven.cli import main
from dicomhaven.deid._folder import DUPLICATE, NAME_TAKEN
from dicomhaven.site import Site
from dicomhaven.synth import FileKind
from tests.synth.generated import GeneratedSite
from tests.test_deid_safe_path import deid, pick, tokens, written


def tree(out: Path) -> dict[str, bytes]:
    """Every file under OUT (held/ too) by its path relative to OUT, with its bytes."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object]]:
    capsys.readouterr()
    code = main(argv)
    return code, json.loads(capsys.readouterr().out)


def same_uid_twice(source: Path, folder: Path) -> tuple[Path, Path]:
    """Two different files with the same SOP Instance UID (one pixel changed in the second),
    named so that the walk meets ``first`` first."""
    folder.mkdir(parents=True, exist_ok=True)
    ds = pydicom.dcmread(source)
    first, second = folder / "a-first.dcm", folder / "b-second.dcm"
    ds.save_as(first)
    pixels = bytearray(ds.PixelData)
    pixels[0] ^= 0xFF
    ds.PixelData = bytes(pixels)
    ds.save_as(second)
    return first, second


def test_a_second_file_with_the_same_sop_instance_uid_is_held_not_written_over(
    sqlite_site: Site, synth_site: GeneratedSite, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Regression (issue 22 #5): both copies were written to one path, the second silently
    replacing the first."""
    manager, _ = tokens(sqlite_site)
    (ct,) = pick(synth_site, tmp_path / "src", 0, {FileKind.CT: 1})
    first, second = same_uid_twice(ct, tmp_path / "in")
    out = tmp_path / "out"
    code, summary = run(deid(sqlite_site, [tmp_path / "in"], out, "--headers-only",
                             "--token", manager), capsys)  # fmt: skip
    assert code == 1  # something was held
    assert summary["written"] == 1
    (copy,) = written(out)
    assert pydicom.dcmread(copy).PixelData == pydicom.dcmread(first).PixelData  # the first's
    (held,) = summary["held"]  # type: ignore[misc]
    assert held["path"] == str(second) and held["stage"] == "write"
    assert held["reason"] == NAME_TAKEN
    kept = out / held["held_as"]
    assert kept != copy and pydicom.dcmread(kept).PixelData == pydicom.dcmread(second).PixelData
    reason = json.loads(kept.with_name(f"{kept.stem}.reason.json").read_text())
    assert reason["stage"] == "write"


def test_an_identical_copy_is_written_once_and_a_rerun_replaces_nothing_else(
    sqlite_site: Site, synth_site: GeneratedSite, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manager, _ = tokens(sqlite_site)
    (sr,) = pick(synth_site, tmp_path / "in", 0, {FileKind.SR: 1})
    twin = sr.with_name("z-twin.dcm")
    twin.write_bytes(sr.read_bytes())
    out = tmp_path / "out"
    argv = deid(sqlite_site, [tmp_path / "in"], out, "--headers-only", "--token", manager)
    code, summary = run(argv, capsys)
    assert code == 1 and summary["written"] == 1
    (skipped,) = summary["skipped"]  # type: ignore[misc]
    assert skipped == {"path": str(twin), "stage": "write", "reason": DUPLICATE}
    before = tree(out)
    # The same input again into the same OUT: the same bytes, so nothing is held.
    code, summary = run(argv, capsys)
    assert summary["written"] == 1 and summary["held"] == [] and tree(out) == before


def relative(summary: dict[str, object], root: Path) -> str:
    """The summary as text with the run's own folders taken out."""
    return json.dumps(summary, sort_keys=True).replace(str(root), "ROOT")


@pytest.mark.integration
def test_two_workers_give_the_outputs_and_summary_of_one(
    sqlite_site: Site, synth_site: GeneratedSite, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manager, _ = tokens(sqlite_site)
    folder = tmp_path / "in"
    pick(synth_site, folder, 0, {FileKind.CT: 4, FileKind.SR: 2, FileKind.US: 1})
    pick(synth_site, folder, 1, {FileKind.CT: 3, FileKind.SR: 1, FileKind.MAMMO: 1})
    (ct,) = pick(synth_site, tmp_path / "src", 2, {FileKind.CT: 1})
    same_uid_twice(ct, folder)  # a held copy, in order
    (folder / "notes.txt").write_text("not dicom")  # a skipped file
    results = {}
    for workers in (1, 2):
        out = tmp_path / f"out{workers}"
        argv = deid(sqlite_site, [folder], out, "--headers-only", "--token", manager,
                    "--workers", str(workers))  # fmt: skip
        code, summary = run(argv, capsys)
        assert code == 1 and summary["written"] >= 10 and len(summary["held"]) >= 1  # type: ignore[arg-type]
        results[workers] = (tree(out), relative(summary, out))
    assert results[2][0] == results[1][0]  # every file, held ones too, byte for byte
    assert results[2][1].replace("out2", "out1") == results[1][1]
